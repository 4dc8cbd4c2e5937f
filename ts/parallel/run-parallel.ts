/**
 * `runParallel`: the missing points of a view (or of `items`) are cut into
 * exec chunks (product blocks of at most `execChunkSize` points, independent
 * of memo chunks), claimed in the store, computed on worker threads, child
 * processes, gpu devices, a `mapFn` or an `Executor`, and each memo chunk is
 * stored the moment all its points are done.
 */
import { availableParallelism } from 'node:os';
import { ChunkCache } from '../cache/cache.js';
import { checkKnownOptions, describeValue } from '../describe.js';
import { InvalidOptionError } from '../errors/index.js';
import { newDiagnostics, type Diagnostics } from '../run/diagnostics.js';
import { runEngine, type ExecutorStats } from '../run/engine.js';
import type { ProgressEvent } from '../run/progress.js';
import { checkClaimTimeout, FlatOutput } from '../run/run.js';
import { localTask, releaseLocalTask, type AnyChunkFn, type ChunkFn, type OutputOf } from '../task/execute.js';
import type { Executor } from '../task/executor.js';
import type { GpuTaskSpec, ModuleTaskSpec, TaskSpec } from '../task/job.js';
import type { TypedArray } from '../value.js';
import { checkDevices, checkProcesses, makeExecutors, type Device, type MapFn, type ProcessesOption } from './executors.js';
import { locateItems, planItems, type Item, type ItemTargets } from './items.js';

export type { ExecutorStats } from '../run/engine.js';

/** Options of `runParallel`. */
export interface ParallelOptions<Flat = unknown[] | TypedArray, R = Flat> {
  /** Worker threads. @default os.availableParallelism() (1 for gpu kernels, which have their own parallelism) */
  readonly workers?: number;
  /**
   * Child processes instead of worker threads: a count, or
   * `{ devices: ['0', '1'], env? }` for one process per device (each sees
   * `CHUNK_MEMO_DEVICE` and `CUDA_VISIBLE_DEVICES`, and the task `ctx.device`).
   */
  readonly processes?: ProcessesOption;
  /** Where exec chunks run instead of the local pool, e.g. `bullmqExecutor(...)`. */
  readonly executor?: Executor;
  /** gpu kernels only: several devices pulling exec chunks from one queue. See {@link Device}. */
  readonly devices?: readonly Device[];
  /** Points per exec chunk. @default 64 for threads and processes, 65536 for gpu kernels, the planner's blocks (every missing point of a memo chunk where it is one block) for mapFn and executors */
  readonly execChunkSize?: number;
  /** A map function instead of the worker pool. */
  readonly mapFn?: MapFn;
  /** Compute only these points (outputs in item order). */
  readonly items?: readonly Item[];
  /** With `items`: add item values missing from the axes instead of failing. @default false */
  readonly extendCache?: boolean;
  /** Accepted for compatibility: memo chunks are always stored as soon as they are complete. @default true */
  readonly flushOnChunk?: boolean;
  /** Return the outputs (grid order, or item order). @default true */
  readonly returnOutput?: boolean;
  /** Replaces the output with any reduction of it (applied once). */
  readonly collate?: (output: Flat) => R;
  /** Stops dispatching; in-flight exec chunks are finished or dropped; what is done stays stored. */
  readonly signal?: AbortSignal;
  readonly onProgress?: (e: ProgressEvent) => void;
  /** Take over work another process claimed more than this many ms ago. @default none */
  readonly claimTimeoutMs?: number;
}

const OPTIONS = [
  'workers', 'processes', 'executor', 'devices', 'execChunkSize', 'mapFn', 'items', 'extendCache', 'flushOnChunk',
  'returnOutput', 'collate', 'signal', 'onProgress', 'claimTimeoutMs',
] as const;

/** The flat output type of `runParallel` with task `T`: from a function's type, `defineTask<F>(...)`, or a gpu kernel's float32. */
export type TaskOutput<T> = T extends GpuTaskSpec ? Float32Array : T extends ModuleTaskSpec<infer Out> ? Out : T extends AnyChunkFn ? OutputOf<T> : unknown[] | TypedArray;

/** Result of `runParallel`. */
export interface ParallelResult<R = unknown[] | TypedArray> {
  /** Outputs (or the collated value), or `undefined` with `returnOutput: false`. */
  output: R | undefined;
  diagnostics: Diagnostics;
  /** Exec chunks and points computed by each executor (device, pool, queue). */
  executors: ExecutorStats[];
  /** The cache used (extended when `extendCache` added values). */
  cache: ChunkCache;
}

function positiveInt(where: string, name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InvalidOptionError(`${where}: options.${name} must be a positive integer (got ${describeValue(v)})`);
  return v;
}

function taskSpecOf(where: string, task: unknown): { spec: TaskSpec; local: boolean } {
  if (typeof task === 'function') return { spec: localTask(task as ChunkFn), local: true };
  const kind = (task as TaskSpec | null)?.kind;
  if (task && typeof task === 'object' && (kind === 'module' || kind === 'gpu' || kind === 'local')) return { spec: task as TaskSpec, local: false };
  throw new InvalidOptionError(`${where}: task must come from defineTask() or gpuKernel(), or be a chunk function (got ${describeValue(task)})`);
}

/**
 * Computes the missing points of a cache (or view, or `items`) in parallel,
 * and returns all requested outputs.
 *
 * @example
 * const task = defineTask(new URL('./tasks.js', import.meta.url), 'simulate');
 * const { output, diagnostics } = await runParallel(cache, task, { workers: 8, execChunkSize: 32 });
 */
export async function runParallel<T extends TaskSpec | AnyChunkFn, R = TaskOutput<T>>(cache: ChunkCache, task: T, options: ParallelOptions<TaskOutput<T>, R> = {}): Promise<ParallelResult<R>> {
  const where = 'runParallel';
  if (!(cache instanceof ChunkCache)) throw new InvalidOptionError(`${where}: the first argument must be a ChunkCache (got ${describeValue(cache)})`);
  checkKnownOptions(where, options, OPTIONS);
  const o = options ?? {};
  const execSize = positiveInt(where, 'execChunkSize', o.execChunkSize);
  const processes = checkProcesses(where, o.processes);
  if (o.mapFn !== undefined && typeof o.mapFn !== 'function') throw new InvalidOptionError(`${where}: options.mapFn must be a function (got ${describeValue(o.mapFn)})`);
  if (o.collate !== undefined && typeof o.collate !== 'function') throw new InvalidOptionError(`${where}: options.collate must be a function (got ${describeValue(o.collate)})`);
  if (o.items !== undefined && !Array.isArray(o.items)) throw new InvalidOptionError(`${where}: options.items must be an array (got ${describeValue(o.items)})`);
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw new InvalidOptionError(`${where}: options.signal must be an AbortSignal (got ${describeValue(o.signal)})`);
  checkClaimTimeout(where, o.claimTimeoutMs);
  const targetsSet = [o.mapFn && 'mapFn', o.executor && 'executor', processes !== undefined && 'processes'].filter(Boolean);
  if (targetsSet.length > 1) throw new InvalidOptionError(`${where}: options ${targetsSet.join(' and ')} both say where to compute; give one`);

  const { spec, local } = taskSpecOf(where, task);
  const isGpu = spec.kind === 'gpu';
  if (processes !== undefined && spec.kind === 'local') throw new InvalidOptionError(`${where}: options.processes needs a task from defineTask() or gpuKernel() (child processes load it by reference); a function runs only in this process`);
  if (o.executor !== undefined && spec.kind === 'local') throw new InvalidOptionError(`${where}: options.executor needs a task from defineTask() or gpuKernel() (executors load it by reference); a function runs only in this process`);
  let workers = positiveInt(where, 'workers', o.workers) ?? (isGpu ? 1 : availableParallelism());
  if (spec.kind === 'local') workers = 1;
  const devices = checkDevices(where, o.devices, spec);

  const returnOutput = o.returnOutput ?? true;
  let theCache = cache;
  let view = cache;
  let items: ReturnType<typeof planItems> | null = null;
  if (o.items) {
    items = planItems(where, cache, o.items, !!o.extendCache);
    theCache = items.cache;
    view = items.view;
  }
  view._check();
  const remote = !!(o.mapFn || o.executor);
  const size = execSize ?? (remote ? Infinity : isGpu ? 65536 : 64);
  const diag = newDiagnostics();
  const set = makeExecutors({ where, spec, workers, processes, devices, mapFn: o.mapFn, executor: o.executor, execChunkSize: size });
  let targets = null as ItemTargets | null;
  let flat: FlatOutput | null = null;
  let itemOut: unknown[] | TypedArray | null = null;
  try {
    const engine = runEngine({
      view, label: where, task: spec, fn: typeof task === 'function' ? task : undefined, executors: set.executors, execChunkSize: size, needOutputs: returnOutput, durable: false,
      ...(items ? { needed: (G) => (targets ??= locateItems(items!, G)).needed } : {}),
      jobKeys: remote, boundMemory: true, yieldEvery: false, signal: o.signal, onProgress: o.onProgress, claimTimeoutMs: o.claimTimeoutMs, diag,
    });
    for await (const d of engine) {
      if (!returnOutput || !d.output) continue;
      const src = d.output as ArrayLike<unknown>;
      const located = targets as ItemTargets | null;
      if (located) {
        const list = located.byChunk[d.index]!;
        if (itemOut === null) itemOut = ArrayBuffer.isView(src) ? new (src.constructor as new (n: number) => TypedArray)(o.items!.length) : new Array(o.items!.length);
        else if (ArrayBuffer.isView(itemOut) && (!ArrayBuffer.isView(src) || src.constructor !== itemOut.constructor)) itemOut = Array.from(itemOut as ArrayLike<unknown>);
        for (const t of list) (itemOut as unknown[])[t.out] = src[t.r];
      } else {
        flat ??= new FlatOutput(diag);
        flat.placeRows(src, d.outRows());
      }
    }
  } finally {
    if (local) releaseLocalTask(spec as never);
    await set.close();
  }
  let output: unknown[] | TypedArray | undefined;
  if (returnOutput) output = items ? (itemOut ?? new Array(o.items!.length)) : (flat?.value ?? []);
  if (items) diag.totalPoints = o.items!.length;
  return {
    output: (output !== undefined && o.collate ? o.collate(output as TaskOutput<T>) : output) as R | undefined,
    diagnostics: diag,
    cache: theCache,
    executors: set.executors.map((e) => e.stats),
  };
}
