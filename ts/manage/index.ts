/**
 * Cache management: stats, LRU eviction (by hand; the automatic kind runs
 * after each run, see run/lifecycle.ts), export and import of archives,
 * layered shared roots, verify/repair, rm/clear, the coverage map and
 * reading stored outputs without a function.
 */

export { stats, cacheStats } from './stats.js';
export type { CacheStats, RootStats } from './stats.js';
export { gc, AUTO_GC_FRACTION } from '../cache/eviction.js';
export type { GcOptions, GcResult, EvictedRecord } from '../cache/eviction.js';
export { exportCaches, importArchive, ARCHIVE_FORMAT, ARCHIVE_VERSION } from './archive.js';
export type { ExportOptions, ExportResult, ImportResult, Manifest, ManifestCache, ManifestRecord } from './archive.js';
export { fillFromShared } from '../cache/shared-roots.js';
export type { SharedFill } from '../cache/shared-roots.js';
export { verify, rm, clear } from './maintain.js';
export type { VerifyProblem, VerifyResult } from './maintain.js';
export { coverageMap, renderCoverageMap } from './coverage.js';
export type { CoverageMap, CellState } from './coverage.js';
export { isInUse, markInUse } from '../store/in-use.js';
export { parseSize, parseDuration } from './util.js';
export { read } from './read.js';
export type { ReadResult, ReadOutput } from './read.js';
