/** Stats of a root and of its caches: records, points, bytes, times. */
import type { BindingStore } from '../binding/native.js';
import type { CacheMeta } from '../cache/meta.js';
import type { Params, Value } from '../value.js';
import { checkId, existingStore, listMetas, metaOf } from './util.js';
import { defaultRoot } from '../cache/root.js';

/** Stats of one cache. */
export interface CacheStats {
  readonly id: string;
  readonly params: Params;
  readonly axisOrder: string[];
  /** Number of values of each axis (stored metadata: the union ever used). */
  readonly axisSizes: Record<string, number>;
  readonly chunkSpec: Record<string, number>;
  readonly cacheVersion: string;
  /** Code identity: null, `{ version }` or `{ fn: digest }` (BLAKE3 of the normalised source). */
  readonly code: Value;
  /** Points of the full grid of the stored axis values. */
  readonly gridPoints: number;
  /** Stored chunk records, stored points and their bytes. */
  readonly chunks: number;
  readonly points: number;
  readonly bytes: number;
  /** ms since the epoch. */
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Last write of a record (ms), or null when none is stored. */
  readonly lastWrite: number | null;
  /** Last read of a record (ms, from the access times), or null. */
  readonly lastAccess: number | null;
}

/** Stats of a root. */
export interface RootStats {
  readonly root: string;
  readonly caches: number;
  readonly chunks: number;
  readonly points: number;
  /** Sum of record bytes (what `gc` budgets). */
  readonly bytes: number;
  /** Size of the LMDB data file (never shrinks; freed pages are reused). */
  readonly diskBytes: number;
  readonly lastAccess: number | null;
  readonly perCache: CacheStats[];
}

/** @internal */
export function statsOfMeta(store: BindingStore, m: CacheMeta): CacheStats {
  const idBytes = Buffer.from(m.id, 'hex');
  const sum = store.summary(idBytes);
  const lastWrite = sum.records > 0 ? sum.lastWriteMs : null;
  let lastAccess: number | null = null;
  for (const a of store.accessTimes(idBytes)) if (a.ms > 0 && (lastAccess === null || a.ms > lastAccess)) lastAccess = a.ms;
  const axisSizes: Record<string, number> = {};
  let gridPoints = 1;
  for (const a of m.axisOrder) {
    const n = (m.axisValues[a] as Value[] | undefined)?.length ?? 0;
    axisSizes[a] = n;
    gridPoints *= n;
  }
  return {
    id: m.id, params: m.params, axisOrder: m.axisOrder, axisSizes, chunkSpec: m.chunkSpec, cacheVersion: m.cacheVersion, code: m.code ?? null,
    gridPoints, chunks: sum.records, points: sum.points, bytes: sum.bytes, createdAt: m.createdAt, updatedAt: m.updatedAt, lastWrite, lastAccess,
  };
}

/** Stats of every cache of `root` and their totals. */
export function stats(root: string = defaultRoot(), where = 'stats'): RootStats {
  const { abs, store } = existingStore(root, where);
  const perCache = listMetas(store).map((m) => statsOfMeta(store, m));
  let chunks = 0;
  let points = 0;
  let bytes = 0;
  let lastAccess: number | null = null;
  for (const c of perCache) {
    chunks += c.chunks;
    points += c.points;
    bytes += c.bytes;
    if (c.lastAccess !== null && (lastAccess === null || c.lastAccess > lastAccess)) lastAccess = c.lastAccess;
  }
  return { root: abs, caches: perCache.length, chunks, points, bytes, diskBytes: store.diskBytes(), lastAccess, perCache };
}

/** Stats of one cache of `root`. */
export function cacheStats(root: string, id: string): CacheStats {
  checkId('cacheStats', id);
  const { abs, store } = existingStore(root, 'cacheStats');
  return statsOfMeta(store, metaOf(store, abs, id, 'cacheStats'));
}
