/** `cache.status()`: cached, partial and missing chunks of a cache or view. */
import type { CacheStatus, ChunkCache, ChunkStatusEntry, PartialChunkStatus } from './cache.js';
import { planOf } from './cache.js';
import { fromNative } from '../errors/index.js';
import { PlanGeometry } from '../run/geometry.js';
import type { Value } from '../value.js';

export function statusOf(cache: ChunkCache): CacheStatus {
  const core = cache._check();
  const plan = planOf(cache);
  let resolved;
  try {
    resolved = plan.resolve(core.store, core.idBytes);
  } catch (e) {
    throw fromNative(e, 'status');
  }
  const G = new PlanGeometry(plan);
  const visible = core.axisOrder.map((a) => !cache._pinned.has(a));
  const cached: ChunkStatusEntry[] = [];
  const partial: PartialChunkStatus[] = [];
  const missing: ChunkStatusEntry[] = [];
  let cachedPoints = 0;
  for (let i = 0; i < G.chunkCount; i++) {
    const geo = G.chunk(i);
    const avail = resolved.available[i]!;
    cachedPoints += avail;
    const bins: Record<string, number> = {};
    const axisValues: Record<string, Value[]> = {};
    const indices: Record<string, number[]> = {};
    core.axisOrder.forEach((a, k) => {
      if (!visible[k]) return;
      bins[a] = geo.bins[k]!;
      const all = core.axisValues[a]!;
      const s = geo.sel[k]!;
      const vals = new Array<Value>(s.length);
      const idx = new Array<number>(s.length);
      for (let j = 0; j < s.length; j++) {
        vals[j] = all[geo.start[k]! + s[j]!]!;
        idx[j] = geo.selPos[k]! + j;
      }
      axisValues[a] = vals;
      indices[a] = idx;
    });
    const entry: ChunkStatusEntry = { index: i, bins, axisValues, indices, points: geo.points };
    if (avail === geo.points) cached.push(entry);
    else if (avail === 0) missing.push(entry);
    else {
      const presence = plan.presence(core.store, core.idBytes, i);
      const missingPoints: Array<Record<string, Value>> = [];
      const names = core.axisOrder;
      const dims = geo.sel.map((s) => s.length);
      for (let r = 0; r < presence.length; r++) {
        if (presence[r]) continue;
        const pt: Record<string, Value> = {};
        let x = r;
        for (let k = names.length - 1; k >= 0; k--) {
          const j = x % dims[k]!;
          x = Math.floor(x / dims[k]!);
          if (visible[k]) pt[names[k]!] = axisValues[names[k]!]![j]!;
        }
        missingPoints.push(pt);
      }
      partial.push({ ...entry, cachedPoints: avail, missingPoints });
    }
  }
  return {
    totalChunks: G.chunkCount, totalPoints: G.total, cachedPoints, missingPoints: G.total - cachedPoints,
    cached, partial, missing,
  };
}
