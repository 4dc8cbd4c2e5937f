/**
 * chunk-memo: memoize a function over a parameter grid, in chunks stored in
 * LMDB, reused across runs, subsets, extensions and re-chunkings.
 */
import { ChunkCache } from './cache/cache.js';
import { autoLoad, discover, findCompatible, findOverlapping, load } from './cache/discovery.js';

declare module './cache/cache.js' {
  // eslint-disable-next-line @typescript-eslint/no-namespace
  namespace ChunkCache {
    /** Every cache stored in `root`. */
    let discover: typeof import('./cache/discovery.js').discover;
    /** Caches of `root` that can serve a request. */
    let findCompatible: typeof import('./cache/discovery.js').findCompatible;
    /** Caches of `root` whose points intersect a request's. */
    let findOverlapping: typeof import('./cache/discovery.js').findOverlapping;
    /** Opens a stored cache by id. */
    let load: typeof import('./cache/discovery.js').load;
    /** Finds or creates the cache that serves a request. */
    let autoLoad: typeof import('./cache/discovery.js').autoLoad;
  }
}
ChunkCache.discover = discover;
ChunkCache.findCompatible = findCompatible;
ChunkCache.findOverlapping = findOverlapping;
ChunkCache.load = load;
ChunkCache.autoLoad = autoLoad;

export { ChunkCache, autoLoad };
export type { CacheStatus, ChunkStatusEntry, PartialChunkStatus, SelectSpec, InvalidateResult } from './cache/cache.js';
export type { CacheInfo, CompatibleInfo, CompatibleQuery, AutoLoadOptions, LoadOptions, OverlapQuery } from './cache/discovery.js';
export type { OpenOptions } from './cache/options.js';
export { run, runStreaming, iterate, memoize } from './run/run.js';
export type { ChunkResult, Diagnostics, RunOptions, Memoized, MemoArgs, MemoizeOptions } from './run/run.js';
export { pointwise, defineTask, executeJob } from './task/execute.js';
export type { ChunkFn, PointFn, PointwiseChunkFn, ChunkContext, ChunkOutput, OutputOf } from './task/execute.js';
export type { ExecJob, JobOutput, TaskSpec, ModuleTaskSpec, GpuTaskSpec } from './task/job.js';
export type { Executor } from './task/executor.js';
export { bullmqExecutor } from './executor/bullmq.js';
export type { BullMQExecutorOptions, BullMQJobOptions } from './executor/bullmq.js';
export type { RedisConnection } from './executor/deps.js';
export type { ProgressEvent } from './run/progress.js';
export * from './errors/index.js';
export type { Value, Params, TypedArray } from './value.js';
export { gpuKernel, disposeGpuKernels, gpuBackendInfo, probeGpuBackend, runGpuJobReport, prepareGpuEnvironment } from './gpu/kernel.js';
export type { GpuKernelOptions, GpuMode, GpuKernelFn, GpuKernelThis, GpuBackendInfo, GpuBackendUsed, WebGpuAdapter } from './gpu/kernel.js';
export { runParallel } from './parallel/run-parallel.js';
export type { ParallelOptions, ParallelResult, ExecutorStats, TaskOutput } from './parallel/run-parallel.js';
export type { MapFn, MapResults, Device, ProcessesOption } from './parallel/executors.js';
export type { Item } from './parallel/items.js';
export { closeWorkerPools, WorkerDiedError } from './parallel/pools.js';
export * from './manage/index.js';
