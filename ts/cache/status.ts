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

/**
 * @internal Status of a planned view (`pinned`: axes passed as params, left out of the
 * report). The counts come at once from one native resolution; each chunk
 * list is built on first access, so a status of a million chunks costs
 * little until a list is read.
 */
export function statusOf(core: CacheCore, plan: BindingPlan, pinned: ReadonlySet<string>): CacheStatus {
  let resolved;
  try {
    resolved = plan.resolve(core.store, core.idBytes);
  } catch (e) {
    throw fromNative(e, 'status');
  }
  const G = new PlanGeometry(plan);
  const available = resolved.available;
  let cachedPoints = 0;
  for (let i = 0; i < available.length; i++) cachedPoints += available[i]!;
  const visible = core.axisOrder.map((a) => !pinned.has(a));
  const entryOf = (i: number): ChunkStatusEntry => {
    const geo = G.chunk(i);
    const bins: Record<string, number> = {};
    const axisValues: Record<string, Value[]> = {};
    const indices: Record<string, number[]> = {};
    core.axisOrder.forEach((a, k) => {
      if (!visible[k]) return;
      bins[a] = geo.bins[k]!;
      const all = core.axisValues[a]!;
      const sel = geo.sel[k]!;
      const vals = new Array<Value>(sel.length);
      const idx = new Array<number>(sel.length);
      for (let j = 0; j < sel.length; j++) {
        vals[j] = all[geo.start[k]! + sel[j]!]!;
        idx[j] = geo.selPos[k]! + j;
      }
      axisValues[a] = vals;
      indices[a] = idx;
    });
    return { index: i, bins, axisValues, indices, points: geo.points };
  };
  const partialOf = (i: number): PartialChunkStatus => {
    const entry = entryOf(i);
    const presence = plan.presence(core.store, core.idBytes, i);
    const geo = G.chunk(i);
    const names = core.axisOrder;
    const dims = geo.sel.map((x) => x.length);
    const missingPoints: Array<Record<string, Value>> = [];
    for (let r = 0; r < presence.length; r++) {
      if (presence[r]) continue;
      const pt: Record<string, Value> = {};
      let x = r;
      for (let k = names.length - 1; k >= 0; k--) {
        const j = x % dims[k]!;
        x = Math.floor(x / dims[k]!);
        if (visible[k]) pt[names[k]!] = entry.axisValues[names[k]!]![j]!;
      }
      missingPoints.push(pt);
    }
    return { ...entry, cachedPoints: available[i]!, missingPoints };
  };
  const select = <T>(keep: (avail: number, points: number) => boolean, make: (i: number) => T): T[] => {
    const out: T[] = [];
    for (let i = 0; i < G.chunkCount; i++) if (keep(available[i]!, G.chunkPoints(i))) out.push(make(i));
    return out;
  };
  let cached: ChunkStatusEntry[] | undefined;
  let partial: PartialChunkStatus[] | undefined;
  let missing: ChunkStatusEntry[] | undefined;
  return {
    totalChunks: G.chunkCount,
    totalPoints: G.total,
    cachedPoints,
    missingPoints: G.total - cachedPoints,
    get cached() {
      return (cached ??= select((a, n) => a === n, entryOf));
    },
    get partial() {
      return (partial ??= select((a, n) => a > 0 && a < n, partialOf));
    },
    get missing() {
      return (missing ??= select((a) => a === 0, entryOf));
    },
  };
}
