/**
 * runParallel against real LMDB roots in fresh temp directories and real
 * worker threads (at most 2), mapFn executors, items and gpu.js kernels.
 */
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  ChunkCache,
  ChunkMemoError,
  defineTask,
  executeJob,
  gpuKernel,
  pointwise,
  run,
  runParallel,
  type ChunkFn,
  type ExecJob,
  type MapFn,
  type Params,
  type ProgressEvent,
  type TypedArray,
} from '../ts/index.js';
import { disposeGpuKernels } from '../ts/gpu/kernel.js';
import { closeWorkerPools, JobPool, WorkerDiedError } from '../ts/parallel/pools.js';
import { cutBlock } from '../ts/cache/blocks.js';
import { obj, scaled } from './fixtures/tasks.js';
import { type Point, gridPoints, keyOf } from './helpers/grid.js';

const TASKS = new URL('./fixtures/tasks.ts', import.meta.url);
const task = (name: string) => defineTask(TASKS, name);

const roots: string[] = [];
const freshRoot = (): string => {
  const r = fs.mkdtempSync(path.join(os.tmpdir(), 'cm-par-'));
  roots.push(r);
  return r;
};

test.after.always(async () => {
  await disposeGpuKernels();
  await closeWorkerPools();
  for (const r of roots) fs.rmSync(r, { recursive: true, force: true });
});


/** An exec function that must not be called: reading back stored outputs. */
const noExec: ChunkFn = () => {
  throw new Error('noExec: nothing should be computed');
};

/** Reads every output of `cache` back with `run`, asserting nothing runs. */
async function readBack(t: ExecutionContext, cache: ChunkCache): Promise<unknown[] | TypedArray> {
  const { output, diagnostics } = await run(cache, noExec);
  t.is(diagnostics.executedPoints, 0);
  t.is(diagnostics.cachedPoints, diagnostics.totalPoints);
  return output;
}

const objRef = (k: number, p: Point) => ({ a: p.a, b: p.b, v: (p.a as number) * 0.5 + (p.b as number) + k });
const typedRef = (p: Params, pt: Point): number => (pt.a as number) * 0.5 + (pt.b as number) + (p.k as number);

/** Exec chunks of a cold run: each memo chunk's points cut into product blocks of at most `size`. */
function execChunksFor(lens: number[], spec: number[], size: number): number {
  const bins = lens.map((n, k) => Array.from({ length: Math.ceil(n / spec[k]!) }, (_, b) => Math.min(spec[k]!, n - b * spec[k]!)));
  let count = 0;
  const walk = (k: number, dims: number[]): void => {
    if (k === lens.length) {
      count += cutBlock(dims.map((d) => Uint32Array.from({ length: d }, (_, i) => i)), size).length;
      return;
    }
    for (const d of bins[k]!) walk(k + 1, [...dims, d]);
  };
  walk(0, []);
  return count;
}

const range = (n: number, f: (i: number) => number = (i) => i): number[] => Array.from({ length: n }, (_, i) => f(i));

/** Opens the same grid at another root, for a serial reference. */
function twin(c: ChunkCache, over: Record<string, unknown> = {}): ChunkCache {
  return ChunkCache.open({ root: freshRoot(), params: c.params, axisValues: c.axisValues, chunkSpec: c.chunkSpec, axisOrder: c.axisOrder, ...over });
}

/** Stored points of a cache, as keys. */
function storedKeys(c: ChunkCache): Set<string> {
  const st = c.status();
  const all = gridPoints(c.axisOrder, c.axisValues).map(keyOf);
  const missing = new Set<string>();
  for (const m of st.missing) for (const p of gridPoints(c.axisOrder, m.axisValues)) missing.add(keyOf(p));
  for (const m of st.partial) for (const p of m.missingPoints) missing.add(keyOf(p));
  return new Set(all.filter((k) => !missing.has(k)));
}

// ---------------------------------------------------------------------------
// Equivalence with serial run
// ---------------------------------------------------------------------------

test('object outputs equal serial run, in grid order', async (t) => {
  const axisValues = { a: range(6), b: range(5, (i) => i * 2 - 3) };
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0.25 }, axisValues, chunkSpec: { a: 2, b: 3 } });
  const par = await runParallel(cache, task('obj'), { workers: 2, execChunkSize: 4 });
  const ser = await run(twin(cache), obj);
  t.deepEqual(par.output, ser.output);
  t.deepEqual(par.output, gridPoints(['a', 'b'], axisValues).map((p) => objRef(0.25, p)));
  t.is(par.diagnostics.executedPoints, 30);
  t.is(par.diagnostics.cachedPoints, 0);
  t.is(par.diagnostics.totalChunks, 6);
  t.is(par.diagnostics.streamFlushes, 6);
  // Exec chunks are product blocks cut from each memo chunk: 2x3 chunks in 2 blocks, 2x2 in 1.
  t.is(par.diagnostics.execChunks, execChunksFor([6, 5], [2, 3], 4));
  t.is(par.diagnostics.execChunks, 9);
  t.deepEqual(await readBack(t, cache), ser.output);
  // A second parallel run computes nothing and returns the same outputs.
  const again = await runParallel(cache, task('obj'), { workers: 2, execChunkSize: 4 });
  t.is(again.diagnostics.executedPoints, 0);
  t.is(again.diagnostics.execChunks, 0);
  t.is(again.diagnostics.cachedPoints, 30);
  t.deepEqual(again.output, ser.output);
});

test('typed (Float64Array) outputs equal serial run and are stored raw', async (t) => {
  const axisValues = { a: range(5, (i) => i * 0.1), b: range(7, (i) => i - 2) };
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 3 }, axisValues, chunkSpec: { a: 2, b: 4 } });
  const par = await runParallel(cache, task('typed'), { workers: 2, execChunkSize: 5 });
  t.true(par.output instanceof Float64Array);
  const ser = await run(twin(cache), pointwise(typedRef));
  t.deepEqual(Array.from(par.output as Float64Array), ser.output as number[]);
  t.deepEqual(Array.from(par.output as Float64Array), gridPoints(['a', 'b'], axisValues).map((p) => typedRef({ k: 3 }, p)));
  const back = await readBack(t, cache);
  t.true(back instanceof Float64Array);
  t.deepEqual(back, par.output);
});

test('a select() view with a non-default axisOrder equals serial run on the same view', async (t) => {
  const axisValues = { a: range(5), b: range(4, (i) => 10 + i) };
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 1 }, axisValues, chunkSpec: { a: 2, b: 3 }, axisOrder: ['b', 'a'] });
  t.deepEqual(cache.axisOrder, ['b', 'a']);
  const sel = { values: { a: [1, 3, 4], b: [10, 12, 13] } };
  const view = cache.select(sel);
  const par = await runParallel(view, task('obj'), { workers: 2, execChunkSize: 3 });
  const ser = await run(twin(cache).select(sel), obj);
  t.deepEqual(par.output, ser.output);
  // Grid order of the view: b slowest.
  t.deepEqual(par.output, gridPoints(['b', 'a'], sel.values).map((p) => objRef(1, p)));
  t.is(par.diagnostics.executedPoints, 9);
  // Only the view's points are stored; the whole cache then runs only the rest.
  t.is(cache.status().cachedPoints, 9);
  const whole = await runParallel(cache, task('obj'), { workers: 2, execChunkSize: 3 });
  t.is(whole.diagnostics.cachedPoints, 9);
  t.is(whole.diagnostics.executedPoints, 20 - 9);
  t.deepEqual(whole.output, gridPoints(['b', 'a'], axisValues).map((p) => objRef(1, p)));
});

test('exec chunk sizes 1, 7 and larger than a memo chunk store identical results', async (t) => {
  const axisValues = { a: range(6), b: range(5) };
  const chunkSpec = { a: 2, b: 3 }; // memo chunks of at most 6 points
  const outputs: unknown[] = [];
  const ref = gridPoints(['a', 'b'], axisValues).map((p) => objRef(2, p));
  for (const execChunkSize of [1, 7, 25]) {
    const cache = ChunkCache.open({ root: freshRoot(), params: { k: 2 }, axisValues, chunkSpec });
    const r = await runParallel(cache, task('obj'), { workers: 2, execChunkSize });
    t.is(r.diagnostics.execChunks, execChunksFor([6, 5], [2, 3], execChunkSize), `execChunkSize ${execChunkSize}`);
    t.deepEqual(r.output, ref);
    t.is(cache.status().missingPoints, 0);
    outputs.push(await readBack(t, cache));
  }
  t.deepEqual(outputs[0], ref);
  t.deepEqual(outputs[1], outputs[0]);
  t.deepEqual(outputs[2], outputs[0]);
});

test('returnOutput: false keeps memory bounded by in-flight exec chunks plus one memo chunk', async (t) => {
  const axisValues = { a: range(6), b: range(10) };
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0 }, axisValues, chunkSpec: { a: 1, b: 5 } });
  const workers = 2;
  const execChunkSize = 3;
  const largestMemoChunk = 5;
  const r = await runParallel(cache, task('obj'), { workers, execChunkSize, returnOutput: false });
  t.is(r.output, undefined);
  t.is(r.diagnostics.executedPoints, 60);
  t.true(r.diagnostics.maxBufferedPoints > 0);
  t.true(r.diagnostics.maxBufferedPoints <= workers * execChunkSize + largestMemoChunk, `maxBufferedPoints ${r.diagnostics.maxBufferedPoints}`);
  t.is(r.diagnostics.streamFlushes, 12);
  t.deepEqual(await readBack(t, cache), gridPoints(['a', 'b'], axisValues).map((p) => objRef(0, p)));
});

// ---------------------------------------------------------------------------
// Failures, dead workers, abort
// ---------------------------------------------------------------------------

const failGrid = { a: range(5), b: range(5) };
const fixedRef = gridPoints(['a', 'b'], failGrid).map((p) => (p.a as number) * 100 + (p.b as number));

/**
 * Runs a task that fails on a=3, b=3 over a 5x5 grid (rows are memo chunks,
 * exec chunks of 4 points), checks the error and what is stored, then re-runs
 * with `fixed` and checks that exactly the rest runs.
 */
async function failAndResume(t: ExecutionContext, name: string, expectMessage: RegExp): Promise<void> {
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0 }, axisValues: failGrid, chunkSpec: { a: 1 } });
  const events: ProgressEvent[] = [];
  const err = await t.throwsAsync(runParallel(cache, task(name), { workers: 2, execChunkSize: 4, onProgress: (e) => events.push(e) }));
  t.true(err instanceof ChunkMemoError);
  t.is((err as ChunkMemoError).code, 'ERR_EXEC_FAILED');
  t.regex(err!.message, /a=\[3\]/);
  t.regex(err!.message, /b=\[[^\]]*\b3\b/);
  t.regex(err!.message, expectMessage);
  t.truthy(err!.cause);

  const st = cache.status();
  const stored = storedKeys(cache);
  t.false(stored.has(keyOf({ a: 3, b: 3 })));
  // Rows are memo chunks of two exec chunks (4 points and 1). The failing
  // exec chunk (row a=3) is the seventh dispatched, with two workers: when it
  // starts, at most one of the six exec chunks of rows 0..2 is still running
  // (it may be lost with its pool), so at least two of those rows are stored.
  const cachedRows = st.cached.map((c) => c.axisValues.a![0]);
  t.true(cachedRows.filter((a) => (a as number) <= 2).length >= 2, `cached rows ${JSON.stringify(cachedRows)}`);
  t.false(cachedRows.includes(3));
  // Every point the run reported done is stored; every finished memo chunk too.
  const last = events.at(-1)!;
  t.is(st.cachedPoints, last.pointsDone);
  t.is(st.cached.length, last.chunksDone);
  t.true(st.cachedPoints < 25);
  // Stored outputs are the right ones.
  const partial = await run(cache, pointwise(() => -1));
  for (let i = 0; i < 25; i++) {
    const k = keyOf(gridPoints(['a', 'b'], failGrid)[i]!);
    t.is((partial.output as number[])[i], stored.has(k) ? fixedRef[i] : -1);
  }
}

async function resume(t: ExecutionContext, name: string): Promise<void> {
  // run() above filled the gaps with -1 in a first cache; use a second one.
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0 }, axisValues: failGrid, chunkSpec: { a: 1 } });
  await t.throwsAsync(runParallel(cache, task(name), { workers: 2, execChunkSize: 4 }), { code: 'ERR_EXEC_FAILED' } as never);
  const before = cache.status().cachedPoints;
  t.true(before > 0);
  const r = await runParallel(cache, task('fixed'), { workers: 2, execChunkSize: 4 });
  t.is(r.diagnostics.cachedPoints, before);
  t.is(r.diagnostics.executedPoints, 25 - before);
  t.deepEqual(r.output, fixedRef);
  t.deepEqual(await readBack(t, cache), fixedRef);
}

test('a task that throws: ERR_EXEC_FAILED naming the exec chunk, finished work stored', async (t) => {
  await failAndResume(t, 'failing', /boom at a=3 b=3/);
});

test('a task that throws: a re-run executes exactly the remaining points', async (t) => {
  await resume(t, 'failing');
});

test('a worker that exits mid-run: ERR_EXEC_FAILED, finished work stored', async (t) => {
  await failAndResume(t, 'dying', /exited with code:? 7/);
});

test('a worker that exits mid-run: a re-run executes exactly the remaining points', async (t) => {
  await resume(t, 'dying');
});

test('a worker killed by an uncaught error: ERR_EXEC_FAILED, re-run computes the rest', async (t) => {
  await failAndResume(t, 'crashing', /uncaught crash/);
  await resume(t, 'crashing');
});

test('a pool worker terminated from outside fails its job and is replaced', async (t) => {
  const pool = new JobPool({ size: 1, runtime: 'worker_threads' });
  try {
    const job = (name: string, a: number): ExecJob => ({ task: task(name), params: { k: 0 }, axisOrder: ['a', 'b'], axes: { a: [a], b: [1] }, count: 1, jobIndex: a, key: '' });
    const started = new BroadcastChannel('chunk-memo-test-hang');
    const running = new Promise((r) => (started.onmessage = r));
    const stuck = pool.run(job('hang', 0));
    await running;
    started.close();
    const victim = pool.workers[0]!;
    await victim.terminate();
    const err = await t.throwsAsync(stuck);
    t.true(err instanceof WorkerDiedError);
    t.is((err as WorkerDiedError).code, 'ERR_WORKER_DIED');
    t.regex(err!.message, /exec chunk 0/);
    t.deepEqual(await pool.run(job('obj', 2)), [objRef(0, { a: 2, b: 1 })]);
  } finally {
    await pool.close();
  }
});

test('abort from onProgress: ERR_ABORTED, what is done is stored, a re-run computes the rest', async (t) => {
  // About 1 ms per point, 600 points on 2 workers: several commits (progress
  // reports committed points) land before the end.
  const axisValues = { a: range(6), b: range(100) };
  const total = 600;
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0 }, axisValues, chunkSpec: { a: 1 } });
  const ac = new AbortController();
  const events: ProgressEvent[] = [];
  let abortedAt = -1;
  const err = await t.throwsAsync(
    runParallel(cache, task('busy'), {
      workers: 2,
      execChunkSize: 4,
      signal: ac.signal,
      onProgress: (e) => {
        events.push(e);
        if (!ac.signal.aborted && e.pointsDone >= 8) {
          abortedAt = e.pointsDone;
          ac.abort(new Error('enough'));
        }
      },
    }),
  );
  t.is((err as ChunkMemoError).code, 'ERR_ABORTED');
  t.true(abortedAt >= 8);
  const st = cache.status();
  const last = events.at(-1)!;
  // What was computed before the abort is stored (also as partial records); nothing new ran to the end.
  t.true(last.pointsDone >= abortedAt);
  t.is(st.cachedPoints, last.pointsDone);
  t.is(st.cached.length, last.chunksDone);
  t.true(st.cached.length >= 1);
  t.true(st.cachedPoints < total);
  const r = await runParallel(cache, task('busy'), { workers: 2, execChunkSize: 4 });
  t.is(r.diagnostics.cachedPoints, st.cachedPoints);
  t.is(r.diagnostics.executedPoints, total - st.cachedPoints);
});

test('an onProgress callback that throws fails the run (not swallowed), finished work stays stored', async (t) => {
  const axisValues = { a: range(4), b: range(4) };
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0 }, axisValues, chunkSpec: { a: 1 } });
  let thrown = false;
  let doneAtThrow = 0;
  const err = await t.throwsAsync(
    runParallel(cache, task('obj'), {
      workers: 2,
      execChunkSize: 2,
      onProgress: (e) => {
        // Throws once only: a later event must not be what surfaces the error.
        if (!thrown && e.pointsDone >= 6) {
          thrown = true;
          doneAtThrow = e.pointsDone;
          throw new Error('progress sink broke');
        }
      },
    }),
  );
  t.regex(err!.message, /progress sink broke/);
  t.true(thrown);
  // Progress reports committed points: at least those are stored, and the rest runs next time.
  const before = cache.status().cachedPoints;
  t.true(before >= doneAtThrow, `cached ${before}, ${doneAtThrow} done at the error`);
  const r = await runParallel(cache, task('obj'), { workers: 2, execChunkSize: 2 });
  t.is(r.diagnostics.executedPoints, 16 - before);
  t.deepEqual(r.output, gridPoints(['a', 'b'], axisValues).map((p) => objRef(0, p)));
});

// ---------------------------------------------------------------------------
// mapFn executors
// ---------------------------------------------------------------------------

/** Points of a job's product block, as keys. */
function jobKeys(job: ExecJob): string[] {
  return gridPoints([...job.axisOrder], job.axes as Record<string, unknown[]> as never).map(keyOf);
}

async function mapFnCase(t: ExecutionContext, style: 'promises' | 'async-iterable', execChunkSize?: number): Promise<void> {
  const axisValues = { a: range(5), b: range(6) };
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0.5 }, axisValues, chunkSpec: { a: 2, b: 4 } });
  // Pre-run a subset that cuts across memo chunks.
  const pre = await run(cache.select({ values: { a: [1, 2], b: [0, 1, 2, 5] } }), obj);
  t.is(pre.diagnostics.executedPoints, 8);
  const cachedKeys = storedKeys(cache);
  t.is(cachedKeys.size, 8);
  const allKeys = gridPoints(['a', 'b'], axisValues).map(keyOf);
  const missingKeys = allKeys.filter((k) => !cachedKeys.has(k));

  const received: ExecJob[] = [];
  const results: Array<readonly unknown[] | TypedArray> = [];
  let calls = 0;
  const mapFn: MapFn = (fn, jobs) => {
    calls++;
    received.push(...jobs);
    const record = async (job: ExecJob) => {
      const out = await fn(job);
      results[job.jobIndex] = out;
      return out;
    };
    if (style === 'promises') return jobs.map(record);
    return (async function* () {
      for (const job of jobs) yield await record(job);
    })();
  };
  const r = await runParallel(cache, task('obj'), { mapFn, ...(execChunkSize ? { execChunkSize } : {}) });
  t.is(calls, 1);
  t.deepEqual(r.output, gridPoints(['a', 'b'], axisValues).map((p) => objRef(0.5, p)));
  t.is(r.diagnostics.executedPoints, missingKeys.length);
  t.is(r.diagnostics.cachedPoints, 8);
  t.is(r.diagnostics.execChunks, received.length);

  // The jobs cover exactly the missing points, once each, and no cached point.
  const seen = received.flatMap(jobKeys);
  t.is(seen.length, new Set(seen).size);
  t.deepEqual([...seen].sort(), [...missingKeys].sort());
  for (const k of seen) t.false(cachedKeys.has(k));
  received.forEach((job, i) => {
    t.is(job.jobIndex, i);
    if (execChunkSize) t.true(job.count <= execChunkSize);
  });

  // Jobs are plain data: a structured clone computes the same outputs by itself.
  for (const job of received) {
    const copy = structuredClone(job);
    t.deepEqual(copy, job);
    t.deepEqual(await executeJob(copy), results[job.jobIndex]);
  }

  // Nothing missing: mapFn is not called.
  const again = await runParallel(cache, task('obj'), { mapFn });
  t.is(calls, 1);
  t.is(again.diagnostics.executedPoints, 0);
  t.deepEqual(again.output, r.output);
}

test('mapFn returning an array of promises gets exactly the missing points (one job per memo chunk)', async (t) => {
  await mapFnCase(t, 'promises');
});

test('mapFn returning an async iterable, with execChunkSize', async (t) => {
  await mapFnCase(t, 'async-iterable', 5);
});

test('mapFn with typed outputs', async (t) => {
  const axisValues = { a: range(4), b: range(3) };
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 1 }, axisValues, chunkSpec: { a: 3 } });
  const mapFn: MapFn = async (fn, jobs) => Promise.all(jobs.map((j) => fn(structuredClone(j))));
  const r = await runParallel(cache, task('typed'), { mapFn, execChunkSize: 5 });
  t.true(r.output instanceof Float64Array);
  t.deepEqual(Array.from(r.output as Float64Array), gridPoints(['a', 'b'], axisValues).map((p) => typedRef({ k: 1 }, p)));
  t.deepEqual(await readBack(t, cache), r.output);
});

// ---------------------------------------------------------------------------
// items
// ---------------------------------------------------------------------------

test('items: mapping and positional items return outputs in item order', async (t) => {
  const axisValues = { a: range(4), b: range(4, (i) => i * 10) };
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0 }, axisValues, chunkSpec: { a: 2, b: 2 } });
  const items = [{ a: 3, b: 10 }, { b: 0, a: 0 }, { a: 1, b: 30 }, { a: 3, b: 0 }];
  const r = await runParallel(cache, task('obj'), { workers: 2, execChunkSize: 2, items });
  t.deepEqual(r.output, items.map((p) => objRef(0, p)));
  t.is(r.diagnostics.executedPoints, 4);
  t.is(cache.status().cachedPoints, 4);
  // Positional items (axis order a, b), some cached, some new.
  const pos: Array<[number, number]> = [[2, 20], [3, 10], [0, 30], [0, 0]];
  const r2 = await runParallel(cache, task('obj'), { workers: 2, execChunkSize: 2, items: pos });
  t.deepEqual(r2.output, pos.map(([a, b]) => objRef(0, { a, b })));
  t.is(r2.diagnostics.cachedPoints, 2);
  t.is(r2.diagnostics.executedPoints, 2);
  t.is(cache.status().cachedPoints, 6);
});

test('items: scalar items on a single-axis cache, unknown values, extendCache', async (t) => {
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 7 }, axisValues: { x: [1, 2, 3, 4, 5] }, chunkSpec: { x: 2 } });
  const r = await runParallel(cache, task('scaled'), { workers: 2, execChunkSize: 2, items: [5, 1, 3] });
  t.deepEqual(r.output, [57, 17, 37]);
  t.is(r.diagnostics.executedPoints, 3);

  const err = await t.throwsAsync(runParallel(cache, task('scaled'), { workers: 2, items: [2, 9] }));
  t.is((err as ChunkMemoError).code, 'ERR_SELECTION');
  t.regex(err!.message, /9/);
  t.is(cache.status().cachedPoints, 3);

  const ext = await runParallel(cache, task('scaled'), { workers: 2, execChunkSize: 2, items: [9, 3, 8, 1], extendCache: true });
  t.deepEqual(ext.output, [97, 37, 87, 17]);
  t.is(ext.diagnostics.executedPoints, 2);
  t.is(ext.diagnostics.cachedPoints, 2);
  t.deepEqual(ext.cache.axisValues.x, [1, 2, 3, 4, 5, 9, 8]);
  t.is(ext.cache.id, cache.id);
  // The whole extended cache: only the points never computed run.
  const whole = await run(ext.cache, scaled);
  t.is(whole.diagnostics.executedPoints, 2);
  t.deepEqual(whole.output, [17, 27, 37, 47, 57, 97, 87]);
});

test('items: a repeated item is computed once', async (t) => {
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0 }, axisValues: { x: [1, 2, 3, 4] } });
  const r = await runParallel(cache, task('scaled'), { workers: 1, items: [3, 1, 3, 3] });
  t.deepEqual(r.output, [30, 10, 30, 30]);
  t.is(r.diagnostics.executedPoints, 2);
  const back = await run(cache.select({ values: { x: [1, 3] } }), noExec);
  t.deepEqual(back.output, [10, 30]);
});

// ---------------------------------------------------------------------------
// gpu.js kernel
// ---------------------------------------------------------------------------

interface KernelThis {
  thread: { x: number };
  constants: Record<string, number>;
}

test('gpuKernel through runParallel matches a pointwise reference (float32) and reads back identically', async (t) => {
  const kernel = gpuKernel(function (this: KernelThis, a: Float32Array, b: Float32Array) {
    const i = this.thread.x;
    return a[i]! * this.constants.k! + b[i]!;
  });
  const axisValues = { a: range(9, (i) => i * 0.37 - 1), b: [0.5, 1.25, -2, 3.75] };
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 1.5 }, axisValues, chunkSpec: { a: 4 } });
  const r = await runParallel(cache, kernel, { execChunkSize: 7 });
  t.true(r.output instanceof Float32Array);
  t.is(r.diagnostics.executedPoints, 36);
  const ref = await run(twin(cache), pointwise((p, pt) => (pt.a as number) * (p.k as number) + (pt.b as number)));
  const out = r.output as Float32Array;
  const expected = ref.output as number[];
  t.is(out.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    t.true(Math.abs(out[i]! - e) <= 1e-4 * Math.max(1, Math.abs(e)), `point ${i}: ${out[i]} vs ${e}`);
  }
  const again = await runParallel(cache, kernel, { execChunkSize: 7 });
  t.is(again.diagnostics.executedPoints, 0);
  t.deepEqual(again.output, out);
  const back = await readBack(t, cache);
  t.true(back instanceof Float32Array);
  t.deepEqual(back, out);
});

test('several devices pull exec chunks of one gpu kernel from one queue', async (t) => {
  const kernel = gpuKernel(function (this: KernelThis, a: Float32Array, b: Float32Array) {
    const i = this.thread.x;
    return a[i]! * this.constants.k! - b[i]!;
  });
  const axisValues = { a: range(12, (i) => i * 0.5), b: [1, 2, 3, 4, 5] };
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 2 }, axisValues, chunkSpec: { a: 5 } });
  // Three devices: gpu.js CPU mode and WebAssembly mode on the calling
  // thread, and CPU mode on a dedicated worker thread. 60 points in exec
  // chunks of 4: 15 jobs, so each device takes at least one.
  const r = await runParallel(cache, kernel, {
    execChunkSize: 4,
    devices: [{ mode: 'cpu', label: 'cpu here' }, { mode: 'webasm' }, { mode: 'cpu', threads: 1 }],
  });
  t.deepEqual(r.executors.map((e) => e.label), ['cpu here', 'webasm', 'cpu x1 threads']);
  t.true(r.executors.every((e) => e.execChunks >= 1), JSON.stringify(r.executors));
  t.is(r.executors.reduce((n, e) => n + e.execChunks, 0), r.diagnostics.execChunks);
  t.is(r.executors.reduce((n, e) => n + e.points, 0), 60);
  const out = r.output as Float32Array;
  const want = gridPoints(['a', 'b'], axisValues).map((p) => (p.a as number) * 2 - (p.b as number));
  for (let i = 0; i < want.length; i++) t.true(Math.abs(out[i]! - want[i]!) <= 1e-4 * Math.max(1, Math.abs(want[i]!)));
  t.is((await runParallel(cache, kernel, { devices: [{ mode: 'cpu' }] })).diagnostics.executedPoints, 0);
});

test('devices are checked: gpu kernels only, known modes', async (t) => {
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 2 }, axisValues: { a: [1, 2] } });
  const kernel = gpuKernel(function (this: KernelThis, a: Float32Array) {
    return a[this.thread.x]!;
  });
  await t.throwsAsync(runParallel(cache, task('obj'), { devices: [{}] }), { code: 'ERR_INVALID_OPTION', message: /devices is for gpuKernel/ });
  await t.throwsAsync(runParallel(cache, kernel, { devices: [{ mode: 'quantum' as never }] }), { code: 'ERR_INVALID_OPTION', message: /devices\[0\]\.mode/ });
  await t.throwsAsync(runParallel(cache, kernel, { devices: [] }), { code: 'ERR_INVALID_OPTION' });
});

// ---------------------------------------------------------------------------
// progress
// ---------------------------------------------------------------------------

test('onProgress: pointsDone increases monotonically to pointsTotal, rate >= 0', async (t) => {
  const axisValues = { a: range(5), b: range(5) };
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0 }, axisValues, chunkSpec: { a: 2 } });
  // Some points cached first: pointsTotal counts only what runs.
  await run(cache.select({ values: { a: [0] } }), obj);
  const events: ProgressEvent[] = [];
  const r = await runParallel(cache, task('obj'), { workers: 2, execChunkSize: 3, onProgress: (e) => events.push(e) });
  t.is(r.diagnostics.executedPoints, 20);
  t.true(events.length >= 1);
  let prev = 0;
  for (const e of events) {
    t.is(e.pointsTotal, 20);
    t.true(e.pointsDone >= prev);
    t.true(e.pointsDone <= e.pointsTotal);
    t.true(e.rate >= 0 && Number.isFinite(e.rate));
    t.true(e.chunksDone <= e.chunksTotal);
    prev = e.pointsDone;
  }
  const last = events.at(-1)!;
  t.is(last.pointsDone, 20);
  t.is(last.chunksDone, last.chunksTotal);
  t.is(last.etaMs, 0);
});

test('the worker-pool libraries load only when a run uses workers: importing chunk-memo for serial runs does not pay for them', (t) => {
  const loaded = (mode: string): string[] => {
    const r = spawnSync(process.execPath, ['--import=tsx', path.join(path.dirname(new URL(import.meta.url).pathname), 'fixtures', 'pool-libraries.ts'), mode], { encoding: 'utf8', timeout: 60_000 });
    t.is(r.status, 0, r.stderr);
    t.regex(r.stdout, /ok/);
    return [...new Set([...r.stderr.matchAll(/LOADED .*node_modules\/(piscina|tinypool)\//g)].map((m) => m[1]!))];
  };
  t.deepEqual(loaded('serial'), []);
  t.deepEqual(loaded('threads'), ['piscina']);
  t.deepEqual(loaded('processes'), ['tinypool']);
});
