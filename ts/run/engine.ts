/**
 * The run engine shared by every runner (`run`, `runStreaming`, `iterate`,
 * `runParallel` on threads, processes, `mapFn` or an executor).
 *
 * Path of a run: plan the view → resolve it against the store → per memo
 * chunk, read what is stored and cut the missing points into product blocks
 * of at most `execChunkSize` points → claim a few blocks at a time → compute
 * the granted ones on the executors → when a chunk has all its points, store
 * what this run computed (the transaction also releases the claims) → wait
 * for points other processes hold, and read them when they land.
 * `RunSession` (session.ts) does the scheduling; `ChunkWork` (chunk-work.ts)
 * assembles each chunk.
 */
import type { ChunkCache } from '../cache/cache.js';
import { AbortedError } from '../errors/index.js';
import type { ExecJob, JobOutput, TaskSpec } from '../task/job.js';
import type { TypedArray } from '../value.js';
import { newDiagnostics, type Diagnostics } from './diagnostics.js';
import { planRun, type ChunkGeo, type PlanGeometry } from './geometry.js';
import type { ProgressEvent } from './progress.js';
import { RunSession } from './session.js';
import { afterRun } from '../manage/hooks.js';

export { coords } from './session.js';

/** Work done by one executor (the calling thread, a pool, a device, a queue). */
export interface ExecutorStats {
  /** The executor, or for gpu kernels the backend that really ran (e.g. `webgpu (vulkan): NVIDIA H200`). */
  label: string;
  execChunks: number;
  points: number;
}

/** An executor as the engine drives it. */
export interface EngineExecutor {
  readonly concurrency: number;
  readonly stats: ExecutorStats;
  busy: number;
  run(job: ExecJob, signal?: AbortSignal): Promise<JobOutput>;
}

/** A memo chunk whose requested points are all available. */
export interface ChunkDone {
  readonly index: number;
  readonly geo: ChunkGeo;
  /** Outputs in request order (null when outputs are not needed). */
  readonly output: unknown[] | TypedArray | null;
  readonly cachedPoints: number;
  readonly executedPoints: number;
  /** Position of each requested point in the view's flat grid-ordered output. */
  outIndex(): Uint32Array;
}

export interface EngineSpec {
  readonly view: ChunkCache;
  readonly label: string;
  readonly task: TaskSpec;
  readonly executors: EngineExecutor[];
  /** Points per exec block at most (Infinity: the planner's blocks as they are). */
  readonly execChunkSize: number;
  /** Keep and return outputs (read stored ones, keep computed ones). */
  readonly needOutputs: boolean;
  /** Commit a chunk before handing it out (iterate). */
  readonly durable: boolean;
  /** Given the plan's geometry: only these request indices of chunk i (sorted, unique); undefined: all. */
  readonly needed?: (G: PlanGeometry) => (i: number) => Uint32Array | null;
  /** Fill `ExecJob.key` (executors that need deterministic job ids). */
  readonly jobKeys: boolean;
  /** Bound buffered + in-flight points (parallel runs). */
  readonly boundMemory: boolean;
  /** One exec call at a time, yielding to the event loop between calls (serial runs). */
  readonly yieldEvery: boolean;
  readonly device?: string;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((e: ProgressEvent) => void) | undefined;
  readonly claimTimeoutMs?: number | undefined;
  readonly diag?: Diagnostics;
}

/** Serial runs let timers, signals and I/O in at least this often (ms). */
const YIELD_MS = 20;

/**
 * Runs a view and yields each memo chunk once all its requested points are
 * available (stored, computed here, or computed by another process).
 */
export async function* runEngine(spec: EngineSpec): AsyncGenerator<ChunkDone, Diagnostics> {
  const diag = spec.diag ?? newDiagnostics();
  const t0 = performance.now();
  const { plan, resolved, geometry } = planRun(spec.view, spec.label);
  try {
    diag.corruptRecords.push(...resolved.corrupt);
    const s = new RunSession(spec, plan, resolved, geometry, diag);
    diag.timings.planMs += performance.now() - t0;
    try {
      yield* loop(spec, s);
      if (s.failure !== null) throw s.failure;
      if (s.aborted || spec.signal?.aborted) {
        throw new AbortedError(`${spec.label} aborted; ${diag.executedPoints} computed points are stored, a re-run computes only the rest`, { cause: spec.signal?.reason });
      }
      s.batcher.flush();
    } finally {
      await finish(s, diag);
      diag.timings.totalMs = performance.now() - t0;
    }
    return diag;
  } finally {
    afterRun(spec.view);
  }
}

async function* loop(spec: EngineSpec, s: RunSession): AsyncGenerator<ChunkDone> {
  let backoff = 2;
  let lastYield = performance.now();
  for (;;) {
    // Hand out finished chunks first: a consumer that stops early stops the run.
    const d = s.done.shift();
    if (d) {
      if (spec.durable && d.executedPoints > 0) s.batcher.flush();
      yield d;
      continue;
    }
    if (spec.signal?.aborted) s.aborted = true;
    if (s.failure === null && !s.aborted) s.fill();
    if (s.inflight.size > 0) {
      await Promise.race(s.inflight);
      if (spec.yieldEvery && performance.now() - lastYield >= YIELD_MS) {
        await new Promise((r) => setTimeout(r, 0));
        lastYield = performance.now();
      }
      continue;
    }
    if (s.failure !== null || s.aborted) return;
    if (s.done.length || s.hasWork) continue;
    if (!s.isWaiting) return;
    // Everything left is held by other processes: commit ours, then poll.
    s.batcher.flush();
    if (s.pollWaiting()) backoff = 2;
    else {
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 250);
    }
  }
}

/** Whatever completed is stored, also on failure or abort; the run's claims are released. */
async function finish(s: RunSession, diag: Diagnostics): Promise<void> {
  if (s.inflight.size) await Promise.allSettled([...s.inflight]);
  s.writeOpenChunks();
  try {
    s.batcher.flush();
  } catch (e) {
    s.failure ??= e;
    if (s.failure === e) {
      s.claims.release();
      throw e;
    }
  }
  s.claims.release();
  diag.timings.writeMs = s.batcher.writeMs;
  if (s.failure === null || s.aborted) s.progress.finish();
}
