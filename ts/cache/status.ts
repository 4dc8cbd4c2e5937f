/** `cache.status()`: cached, partial and missing chunks of a cache or view. */
import type { BindingPlan } from '../binding/native.js';
import { fromNative } from '../errors/index.js';
import type { CacheCore } from './core.js';
import { PlanGeometry } from './geometry.js';
import type { Value } from '../value.js';

/** A chunk in a status report. */
export interface ChunkStatusEntry {
  /** Position among the chunks the view touches, in grid order. */
  readonly index: number;
  /** Bin number of the chunk along each axis. */
  readonly bins: Readonly<Record<string, number>>;
  /** Requested values of each axis in this chunk. */
  readonly axisValues: Readonly<Record<string, Value[]>>;
  /** Indices (into the view's axis lists) of those values. */
  readonly indices: Readonly<Record<string, number[]>>;
  readonly points: number;
}

/** A partly stored chunk, with the points still missing. */
export interface PartialChunkStatus extends ChunkStatusEntry {
  readonly cachedPoints: number;
  /** Missing points, each as `{ axis: value }`. */
  readonly missingPoints: Array<Record<string, Value>>;
}

/** What is stored for a cache or a view. */
export interface CacheStatus {
  readonly totalChunks: number;
  readonly totalPoints: number;
  readonly cachedPoints: number;
  readonly missingPoints: number;
  readonly cached: ChunkStatusEntry[];
  readonly partial: PartialChunkStatus[];
  readonly missing: ChunkStatusEntry[];
}

/** Status of a planned view (`pinned`: axes passed as params, left out of the report). */
export function statusOf(core: CacheCore, plan: BindingPlan, pinned: ReadonlySet<string>): CacheStatus {
  let resolved;
  try {
    resolved = plan.resolve(core.store, core.idBytes);
  } catch (e) {
    throw fromNative(e, 'status');
  }
  const G = new PlanGeometry(plan);
  const visible = core.axisOrder.map((a) => !pinned.has(a));
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
