import type { Params, Value } from '../value.js';

/** A task that a worker thread loads by module URL and export name. */
export interface ModuleTaskSpec {
  readonly kind: 'module';
  readonly moduleUrl: string;
  readonly exportName: string;
}

/** A gpu.js kernel, carried as source so any thread or process can build it. */
export interface GpuTaskSpec {
  readonly kind: 'gpu';
  /** `kernelFn.toString()` */
  readonly source: string;
  /** Plain, structured-clonable kernel options (see ts/gpu/kernel.ts). */
  readonly options: Record<string, unknown>;
}

/** A function registered in this process (runs only here, not in workers). */
export interface LocalTaskSpec {
  readonly kind: 'local';
  readonly id: number;
}

export type TaskSpec = ModuleTaskSpec | GpuTaskSpec | LocalTaskSpec;

/**
 * One exec chunk: a plain, structured-clonable description of the points to
 * compute. `points` is columnar and *zipped*: point `i` is
 * `{ [axis]: points[axis][i] }` for every axis in `axisOrder`.
 */
export interface ExecJob {
  readonly task: TaskSpec;
  readonly params: Params;
  readonly axisOrder: readonly string[];
  readonly points: Readonly<Record<string, Value[]>>;
  readonly count: number;
  /** Position of this job in the list handed to a map function. */
  readonly jobIndex: number;
}
