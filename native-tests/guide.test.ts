/**
 * Executes the examples of docs/guide.md (adapted to temp roots) so the guide
 * cannot silently rot. Section numbers refer to the guide.
 */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import {
  ChunkCache,
  ChunkMemoError,
  autoLoad,
  cacheStats,
  defineTask,
  executeJob,
  exportCaches,
  gpuKernel,
  importArchive,
  iterate,
  memoize,
  pointwise,
  run,
  runParallel,
  runStreaming,
  stats,
  verify,
  type ChunkFn,
  type ExecJob,
  type ProgressEvent,
} from '../ts/index.js';
import { disposeGpuKernels } from '../ts/gpu/kernel.js';
import { closeWorkerPools } from '../ts/parallel/pools.js';

const roots: string[] = [];
const freshRoot = (): string => {
  const r = fs.mkdtempSync(os.tmpdir() + '/cm-');
  roots.push(r);
  return r;
};
test.after.always(async () => {
  await disposeGpuKernels();
  await closeWorkerPools();
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});

const TASKS = new URL('./fixtures/tasks.ts', import.meta.url);

/** Collects process warnings with a given code (emitted on the next tick). */
function collectWarnings(code: string): { stop: () => Promise<string[]> } {
  const seen: string[] = [];
  const on = (w: Error & { code?: string }): void => {
    if (w.code === code) seen.push(w.message);
  };
  process.on('warning', on);
  return {
    stop: async () => {
      await new Promise<void>((r) => setImmediate(r));
      process.off('warning', on);
      return seen;
    },
  };
}

const openSweep = (root: string) =>
  ChunkCache.open({
    root,
    params: { model: 'mlp', lr: 0.001 },
    axisValues: { seed: [0, 1, 2], width: [64, 128] },
    chunkSpec: { seed: 2 },
  });

const train = pointwise((p, { seed, width }) => ({
  seed, width, loss: (width as number) / 100 + (seed as number) + (p.lr as number),
}));

test('§2-4, §6: open, run in grid order, reuse, select, extend, status', async (t) => {
  const root = freshRoot();
  const cache = openSweep(root);
  t.regex(cache.id, /^[0-9a-f]{32}$/);
  t.deepEqual(cache.axisOrder, ['seed', 'width']);
  t.deepEqual(cache.chunkSpec, { seed: 2, width: 2 });

  const progress: ProgressEvent[] = [];
  const { output, diagnostics } = await run(cache, train, { onProgress: (e) => progress.push(e) });
  t.deepEqual(
    (output as Array<{ seed: number; width: number }>).map((o) => [o.seed, o.width]),
    [[0, 64], [0, 128], [1, 64], [1, 128], [2, 64], [2, 128]],
  );
  t.like(diagnostics, { totalChunks: 2, executedChunks: 2, cachedChunks: 0, totalPoints: 6, executedPoints: 6, cachedPoints: 0, execChunks: 2, maxBufferedPoints: 4 });
  t.deepEqual(diagnostics.corruptRecords, []);
  t.is(progress.at(-1)!.pointsDone, 6);
  t.is(progress.at(-1)!.pointsTotal, 6);

  const again = await run(cache, train);
  t.like(again.diagnostics, { executedPoints: 0, cachedPoints: 6, cachedChunks: 2 });
  t.deepEqual(again.output, output);

  // Another axis order: same id, same stored points, width-major output.
  const byWidth = ChunkCache.open({ root, params: { model: 'mlp', lr: 0.001 }, axisValues: { seed: [0, 1, 2], width: [64, 128] }, axisOrder: ['width', 'seed'] });
  t.is(byWidth.id, cache.id);
  const bw = await run(byWidth, train);
  t.is(bw.diagnostics.executedPoints, 0);
  t.deepEqual((bw.output as Array<{ seed: number; width: number }>).map((o) => [o.width, o.seed]), [[64, 0], [64, 1], [64, 2], [128, 0], [128, 1], [128, 2]]);

  // select
  const sub = cache.select({ values: { width: [128] } });
  const s = await run(sub, train);
  t.is(s.diagnostics.executedPoints, 0);
  t.deepEqual((s.output as Array<{ seed: number }>).map((o) => o.seed), [0, 1, 2]);
  t.deepEqual(cache.select({ indices: { seed: -1 } }).axisValues.seed, [2]);
  t.deepEqual(cache.select({ indices: { seed: [0, -1] } }).axisValues.seed, [0, 2]);
  t.deepEqual(cache.select({ indices: { seed: { start: 1 } } }).axisValues.seed, [1, 2]);
  t.deepEqual(cache.select({ indices: { seed: { start: -1, step: -2 } } }).axisValues.seed, [0, 2]);
  t.deepEqual(cache.select({ values: { seed: [2, 0] } }).axisValues.seed, [0, 2]);
  t.deepEqual(cache.select({ indices: { seed: [0, -1] } }).select({ indices: { seed: 1 } }).axisValues.seed, [2]);
  const bad = t.throws(() => cache.select({ values: { seed: [7] } }));
  t.is((bad as ChunkMemoError).code, 'ERR_SELECTION');

  // extendAxisValues + status shape
  const ext = cache.extendAxisValues({ seed: [3] });
  t.is(ext.id, cache.id);
  const st = ext.status();
  t.like(st, { totalChunks: 2, totalPoints: 8, cachedPoints: 6, missingPoints: 2 });
  t.deepEqual(st.cached, [{ index: 0, bins: { seed: 0, width: 0 }, axisValues: { seed: [0, 1], width: [64, 128] }, indices: { seed: [0, 1], width: [0, 1] }, points: 4 }]);
  t.is(st.partial.length, 1);
  t.like(st.partial[0]!, { index: 1, bins: { seed: 1, width: 0 }, points: 4, cachedPoints: 2 });
  t.deepEqual(st.partial[0]!.axisValues, { seed: [2, 3], width: [64, 128] });
  t.deepEqual(st.partial[0]!.missingPoints, [{ seed: 3, width: 64 }, { seed: 3, width: 128 }]);
  t.deepEqual(st.missing, []);
  const e = await run(ext, train);
  t.like(e.diagnostics, { executedPoints: 2, cachedPoints: 6, partialChunks: 1 });
  t.is(ext.status().missingPoints, 0);

  // withParams: same grid, another id
  const other = cache.withParams({ model: 'mlp', lr: 0.01 });
  t.not(other.id, cache.id);
  t.is(other.status().cachedPoints, 0);

  // Duplicates and params/axis clashes are errors.
  t.is(t.throws<ChunkMemoError>(() => ChunkCache.open({ root, axisValues: { x: [1, 1] } }))!.code, 'ERR_DUPLICATE_AXIS_VALUE');
  t.is(t.throws<ChunkMemoError>(() => ChunkCache.open({ root, params: { x: 1 }, axisValues: { x: [1] } }))!.code, 'ERR_INVALID_OPTION');
  t.is(t.throws<ChunkMemoError>(() => cache.extendAxisValues({ seed: [0] }))!.code, 'ERR_DUPLICATE_AXIS_VALUE');

  // close
  const h = ChunkCache.load(root, cache.id);
  h.close();
  t.is(t.throws<ChunkMemoError>(() => h.status())!.code, 'ERR_CLOSED');
});

test('§2.1, §2.4, §2.5: Sets and generators, code identity and warnings, exclusive', async (t) => {
  const root = freshRoot();
  t.deepEqual(ChunkCache.open({ root, params: { s: 1 }, axisValues: { n: new Set([3, 1, 256, -1, 2]) } }).axisValues.n, [256, 1, 2, 3, -1]);
  function* letters() {
    yield 'b';
    yield 'a';
    yield 'c';
  }
  t.deepEqual(ChunkCache.open({ root, params: { s: 2 }, axisValues: { l: letters() } }).axisValues.l, ['a', 'b', 'c']);

  const w = collectWarnings('CHUNK_MEMO_FREE_VARIABLES');
  const k = 3;
  const a = ChunkCache.open({ root, params: { scale: 2 }, axisValues: { x: [1, 2] }, code: (_p: unknown, x: number) => x * k });
  const msgs = await w.stop();
  t.is(msgs.length, 1);
  t.regex(msgs[0]!, /free variable k/);
  // Reformatting keeps the id; a logic change does not.
  const b = ChunkCache.open({ root, params: { scale: 2 }, axisValues: { x: [1, 2] }, code: (_p: unknown, x: number) => { /* comment */ return x * k; } });
  const c = ChunkCache.open({ root, params: { scale: 2 }, axisValues: { x: [1, 2] }, code: (_p: unknown, x: number) => x * k + 1 });
  const d = ChunkCache.open({ root, params: { scale: 2 }, axisValues: { x: [1, 2] }, code: 'sim-2024-06' });
  t.not(a.id, c.id);
  t.not(a.id, d.id);
  // `(x) => x * k` and `(x) => { return x * k; }` are different ASTs; only formatting is ignored.
  const a2 = ChunkCache.open({ root, params: { scale: 2 }, axisValues: { x: [1, 2] }, code: (_p: unknown,   x: number) =>   x*k });
  t.is(a2.id, a.id);
  t.truthy(b.id);

  // exclusive / warnOnOverlap (section 2.5)
  ChunkCache.open({ root, params: { model: 'm' }, axisValues: { lr: [0.1, 0.01], seed: [0, 1, 2] } });
  const ex = t.throws<ChunkMemoError>(() => ChunkCache.open({ root, params: { model: 'm', lr: 0.1 }, axisValues: { seed: [0] }, exclusive: true }));
  t.is(ex!.code, 'ERR_EXCLUSIVE');
  const ov = collectWarnings('CHUNK_MEMO_OVERLAP');
  ChunkCache.open({ root, params: { model: 'm' }, axisValues: { lr: [0.1, 7], seed: [0] }, cacheVersion: 'v1', code: 'other', warnOnOverlap: true });
  t.is((await ov.stop()).length, 1);
});

test('§4: collate, runStreaming, abort and failures keep finished chunks', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2, 3, 4] }, chunkSpec: { x: 3 }, cacheVersion: 'typed' });
  const half: ChunkFn = (_p, { x }) => Float64Array.from(x as number[], (v) => v / 2);
  const { output } = await run(cache, half, { collate: (o) => (o as Float64Array).reduce((a, b) => a + b, 0) });
  t.is(output, 5);
  const back = await run(cache, () => {
    throw new Error('nothing to compute');
  });
  t.true(back.output instanceof Float64Array);
  t.deepEqual(Array.from(back.output as Float64Array), [0.5, 1, 1.5, 2]);

  const f = ChunkCache.open({ root, axisValues: { x: [1, 2, 3, 4] }, chunkSpec: { x: 1 }, cacheVersion: 'abort' });
  const ac = new AbortController();
  const aborted = await t.throwsAsync<ChunkMemoError>(() => run(f, (_p, { x }) => {
    if (x[0] === 2) ac.abort();
    return [x[0]];
  }, { signal: ac.signal }));
  t.is(aborted!.code, 'ERR_ABORTED');
  t.is(f.status().cachedPoints, 2);

  const failed = await t.throwsAsync<ChunkMemoError>(() => run(f, (_p, { x }) => {
    if (x[0] === 4) throw new Error('bad point');
    return [x[0]];
  }));
  t.is(failed!.code, 'ERR_EXEC_FAILED');
  t.is((failed!.cause as Error).message, 'bad point');
  t.is(f.status().cachedPoints, 3);

  const wrong = await t.throwsAsync<ChunkMemoError>(() => run(f, () => [1, 2]));
  t.is(wrong!.code, 'ERR_EXEC_OUTPUT');

  const diag = await runStreaming(f, (_p, { x }) => [x[0]]);
  t.like(diag, { executedPoints: 1, cachedPoints: 3 });
});

test('§4: iterate yields committed chunks; breaking early keeps them', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2, 3, 4] }, chunkSpec: { x: 2 }, cacheVersion: 'iterate' });
  const double = pointwise((_p, { x }) => (x as number) * 2);
  const seen: number[][] = [];
  for await (const chunk of iterate(cache, double)) {
    t.is(chunk.index, 0);
    t.deepEqual(chunk.axisValues, { x: [1, 2] });
    t.deepEqual(chunk.output, [2, 4]);
    t.is(chunk.executedPoints, 2);
    // Committed before it was handed out: another handle sees it.
    seen.push([ChunkCache.load(root, cache.id).status().cachedPoints]);
    break;
  }
  t.deepEqual(seen, [[2]]);
  t.is(cache.status().cachedPoints, 2);

  const it = iterate(cache, double);
  const outs: unknown[] = [];
  let r = await it.next();
  while (!r.done) {
    outs.push(...(r.value.output as unknown[]));
    r = await it.next();
  }
  t.deepEqual(outs, [2, 4, 6, 8]);
  t.like(r.value, { executedPoints: 2, cachedPoints: 2 });
});

test('§5: chunk functions iterate ctx.axisOrder and may return typed arrays', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { a: [1, 2], b: [10, 20, 30] }, axisOrder: ['b', 'a'], cacheVersion: 'chunkfn' });
  const orders: string[][] = [];
  const grid: ChunkFn = (_p, axes, ctx) => {
    orders.push([...ctx.axisOrder]);
    const [outer, inner] = ctx.axisOrder as [string, string];
    const out = new Float64Array(axes[outer]!.length * axes[inner]!.length);
    let i = 0;
    for (const a of axes[outer]!) for (const b of axes[inner]!) out[i++] = (a as number) * (b as number) + (b as number) / 1000;
    return out;
  };
  const { output } = await run(cache, grid);
  t.deepEqual(orders, [['b', 'a']]);
  t.true(output instanceof Float64Array);
  // b slowest: (b=10,a=1) (b=10,a=2) (b=20,a=1) ...
  t.deepEqual(Array.from(output as Float64Array), [10.001, 20.002, 20.001, 40.002, 30.001, 60.002]);
});

test('§7: memoize: axis keys select, extras join the identity', async (t) => {
  const root = freshRoot();
  const base = ChunkCache.open({ root, params: { model: 'q' }, axisValues: { x: [1, 2, 3] } });
  const f = memoize(base, pointwise((p, { x }) => (x as number) * (p.scale as number)));
  t.not(f.cache.id, base.id);
  const a = await f({ x: [1, 3], scale: 10 });
  t.deepEqual(a.output, [10, 30]);
  t.is(a.diagnostics.executedPoints, 2);
  const b = await f({ scale: 10 });
  t.deepEqual(b.output, [10, 20, 30]);
  t.like(b.diagnostics, { executedPoints: 1, cachedPoints: 2 });
  t.deepEqual((await f({ indices: { x: -1 }, scale: 10 })).output, [30]);
  t.is(f.status({ scale: 20 }).missingPoints, 3);
  t.is(f.status({ scale: 10, x: 2 }).cachedPoints, 1);
  const c = await f({ x: 2, scale: 20 });
  t.deepEqual(c.output, [40]);
  t.is(c.diagnostics.executedPoints, 1);
});

test('§8: discovery and autoLoad (exact, superset pinned view, ambiguous, new, singleton)', async (t) => {
  const root = freshRoot();
  const sweep = ChunkCache.open({ root, params: { model: 'm' }, axisValues: { lr: [0.1, 0.01], seed: [0, 1, 2] } });
  await run(sweep, pointwise((p, { lr, seed }) => ({ model: p.model, lr, seed })));

  const view = autoLoad({ root, params: { model: 'm', lr: 0.01 }, axisValues: { seed: [1, 2] }, allowSuperset: true });
  t.is(view.id, sweep.id);
  t.deepEqual(view.params, { model: 'm', lr: 0.01 });
  t.deepEqual(view.axisOrder, ['seed']);
  const v = await run(view, () => {
    throw new Error('all stored');
  });
  t.deepEqual(v.output, [{ model: 'm', lr: 0.01, seed: 1 }, { model: 'm', lr: 0.01, seed: 2 }]);
  t.is(v.diagnostics.cachedPoints, 2);

  // A pinned view's exec function receives the pinned value in params.
  const ext = sweep.extendAxisValues({ seed: [3] });
  const pinned = autoLoad({ root, params: { model: 'm', lr: 0.1 }, axisValues: { seed: [3] }, allowSuperset: true });
  t.is(pinned.id, ext.id);
  const got: unknown[] = [];
  const pr = await run(pinned, (p, axes) => {
    got.push(p, axes);
    return [{ model: p.model, lr: p.lr, seed: axes.seed![0] }];
  });
  t.deepEqual(got, [{ model: 'm', lr: 0.1 }, { seed: [3] }]);
  t.deepEqual(pr.output, [{ model: 'm', lr: 0.1, seed: 3 }]);

  const exact = autoLoad({ root, params: { model: 'm' }, axisValues: { seed: [0], lr: [0.1] } });
  t.is(exact.id, sweep.id);
  t.true(exact.isView);
  t.is(autoLoad({ root, params: { model: 'm' } }).id, sweep.id);

  const compat = ChunkCache.findCompatible(root, { params: { model: 'm', lr: 0.1 }, allowSuperset: true });
  t.deepEqual(compat.map((c) => [c.id, c.match, c.pinned]), [[sweep.id, 'superset', { lr: 0.1 }]]);
  const info = ChunkCache.discover(root);
  t.is(info.length, 1);
  t.like(info[0]!, { id: sweep.id, points: 7, cacheVersion: 'v1' });
  t.deepEqual(ChunkCache.findOverlapping(root, { params: { model: 'm' }, axisValues: { lr: [0.1, 0.5], seed: [2, 9] } }).map((c) => c.overlap), [{ lr: [0.1], seed: [2] }]);

  // Ambiguous, new, singleton.
  ChunkCache.open({ root, params: { model: 'm' }, axisValues: { seed: [0, 1] }, cacheVersion: 'v2' });
  t.is(t.throws<ChunkMemoError>(() => autoLoad({ root, params: { model: 'm' } }))!.code, 'ERR_AMBIGUOUS_CACHE');
  t.is(autoLoad({ root, params: { model: 'm' }, cacheVersion: 'v2' }).cacheVersion, 'v2');
  const fresh = autoLoad({ root, params: { model: 'other' }, axisValues: { seed: [0] } });
  t.not(fresh.id, sweep.id);
  const single = autoLoad({ root, params: { model: 'zzz' } });
  t.deepEqual(single.axisOrder, []);
  t.deepEqual((await run(single, () => ['one'])).output, ['one']);
  t.is(t.throws<ChunkMemoError>(() => ChunkCache.load(root, '0'.repeat(32)))!.code, 'ERR_CACHE_NOT_FOUND');
});

test('§9: runParallel with defineTask on worker threads, items + extendCache, returnOutput: false', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, params: { k: 1 }, axisValues: { a: [0, 1, 2, 3], b: [0, 10] }, chunkSpec: { a: 2 } });
  const task = defineTask(TASKS, 'typed');
  const { output, diagnostics, cache: used } = await runParallel(cache, task, { workers: 2, execChunkSize: 3 });
  t.is(used, cache);
  t.true(output instanceof Float64Array);
  t.deepEqual(Array.from(output as Float64Array), [1, 11, 1.5, 11.5, 2, 12, 2.5, 12.5]);
  t.like(diagnostics, { execChunks: 4, executedPoints: 8, executedChunks: 2, streamFlushes: 2 });

  // Pointwise export; everything is stored already.
  const again = await runParallel(cache, defineTask(TASKS, 'obj'), { workers: 2 });
  t.like(again.diagnostics, { executedPoints: 0, cachedPoints: 8, execChunks: 0 });

  const r = await runParallel(cache, task, { items: [{ a: 5, b: 10 }, [0, 0]], extendCache: true, workers: 1 });
  t.deepEqual(Array.from(r.output as Float64Array), [13.5, 1]);
  t.deepEqual(r.cache.axisValues.a, [0, 1, 2, 3, 5]);
  t.is(r.diagnostics.executedPoints, 1);
  const noExt = await t.throwsAsync<ChunkMemoError>(() => runParallel(cache, task, { items: [{ a: 9, b: 0 }], workers: 1 }));
  t.is(noExt!.code, 'ERR_SELECTION');

  const s = await runParallel(r.cache, task, { returnOutput: false, workers: 2, execChunkSize: 1 });
  t.is(s.output, undefined);
  t.like(s.diagnostics, { executedPoints: 1, cachedPoints: 9 });
  t.true(s.diagnostics.maxBufferedPoints <= 2);
  t.is(r.cache.status().missingPoints, 0);
});

test('§9: runParallel with mapFn + executeJob; failures keep finished memo chunks', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, params: { k: 1 }, axisValues: { a: [0, 1, 2, 3], b: [0, 10] }, chunkSpec: { a: 2 } });
  const task = defineTask(TASKS, 'typed');
  const sent: ExecJob[] = [];
  const r = await runParallel(cache, task, {
    mapFn: (_fn, jobs) => jobs.map(async (job) => {
      sent.push(job);
      const wire = structuredClone(job); // e.g. postMessage / IPC / a queue
      return executeJob(wire); // runs on the other side
    }),
  });
  t.deepEqual(Array.from(r.output as Float64Array), [1, 11, 1.5, 11.5, 2, 12, 2.5, 12.5]);
  // Default for mapFn: one job per memo chunk's missing points, as a product block.
  t.is(sent.length, 2);
  t.deepEqual(sent[0]!.axes, { a: [0, 1], b: [0, 10] });
  t.like(sent[0]!, { params: { k: 1 }, axisOrder: ['a', 'b'], count: 4, jobIndex: 0 });
  t.like(r.diagnostics, { execChunks: 2, executedPoints: 8 });

  // Not called when nothing is missing.
  let calls = 0;
  await runParallel(cache, task, { mapFn: (fn, jobs) => (calls++, jobs.map(fn)) });
  t.is(calls, 0);

  // A failing job: finished memo chunks are stored, a re-run computes the rest.
  const fc = ChunkCache.open({ root, axisValues: { a: [1, 2, 3, 4], b: [1, 2, 3] }, chunkSpec: { a: 1 } });
  const err = await t.throwsAsync<ChunkMemoError>(() => runParallel(fc, defineTask(TASKS, 'failing'), { mapFn: (fn, jobs) => jobs.map(fn) }));
  t.is(err!.code, 'ERR_EXEC_FAILED');
  t.regex((err!.cause as Error).message, /boom at a=3 b=3/);
  t.is(fc.status().cachedPoints, 6);
  const rerun = await runParallel(fc, defineTask(TASKS, 'fixed'), { workers: 2, execChunkSize: 3 });
  t.is(rerun.diagnostics.executedPoints, 6);
  t.is((rerun.output as number[])[0], 101);
});

test('§10: gpuKernel on the cpu backend', async (t) => {
  const root = freshRoot();
  const task = gpuKernel(function (this: { thread: { x: number }; constants: Record<string, number> }, x: Float32Array, y: Float32Array) {
    const i = this.thread.x;
    return x[i]! * this.constants.scale! + y[i]!;
  }, { mode: 'cpu' });
  const cache = ChunkCache.open({ root, params: { scale: 2 }, axisValues: { x: [0, 1, 2, 3], y: [0, 0.5] } });
  const { output } = await runParallel(cache, task);
  t.true(output instanceof Float32Array);
  t.deepEqual(Array.from(output as Float32Array), [0, 0.5, 2, 2.5, 4, 4.5, 6, 6.5]);
});

test('§11: stats, export/import, verify', async (t) => {
  const root = freshRoot();
  const cache = openSweep(root);
  await run(cache, train);
  const st = stats(root);
  t.like(st, { caches: 1, chunks: 2, points: 6 });
  t.like(cacheStats(root, cache.id), { gridPoints: 6, points: 6 });
  const file = `${freshRoot()}/sweep.tgz`;
  await exportCaches(root, [cache.id], file, { selection: { values: { seed: [0, 1] } } });
  const other = freshRoot();
  const imp = await importArchive(file, other);
  t.is(imp.caches[0]!.id, cache.id);
  const copy = ChunkCache.load(other, cache.id);
  t.is(copy.status().cachedPoints, 4);
  t.true(verify(root).ok);
});
