/**
 * View operations implemented above the cache layer (they need the run
 * hooks), registered when their modules load (`ts/manage`, which the
 * package entry imports), so the cache layer imports nothing above it.
 */

/** Result of `cache.invalidate()`. */
export interface InvalidateResult {
  /** Stored points of the view that were deleted. */
  readonly points: number;
  /** Records deleted whole. */
  readonly deletedRecords: number;
  /** Records the view covered in part, rewritten with their other points. */
  readonly rewrittenRecords: number;
}

/** @internal Implementations, set by ts/manage/invalidate.ts. */
export const viewOps: { invalidate: ((view: unknown) => InvalidateResult) | null } = { invalidate: null };
