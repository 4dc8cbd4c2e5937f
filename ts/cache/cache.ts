/**
 * `ChunkCache`: a grid description bound to a store root, and views of it
 * (selections, other params, pinned superset views).
 */
import { resolve as resolvePath } from 'node:path';
import { native, type BindingGrid, type BindingStore } from '../binding/native.js';
import { encodeCanonical } from '../canonical/encode.js';
import { CacheNotFoundError, ClosedError, DuplicateAxisValueError, InvalidOptionError, SelectionError, fromNative } from '../errors/index.js';
import { codeIdentity } from './code-digest.js';
import type { Params, Value } from '../value.js';
import { hashAxis, hashList, hashOne, ValueIndex } from './grid.js';
import { META_FORMAT, packMeta, unpackMeta, type CacheMeta } from './meta.js';
import { describeValue, normalizeAxisList, normalizeChunkSpec, normalizeOpenOptions, type OpenOptions } from './options.js';
import { openStore } from './stores.js';
import { statusOf, type CacheStatus } from './status.js';
import { checkNeighbours } from './neighbours.js';
import { planOf, type CacheCore } from './core.js';
import { invalidateView, type InvalidateResult } from './invalidate.js';
export type { InvalidateResult } from './invalidate.js';
import { defaultRoot } from './root.js';

/** Selection of a cache view: by values and/or by indices (relative to the view). */
export interface SelectSpec {
  readonly values?: Readonly<Record<string, Value | readonly Value[]>>;
  readonly indices?: Readonly<Record<string, number | readonly number[] | { start?: number; stop?: number; step?: number }>>;
}

export type { CacheStatus, ChunkStatusEntry, PartialChunkStatus } from './status.js';


/** The cache id for an identity. */
export function cacheIdOf(params: Params, cacheVersion: string, code: Value): { id: string; idBytes: Buffer } {
  const bytes = encodeCanonical({ params, cacheVersion, code }, 'identity');
  const idBytes = native.canonicalId(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return { id: idBytes.toString('hex'), idBytes };
}

function buildCore(args: {
  store: BindingStore; root: string; params: Params; cacheVersion: string; code: Value;
  axisOrder: string[]; axisValues: Record<string, Value[]>; chunkSpec: Record<string, number>;
  verbose: 0 | 1 | 2; maxBytes: number | undefined; sharedRoots: string[];
}, where = 'ChunkCache.open'): CacheCore {
  const { id, idBytes } = cacheIdOf(args.params, args.cacheVersion, args.code);
  const axes = args.axisOrder.map((a) => hashAxis(args.axisValues[a]!, `axisValues.${a}`));
  const hashes = axes.map((x) => x.hashes);
  let grid: BindingGrid;
  try {
    grid = new native.BindingGrid(
      args.axisOrder,
      hashes.map((h) => Buffer.from(h.buffer, h.byteOffset, h.byteLength)),
      args.axisOrder.map((a) => args.chunkSpec[a]!),
      axes.map((x) => x.order),
    );
  } catch (e) {
    const err = fromNative(e, where);
    // The binding's duplicate error carries its data as fields.
    const { axis, first, second } = e as { axis?: string; first?: number; second?: number };
    if (err.code === 'ERR_DUPLICATE_AXIS_VALUE' && axis !== undefined && first !== undefined && second !== undefined) {
      throw new DuplicateAxisValueError(
        `${where}: axisValues.${axis} lists the value ${describeValue(args.axisValues[axis]![second])} twice (indices ${first} and ${second}); axis values must be distinct`,
      );
    }
    throw err;
  }
  // Value positions are built on first use: most runs never look values up.
  const index: ValueIndex[] = [];
  hashes.forEach((h, k) =>
    Object.defineProperty(index, k, {
      configurable: true,
      enumerable: true,
      get() {
        const v = new ValueIndex(h);
        Object.defineProperty(index, k, { value: v, enumerable: true });
        return v;
      },
    }),
  );
  return { ...args, id, idBytes, hashes, index, grid, closed: false };
}

/**
 * Merges axis values into the stored metadata (union, first-seen order), as
 * one read-modify-write transaction: concurrent opens adding values never
 * lose each other's (the callback runs inside the store's write transaction;
 * it only unpacks, merges and packs).
 */
function mergeMeta(core: CacheCore): void {
  core.store.updateMeta(core.idBytes, (existing) => {
    let meta: CacheMeta;
    const now = Date.now();
    if (existing) {
      meta = unpackMeta(existing);
      const had = Object.keys(meta.axisValues).sort();
      const want = [...core.axisOrder].sort();
      if (had.length !== want.length || had.some((a, i) => a !== want[i])) {
        throw new InvalidOptionError(
          `ChunkCache.open: cache ${core.id} (same params, cacheVersion and code) is stored with axes [${had.join(', ')}], not [${want.join(', ')}]; ` +
            'open it with the same axes (select a subset with cache.select), or use another cacheVersion for a different grid',
        );
      }
      let changed = false;
      for (const a of core.axisOrder) {
        const old = meta.axisValues[a] ?? [];
        // The common case, reopening the same grid: nothing to hash.
        if (a in meta.axisValues && sameValues(old, core.axisValues[a]!)) continue;
        const have = new Set(hashList(old, `meta.${a}`));
        const add = core.axisValues[a]!.filter((_, i) => !have.has(core.hashes[core.axisOrder.indexOf(a)]![i]!));
        if (add.length || !(a in meta.axisValues)) {
          meta.axisValues[a] = [...old, ...add];
          changed = true;
        }
      }
      if (!changed) return null;
      meta.updatedAt = now;
    } else {
      meta = {
        format: META_FORMAT, id: core.id, params: core.params, axisOrder: core.axisOrder,
        axisValues: core.axisValues, chunkSpec: core.chunkSpec, cacheVersion: core.cacheVersion,
        code: core.code, createdAt: now, updatedAt: now,
      };
    }
    return packMeta(meta);
  });
}

/** True when two axis value lists encode the same: element by element when they are equal primitives, else by their canonical encodings. */
function sameValues(a: readonly Value[], b: readonly Value[]): boolean {
  if (a.length !== b.length) return false;
  let i = 0;
  while (i < a.length && Object.is(a[i], b[i])) i++;
  return i === a.length || Buffer.compare(encodeCanonical(a), encodeCanonical(b)) === 0;
}

/** Normalises a selection of one axis given by indices into a sorted list. */
function indicesOf(where: string, axis: string, spec: unknown, n: number): number[] {
  const norm = (i: unknown): number => {
    if (typeof i !== 'number' || !Number.isInteger(i)) throw new SelectionError(`${where}: indices.${axis}: ${describeValue(i)} is not an integer index`);
    const j = i < 0 ? n + i : i;
    if (j < 0 || j >= n) throw new SelectionError(`${where}: indices.${axis}: index ${i} is out of range for an axis of ${n} values`);
    return j;
  };
  if (typeof spec === 'number') return [norm(spec)];
  if (Array.isArray(spec)) return spec.map(norm);
  if (spec && typeof spec === 'object') {
    const s = spec as { start?: number; stop?: number; step?: number };
    const step = s.step ?? 1;
    if (!Number.isInteger(step) || step === 0) throw new SelectionError(`${where}: indices.${axis}.step must be a non-zero integer (got ${describeValue(s.step)})`);
    const clamp = (v: number | undefined, dflt: number): number => {
      if (v === undefined) return dflt;
      if (!Number.isInteger(v)) throw new SelectionError(`${where}: indices.${axis}: ${describeValue(v)} is not an integer`);
      const x = v < 0 ? n + v : v;
      return step > 0 ? Math.min(Math.max(x, 0), n) : Math.min(Math.max(x, -1), n - 1);
    };
    const start = clamp(s.start, step > 0 ? 0 : n - 1);
    const stop = clamp(s.stop, step > 0 ? n : -1);
    const out: number[] = [];
    for (let i = start; step > 0 ? i < stop : i > stop; i += step) out.push(i);
    return out;
  }
  throw new SelectionError(`${where}: indices.${axis} must be an index, a list of indices or { start, stop, step } (got ${describeValue(spec)})`);
}

/**
 * A memoized grid bound to a store root. Open with `ChunkCache.open`, run
 * with `run`, `runStreaming`, `iterate` or `runParallel`.
 *
 * @example
 * const cache = ChunkCache.open({ root: '.chunk_memo', params: { model: 'a' },
 *   axisValues: { x: [1, 2, 3], seed: [0, 1] }, chunkSpec: { x: 2 } });
 * const { output } = await run(cache, pointwise((p, { x, seed }) => x * 10 + seed));
 */
export class ChunkCache {
  /** @internal */ readonly _core: CacheCore;
  /** @internal Per axis (core order): selected indices, or null for all. */
  readonly _sel: (number[] | null)[];
  /** @internal Axes pinned to one value and passed as params (superset views). */
  readonly _pinned: ReadonlySet<string>;

  /** @internal */
  constructor(core: CacheCore, sel: (number[] | null)[], pinned: ReadonlySet<string> = new Set()) {
    this._core = core;
    this._sel = sel;
    this._pinned = pinned;
  }

  /**
   * Opens (creates if absent) the cache of `params` in `root`.
   * @throws InvalidOptionError, DuplicateAxisValueError, UnhashableValueError, ExclusiveCacheError
   */
  static open(options: OpenOptions): ChunkCache {
    const where = 'ChunkCache.open';
    const o = normalizeOpenOptions(where, options);
    const root = resolvePath(o.root ?? defaultRoot());
    const store = openStore(root);
    const core = buildCore({
      store, root, params: o.params, cacheVersion: o.cacheVersion ?? 'v1', code: codeIdentity(o.code, where),
      axisOrder: o.axisOrder, axisValues: o.axisValues, chunkSpec: o.chunkSpec, verbose: o.verbose ?? 0,
      maxBytes: o.maxBytes, sharedRoots: (o.sharedRoots ?? []).map((r) => resolvePath(r)),
    });
    const isNew = !store.getMeta(core.idBytes);
    if (isNew && (o.exclusive || o.warnOnOverlap)) {
      checkNeighbours(core, { exclusive: !!o.exclusive, warn: !!o.warnOnOverlap });
    }
    mergeMeta(core);
    return new ChunkCache(core, core.axisOrder.map(() => null));
  }

  /** @internal Opens from stored metadata. */
  static _fromMeta(root: string, meta: CacheMeta, over: Partial<OpenOptions> = {}): ChunkCache {
    const store = openStore(root);
    const axisValues = meta.axisValues;
    const chunkSpec = normalizeChunkSpec('ChunkCache.load', over.chunkSpec ?? meta.chunkSpec, axisValues);
    if (over.axisOrder && (over.axisOrder.length !== meta.axisOrder.length || !meta.axisOrder.every((a) => over.axisOrder!.includes(a)))) {
      throw new InvalidOptionError(`ChunkCache.load: options.axisOrder must list each axis exactly once (axes: ${meta.axisOrder.join(', ') || 'none'})`);
    }
    const core = buildCore({
      store, root, params: meta.params, cacheVersion: meta.cacheVersion, code: meta.code,
      axisOrder: over.axisOrder ? [...over.axisOrder] : meta.axisOrder, axisValues, chunkSpec,
      verbose: over.verbose ?? 0, maxBytes: over.maxBytes, sharedRoots: (over.sharedRoots ?? []).map((r) => resolvePath(r)),
    });
    if (core.id !== meta.id) throw new CacheNotFoundError(`stored metadata of ${meta.id} does not hash to its id (found ${core.id}); the root may be damaged`);
    return new ChunkCache(core, core.axisOrder.map(() => null));
  }

  /** @internal */
  _check(): CacheCore {
    if (this._core.closed) throw new ClosedError(`cache ${this._core.id} is closed; open it again with ChunkCache.open or ChunkCache.load`);
    return this._core;
  }

  /** Identifier: 32 hex chars of BLAKE3 over `{ params, cacheVersion, code }`. */
  get id(): string { return this._core.id; }
  /** Store directory. */
  get root(): string { return this._core.root; }
  get cacheVersion(): string { return this._core.cacheVersion; }
  /** Fixed params (for a pinned view: including the pinned axis values). */
  get params(): Params {
    const p: Params = { ...this._core.params };
    for (const a of this._pinned) {
      const k = this._core.axisOrder.indexOf(a);
      p[a] = this._core.axisValues[a]![this._sel[k]![0]!]!;
    }
    return p;
  }
  /** Axes of this view (pinned axes excluded), in grid order. */
  get axisOrder(): string[] { return this._core.axisOrder.filter((a) => !this._pinned.has(a)); }
  /** Values of each axis of this view. */
  get axisValues(): Record<string, Value[]> {
    const out: Record<string, Value[]> = {};
    this._core.axisOrder.forEach((a, k) => {
      if (this._pinned.has(a)) return;
      const all = this._core.axisValues[a]!;
      const s = this._sel[k];
      out[a] = s ? s.map((i) => all[i]!) : [...all];
    });
    return out;
  }
  /** Memo chunk size of each axis. */
  get chunkSpec(): Record<string, number> { return { ...this._core.chunkSpec }; }
  /** True when this object is a selection or pinned view. */
  get isView(): boolean { return this._sel.some((s) => s !== null); }

  /**
   * A view of a subset of points. Values must exist in the axis; indices
   * may be negative (from the end) or `{ start, stop, step }`. Results stay
   * in grid order.
   */
  select(spec: SelectSpec): ChunkCache {
    const core = this._check();
    const where = 'select';
    if (!spec || typeof spec !== 'object') throw new InvalidOptionError(`${where}: expected { values?, indices? }`);
    const sel = this._sel.map((s) => (s ? [...s] : null));
    const visible = this.axisOrder;
    const apply = (axis: string, local: number[]): void => {
      const k = core.axisOrder.indexOf(axis);
      const base = sel[k];
      const mapped = local.map((i) => (base ? base[i]! : i));
      sel[k] = [...new Set(mapped)].sort((x, y) => x - y);
    };
    for (const [axis, v] of Object.entries(spec.values ?? {})) {
      if (!visible.includes(axis)) throw new SelectionError(`${where}: values.${axis}: unknown axis; axes are ${visible.join(', ') || 'none'}`);
      const k = core.axisOrder.indexOf(axis);
      const list = Array.isArray(v) ? (v as Value[]) : [v as Value];
      const local: number[] = [];
      const base = sel[k];
      for (const val of list) {
        const g = core.index[k]!.get(hashOne(val, `values.${axis}`));
        const li = g === undefined ? -1 : base ? base.indexOf(g) : g;
        if (li < 0) throw new SelectionError(`${where}: values.${axis}: ${describeValue(val)} is not a value of axis ${axis} in this cache`);
        local.push(li);
      }
      apply(axis, local);
    }
    for (const [axis, spc] of Object.entries(spec.indices ?? {})) {
      if (!visible.includes(axis)) throw new SelectionError(`${where}: indices.${axis}: unknown axis; axes are ${visible.join(', ') || 'none'}`);
      const k = core.axisOrder.indexOf(axis);
      const n = sel[k] ? sel[k]!.length : core.axisValues[axis]!.length;
      apply(axis, indicesOf(where, axis, spc, n));
    }
    for (let k = 0; k < sel.length; k++) {
      if (sel[k] && sel[k]!.length === 0) throw new SelectionError(`${where}: the selection of axis ${core.axisOrder[k]} is empty`);
    }
    return new ChunkCache(core, sel, this._pinned);
  }

  /** @internal A view with some axes pinned to one value each (superset match). */
  _pin(values: Record<string, Value>): ChunkCache {
    const v: Record<string, Value[]> = {};
    for (const [a, x] of Object.entries(values)) v[a] = [x];
    const view = this.select({ values: v });
    return new ChunkCache(this._core, view._sel, new Set([...this._pinned, ...Object.keys(values)]));
  }

  /** The same grid with other fixed params (a different cache id). */
  withParams(params: Params): ChunkCache {
    const core = this._check();
    if (this._pinned.size) throw new InvalidOptionError('withParams: not available on a pinned (superset) view; open the cache you need with ChunkCache.open');
    // Validated like open, but the code identity (e.g. bound by memoize) is kept.
    const o = normalizeOpenOptions('withParams', { params, axisValues: core.axisValues, chunkSpec: core.chunkSpec, axisOrder: core.axisOrder });
    const c = buildCore({ ...core, params: o.params });
    mergeMeta(c);
    return new ChunkCache(c, this.isView ? this._sel : c.axisOrder.map(() => null), this._pinned);
  }

  /** @internal Same grid bound to another code identity (memoize). */
  _withCode(code: Value): ChunkCache {
    const core = this._check();
    const c = buildCore({ ...core, code });
    mergeMeta(c);
    return new ChunkCache(c, this._sel, this._pinned);
  }

  /** Appends values to axes; the id is unchanged, so stored chunks are reused. */
  extendAxisValues(add: Readonly<Record<string, readonly Value[]>>): ChunkCache {
    const core = this._check();
    const where = 'extendAxisValues';
    const axisValues = { ...core.axisValues };
    for (const [axis, vals] of Object.entries(add ?? {})) {
      if (!(axis in axisValues)) throw new InvalidOptionError(`${where}: unknown axis ${JSON.stringify(axis)}; axes are ${core.axisOrder.join(', ') || 'none'}`);
      const list = normalizeAxisList(where, axis, vals);
      axisValues[axis] = [...axisValues[axis]!, ...list];
    }
    const chunkSpec = { ...core.chunkSpec };
    const c = buildCore({ ...core, axisValues, chunkSpec }, where);
    mergeMeta(c);
    return new ChunkCache(c, c.axisOrder.map(() => null));
  }

  /** What is stored for this cache or view. */
  status(): CacheStatus {
    return statusOf(this._check(), planOf(this), this._pinned);
  }

  /**
   * Deletes the stored outputs of this cache's or view's points (a selection
   * deletes only its points; records that hold other points too keep them),
   * so the next run recomputes exactly those points. Other caches, and
   * read-only shared roots, are not touched.
   *
   * @example
   * cache.select({ values: { x: [3, 4] } }).invalidate(); // { points: 2 * ... }
   */
  invalidate(): InvalidateResult {
    return invalidateView(this);
  }

  /** Releases this handle (the root's environment stays open while others use it). */
  close(): void {
    this._core.closed = true;
  }

  /** Same as `close()`, for `using cache = ChunkCache.open(...)`. */
  [Symbol.dispose](): void {
    this.close();
  }

  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `ChunkCache(${this.id}, axes: ${this.axisOrder.map((a) => `${a}[${this.axisValues[a]!.length}]`).join(' x ') || 'singleton'})`;
  }
}

