/**
 * Cache management: stats, LRU eviction (by hand and automatic), export and
 * import of archives, layered shared roots, verify/repair, rm/clear and the
 * coverage map. Importing this module registers the runner hooks (shared
 * roots before a run, amortised eviction after it).
 */
import './shared.js';
import './gc.js';
import './invalidate.js';

export { stats, cacheStats } from './stats.js';
export type { CacheStats, RootStats } from './stats.js';
export { gc, AUTO_GC_FRACTION } from './gc.js';
export type { GcOptions, GcResult, EvictedRecord } from './gc.js';
export { exportCaches, importArchive, ARCHIVE_FORMAT, ARCHIVE_VERSION } from './archive.js';
export type { ExportOptions, ExportResult, ImportResult, Manifest, ManifestCache, ManifestRecord } from './archive.js';
export { fillFromShared } from './shared.js';
export type { SharedFill } from './shared.js';
export { verify, rm, clear } from './maintain.js';
export type { VerifyProblem, VerifyResult } from './maintain.js';
export { coverageMap, renderCoverageMap } from './coverage.js';
export type { CoverageMap, CellState } from './coverage.js';
export { isInUse, markInUse, onAfterRun, onBeforeRun } from './hooks.js';
export { parseSize, parseDuration } from './util.js';
export { read } from './read.js';
export type { ReadResult, ReadOutput } from './read.js';
