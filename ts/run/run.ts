/**
 * Serial runners: `run`, `runStreaming`, `iterate`, and `memoize`. They call
 * the exec function on the calling thread, one product block at a time,
 * through the same engine as `runParallel` (claims, writes, progress).
 */
import { availableParallelism } from 'node:os';
import { ChunkCache, type CacheStatus } from '../cache/cache.js';
import { memoCodeIdentity } from '../cache/code-digest.js';
import { InvalidOptionError } from '../errors/index.js';
import { checkKnownOptions, describeValue } from '../describe.js';
import type { AnyChunkFn, ChunkFn, ChunkContext, OutputOf } from '../task/execute.js';
import type { Params, TypedArray, Value } from '../value.js';
import { newDiagnostics, type Diagnostics } from './diagnostics.js';
import { runEngine, runEngineBatches, type ChunkDone, type EngineExecutor } from './engine.js';
import type { OutputSink } from './spec.js';
import { copyOutputs, kindOf, KIND_ITEMS, typedCtor } from './payload.js';
import { native } from '../binding/native.js';
import type { ProgressEvent } from './progress.js';
import { keepShape } from '../shapes.js';

export type { Diagnostics } from './diagnostics.js';

/**
 * Options of `run`, `runStreaming` and `iterate`. `Flat` is the run's flat
 * output type, `R` what `collate` makes of it.
 */
export interface RunOptions<Flat = unknown[] | TypedArray, R = Flat> {
  /** Replaces the flat output with any reduction of it (run only; applied once). */
  readonly collate?: (output: Flat) => R;
  /** Stops within one exec call; finished chunks stay stored. */
  readonly signal?: AbortSignal;
  /** Called as points are committed (see ProgressEvent). */
  readonly onProgress?: (e: ProgressEvent) => void;
  /**
   * Lets this run take over work another process claimed more than this many
   * ms ago (an owner that hangs without dying). @default no lease: claims of
   * live owners are waited for, those of dead ones taken over at once
   */
  readonly claimTimeoutMs?: number;
}

const RUN_OPTIONS = ['collate', 'signal', 'onProgress', 'claimTimeoutMs'] as const;

/** One chunk's result from `iterate`; `Out` is the flat output type (an array or a TypedArray). */
export interface ChunkResult<Out = unknown[] | TypedArray> {
  /** Position of the chunk among those the view touches (grid order). */
  readonly index: number;
  /** Requested values per axis in this chunk. */
  readonly axisValues: Record<string, Value[]>;
  /** Outputs of the chunk's requested points in grid order. */
  readonly output: Out;
  readonly cachedPoints: number;
  readonly executedPoints: number;
  /** Positions of the outputs in the run's flat output. */
  readonly outIndex: Uint32Array;
}

/** @internal Validates the options shared by the serial runners. */
export function checkRunOptions(where: string, cache: unknown, fn: unknown, opts: unknown, withCollate: boolean): void {
  if (!(cache instanceof ChunkCache)) throw new InvalidOptionError(`${where}: the first argument must be a ChunkCache from ChunkCache.open() or autoLoad() (got ${describeValue(cache)})`);
  if (typeof fn !== 'function') throw new InvalidOptionError(`${where}: the exec function must be a function (got ${describeValue(fn)}); wrap a point function with pointwise()`);
  checkKnownOptions(where, opts, withCollate ? RUN_OPTIONS : RUN_OPTIONS.filter((k) => k !== 'collate'));
  const o = (opts ?? {}) as RunOptions;
  if (o.collate !== undefined && typeof o.collate !== 'function') throw new InvalidOptionError(`${where}: options.collate must be a function (got ${describeValue(o.collate)})`);
  if (o.onProgress !== undefined && typeof o.onProgress !== 'function') throw new InvalidOptionError(`${where}: options.onProgress must be a function (got ${describeValue(o.onProgress)})`);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new InvalidOptionError(`${where}: options.signal must be an AbortSignal (got ${describeValue(o.signal)})`);
  checkClaimTimeout(where, o.claimTimeoutMs);
}

/** @internal */
export function checkClaimTimeout(where: string, v: unknown): void {
  if (v !== undefined && (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v))) {
    throw new InvalidOptionError(`${where}: options.claimTimeoutMs must be a positive number of milliseconds (got ${describeValue(v)})`);
  }
}

function serialChunks(cache: ChunkCache, fn: AnyChunkFn, opts: RunOptions<never, unknown>, label: string, needOutputs: boolean, durable: boolean, diag: Diagnostics): AsyncGenerator<ChunkDone, Diagnostics>;
function serialChunks(cache: ChunkCache, fn: AnyChunkFn, opts: RunOptions<never, unknown>, label: string, needOutputs: boolean, durable: boolean, diag: Diagnostics, batches: true, sink?: OutputSink): AsyncGenerator<ChunkDone[], Diagnostics>;
function serialChunks(cache: ChunkCache, fn: AnyChunkFn, opts: RunOptions<never, unknown>, label: string, needOutputs: boolean, durable: boolean, diag: Diagnostics, batches = false, sink?: OutputSink): AsyncGenerator<ChunkDone | ChunkDone[], Diagnostics> {
  const signal = opts.signal;
  const base: ChunkContext = { axisOrder: cache.axisOrder, ...(signal ? { signal } : {}) };
  const inline: EngineExecutor = {
    concurrency: 1,
    busy: 0,
    stats: { label: 'calling thread', execChunks: 0, points: 0 },
    runSync: (job) => fn(job.params, job.axes as Record<string, Value[]>, base) as never,
    run: async (job) => await inline.runSync!(job),
  };
  return (batches ? runEngineBatches : runEngine)({
    view: cache, label, task: { kind: 'local', id: 0 }, fn, executors: [inline], execChunkSize: Infinity, needOutputs, durable,
    jobKeys: false, boundMemory: false, yieldEvery: true, signal, onProgress: opts.onProgress, claimTimeoutMs: opts.claimTimeoutMs, diag,
    ...(sink ? { sink } : {}),
  });
}

/**
 * Whether a run that computes can spare a core to map its output's pages:
 * its own thread computes and the store's writer thread commits, so only
 * a third core is free. On two cores the mapping thread takes time from
 * both (a typed cold run of 1e7 points stalled ~20 ms at its start). Stored
 * chunks never need it: the binding copies a large read into the output on
 * every core, each thread mapping the pages it fills (a mapping thread
 * beside them made a 1e7-point warm run slower).
 */
const SPARE_CORE_FOR_COMPUTED = availableParallelism() > 2;

/**
 * A zeroed typed output of `n` elements of dtype `kind`; with `background`,
 * its pages are mapped by a thread of the libuv pool while this thread fills
 * it (for outputs of a few MB and more): filling a lazily mapped 80 MB
 * output otherwise takes 20,000 page faults, which cost about as much as
 * the copy into it, and mapping them first on this thread would still cost
 * their time here.
 */
function typedOutput(kind: number, n: number, background: boolean): TypedArray {
  const out = new (typedCtor(kind))(n);
  if (!background) return out;
  native.prefaultInBackground(new Uint8Array(out.buffer, out.byteOffset, out.byteLength)).catch(() => {
    // Only an optimisation: unmapped pages fault in as they fill.
  });
  return out;
}

/** @internal Places chunk outputs into the flat grid-ordered output; the engine may fill it directly (OutputSink). */
export class FlatOutput implements OutputSink {
  private out: unknown[] | TypedArray | null = null;
  /**
   * `diag`: the run's diagnostics, whose `totalPoints` the engine sets once
   * it planned the run (read from there, not through a closure: optimized
   * code calling a per-run closure is thrown away when the closure dies).
   */
  constructor(private readonly diag: Pick<Diagnostics, 'totalPoints'>) {}

  typed(): { kind: number; bytes: Uint8Array } | null {
    const o = this.out;
    if (o === null || !ArrayBuffer.isView(o)) return null;
    return { kind: kindOf(o), bytes: new Uint8Array(o.buffer, o.byteOffset, o.byteLength) };
  }

  items(): unknown[] | null {
    return Array.isArray(this.out) ? this.out : null;
  }

  /** Makes the output for stored chunks of `kind` about to be read into it (their reads fill it, on every core). */
  expect(kind: number): void {
    this.make(kind, true);
  }

  private make(kind: number, reading: boolean): void {
    if (this.out === null) this.out = kind === KIND_ITEMS ? new Array(this.diag.totalPoints) : typedOutput(kind, this.diag.totalPoints, !reading && SPARE_CORE_FOR_COMPUTED);
  }

  placeChunk(src: ArrayLike<unknown>, rows: { starts: Uint32Array; len: number }): ArrayLike<unknown> | null {
    const kind = kindOf(src);
    this.make(kind, false);
    const o = this.out!;
    if ((kind === KIND_ITEMS) !== Array.isArray(o) || (kind !== KIND_ITEMS && kindOf(o) !== kind)) return null;
    this.placeRows(src, rows);
    if (kind === KIND_ITEMS) return src; // encoded by the write before the next exec call
    const { starts, len } = rows;
    const first = starts[0]!;
    for (let r = 1; r < starts.length; r++) if (starts[r] !== first + r * len) return copyOutputs(src as TypedArray);
    return (o as TypedArray).subarray(first, first + starts.length * len);
  }

  /** Places `src` (request order) by rows: row r of `len` points goes to `starts[r]` onwards (see PlanGeometry.outRows). */
  placeRows(src: ArrayLike<unknown>, rows: { starts: Uint32Array; len: number }): void {
    const dst = this.target(src);
    const { starts, len } = rows;
    if (ArrayBuffer.isView(dst) && ArrayBuffer.isView(src) && src.constructor === dst.constructor) {
      // Typed into typed: whole rows at once when long, element by element when short.
      const to = dst as Float64Array;
      const from = src as unknown as Float64Array;
      for (let r = 0, at = 0; r < starts.length; r++, at += len) {
        const d = starts[r]!;
        if (len > 64) to.set(from.subarray(at, at + len), d);
        else for (let k = 0; k < len; k++) to[d + k] = from[at + k]!;
      }
      return;
    }
    const to = dst as unknown[];
    for (let r = 0, at = 0; r < starts.length; r++, at += len) {
      const d = starts[r]!;
      for (let k = 0; k < len; k++) to[d + k] = src[at + k];
    }
  }

  /** The output array, allocated for `src`'s kind (typed while every chunk has one dtype). */
  private target(src: ArrayLike<unknown>): unknown[] | TypedArray {
    if (this.out === null) this.make(kindOf(src), false);
    else if (!Array.isArray(this.out) && kindOf(src) !== kindOf(this.out)) {
      this.out = Array.from(this.out as ArrayLike<unknown>);
    }
    return this.out!;
  }

  get value(): unknown[] | TypedArray {
    return this.out ?? [];
  }
}

/**
 * Runs `fn` over every point of the cache (or view) that is not stored yet,
 * stores the new outputs and returns all outputs in grid order.
 *
 * @example
 * const { output, diagnostics } = await run(cache, pointwise((p, { x }) => (x as number) * (p.k as number)));
 */
export async function run<F extends AnyChunkFn, R = OutputOf<F>>(cache: ChunkCache, fn: F, opts: RunOptions<OutputOf<F>, R> = {}): Promise<{ output: R; diagnostics: Diagnostics }> {
  checkRunOptions('run', cache, fn, opts, true);
  const diag = newDiagnostics();
  // Stored whole chunks of a typed output are read straight into it.
  const flat = new FlatOutput(diag);
  for await (const batch of serialChunks(cache, fn, opts ?? {}, 'run', true, false, diag, true, flat)) {
    for (const d of batch) if (d.output) flat.placeRows(d.output as ArrayLike<unknown>, d.outRows());
  }
  const output = flat.value as OutputOf<F>;
  return { output: (opts?.collate ? opts.collate(output) : output) as R, diagnostics: diag };
}

/** Like `run` but keeps no outputs in memory; returns diagnostics only. */
export async function runStreaming(cache: ChunkCache, fn: AnyChunkFn, opts: Omit<RunOptions, 'collate'> = {}): Promise<Diagnostics> {
  checkRunOptions('runStreaming', cache, fn, opts, false);
  const diag = newDiagnostics();
  for await (const batch of serialChunks(cache, fn, opts ?? {}, 'runStreaming', false, false, diag, true)) void batch;
  return diag;
}

/**
 * Yields each chunk's outputs once they are stored, in grid order of chunks
 * (a chunk whose points another process is computing comes when they land).
 * Breaking out of the loop keeps what was stored.
 */
export async function* iterate<F extends AnyChunkFn>(cache: ChunkCache, fn: F, opts: Omit<RunOptions, 'collate'> = {}): AsyncGenerator<ChunkResult<OutputOf<F>>, Diagnostics> {
  checkRunOptions('iterate', cache, fn, opts, false);
  const diag = newDiagnostics();
  const core = cache._core;
  for await (const d of serialChunks(cache, fn, opts ?? {}, 'iterate', true, true, diag)) {
    const geo = d.geo;
    let values: Record<string, Value[]> | undefined;
    yield {
      index: d.index,
      get axisValues() {
        if (values) return values;
        values = {};
        core.axisOrder.forEach((a, k) => {
          if (cache._pinned.has(a)) return;
          const all = core.axisValues[a]!;
          values![a] = Array.from(geo.sel[k]!, (s) => all[geo.start[k]! + s]!);
        });
        return values;
      },
      output: (d.output ?? []) as OutputOf<F>,
      cachedPoints: d.cachedPoints,
      executedPoints: d.executedPoints,
      get outIndex() {
        return d.outIndex();
      },
    };
  }
  return diag;
}

/** Arguments of a memoized function: axis keys select, other keys are extras. */
export type MemoArgs = Record<string, unknown> & { indices?: Record<string, number | number[] | { start?: number; stop?: number; step?: number }> };

/** Options of `memoize`. */
export interface MemoizeOptions {
  /** Extras that reach the function but not the identity (a device, a thread count). */
  readonly ignore?: readonly string[];
}

/** A memoized function. */
export interface Memoized<Flat = unknown[] | TypedArray> {
  <R = Flat>(args?: MemoArgs, opts?: RunOptions<Flat, R>): Promise<{ output: R; diagnostics: Diagnostics }>;
  /** Status of the points the same arguments would compute. */
  status(args?: MemoArgs): CacheStatus;
  /** The cache bound to the function's code. */
  readonly cache: ChunkCache;
}

/**
 * Memoizes `fn` over `cache`. The returned function takes
 * `{ [axis]: value | value[], indices?, ...extras }`: axis keys select
 * points, every other key is an extra param (part of the identity, unless
 * listed in `ignore`) passed to `fn`. The identity is bound to `fn`'s source
 * unless the cache has `code`.
 *
 * @example
 * const f = memoize(cache, pointwise((p, { x }) => (x as number) * (p.scale as number)), { ignore: ['device'] });
 * await f({ x: [1, 2], scale: 3, device: 'cuda:0' });
 */
export function memoize<F extends AnyChunkFn>(cache: ChunkCache, fn: F, options: MemoizeOptions = {}): Memoized<OutputOf<F>> {
  if (!(cache instanceof ChunkCache)) throw new InvalidOptionError(`memoize: the first argument must be a ChunkCache (got ${describeValue(cache)})`);
  if (typeof fn !== 'function') throw new InvalidOptionError(`memoize: the exec function must be a function (got ${describeValue(fn)}); wrap a point function with pointwise()`);
  checkKnownOptions('memoize', options, ['ignore']);
  const ignore = new Set(options?.ignore ?? []);
  if (options?.ignore !== undefined && (!Array.isArray(options.ignore) || options.ignore.some((k) => typeof k !== 'string'))) {
    throw new InvalidOptionError(`memoize: options.ignore must be an array of extra names (got ${describeValue(options.ignore)})`);
  }
  const core = cache._check();
  const source = (fn as { source?: unknown }).source ?? fn;
  const bound = core.code === null ? cache._withCode(memoCodeIdentity(source as (...a: never[]) => unknown)) : cache;
  const axes = new Set(bound.axisOrder);
  const split = (args: MemoArgs = {}): { view: ChunkCache; runOnly: Params } => {
    const values: Record<string, Value | Value[]> = {};
    const extras: Params = {};
    const runOnly: Params = {};
    for (const [k, v] of Object.entries(args)) {
      if (k === 'indices') continue;
      if (axes.has(k)) values[k] = v as Value;
      else if (ignore.has(k)) runOnly[k] = v as Value;
      else extras[k] = v as Value;
    }
    let view = Object.keys(extras).length ? bound.withParams({ ...bound.params, ...extras }) : bound;
    if (Object.keys(values).length || args.indices) view = view.select({ values, ...(args.indices ? { indices: args.indices } : {}) });
    return { view, runOnly };
  };
  const f = (async (args?: MemoArgs, opts?: RunOptions<OutputOf<F>, unknown>) => {
    const { view, runOnly } = split(args);
    const call: ChunkFn = Object.keys(runOnly).length ? (p, a, ctx) => fn({ ...p, ...runOnly }, a, ctx) : fn;
    return run(view, call, opts as RunOptions);
  }) as Memoized<OutputOf<F>>;
  Object.defineProperty(f, 'status', { value: (args?: MemoArgs) => split(args).view.status() });
  Object.defineProperty(f, 'cache', { value: bound });
  return f;
}

// See ts/shapes.ts.
keepShape(new FlatOutput({ totalPoints: 0 }));
