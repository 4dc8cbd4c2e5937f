/**
 * Serial execution: `run`, `runStreaming`, `iterate`, plus `pointwise` and
 * `memoize`. Chunks are processed in grid order; each chunk's missing points
 * are computed in product blocks and written at once, so an interruption
 * keeps everything finished.
 */
import type { ChunkCache, CacheStatus } from '../cache/cache.js';
import { AbortedError, ChunkMemoError, ExecError, ExecOutputError, InvalidOptionError } from '../errors/index.js';
import type { Params, TypedArray, Value } from '../value.js';
import { planRun } from './geometry.js';
import { decodeOutputs, encodeOutputs, kindOf, KIND_ITEMS, typedCtor } from './payload.js';
import { Progress, type ProgressEvent } from './progress.js';
import { WriteBatcher } from './batch.js';
import { describeValue } from '../cache/options.js';
import { afterRun } from '../manage/hooks.js';

/** What a chunk function returns: one output per point, or a numeric TypedArray. */
export type ChunkOutput = readonly unknown[] | TypedArray;

/** Context passed as the third argument of a chunk function. */
export interface ChunkContext {
  /** Axis names of `axes`, in grid order (first slowest). */
  readonly axisOrder: readonly string[];
  readonly signal?: AbortSignal;
}

/**
 * A chunk-level exec function: receives the fixed params and, per axis, the
 * values of a product block of points; returns one output per point of the
 * block in grid order (first axis slowest). May be async.
 */
export type ChunkFn = (params: Params, axes: Record<string, Value[]>, ctx: ChunkContext) => ChunkOutput | Promise<ChunkOutput>;

/** A point-level function. */
export type PointFn<O = unknown> = (params: Params, point: Record<string, Value>) => O | Promise<O>;

/** A ChunkFn made by `pointwise`; runners may call `pointFn` directly. */
export type PointwiseChunkFn = ChunkFn & { readonly pointFn: PointFn };

/**
 * Lifts a point function to a chunk function.
 * @example run(cache, pointwise((p, { x, y }) => ({ sum: x + y })))
 */
export function pointwise<O>(fn: PointFn<O>): PointwiseChunkFn {
  if (typeof fn !== 'function') throw new InvalidOptionError(`pointwise: expected a function (got ${describeValue(fn)})`);
  const chunkFn = async (params: Params, axes: Record<string, Value[]>, ctx: ChunkContext): Promise<unknown[]> => {
    const order = ctx?.axisOrder ?? Object.keys(axes);
    const lists = order.map((a) => axes[a]!);
    const n = lists.reduce((x, l) => x * l.length, 1);
    const out: unknown[] = new Array(n);
    const idx = new Array<number>(order.length).fill(0);
    let anyPromise = false;
    for (let i = 0; i < n; i++) {
      const point: Record<string, Value> = {};
      for (let a = 0; a < order.length; a++) point[order[a]!] = lists[a]![idx[a]!]!;
      const r = fn(params, point);
      if (r instanceof Promise) anyPromise = true;
      out[i] = r;
      for (let a = order.length - 1; a >= 0; a--) {
        if (++idx[a]! < lists[a]!.length) break;
        idx[a] = 0;
      }
    }
    return anyPromise ? Promise.all(out) : out;
  };
  Object.defineProperty(chunkFn, 'pointFn', { value: fn });
  Object.defineProperty(chunkFn, 'source', { value: fn });
  return chunkFn as unknown as PointwiseChunkFn;
}

/** Counts and timings of a run. */
export interface Diagnostics {
  totalChunks: number;
  cachedChunks: number;
  executedChunks: number;
  partialChunks: number;
  totalPoints: number;
  cachedPoints: number;
  executedPoints: number;
  /** Calls of the exec function (serial) or exec chunks dispatched (parallel). */
  execChunks: number;
  /** Memo chunk writes. */
  streamFlushes: number;
  /** Largest number of point outputs held at once by the runner. */
  maxBufferedPoints: number;
  /** Records that failed verification and were recomputed. */
  corruptRecords: string[];
  timings: { planMs: number; readMs: number; execMs: number; writeMs: number; totalMs: number };
}

/** Options of `run`, `runStreaming` and `iterate`. */
export interface RunOptions<R = unknown> {
  /** Replaces the flat output with any reduction of it (run only). */
  readonly collate?: (output: unknown[] | TypedArray) => R;
  /** Stops after the chunk in progress; finished chunks stay stored. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (e: ProgressEvent) => void;
}

/** One chunk's result from `iterate`. */
export interface ChunkResult {
  /** Position of the chunk among those the view touches (grid order). */
  readonly index: number;
  /** Requested values per axis in this chunk. */
  readonly axisValues: Record<string, Value[]>;
  /** Outputs of the chunk's requested points in grid order. */
  readonly output: unknown[] | TypedArray;
  readonly cachedPoints: number;
  readonly executedPoints: number;
  /** @internal Positions of the outputs in the run's flat output. */
  readonly outIndex: Uint32Array;
}

export function newDiagnostics(): Diagnostics {
  return {
    totalChunks: 0, cachedChunks: 0, executedChunks: 0, partialChunks: 0, totalPoints: 0, cachedPoints: 0,
    executedPoints: 0, execChunks: 0, streamFlushes: 0, maxBufferedPoints: 0, corruptRecords: [],
    timings: { planMs: 0, readMs: 0, execMs: 0, writeMs: 0, totalMs: 0 },
  };
}

function checkFn(where: string, fn: unknown): asserts fn is ChunkFn {
  if (typeof fn !== 'function') throw new InvalidOptionError(`${where}: the exec function must be a function (got ${describeValue(fn)}); wrap a point function with pointwise()`);
}

/** @internal Coordinates of a block, for error messages. */
export function coords(axes: Record<string, Value[]>): string {
  const parts = Object.entries(axes).map(([a, v]) => `${a}=[${v.slice(0, 6).map(describeValue).join(', ')}${v.length > 6 ? `, ... ${v.length} values` : ''}]`);
  return parts.join(' ') || 'the singleton point';
}

/** @internal Values per visible axis for given per-axis global indices. */
export function valuesOf(cache: ChunkCache, perAxis: (k: number) => number[]): Record<string, Value[]> {
  const core = cache._core;
  const axes: Record<string, Value[]> = {};
  core.axisOrder.forEach((a, k) => {
    if (cache._pinned.has(a)) return;
    const all = core.axisValues[a]!;
    axes[a] = perAxis(k).map((i) => all[i]!);
  });
  return axes;
}

/** @internal Places outputs (ArrayLike) into a chunk buffer at positions. */
function place(dst: unknown[], positions: ArrayLike<number>, src: ArrayLike<unknown>): void {
  for (let j = 0; j < positions.length; j++) dst[positions[j]!] = src[j];
}

async function* chunkResults(cache: ChunkCache, fn: ChunkFn, opts: RunOptions, diag: Diagnostics, label: string, durableYield = false): AsyncGenerator<ChunkResult> {
  const core = cache._check();
  const t0 = performance.now();
  const { plan, resolved, geometry: G } = planRun(cache, label);
  diag.corruptRecords.push(...resolved.corrupt);
  diag.totalChunks = G.chunkCount;
  diag.totalPoints = G.total;
  let missingTotal = 0;
  for (let i = 0; i < G.chunkCount; i++) missingTotal += G.chunk(i).points - resolved.available[i]!;
  diag.timings.planMs += performance.now() - t0;
  const progress = new Progress(missingTotal, G.chunkCount, opts.onProgress, core.verbose, label);
  const params = cache.params;
  const visible = cache.axisOrder;
  const ctx: ChunkContext = opts.signal ? { axisOrder: visible, signal: opts.signal } : { axisOrder: visible };
  const batcher = new WriteBatcher(plan, core.store, core.idBytes, label);
  let lastExecMs = 0;
  let ok = false;
  try {
  for (let i = 0; i < G.chunkCount; i++) {
    if (opts.signal?.aborted) throw new AbortedError(`${label} aborted after ${i} of ${G.chunkCount} chunks; finished chunks are stored`, { cause: opts.signal.reason });
    const geo = G.chunk(i);
    const m = geo.points;
    const avail = resolved.available[i]!;
    let out: unknown[] | TypedArray | null = null;
    let cached = 0;
    let partKind = -1; // dtype shared by every part of the chunk so far; -1 none yet
    if (avail > 0) {
      const tr = performance.now();
      const rd = plan.read(core.store, core.idBytes, i);
      if (rd.corrupt.length) diag.corruptRecords.push(...rd.corrupt);
      let present = 0;
      for (let j = 0; j < rd.present.length; j++) present += rd.present[j]!;
      const vals = decodeOutputs(rd.kind, rd.data, present, rd.dicts, rd.pointDicts, rd.offsets);
      cached = present;
      if (present > 0) partKind = rd.kind;
      if (present === m) out = vals as unknown[] | TypedArray;
      else {
        const arr: unknown[] = new Array(m);
        let w = 0;
        for (let j = 0; j < m; j++) if (rd.present[j]) arr[j] = vals[w++];
        out = arr;
      }
      diag.timings.readMs += performance.now() - tr;
    }
    let executed = 0;
    if (cached < m) {
      const blocks = plan.missing(core.store, core.idBytes, i);
      const arr: unknown[] = out ? Array.from(out as ArrayLike<unknown>) : new Array(m);
      let off = 0;
      for (const block of blocks.blocks) {
        const axes = valuesOf(cache, (k) => Array.from(block[k]!, (p) => geo.start[k]! + geo.sel[k]![p]!));
        const count = block.reduce((x, b) => x * b.length, 1);
        batcher.beforeExec(lastExecMs);
        const te = performance.now();
        let res: ChunkOutput;
        try {
          res = await fn(params, axes, ctx);
        } catch (e) {
          if (e instanceof ChunkMemoError && e.code === 'ERR_ABORTED') throw e;
          throw new ExecError(`exec function failed on chunk ${i} at ${coords(axes)}; finished chunks are stored, a re-run computes only the rest`, { cause: e });
        }
        lastExecMs = performance.now() - te;
        diag.timings.execMs += lastExecMs;
        diag.execChunks++;
        const len = res == null ? -1 : (res as ArrayLike<unknown>).length;
        if (!(Array.isArray(res) || (ArrayBuffer.isView(res) && !(res instanceof DataView))) || len !== count) {
          throw new ExecOutputError(
            `chunk ${i} at ${coords(axes)}: the exec function returned ${Array.isArray(res) || ArrayBuffer.isView(res) ? `${len} outputs` : describeValue(res)} for ${count} points; return one output per point in grid order (an array or a numeric TypedArray)`,
          );
        }
        const kind = kindOf(res);
        partKind = partKind === -1 || partKind === kind ? kind : KIND_ITEMS;
        const enc = encodeOutputs(res as ArrayLike<unknown>, kind);
        const positions = blocks.points.subarray(off, off + count);
        batcher.add({ chunk: i, kind, points: positions, offsets: enc.offsets, data: enc.data, dict: enc.dict });
        diag.streamFlushes++;
        place(arr, positions, kind === KIND_ITEMS ? (res as unknown[]) : (res as unknown as ArrayLike<unknown>));
        off += count;
        executed += count;
        progress.update(count, 0);
      }
      // Typed chunk outputs stay typed when every part has one dtype.
      if (partKind > KIND_ITEMS) {
        const ta = new (typedCtor(partKind))(m);
        for (let j = 0; j < m; j++) (ta as unknown as unknown[])[j] = arr[j];
        out = ta;
      } else out = arr;
    }
    diag.cachedPoints += cached;
    diag.executedPoints += executed;
    if (executed === 0) diag.cachedChunks++;
    else diag.executedChunks++;
    if (executed > 0 && cached > 0) diag.partialChunks++;
    diag.maxBufferedPoints = Math.max(diag.maxBufferedPoints, m);
    progress.chunk(i, cached, executed);
    progress.update(0, 1);
    // iterate() hands out only chunks that are already committed.
    if (durableYield && executed > 0) batcher.flush();
    // axisValues is built on access: run() and runStreaming() never read it.
    let values: Record<string, Value[]> | undefined;
    yield {
      index: i,
      get axisValues() {
        return (values ??= valuesOf(cache, (k) => Array.from(geo.sel[k]!, (s) => geo.start[k]! + s)));
      },
      output: out ?? [],
      cachedPoints: cached,
      executedPoints: executed,
      get outIndex() {
        return G.outIndices(geo);
      },
    };
  }
  ok = true;
  } finally {
    // Commit what was computed, also when the run fails or is aborted.
    try {
      batcher.flush();
    } catch (e) {
      if (ok) throw e;
    }
    diag.timings.writeMs = batcher.writeMs;
  }
  diag.timings.totalMs = performance.now() - t0;
}

/**
 * Runs `fn` over every point of the cache (or view) that is not stored yet,
 * stores the new outputs and returns all outputs in grid order.
 *
 * @example
 * const { output, diagnostics } = await run(cache, pointwise((p, { x }) => x * p.k));
 */
export async function run<R = unknown[] | TypedArray>(cache: ChunkCache, fn: ChunkFn, opts: RunOptions<R> = {}): Promise<{ output: R; diagnostics: Diagnostics }> {
  checkFn('run', fn);
  const diag = newDiagnostics();
  let output: unknown[] | TypedArray | null = null;
  let total = 0;
  try {
    for await (const r of chunkResults(cache, fn, opts, diag, 'run')) {
      total = diag.totalPoints;
      const src = r.output;
      if (output === null) {
        const k = kindOf(src);
        output = k !== KIND_ITEMS ? new (typedCtor(k))(total) : new Array(total);
      } else if (!Array.isArray(output) && kindOf(src) !== kindOf(output)) {
        output = Array.from(output as ArrayLike<unknown>);
      }
      const dst = output as unknown[];
      const idx = r.outIndex;
      for (let j = 0; j < idx.length; j++) dst[idx[j]!] = (src as ArrayLike<unknown>)[j];
    }
  } finally {
    afterRun(cache);
  }
  const flat = output ?? [];
  const result = opts.collate ? opts.collate(flat) : flat;
  return { output: result as R, diagnostics: diag };
}

/** Like `run` but keeps no outputs in memory; returns diagnostics only. */
export async function runStreaming(cache: ChunkCache, fn: ChunkFn, opts: Omit<RunOptions, 'collate'> = {}): Promise<Diagnostics> {
  checkFn('runStreaming', fn);
  const diag = newDiagnostics();
  try {
    for await (const r of chunkResults(cache, fn, opts, diag, 'runStreaming')) void r;
  } finally {
    afterRun(cache);
  }
  return diag;
}

/**
 * Yields each chunk's outputs as soon as they are read or computed, in grid
 * order of chunks. Breaking out of the loop keeps what was stored.
 */
export async function* iterate(cache: ChunkCache, fn: ChunkFn, opts: Omit<RunOptions, 'collate'> = {}): AsyncGenerator<ChunkResult, Diagnostics> {
  checkFn('iterate', fn);
  const diag = newDiagnostics();
  try {
    for await (const r of chunkResults(cache, fn, opts, diag, 'iterate', true)) yield r;
  } finally {
    afterRun(cache);
  }
  return diag;
}

/** Arguments of a memoized function: axis keys select, other keys are extras. */
export type MemoArgs = Record<string, unknown> & { indices?: Record<string, number | number[] | { start?: number; stop?: number; step?: number }> };

/** A memoized function. */
export interface Memoized<R = unknown[] | TypedArray> {
  (args?: MemoArgs, opts?: RunOptions<R>): Promise<{ output: R; diagnostics: Diagnostics }>;
  /** Status of the points the same arguments would compute. */
  status(args?: MemoArgs): CacheStatus;
  /** The cache bound to the function's code. */
  readonly cache: ChunkCache;
}

/**
 * Memoizes `fn` over `cache`. The returned function takes
 * `{ [axis]: value | value[], indices?, ...extras }`: axis keys select
 * points, every other key is an extra param (part of the identity) passed to
 * `fn`. The identity is bound to `fn`'s source unless the cache has `code`.
 *
 * @example
 * const f = memoize(cache, pointwise((p, { x }) => x * p.scale));
 * await f({ x: [1, 2], scale: 3 });
 */
export function memoize<R = unknown[] | TypedArray>(cache: ChunkCache, fn: ChunkFn): Memoized<R> {
  checkFn('memoize', fn);
  const core = cache._check();
  const source = (fn as { source?: unknown }).source ?? fn;
  const bound = core.code === null ? cache._withCode(codeIdentityForMemo(source as (...a: never[]) => unknown)) : cache;
  const axes = new Set(bound.axisOrder);
  const viewFor = (args: MemoArgs = {}): ChunkCache => {
    const values: Record<string, Value | Value[]> = {};
    const extras: Params = {};
    for (const [k, v] of Object.entries(args)) {
      if (k === 'indices') continue;
      if (axes.has(k)) values[k] = v as Value;
      else extras[k] = v as Value;
    }
    let view = Object.keys(extras).length ? bound.withParams({ ...bound.params, ...extras }) : bound;
    if (Object.keys(values).length || args.indices) view = view.select({ values, ...(args.indices ? { indices: args.indices } : {}) });
    return view;
  };
  const f = (async (args?: MemoArgs, opts?: RunOptions<R>) => run<R>(viewFor(args), fn, opts)) as Memoized<R>;
  Object.defineProperty(f, 'status', { value: (args?: MemoArgs) => viewFor(args).status() });
  Object.defineProperty(f, 'cache', { value: bound });
  return f;
}

import { memoCodeIdentity as codeIdentityForMemo } from '../cache/identity.js';
