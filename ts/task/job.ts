/**
 * Jobs and tasks: the plain, structured-clonable description of one exec
 * chunk that every executor (worker threads, child processes, `mapFn`,
 * BullMQ workers on other hosts) receives and runs with `executeJob`.
 */
import type { Params, TypedArray, Value } from '../value.js';

/** A task that a worker thread, child process or remote worker loads by module URL and export name. */
export interface ModuleTaskSpec<Out = unknown[] | TypedArray> {
  readonly kind: 'module';
  readonly moduleUrl: string;
  readonly exportName: string;
  /** Type only (never set): the flat output type of a run of this task. */
  readonly __output?: Out;
}

/** A gpu.js kernel, carried as source so any thread or process can build it. */
export interface GpuTaskSpec {
  readonly kind: 'gpu';
  /** `kernelFn.toString()` */
  readonly source: string;
  /** Plain, structured-clonable kernel options (see ts/gpu). */
  readonly options: Record<string, unknown>;
}

/** A function registered in this process (runs only here, not in workers). */
export interface LocalTaskSpec {
  readonly kind: 'local';
  readonly id: number;
}

export type TaskSpec = ModuleTaskSpec | GpuTaskSpec | LocalTaskSpec;

/**
 * One exec chunk: a *product block* of points. `axes` lists, per axis of
 * `axisOrder`, the values of the block; its points are the cartesian product
 * of those lists, first axis slowest, and the task returns one output per
 * point in that order (the same contract as a `ChunkFn` given to `run`).
 *
 * @example
 * // axes { a: [1, 2], b: [10, 20, 30] } is 6 points:
 * // (1,10) (1,20) (1,30) (2,10) (2,20) (2,30)
 */
export interface ExecJob {
  readonly task: TaskSpec;
  readonly params: Params;
  /** Axis names of `axes`, first slowest. */
  readonly axisOrder: readonly string[];
  /** Per axis: the values of the block. */
  readonly axes: Readonly<Record<string, Value[]>>;
  /** Points of the block (the product of the list lengths). */
  readonly count: number;
  /** Position of this job among the jobs of its run. */
  readonly jobIndex: number;
  /**
   * Stable identity of the block's work: the same cache, params and points
   * give the same key in every run (hex, no `:`), so an executor can use it
   * as a deterministic job id.
   */
  readonly key: string;
  /** The device the job should run on (`processes.devices`, `chunk-memo worker --device`). */
  readonly device?: string;
}

/** What a job returns: one output per point, in block order. */
export type JobOutput = readonly unknown[] | TypedArray;
