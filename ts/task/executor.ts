/**
 * The executor contract: where `runParallel` sends exec chunks instead of
 * its local pool (`options.executor`), e.g. `bullmqExecutor(...)`.
 *
 * The runner (the coordinator) owns the store: it claims the work of each
 * job, calls `run`, checks the outputs and stores them. An executor only
 * moves jobs and results; it never touches the store.
 */
import type { ExecJob, JobOutput } from './job.js';

/**
 * Runs exec chunks somewhere (another process pool, a queue, a cluster).
 *
 * @example
 * const inline: Executor = { label: 'inline', concurrency: 1, run: (job) => executeJob(job) };
 * await runParallel(cache, task, { executor: inline });
 */
export interface Executor {
  /** Name in `result.executors`. */
  readonly label: string;
  /** Jobs the runner keeps in flight at once on this executor. */
  readonly concurrency: number;
  /**
   * Runs one job and resolves with its outputs: one per point of the block,
   * in block order (an array, or a numeric TypedArray). Rejects when the job
   * failed; `signal` fires when the run is aborted.
   */
  run(job: ExecJob, signal?: AbortSignal): Promise<JobOutput>;
  /** Called once when the run ends, whatever its outcome. */
  close?(): Promise<void>;
}
