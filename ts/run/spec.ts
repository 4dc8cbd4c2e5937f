/** What the run engine is given (an `EngineSpec`) and what it hands out (`ChunkDone`). */
import type { ChunkCache } from '../cache/cache.js';
import type { ExecJob, JobOutput, TaskSpec } from '../task/job.js';
import type { TypedArray } from '../value.js';
import type { Diagnostics } from './diagnostics.js';
import type { ChunkGeo, PlanGeometry } from '../cache/geometry.js';
import type { ProgressEvent } from './progress.js';

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
  /**
   * Runs the job on the calling thread and returns its output, or a promise
   * of it when the function is async (the calling-thread executor of serial
   * runs): a synchronous result completes the job without a promise.
   */
  runSync?(job: ExecJob): JobOutput | Promise<JobOutput>;
  /**
   * Its outputs are new memory nobody else holds (copies that came from a
   * worker or a process): kept as they are. Otherwise (a function on this
   * thread, a user executor) typed outputs and arrays are copied when
   * received, so a function that reuses its output buffer from call to call
   * stores and returns what each call computed.
   */
  readonly freshOutputs?: boolean;
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
  /** The same positions as rows: request-order rows of `len` points, row r at `starts[r]` (see PlanGeometry.outRows). */
  outRows(): { starts: Uint32Array; len: number };
}

/** A run's flat output as the engine can fill it directly (see EngineSpec.sink). */
export interface OutputSink {
  /** The output's bytes and dtype while it is a typed array; null otherwise. */
  typed(): { kind: number; bytes: Uint8Array } | null;
  /** The output while it is a plain array; null otherwise (stored items chunks are decoded straight into it). */
  items(): unknown[] | null;
  /** Stored chunks hold `kind`: make the output that typed array (items: a plain array) if nothing decided it yet. */
  expect(kind: number): void;
  /**
   * Places a whole chunk's computed outputs (request order) at their rows,
   * once the output is or becomes an array of their kind; returns what a
   * write of them may keep until it commits (memory of the run's, not the
   * function's): for typed rows that lie together, the output's own
   * elements; otherwise a copy. Null when the output has another kind (the
   * chunk's outputs are then placed when it is handed out).
   */
  placeChunk(src: ArrayLike<unknown>, rows: { starts: Uint32Array; len: number }): ArrayLike<unknown> | null;
}

export interface EngineSpec {
  readonly view: ChunkCache;
  readonly label: string;
  readonly task: TaskSpec;
  /** The in-process function that computes (serial runs, `runParallel` with a function): its code hash is recorded (cache/code-record.ts). */
  readonly fn?: Function | undefined;
  readonly executors: EngineExecutor[];
  /** Points per exec block at most (Infinity: the planner's blocks as they are). */
  readonly execChunkSize: number;
  /** Keep and return outputs (read stored ones, keep computed ones). */
  readonly needOutputs: boolean;
  /**
   * The run's flat output, when it has one (run): stored whole chunks of its
   * dtype are read straight into it, and their ChunkDone has no output.
   */
  readonly sink?: OutputSink;
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

