/**
 * Worker pools (tinypool): worker threads, or child processes, optionally
 * one per device. Idle workers never keep the process alive; a dead worker
 * fails only its job, and the pool replaces it. Pools of worker threads are
 * reused across `runParallel` calls; child-process pools live for one run.
 */
import type { Piscina } from 'piscina';
import type { Tinypool } from 'tinypool';
import * as errors from '../errors/index.js';
import { ChunkMemoError } from '../errors/index.js';
import { typeScriptLoaderActive } from '../task/execute.js';
import type { ExecJob, JobOutput } from '../task/job.js';
import type { JobBundle, WorkerFailure } from './worker.js';

const fromSource = import.meta.url.endsWith('.ts');
const workerUrl = new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url).href;

/**
 * Node options workers need to load task modules the way this process
 * does: its `--import`/`--loader`/`--require` hooks, and tsx when this
 * process runs TypeScript (chunk-memo's own sources, or a script under tsx
 * whose task modules are `.ts`).
 */
function loaderArgs(): string[] {
  const out: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (/^--(import|loader|experimental-loader|require)=/.test(a)) out.push(a);
    else if (/^(--import|--loader|--experimental-loader|--require|-r)$/.test(a) && i + 1 < args.length) out.push(a, args[++i]!);
    else if (/^--(experimental-strip-types|experimental-transform-types|no-warnings.*)$/.test(a)) out.push(a);
  }
  return out;
}

/**
 * tsx's API module when this process runs TypeScript (chunk-memo's own
 * sources, or a script under tsx whose task modules are `.ts`): workers
 * register it before loading task modules (Node 20 applies a parent's
 * `--import` hooks to a worker's `require` but not to its `import()`).
 */
function tsxApi(): string | undefined {
  if (!fromSource && !typeScriptLoaderActive()) return undefined;
  try {
    return import.meta.resolve('tsx/esm/api');
  } catch {
    return undefined; // No tsx to pass on: TypeScript task modules fail with a clear message.
  }
}

/** A worker (thread or process) died while computing a job. Code `ERR_WORKER_DIED`. */
export class WorkerDiedError extends ChunkMemoError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_WORKER_DIED', message, options);
    this.name = 'WorkerDiedError';
  }
}

export interface PoolOptions {
  readonly size: number;
  readonly runtime: 'worker_threads' | 'child_process';
  /** Extra environment of child processes (merged over this process's). */
  readonly env?: Record<string, string>;
}

/**
 * The pool library's pool, loaded when the first pool is made: importing
 * piscina and tinypool takes ~40 ms, which a script that never runs
 * workers (most runs are serial) should not pay when it imports chunk-memo.
 */
async function makePool(options: PoolOptions): Promise<Piscina | Tinypool> {
  // minThreads = maxThreads: piscina replaces a worker that dies at once
  // (with fewer, tasks already queued when the last workers die wait for a
  // new submission); idle workers are unref'd and never hold the process.
  const common = { filename: workerUrl, minThreads: options.size, maxThreads: options.size, idleTimeout: 30_000, execArgv: loaderArgs() };
  const tsx = tsxApi();
  const env = { ...(process.env as Record<string, string>), ...(options.env ?? {}), ...(tsx ? { CHUNK_MEMO_TSX_API: tsx } : {}) };
  if (options.runtime === 'child_process') {
    const { Tinypool } = await import('tinypool');
    return new Tinypool({ ...common, runtime: 'child_process', env, serialization: 'advanced' });
  }
  const { Piscina } = await import('piscina');
  return new Piscina({ ...common, env });
}

/** A pool of `size` workers that runs jobs: piscina for threads, tinypool for child processes. */
export class JobPool {
  /** The pool, once its library is loaded (a failure to make it is met by the first job). */
  private readonly pool: Promise<Piscina | Tinypool>;
  private made: Piscina | Tinypool | null = null;
  private closed = false;

  constructor(readonly options: PoolOptions) {
    this.pool = makePool(options).then((p) => (this.made = p));
    this.pool.catch(() => {
      // Reported to the jobs that wait for the pool.
    });
  }

  async run(job: ExecJob, signal?: AbortSignal): Promise<JobOutput> {
    const res = await this.send(job, [job], signal);
    return unwrap(res as JobOutput | WorkerFailure);
  }

  /** Runs several small jobs in one message; each settles on its own. */
  runMany(jobs: ExecJob[], signal?: AbortSignal): Array<Promise<JobOutput>> {
    // The fields jobs of one run share travel once.
    const first = jobs[0]!;
    const bundle: JobBundle = {
      task: first.task, params: first.params, axisOrder: first.axisOrder, ...(first.device !== undefined ? { device: first.device } : {}),
      blocks: jobs.map((j) => ({ axes: j.axes, count: j.count, jobIndex: j.jobIndex, key: j.key })),
    };
    const all = this.send(bundle, jobs, signal) as Promise<Array<JobOutput | WorkerFailure>>;
    return jobs.map((_, i) => all.then((outs) => unwrap(outs[i]!)));
  }

  private async send(task: ExecJob | JobBundle, jobs: ExecJob[], signal?: AbortSignal): Promise<unknown> {
    const pool = await this.pool;
    try {
      return await (pool.run as (t: unknown, o: object) => Promise<unknown>).call(pool, task, signal ? { signal } : {});
    } catch (e) {
      if (signal?.aborted) throw e;
      // The job's own errors come back as values: a rejection is the worker's death.
      const what = this.options.runtime === 'child_process' ? 'child process' : 'worker thread';
      const which = jobs.length === 1 ? `exec chunk ${jobs[0]!.jobIndex}` : `exec chunks ${jobs[0]!.jobIndex}-${jobs[jobs.length - 1]!.jobIndex}`;
      throw new WorkerDiedError(`a ${what} died while computing ${which} (${(e as Error)?.message ?? e}); another worker takes the next chunks`, { cause: e });
    }
  }

  /** The pool's live workers (tests terminate one to simulate a crash); none before the pool is made. */
  get workers(): Array<{ threadId: number; terminate(): unknown }> {
    return (this.made?.threads ?? []) as never;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const pool = await this.pool.catch(() => null);
    await pool?.destroy();
  }
}

/** A job's output, or its error rebuilt (the same class where it is one of ours). */
function unwrap(res: JobOutput | WorkerFailure): JobOutput {
  if (res !== null && typeof res === 'object' && !Array.isArray(res) && !ArrayBuffer.isView(res)) {
    const f = (res as WorkerFailure).failed;
    const err = typeof f.code === 'string' ? rebuild(f.code, f.name, f.message) : new Error(f.message);
    err.name = f.name;
    if (f.stack) err.stack = f.stack;
    throw err;
  }
  return res as JobOutput;
}

/** The library error of a code, as a worker threw it (same class where it is one of ours). */
function rebuild(code: string, name: string, message: string): Error {
  const C = (errors as Record<string, unknown>)[name];
  if (typeof C === 'function' && C.prototype instanceof ChunkMemoError && C !== ChunkMemoError) {
    const e = new (C as new (m: string) => ChunkMemoError)(message);
    if (e.code === code) return e;
  }
  const e = new ChunkMemoError(code, message);
  return Object.assign(e, { code });
}

const shared = new Map<number, JobPool>();

/** The process-wide pool of `size` worker threads (reused across runs). */
export function sharedThreadPool(size: number): JobPool {
  let p = shared.get(size);
  if (!p || p.isClosed) {
    p = new JobPool({ size, runtime: 'worker_threads' });
    shared.set(size, p);
  }
  return p;
}

/**
 * Terminates the worker threads kept by `runParallel` for later calls.
 * Optional: idle workers never keep the process alive; call this to free
 * them early, e.g. after changing a task module on disk.
 */
export async function closeWorkerPools(): Promise<void> {
  const pools = [...shared.values()];
  shared.clear();
  await Promise.all(pools.map((p) => p.close()));
}
