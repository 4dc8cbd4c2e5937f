/**
 * `items` of `runParallel`: explicit points instead of a grid view. They are
 * resolved to per-axis value indices (one native hashing call per axis),
 * the view becomes the product of their values, and each item is located
 * in the planned chunks.
 */
import { ChunkCache } from '../cache/cache.js';
import { hashList } from '../cache/grid.js';
import type { PlanGeometry } from '../cache/geometry.js';
import { describeValue, isPlainObject } from '../describe.js';
import { InvalidOptionError, SelectionError } from '../errors/index.js';
import type { Value } from '../value.js';

/** An item of `items`: `{ axis: value }`, a tuple in axis order, or a scalar (one axis). */
export type Item = Record<string, Value> | readonly Value[] | Value;

export interface ItemPlan {
  /** The cache (extended when `extendCache` added values). */
  readonly cache: ChunkCache;
  /** The product view of the items' values. */
  readonly view: ChunkCache;
  /** Per item: global value index per axis of the cache. */
  readonly points: number[][];
}

/** Resolves `items` to global indices; may extend the cache. */
export function planItems(where: string, cache: ChunkCache, items: readonly Item[], extend: boolean): ItemPlan {
  const axes = cache.axisOrder;
  const pts = items.map((it, n): Record<string, Value> => {
    if (Array.isArray(it)) {
      if (it.length !== axes.length) throw new SelectionError(`${where}: items[${n}] has ${it.length} values for ${axes.length} axes (${axes.join(', ')})`);
      return Object.fromEntries(axes.map((a, i) => [a, it[i] as Value]));
    }
    if (isPlainObject(it) && axes.every((a) => a in it)) return it as Record<string, Value>;
    if (axes.length === 1) return { [axes[0]!]: it as Value };
    throw new SelectionError(`${where}: items[${n}] must map every axis (${axes.join(', ')}) to a value (got ${describeValue(it)})`);
  });
  // One native hashing call per axis.
  const hashes = new Map<string, BigUint64Array>();
  for (const a of axes) hashes.set(a, hashList(pts.map((p) => p[a]!), `items.${a}`));
  let c = cache;
  if (extend) {
    const add: Record<string, Value[]> = {};
    for (const a of axes) {
      const k = c._core.axisOrder.indexOf(a);
      const seen = new Set<bigint>();
      hashes.get(a)!.forEach((h, n) => {
        if (!c._core.index[k]!.has(h) && !seen.has(h)) {
          seen.add(h);
          (add[a] ??= []).push(pts[n]![a]!);
        }
      });
    }
    if (Object.keys(add).length) {
      if (cache.isView) throw new InvalidOptionError(`${where}: extendCache needs the whole cache, not a view`);
      c = cache.extendAxisValues(add);
    }
  }
  const core = c._core;
  const points = pts.map((p, n) =>
    core.axisOrder.map((a, k) => {
      if (c._pinned.has(a)) return c._sel[k]![0]!;
      const g = core.index[k]!.get(hashes.get(a)![n]!);
      if (g === undefined) throw new SelectionError(`${where}: items[${n}].${a} = ${describeValue(p[a])} is not a value of axis ${a}; pass extendCache: true to add it`);
      const sel = c._sel[k];
      if (sel && !sel.includes(g)) throw new SelectionError(`${where}: items[${n}].${a} = ${describeValue(p[a])} is outside this view`);
      return g;
    }),
  );
  const perAxis = core.axisOrder.map((_, k) => [...new Set(points.map((p) => p[k]!))].sort((x, y) => x - y));
  return { cache: c, view: new ChunkCache(core, perAxis, c._pinned), points };
}

/** Per chunk: (request index, item number) of the items in it, and the sorted unique request indices. */
export interface ItemTargets {
  readonly byChunk: Array<Array<{ r: number; out: number }>>;
  needed(i: number): Uint32Array;
}

/** Locates each item in the planned chunks of its view. */
export function locateItems(plan: ItemPlan, G: PlanGeometry): ItemTargets {
  const { view, points } = plan;
  const core = view._core;
  const byChunk: Array<Array<{ r: number; out: number }>> = Array.from({ length: G.chunkCount }, () => []);
  const selIndex = core.axisOrder.map((_, k) => new Map((view._sel[k] as number[]).map((g, pos) => [g, pos])));
  const binOf = G.axes.map((ax) => {
    const m = new Map<number, number>();
    for (let b = 0; b < ax.count; b++) {
      const p = ax.selPos(b);
      for (let j = 0; j < ax.selCount(b); j++) m.set(p + j, b);
    }
    return m;
  });
  points.forEach((p, n) => {
    let chunk = 0;
    let r = 0;
    for (let k = 0; k < p.length; k++) {
      const pos = selIndex[k]!.get(p[k]!)!;
      const b = binOf[k]!.get(pos)!;
      const ax = G.axes[k]!;
      chunk = chunk * ax.count + b;
      r = r * ax.selCount(b) + (pos - ax.selPos(b));
    }
    byChunk[chunk]!.push({ r, out: n });
  });
  return {
    byChunk,
    needed: (i) => Uint32Array.from(new Set(byChunk[i]!.map((t) => t.r))).sort(),
  };
}
