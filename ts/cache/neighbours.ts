/**
 * Caches as point sets (params, one value each, times axes) and their
 * relations: what `findOverlapping` and the `exclusive` / `warnOnOverlap`
 * checks of `ChunkCache.open` compare.
 */
import { ExclusiveCacheError } from '../errors/index.js';
import { describeValue } from './options.js';
import type { Params, Value } from '../value.js';
import type { CacheCore } from './core.js';
import { hashList, hashOne } from './grid.js';
import { listMetas } from './meta.js';
import { openStore } from './stores.js';

export type PointSet = Map<string, Set<bigint>>;

export function pointSet(params: Params, axisValues: Record<string, readonly Value[]>): PointSet {
  const s: PointSet = new Map();
  for (const [k, v] of Object.entries(params)) s.set(k, new Set([hashOne(v, `params.${k}`)]));
  for (const [k, vals] of Object.entries(axisValues)) s.set(k, new Set(hashList(vals, `axisValues.${k}`)));
  return s;
}

type Relation = 'incomparable' | 'disjoint' | 'equal' | 'subset' | 'superset' | 'overlap';

/** Relation of point set `a` to `b`. */
export function relation(a: PointSet, b: PointSet): Relation {
  if (a.size !== b.size || [...a.keys()].some((k) => !b.has(k))) return 'incomparable';
  let sub = true;
  let sup = true;
  for (const [k, av] of a) {
    const bv = b.get(k)!;
    let common = 0;
    for (const h of av) if (bv.has(h)) common++;
    if (common === 0) return 'disjoint';
    if (common < av.size) sub = false;
    if (common < bv.size) sup = false;
  }
  return sub && sup ? 'equal' : sub ? 'subset' : sup ? 'superset' : 'overlap';
}

/** @internal `exclusive` and `warnOnOverlap` checks for a cache about to be created. */
export function checkNeighbours(core: CacheCore, opts: { exclusive: boolean; warn: boolean }): void {
  const mine = pointSet(core.params, core.axisValues);
  for (const m of listMetas(openStore(core.root))) {
    if (m.id === core.id || m.cacheVersion !== core.cacheVersion) continue;
    const rel = relation(mine, pointSet(m.params, m.axisValues));
    if (rel === 'incomparable' || rel === 'disjoint') continue;
    const what = rel === 'equal' ? 'duplicate' : rel === 'subset' ? 'be covered by' : rel === 'superset' ? 'cover' : 'overlap';
    if (opts.exclusive && rel !== 'overlap') {
      throw new ExclusiveCacheError(
        `ChunkCache.open: exclusive: the new cache ${core.id} would ${what} existing cache ${m.id} (params ${describeValue(m.params)}). ` +
          `Reuse it with ChunkCache.load(root, '${m.id}') or autoLoad({ ..., allowSuperset: true }), or pass exclusive: false`,
      );
    }
    if (opts.warn) {
      process.emitWarning(`cache ${core.id} shares points with existing cache ${m.id} (${what}); those points are stored twice`, {
        code: 'CHUNK_MEMO_OVERLAP',
      });
    }
  }
}
