/**
 * Every public function, called with bad input, throws (or rejects with) a
 * `ChunkMemoError` carrying a stable `code`, whose message names what was
 * wrong. Nothing raw (TypeError, Error) escapes.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as api from '../ts/index.js';
import { ChunkCache, ChunkMemoError } from '../ts/index.js';

const roots: string[] = [];
const freshRoot = (): string => {
  const r = mkdtempSync(join(tmpdir(), 'cm-bad-'));
  roots.push(r);
  return r;
};
test.after.always(async () => {
  await api.closeWorkerPools();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

type Case = [name: string, call: () => unknown];

test('bad input to every public function is a ChunkMemoError with a code', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2, 3] } });
  const bad = 'not a cache' as never;
  const cases: Case[] = [
    ['ChunkCache.open without axisValues', () => ChunkCache.open({ root } as never)],
    ['ChunkCache.open unknown option', () => ChunkCache.open({ root, axisValues: {}, chunkSpek: {} } as never)],
    ['ChunkCache.open duplicate value', () => ChunkCache.open({ root, axisValues: { x: [1, 1] } })],
    ['ChunkCache.open function param', () => ChunkCache.open({ root, params: { f: (() => 1) as never }, axisValues: {} })],
    ['ChunkCache.load unknown id', () => ChunkCache.load(root, 'ffffffffffffffffffffffffffffffff')],
    ['ChunkCache.discover bad root', () => ChunkCache.discover(42 as never)],
    ['ChunkCache.findCompatible bad query', () => ChunkCache.findCompatible(root, 'x' as never)],
    ['ChunkCache.findOverlapping bad query', () => ChunkCache.findOverlapping(root, 7 as never)],
    ['autoLoad bad options', () => api.autoLoad(5 as never)],
    ['cache.select unknown axis', () => cache.select({ values: { nope: [1] } })],
    ['cache.select bad index', () => cache.select({ indices: { x: 99 } })],
    ['cache.withParams axis name', () => cache.withParams({ x: 1 })],
    ['cache.extendAxisValues duplicate', () => cache.extendAxisValues({ x: [1] })],
    ['run non-cache', () => api.run(bad, () => [])],
    ['run non-function', () => api.run(cache, 5 as never)],
    ['run unknown option', () => api.run(cache, () => [1, 2, 3], { colate: () => 1 } as never)],
    ['runStreaming bad signal', () => api.runStreaming(cache, () => [1, 2, 3], { signal: 'x' as never })],
    ['iterate non-cache', () => api.iterate(bad, () => []).next()],
    ['memoize non-function', () => api.memoize(cache, null as never)],
    ['memoize bad ignore', () => api.memoize(cache, () => [], { ignore: 'device' as never })],
    ['pointwise non-function', () => api.pointwise(3 as never)],
    ['defineTask relative path', () => api.defineTask('./tasks.js', 'f')],
    ['defineTask empty export', () => api.defineTask('/abs/tasks.js', '')],
    ['executeJob not a job', () => api.executeJob({} as never)],
    ['runParallel non-cache', () => api.runParallel(bad, api.defineTask('/abs/t.js', 'f'))],
    ['runParallel bad task', () => api.runParallel(cache, 5 as never)],
    ['runParallel misspelled option', () => api.runParallel(cache, api.defineTask('/abs/t.js', 'f'), { workerz: 2 } as never)],
    ['runParallel bad workers', () => api.runParallel(cache, api.defineTask('/abs/t.js', 'f'), { workers: 0 })],
    ['runParallel bad executor', () => api.runParallel(cache, api.defineTask('/abs/t.js', 'f'), { executor: {} as never })],
    ['runParallel two targets', () => api.runParallel(cache, api.defineTask('/abs/t.js', 'f'), { processes: 2, mapFn: (() => []) as never })],
    ['gpuKernel non-function', () => api.gpuKernel('x' as never)],
    ['gpuKernel bad option', () => api.gpuKernel(function () { return 1; }, { mode: 'quantum' as never })],
    ['bullmqExecutor no connection', () => api.bullmqExecutor({} as never)],
    ['read non-cache', () => api.read(bad)],
    ['stats missing root', () => api.stats(join(root, 'nope'))],
    ['cacheStats unknown id', () => api.cacheStats(root, 'ffffffffffffffffffffffffffffffff')],
    ['gc no limit', () => api.gc(root, {} as never)],
    ['gc bad maxAge', () => api.gc(root, { maxAge: 'soon' })],
    ['verify missing root', () => api.verify(join(root, 'nope'))],
    ['rm unknown id', () => api.rm(root, ['ffffffffffffffffffffffffffffffff'])],
    ['coverageMap unknown id', () => api.coverageMap(root, 'ffffffffffffffffffffffffffffffff')],
    ['exportCaches unknown id', () => api.exportCaches(root, ['ffffffffffffffffffffffffffffffff'], join(root, 'a.tgz'))],
    ['importArchive missing file', () => api.importArchive(join(root, 'missing.tgz'), root)],
    ['parseSize garbage', () => api.parseSize('lots')],
    ['parseDuration garbage', () => api.parseDuration('soon')],
  ];
  const escaped: string[] = [];
  for (const [name, call] of cases) {
    let err: unknown = null;
    try {
      const r = call();
      if (r && typeof (r as Promise<unknown>).then === 'function') await r;
    } catch (e) {
      err = e;
    }
    if (err === null) escaped.push(`${name}: did not fail`);
    else if (!(err instanceof ChunkMemoError) || typeof err.code !== 'string' || !/^ERR_[A-Z_]+$/.test(err.code)) {
      escaped.push(`${name}: ${(err as Error)?.name ?? typeof err}: ${(err as Error)?.message ?? String(err)}`);
    }
  }
  t.deepEqual(escaped, []);
});
