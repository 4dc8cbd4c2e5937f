/**
 * Where `runParallel` computes exec chunks: pools of worker threads or
 * child processes (one per device), the calling thread, gpu devices, a
 * `mapFn`, or a user `Executor` (e.g. BullMQ). Each becomes an engine
 * executor with a concurrency and work statistics.
 */
import { describeValue } from '../describe.js';
import { ExecOutputError, InvalidOptionError } from '../errors/index.js';
import { GPU_MODES, type GpuMode } from '../gpu/kernel.js';
import type { EngineExecutor } from '../run/engine.js';
import { executeJob } from '../task/execute.js';
import { runGpuJobReport } from '../gpu/kernel.js';
import type { Executor } from '../task/executor.js';
import type { ExecJob, JobOutput, TaskSpec } from '../task/job.js';
import { JobPool, sharedThreadPool, WorkerDiedError } from './pools.js';

/** Results of a map function: in job order. */
export type MapResults = Iterable<unknown> | AsyncIterable<unknown>;

/**
 * A user executor as one function: computes `fn(job)` for every job
 * (anywhere: a process pool, a queue, a cluster) and returns the results in
 * job order (an array, an iterable of values or promises, or an async iterable).
 */
export type MapFn = (fn: (job: ExecJob) => Promise<JobOutput>, jobs: ExecJob[]) => MapResults | Promise<MapResults>;

/**
 * One device of a multi-device gpu run. A device computes exec chunks with
 * the kernel in its own gpu.js mode, on the calling thread or on its own
 * worker threads; all devices pull from one queue.
 *
 * @example
 * runParallel(cache, gpuKernel(k), { devices: [{ mode: 'async' }, { mode: 'cpu', threads: 2 }] })
 */
export interface Device {
  /** gpu.js mode of this device. @default the kernel's own mode */
  readonly mode?: GpuMode;
  /** Run on this many dedicated worker threads (each with its own gpu.js). @default 0: the calling thread */
  readonly threads?: number;
  /** Exec chunks computed at once on the calling thread (threads: 0). @default 1 */
  readonly concurrency?: number;
  /** Name in diagnostics. @default `${mode}` or `${mode} x${threads} threads` */
  readonly label?: string;
}

/** Child processes instead of worker threads: a count, or one process per device. */
export type ProcessesOption =
  | number
  | {
      /** One process per device; each sees `CHUNK_MEMO_DEVICE` and `CUDA_VISIBLE_DEVICES` set to it, and `ctx.device`. */
      readonly devices: readonly string[];
      /** Environment of the process of `device` (replaces the default device variables). */
      readonly env?: (device: string, index: number) => Record<string, string>;
    };

/** An engine executor around a function that runs a job. */
export function executorOf(label: string, concurrency: number, run: (job: ExecJob, signal?: AbortSignal) => Promise<JobOutput>, freshOutputs = false): EngineExecutor {
  return { concurrency, busy: 0, stats: { label, execChunks: 0, points: 0 }, run, freshOutputs };
}

/**
 * A gpu kernel on the calling thread. Unless the user named it, its label
 * becomes the backend the kernel really ran on (e.g. `webasm (async: no
 * WebGPU adapter)`), never the mode it asked for.
 */
function gpuHere(label: string, relabel: boolean, concurrency: number, prepare: (job: ExecJob) => ExecJob): EngineExecutor {
  const ex = executorOf(label, concurrency, async (job) => {
    const { output, backend } = await runGpuJobReport(prepare(job));
    if (relabel) ex.stats.label = backend.label;
    return output;
  });
  return ex;
}

/**
 * Exec chunks of BUNDLE_MAX_SIZE point travel to workers in
 * bundles of about BUNDLE_POINTS points: one message for several chunks.
 */
const BUNDLE_MAX_SIZE = 1;
const BUNDLE_POINTS = 32;

/**
 * A worker pool as an executor. Tiny exec chunks are sent in bundles, so a
 * message's cost is shared by several; each exec chunk is still claimed,
 * checked and stored on its own. A worker that dies during a bundle costs
 * that bundle: its chunks are sent again one by one, so only the chunk that
 * kills its worker fails (and a worker lost to something else costs nothing).
 */
function poolExecutor(label: string, pool: JobPool, workers: number, execChunkSize: number, prepare: (job: ExecJob) => ExecJob = (j) => j): EngineExecutor {
  const per = execChunkSize > BUNDLE_MAX_SIZE ? 1 : Math.ceil(BUNDLE_POINTS / execChunkSize);
  // Outputs come as copies from the workers or processes: nothing else holds them.
  if (per === 1) return executorOf(label, workers, (job, signal) => pool.run(prepare(job), signal), true);
  let queue: Array<{ job: ExecJob; signal: AbortSignal | undefined; resolve: (v: JobOutput) => void; reject: (e: unknown) => void }> = [];
  const flush = (): void => {
    const q = queue;
    queue = [];
    for (let i = 0; i < q.length; i += per) {
      const part = q.slice(i, i + per);
      pool.runMany(part.map((x) => x.job), part[0]!.signal).forEach((p, k) => {
        const x = part[k]!;
        p.then(x.resolve, (e) => (e instanceof WorkerDiedError && part.length > 1 ? pool.run(x.job, x.signal).then(x.resolve, x.reject) : x.reject(e)));
      });
    }
  };
  return executorOf(
    label,
    workers * per,
    (job, signal) =>
      new Promise<JobOutput>((resolve, reject) => {
        if (queue.length === 0) queueMicrotask(flush);
        queue.push({ job: prepare(job), signal, resolve, reject });
      }),
    true,
  );
}

/** Executors of a run, and what to close when it ends. */
export interface ExecutorSet {
  readonly executors: EngineExecutor[];
  close(): Promise<void>;
}

export function checkDevices(where: string, devices: unknown, spec: TaskSpec): Device[] | null {
  if (devices === undefined) return null;
  if (spec.kind !== 'gpu') throw new InvalidOptionError(`${where}: options.devices is for gpuKernel() tasks; use options.workers or options.processes for defineTask() tasks`);
  if (!Array.isArray(devices) || devices.length === 0) throw new InvalidOptionError(`${where}: options.devices must be a non-empty array of { mode?, threads?, concurrency?, label? }`);
  return devices.map((d: unknown, i) => {
    if (typeof d !== 'object' || d === null) throw new InvalidOptionError(`${where}: options.devices[${i}] must be an object (got ${describeValue(d)})`);
    const dev = d as Device;
    if (dev.mode !== undefined && !GPU_MODES.includes(dev.mode)) throw new InvalidOptionError(`${where}: options.devices[${i}].mode must be one of ${GPU_MODES.join(', ')} (got ${describeValue(dev.mode)})`);
    for (const k of ['threads', 'concurrency'] as const) {
      const v = dev[k];
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) throw new InvalidOptionError(`${where}: options.devices[${i}].${k} must be a non-negative integer (got ${describeValue(v)})`);
    }
    return dev;
  });
}

export function checkProcesses(where: string, p: unknown): ProcessesOption | undefined {
  if (p === undefined) return undefined;
  if (typeof p === 'number') {
    if (!Number.isInteger(p) || p < 1) throw new InvalidOptionError(`${where}: options.processes must be a positive integer or { devices: string[], env? } (got ${describeValue(p)})`);
    return p;
  }
  const o = p as { devices?: unknown; env?: unknown };
  if (o === null || typeof o !== 'object' || !Array.isArray(o.devices) || o.devices.length === 0 || o.devices.some((d) => typeof d !== 'string' || d === '')) {
    throw new InvalidOptionError(`${where}: options.processes must be a positive integer or { devices: string[] (non-empty names), env?: (device, i) => ({...}) } (got ${describeValue(p)})`);
  }
  if (o.env !== undefined && typeof o.env !== 'function') throw new InvalidOptionError(`${where}: options.processes.env must be a function (device, index) => environment (got ${describeValue(o.env)})`);
  const extra = Object.keys(o).filter((k) => k !== 'devices' && k !== 'env');
  if (extra.length) throw new InvalidOptionError(`${where}: unknown option processes.${extra[0]}; valid: devices, env`);
  return p as ProcessesOption;
}

/** Pools of child processes: `n` plain ones, or one per device. */
function processExecutors(n: ProcessesOption, execChunkSize: number): { executors: EngineExecutor[]; pools: JobPool[] } {
  if (typeof n === 'number') {
    const pool = new JobPool({ size: n, runtime: 'child_process' });
    return { executors: [poolExecutor(`${n} child processes`, pool, n, execChunkSize)], pools: [pool] };
  }
  const pools: JobPool[] = [];
  const executors = n.devices.map((device, i) => {
    const env = n.env ? n.env(device, i) : { CHUNK_MEMO_DEVICE: device, CUDA_VISIBLE_DEVICES: device };
    const pool = new JobPool({ size: 1, runtime: 'child_process', env: { CHUNK_MEMO_DEVICE: device, ...env } });
    pools.push(pool);
    // One job at a time per device: devices share the queue chunk by chunk.
    return executorOf(`device ${device}`, 1, (job, signal) => pool.run({ ...job, device }, signal));
  });
  return { executors, pools };
}

/** A `mapFn` as an executor: the jobs dispatched in one turn of the event loop go to one call. */
function mapFnExecutor(mapFn: MapFn, where: string): EngineExecutor {
  let pending: Array<{ job: ExecJob; resolve: (v: JobOutput) => void; reject: (e: unknown) => void }> = [];
  const flush = async (): Promise<void> => {
    const list = pending;
    pending = [];
    let n = 0;
    try {
      const results = await mapFn(executeJob, list.map((x) => x.job));
      const take = (out: unknown): void => {
        const x = list[n++];
        if (!x) throw new ExecOutputError(`${where}: mapFn returned more results than the ${list.length} jobs`);
        x.resolve(out as JobOutput);
      };
      if (results && typeof (results as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
        for await (const out of results as AsyncIterable<unknown>) take(out);
      } else if (results && typeof (results as Iterable<unknown>)[Symbol.iterator] === 'function') {
        for (const item of results as Iterable<unknown>) take(await item);
      } else throw new ExecOutputError(`${where}: mapFn must return the results in job order (an array, an iterable or an async iterable), got ${describeValue(results)}`);
      if (n !== list.length) throw new ExecOutputError(`${where}: mapFn returned ${n} results for ${list.length} jobs`);
    } catch (e) {
      for (const x of list.slice(n)) x.reject(e);
    }
  };
  return executorOf('mapFn', Infinity, (job) =>
    new Promise<JobOutput>((resolve, reject) => {
      if (pending.length === 0) setImmediate(() => void flush());
      pending.push({ job, resolve, reject });
    }),
  );
}

/** A user `Executor` (e.g. `bullmqExecutor`) as an engine executor. */
function userExecutor(ex: Executor, where: string): EngineExecutor {
  if (ex === null || typeof ex !== 'object' || typeof ex.run !== 'function') {
    throw new InvalidOptionError(`${where}: options.executor must be an Executor { label, concurrency, run(job), close?() } such as bullmqExecutor(...) (got ${describeValue(ex)})`);
  }
  const c = ex.concurrency ?? 1;
  if (!(typeof c === 'number' && c >= 1)) throw new InvalidOptionError(`${where}: options.executor.concurrency must be a number >= 1 (got ${describeValue(c)})`);
  return executorOf(String(ex.label ?? 'executor'), Math.floor(c), (job, signal) => ex.run(job, signal));
}

export interface ExecutorChoice {
  readonly where: string;
  readonly spec: TaskSpec;
  readonly workers: number;
  readonly processes: ProcessesOption | undefined;
  readonly devices: Device[] | null;
  readonly mapFn: MapFn | undefined;
  readonly executor: Executor | undefined;
  readonly execChunkSize: number;
}

/** Builds the executors of a run. */
export function makeExecutors(c: ExecutorChoice): ExecutorSet {
  const pools: JobPool[] = [];
  const closers: Array<() => Promise<void>> = [];
  let executors: EngineExecutor[];
  if (c.executor) {
    executors = [userExecutor(c.executor, c.where)];
    if (typeof c.executor.close === 'function') closers.push(() => c.executor!.close!());
  } else if (c.mapFn) executors = [mapFnExecutor(c.mapFn, c.where)];
  else if (c.processes !== undefined) {
    const p = processExecutors(c.processes, c.execChunkSize);
    executors = p.executors;
    pools.push(...p.pools);
  } else if (c.spec.kind === 'module') {
    const pool = sharedThreadPool(c.workers);
    executors = [poolExecutor(`${c.workers} worker threads`, pool, c.workers, c.execChunkSize)];
  } else if (c.devices) {
    const spec = c.spec;
    executors = c.devices.map((d) => {
      const withMode = (job: ExecJob): ExecJob => (d.mode && spec.kind === 'gpu' ? { ...job, task: { ...spec, options: { ...spec.options, mode: d.mode } } } : job);
      const mode = d.mode ?? (spec.kind === 'gpu' ? String(spec.options.mode ?? 'async') : 'default');
      if (d.threads) {
        const pool = new JobPool({ size: d.threads, runtime: 'worker_threads' });
        pools.push(pool);
        return poolExecutor(d.label ?? `${mode} x${d.threads} threads`, pool, d.threads, c.execChunkSize, withMode);
      }
      return gpuHere(d.label ?? mode, d.label === undefined, d.concurrency || 1, withMode);
    });
  } else if (c.spec.kind === 'gpu') executors = [gpuHere('calling thread', true, c.workers, (job) => job)];
  else executors = [executorOf('calling thread', c.workers, (job, signal) => executeJob(job, signal))];
  return {
    executors,
    close: async () => {
      // The shared thread pool stays for later calls; pools made for this run close.
      await Promise.allSettled([...pools.map((p) => p.close()), ...closers.map((f) => f())]);
    },
  };
}
