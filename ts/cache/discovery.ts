/**
 * Finding caches in a root: discover, findCompatible, findOverlapping, load,
 * autoLoad, and the `exclusive` / `warnOnOverlap` checks.
 *
 * A cache describes a set of points: its params (one value each) times its
 * axes. Two caches are compared as such sets over the same keys, which is
 * what makes the superset rule (a requested param served by an axis) work.
 */
import { resolve as resolvePath } from 'node:path';
import { encodeCanonical } from '../canonical/encode.js';
import { AmbiguousCacheError, CacheNotFoundError, InvalidOptionError } from '../errors/index.js';
import type { Params, Value } from '../value.js';
import { ChunkCache } from './cache.js';
import { pointSet, relation } from './neighbours.js';
import { hashList } from './grid.js';
import { listMetas, unpackMeta, type CacheMeta } from './meta.js';
import { describeValue, type OpenOptions } from './options.js';
import { checkKnownOptions } from '../describe.js';
import { openStore } from './stores.js';
import { resolveId } from './ids.js';
import { defaultRoot } from './root.js';

/** Summary of a stored cache. */
export interface CacheInfo {
  readonly id: string;
  readonly params: Params;
  readonly axisValues: Record<string, Value[]>;
  readonly chunkSpec: Record<string, number>;
  readonly axisOrder: string[];
  readonly cacheVersion: string;
  readonly code: Value;
  /** ms since the epoch */
  readonly createdAt: number;
  readonly updatedAt: number;
  /** Stored chunk records, stored points and their bytes. */
  readonly chunks: number;
  readonly points: number;
  readonly bytes: number;
}

/** A compatible cache and how it matches. */
export interface CompatibleInfo extends CacheInfo {
  readonly match: 'exact' | 'superset';
  /** Superset matches: the cache axes pinned to the requested params. */
  readonly pinned: Record<string, Value>;
}

function metas(root: string): CacheMeta[] {
  return listMetas(openStore(resolvePath(root)));
}

/** `root` when given, else the default root (`$CHUNK_MEMO_ROOT`, else `.chunk_memo`). */
function rootOf(root: string | undefined, where: string): string {
  if (root === undefined) return defaultRoot();
  if (typeof root !== 'string' || root === '') throw new InvalidOptionError(`${where}: root must be a directory path (got ${describeValue(root)})`);
  return resolvePath(root);
}

function infoOf(root: string, m: CacheMeta): CacheInfo {
  const sum = openStore(resolvePath(root)).summary(Buffer.from(m.id, 'hex'));
  return {
    id: m.id, params: m.params, axisValues: m.axisValues, chunkSpec: m.chunkSpec, axisOrder: m.axisOrder,
    cacheVersion: m.cacheVersion, code: m.code, createdAt: m.createdAt, updatedAt: m.updatedAt,
    chunks: sum.records, points: sum.points, bytes: sum.bytes,
  };
}

/** Every cache stored in `root` (default: `$CHUNK_MEMO_ROOT`, else `.chunk_memo`). */
export function discover(root?: string): CacheInfo[] {
  const abs = rootOf(root, 'discover');
  return metas(abs).map((m) => infoOf(abs, m));
}

function sameCanonical(a: unknown, b: unknown): boolean {
  return Buffer.compare(encodeCanonical(a), encodeCanonical(b)) === 0;
}

/** Query of `findCompatible`. */
export interface CompatibleQuery {
  readonly params?: Params;
  readonly axisValues?: Record<string, readonly Value[]>;
  readonly chunkSpec?: Record<string, number>;
  readonly cacheVersion?: string;
  readonly axisOrder?: readonly string[];
  /** Also match caches whose axes serve some requested params (pinned views). */
  readonly allowSuperset?: boolean;
}

function contains(have: readonly Value[], want: readonly Value[], where: string): boolean {
  const h = new Set(hashList(have, where));
  return hashList(want, where).every((x) => h.has(x));
}

function matchOf(m: CacheMeta, q: CompatibleQuery): CompatibleInfo['match'] | null | { pinned: Record<string, Value> } {
  if (q.cacheVersion !== undefined && m.cacheVersion !== q.cacheVersion) return null;
  if (q.axisOrder !== undefined && !sameCanonical([...q.axisOrder], m.axisOrder)) return null;
  if (q.chunkSpec !== undefined) {
    for (const [a, n] of Object.entries(q.chunkSpec)) if (m.chunkSpec[a] !== n) return null;
  }
  const params = q.params ?? {};
  const axes = q.axisValues;
  const axisNames = Object.keys(m.axisValues);
  const axesOk = (names: string[]): boolean => {
    if (!axes) return true;
    const want = Object.keys(axes);
    if (want.length !== names.length || want.some((a) => !names.includes(a))) return false;
    return want.every((a) => contains(m.axisValues[a]!, axes[a]!, `axisValues.${a}`));
  };
  if (q.params === undefined || sameCanonical(params, m.params)) {
    if (axesOk(axisNames)) return 'exact';
  }
  if (!q.allowSuperset || q.params === undefined) return null;
  // Superset: stored params are a subset of the requested ones; each extra
  // requested param is an axis of the cache holding the requested value.
  for (const [k, v] of Object.entries(m.params)) {
    if (!(k in params) || !sameCanonical(params[k], v)) return null;
  }
  const extra = Object.keys(params).filter((k) => !(k in m.params));
  if (extra.length === 0) return null;
  const pinned: Record<string, Value> = {};
  for (const k of extra) {
    if (!(k in m.axisValues) || !contains(m.axisValues[k]!, [params[k]!], `params.${k}`)) return null;
    pinned[k] = params[k]!;
  }
  if (!axesOk(axisNames.filter((a) => !(a in pinned)))) return null;
  return { pinned };
}

/**
 * Caches of `root` that can serve a request, exact matches first.
 * `findCompatible(query)` searches the default root.
 */
export function findCompatible(query?: CompatibleQuery): CompatibleInfo[];
export function findCompatible(root: string | undefined, query?: CompatibleQuery): CompatibleInfo[];
export function findCompatible(rootOrQuery?: string | CompatibleQuery, query: CompatibleQuery = {}): CompatibleInfo[] {
  const [root, q] = typeof rootOrQuery === 'object' && rootOrQuery !== null ? [defaultRoot(), rootOrQuery] : [rootOf(rootOrQuery, 'findCompatible'), query];
  checkKnownOptions('findCompatible', q, ['params', 'axisValues', 'chunkSpec', 'cacheVersion', 'axisOrder', 'allowSuperset']);
  const exact: CompatibleInfo[] = [];
  const sup: CompatibleInfo[] = [];
  for (const m of metas(root)) {
    const r = matchOf(m, q);
    if (r === 'exact') exact.push({ ...infoOf(root, m), match: 'exact', pinned: {} });
    else if (r && typeof r === 'object') sup.push({ ...infoOf(root, m), match: 'superset', pinned: r.pinned });
  }
  return [...exact, ...sup];
}

/** Query of `findOverlapping`. */
export interface OverlapQuery {
  readonly params?: Params;
  readonly axisValues: Record<string, readonly Value[]>;
}

/**
 * Caches of `root` with the same params whose axis values intersect the
 * request's. `findOverlapping(query)` searches the default root.
 */
export function findOverlapping(query: OverlapQuery): Array<CacheInfo & { overlap: Record<string, Value[]> }>;
export function findOverlapping(root: string | undefined, query: OverlapQuery): Array<CacheInfo & { overlap: Record<string, Value[]> }>;
export function findOverlapping(rootOrQuery: string | undefined | OverlapQuery, query?: OverlapQuery): Array<CacheInfo & { overlap: Record<string, Value[]> }> {
  const [root, q] = typeof rootOrQuery === 'object' && rootOrQuery !== null ? [defaultRoot(), rootOrQuery] : [rootOf(rootOrQuery, 'findOverlapping'), query];
  if (!q || typeof q !== 'object' || !q.axisValues) throw new InvalidOptionError('findOverlapping: expected a query { params?, axisValues }');
  const want = pointSet(q.params ?? {}, q.axisValues);
  const out: Array<CacheInfo & { overlap: Record<string, Value[]> }> = [];
  for (const m of metas(root)) {
    const have = pointSet(m.params, m.axisValues);
    const rel = relation(want, have);
    if (rel === 'incomparable' || rel === 'disjoint') continue;
    const overlap: Record<string, Value[]> = {};
    for (const [a, vals] of Object.entries(m.axisValues)) {
      const w = want.get(a)!;
      const hs = hashList(vals, `axisValues.${a}`);
      overlap[a] = vals.filter((_, i) => w.has(hs[i]!));
    }
    out.push({ ...infoOf(root, m), overlap });
  }
  return out;
}

/** Options of `load`. */
export type LoadOptions = Partial<Pick<OpenOptions, 'chunkSpec' | 'axisOrder' | 'verbose' | 'maxBytes' | 'sharedRoots'>>;

/**
 * Opens a stored cache by id (the full id or a unique prefix of it).
 * Options may change chunkSpec, axisOrder, verbose. `load(id, options?)`
 * opens from the default root.
 */
export function load(id: string, options?: LoadOptions): ChunkCache;
export function load(root: string | undefined, id: string, options?: LoadOptions): ChunkCache;
export function load(a: string | undefined, b?: string | LoadOptions, c: LoadOptions = {}): ChunkCache {
  const [abs, idArg, options] = typeof b === 'string' ? [rootOf(a, 'load'), b, c] : [defaultRoot(), a, b ?? {}];
  const store = openStore(abs);
  const id = resolveId(store, abs, idArg, 'load', `list caches with ChunkCache.discover(root) or \`chunk-memo ls ${abs}\``);
  const blob = store.getMeta(Buffer.from(id, 'hex'));
  if (!blob) throw new CacheNotFoundError(`load: no cache ${id} in ${abs}`);
  return ChunkCache._fromMeta(abs, unpackMeta(blob), options);
}

/** Options of `autoLoad`. */
export interface AutoLoadOptions extends Omit<OpenOptions, 'axisValues'> {
  /** @default `$CHUNK_MEMO_ROOT`, else '.chunk_memo' under cwd */
  readonly root?: string;
  readonly params: Params;
  readonly axisValues?: OpenOptions['axisValues'];
  readonly allowSuperset?: boolean;
}

/**
 * Finds the cache that serves `params` (and `axisValues`) in `root`: an exact
 * match (as a view of the requested values), else with `allowSuperset` a
 * cache whose axes hold some requested params (a pinned view), else a new
 * cache. Several candidates raise `AmbiguousCacheError`.
 */
export function autoLoad(options: AutoLoadOptions): ChunkCache {
  if (!options || typeof options !== 'object') throw new InvalidOptionError('autoLoad: expected options { root?, params, axisValues?, ... }');
  const root = rootOf(options.root, 'autoLoad');
  const { allowSuperset, ...rest } = options;
  const open = { ...rest, root };
  const params = options.params ?? {};
  const ambiguous = (list: CompatibleInfo[]): never => {
    throw new AmbiguousCacheError(
      `autoLoad: ${list.length} caches in ${root} match params ${describeValue(params)}: ${list.map((c) => `${c.id} (${c.match}${Object.keys(c.pinned).length ? `, pinned ${describeValue(c.pinned)}` : ''})`).join(', ')}; load one with ChunkCache.load(root, id)`,
    );
  };
  if (options.axisValues === undefined) {
    const list = findCompatible(root, { params, ...(options.cacheVersion ? { cacheVersion: options.cacheVersion } : {}), allowSuperset: false });
    if (list.length > 1) ambiguous(list);
    if (list.length === 1) return load(root, list[0]!.id, pick(options));
    return ChunkCache.open({ ...open, axisValues: {} });
  }
  const axisValues: Record<string, Value[]> = {};
  for (const [a, v] of Object.entries(options.axisValues)) axisValues[a] = Array.from(v as Iterable<Value>);
  const list = findCompatible(root, {
    params, axisValues, ...(options.cacheVersion ? { cacheVersion: options.cacheVersion } : {}), allowSuperset: !!allowSuperset,
  });
  const exact = list.filter((c) => c.match === 'exact');
  const chosen = exact.length ? exact : list;
  if (chosen.length > 1) ambiguous(chosen);
  if (chosen.length === 0) return ChunkCache.open({ ...open, axisValues: options.axisValues });
  const info = chosen[0]!;
  let cache = load(root, info.id, pick(options));
  if (info.match === 'superset') cache = cache._pin(info.pinned);
  const needsView = Object.entries(axisValues).some(([a, v]) => v.length !== cache.axisValues[a]!.length);
  return needsView ? cache.select({ values: axisValues }) : cache;
}

function pick(o: AutoLoadOptions): Partial<Pick<OpenOptions, 'chunkSpec' | 'verbose' | 'maxBytes' | 'sharedRoots'>> {
  const out: Record<string, unknown> = {};
  if (o.chunkSpec !== undefined) out.chunkSpec = o.chunkSpec;
  if (o.verbose !== undefined) out.verbose = o.verbose;
  if (o.maxBytes !== undefined) out.maxBytes = o.maxBytes;
  if (o.sharedRoots !== undefined) out.sharedRoots = o.sharedRoots;
  return out;
}
