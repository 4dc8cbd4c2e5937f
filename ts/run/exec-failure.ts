/** The error a run fails with when an exec call fails. */
import { describeBlock, describeValue } from '../describe.js';
import { ChunkMemoError, ExecError } from '../errors/index.js';
import type { ExecJob } from '../task/job.js';
import type { Value } from '../value.js';

/**
 * `e`, thrown by the exec call of `job` on chunk `i` of the run `label`, as
 * the run's `ERR_EXEC_FAILED` (naming the chunk and its block); aborts and
 * bad outputs are already errors of their own and stay as they are.
 */
export function execFailure(label: string, e: unknown, i: number, job: ExecJob): unknown {
  if (e instanceof ChunkMemoError && (e.code === 'ERR_ABORTED' || e.code === 'ERR_EXEC_OUTPUT')) return e;
  return new ExecError(
    `${label}: exec function failed on chunk ${i} at ${describeBlock(job.axes as Record<string, Value[]>)} (exec chunk ${job.jobIndex}, ${job.count} points): ` +
      `${(e as Error)?.message ?? describeValue(e)}; finished chunks are stored, a re-run computes only the rest`,
    { cause: e },
  );
}
