/** Counts and timings of a run. */

/** Counts and timings of a run (every runner returns one). */
export interface Diagnostics {
  totalChunks: number;
  cachedChunks: number;
  executedChunks: number;
  partialChunks: number;
  totalPoints: number;
  cachedPoints: number;
  executedPoints: number;
  /** Points another process computed (under its claim) while this run waited for them. */
  waitedPoints: number;
  /** Points this run computed after taking over the claim of a dead owner or an expired lease. */
  takenOverPoints: number;
  /** Exec calls: calls of the exec function (serial) or exec chunks dispatched (parallel). */
  execChunks: number;
  /** Memo chunk writes (each a part of one write transaction). */
  streamFlushes: number;
  /** Largest number of point outputs held at once by the runner. */
  maxBufferedPoints: number;
  /** Records that failed verification and were recomputed. */
  corruptRecords: string[];
  /** Time spent in claim transactions (ms). */
  claimMs: number;
  /** Claim transactions this run made for its work (each a synced commit, covering many exec chunks). */
  claimTransactions: number;
  timings: { planMs: number; readMs: number; execMs: number; writeMs: number; totalMs: number };
}

/** Zeroed diagnostics. */
export function newDiagnostics(): Diagnostics {
  return {
    totalChunks: 0, cachedChunks: 0, executedChunks: 0, partialChunks: 0, totalPoints: 0, cachedPoints: 0,
    executedPoints: 0, waitedPoints: 0, takenOverPoints: 0, execChunks: 0, streamFlushes: 0, maxBufferedPoints: 0,
    corruptRecords: [], claimMs: 0, claimTransactions: 0,
    timings: { planMs: 0, readMs: 0, execMs: 0, writeMs: 0, totalMs: 0 },
  };
}
