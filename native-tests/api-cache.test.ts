/**
 * Behaviours of the Python chunk-memo test suite, against real LMDB roots in
 * fresh temp directories.
 */
import test from 'ava';
import {
  AmbiguousCacheError,
  ChunkCache,
  ChunkMemoError,
  ExclusiveCacheError,
  ExecError,
  SelectionError,
  autoLoad,
  iterate,
  memoize,
  pointwise,
  run,
  runStreaming,
  type ChunkFn,
  type Params,
  type Value,
} from '../ts/index.js';
import { freshRoot, type Point, gridPoints, keyOf } from './helpers/grid.js';
import { overlapWarningsDuring } from './helpers/warnings.js';

// Functions written in this file are rewritten by tsx, so formatting-sensitive
// code is built from exact source text with an indirect eval.
const globalEval = eval;
const fromSource = (src: string): ((...a: never[]) => unknown) => globalEval(`(${src}\n)`) as (...a: never[]) => unknown;


/** A counting pointwise function: records every executed point. */
function counting(f: (params: Params, pt: Point) => unknown = (params, pt) => ({ params, pt })) {
  const seen: string[] = [];
  const params: Params[] = [];
  let calls = 0;
  const pointFn = (p: Params, pt: Point): unknown => {
    seen.push(keyOf(pt));
    params.push(p);
    return f(p, pt);
  };
  const inner = pointwise(pointFn);
  const fn: ChunkFn = (p, axes, ctx) => {
    calls++;
    return inner(p, axes, ctx);
  };
  return {
    fn,
    seen,
    params,
    get calls() {
      return calls;
    },
    get count() {
      return seen.length;
    },
    reset() {
      seen.length = 0;
      params.length = 0;
      calls = 0;
    },
  };
}

const prod = (pt: Point): unknown => Number(pt.x) * 100 + Number(pt.y ?? 0);

// ---------------------------------------------------------------- reuse

test('cache reuse: a second run executes nothing', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, params: { k: 1 }, axisValues: { x: [1, 2, 3, 4, 5], y: ['a', 'b', 'c'] }, chunkSpec: { x: 2, y: 2 } });
  const c = counting((_p, pt) => `${pt.x}${pt.y}`);
  const r1 = await run(cache, c.fn);
  t.is(c.count, 15);
  t.is(r1.diagnostics.executedPoints, 15);
  t.is(r1.diagnostics.cachedPoints, 0);
  t.deepEqual(r1.output, gridPoints(['x', 'y'], cache.axisValues).map((p) => `${p.x}${p.y}`));
  c.reset();
  const r2 = await run(cache, c.fn);
  t.is(c.count, 0);
  t.is(r2.diagnostics.executedPoints, 0);
  t.is(r2.diagnostics.cachedPoints, 15);
  t.is(r2.diagnostics.cachedChunks, r2.diagnostics.totalChunks);
  t.deepEqual(r2.output, r1.output);
  // A fresh handle on the same root sees the same store.
  const again = ChunkCache.open({ root, params: { k: 1 }, axisValues: { x: [1, 2, 3, 4, 5], y: ['a', 'b', 'c'] } });
  t.is(again.id, cache.id);
  const r3 = await run(again, c.fn);
  t.is(c.count, 0);
  t.deepEqual(r3.output, r1.output);
});

test('param change invalidates: new id, everything executed', async (t) => {
  const root = freshRoot();
  const a = ChunkCache.open({ root, params: { k: 1 }, axisValues: { x: [1, 2, 3] } });
  const b = ChunkCache.open({ root, params: { k: 2 }, axisValues: { x: [1, 2, 3] } });
  t.not(a.id, b.id);
  const c = counting((p, pt) => Number(p.k) * Number(pt.x));
  t.deepEqual((await run(a, c.fn)).output, [1, 2, 3]);
  c.reset();
  const rb = await run(b, c.fn);
  t.is(c.count, 3);
  t.deepEqual(rb.output, [2, 4, 6]);
  // withParams gives the same grid under the other params.
  const w = a.withParams({ k: 2 });
  t.is(w.id, b.id);
  c.reset();
  await run(w, c.fn);
  t.is(c.count, 0);
});

test('grid chunk counts', (t) => {
  const root = freshRoot();
  const axisValues = { x: [1, 2, 3, 4, 5, 6, 7], y: [1, 2, 3, 4] };
  const cases: Array<[Record<string, number> | undefined, number]> = [
    [undefined, 1],
    [{ x: 1 }, 7],
    [{ x: 2 }, 4],
    [{ x: 3 }, 3],
    [{ x: 7 }, 1],
    [{ x: 100 }, 1],
    [{ x: 2, y: 2 }, 8],
    [{ x: 3, y: 3 }, 6],
    [{ x: 1, y: 1 }, 28],
  ];
  for (const [chunkSpec, n] of cases) {
    const cache = ChunkCache.open({ root, axisValues, ...(chunkSpec ? { chunkSpec } : {}) });
    const s = cache.status();
    t.is(s.totalChunks, n, JSON.stringify(chunkSpec));
    t.is(s.totalPoints, 28);
    t.is(s.missing.length, n);
  }
  // short last bin
  const c3 = ChunkCache.open({ root, axisValues, chunkSpec: { x: 3 } });
  const pts = c3.status().missing.map((m) => m.points);
  t.deepEqual(pts, [12, 12, 4]);
  t.deepEqual(c3.status().missing[2]!.axisValues.x, [7]);
  // chunkSpec given as { size }
  t.is(ChunkCache.open({ root, axisValues, chunkSpec: { x: { size: 2 } } }).status().totalChunks, 4);
  // singleton
  const single = ChunkCache.open({ root, params: { s: 1 }, axisValues: {} });
  const ss = single.status();
  t.is(ss.totalChunks, 1);
  t.is(ss.totalPoints, 1);
});

test('singleton cache runs one point once', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, params: { s: 'only' }, axisValues: {} });
  const c = counting((p) => `v:${p.s}`);
  t.deepEqual((await run(cache, c.fn)).output, ['v:only']);
  t.deepEqual((await run(cache, c.fn)).output, ['v:only']);
  t.is(c.count, 1);
  t.is(cache.status().cachedPoints, 1);
});

// ---------------------------------------------------------------- extension

test('incremental extension via extendAxisValues executes only new points', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2, 3, 4], y: [10, 20] }, chunkSpec: { x: 3 } });
  const c = counting((_p, pt) => prod(pt));
  await run(cache, c.fn);
  t.is(c.count, 8);
  c.reset();
  const ext = cache.extendAxisValues({ x: [5, 6], y: [30] });
  t.is(ext.id, cache.id);
  t.deepEqual(ext.axisValues, { x: [1, 2, 3, 4, 5, 6], y: [10, 20, 30] });
  const r = await run(ext, c.fn);
  t.is(c.count, 18 - 8);
  t.is(r.diagnostics.executedPoints, 10);
  t.is(r.diagnostics.cachedPoints, 8);
  t.deepEqual(r.output, gridPoints(['x', 'y'], ext.axisValues).map(prod));
  const expectedNew = gridPoints(['x', 'y'], ext.axisValues).filter((p) => Number(p.x) > 4 || p.y === 30).map(keyOf);
  t.deepEqual([...c.seen].sort(), [...expectedNew].sort());
});

test('incremental extension by opening with a longer axis list', async (t) => {
  const root = freshRoot();
  const c = counting((_p, pt) => prod(pt));
  const small = ChunkCache.open({ root, params: { m: 'a' }, axisValues: { x: [1, 2, 3], y: [1, 2] }, chunkSpec: { x: 2 } });
  await run(small, c.fn);
  t.is(c.count, 6);
  c.reset();
  const big = ChunkCache.open({ root, params: { m: 'a' }, axisValues: { x: [1, 2, 3, 4, 5], y: [1, 2] }, chunkSpec: { x: 2 } });
  t.is(big.id, small.id);
  const r = await run(big, c.fn);
  t.is(c.count, 4);
  t.deepEqual([...c.seen].sort(), gridPoints(['x', 'y'], { x: [4, 5], y: [1, 2] }).map(keyOf).sort());
  t.deepEqual(r.output, gridPoints(['x', 'y'], big.axisValues).map(prod));
  // The stored metadata is the union.
  const info = ChunkCache.discover(root).find((i) => i.id === big.id)!;
  t.deepEqual(info.axisValues.x, [1, 2, 3, 4, 5]);
});

// ---------------------------------------------------------------- subsets

test('subsets by values and by indices, then a full run executes only the rest', async (t) => {
  const root = freshRoot();
  const axisValues = { x: [0, 1, 2, 3, 4, 5, 6, 7], y: ['a', 'b', 'c'] };
  const cache = ChunkCache.open({ root, axisValues, chunkSpec: { x: 3, y: 2 } });
  const f = (pt: Point): string => `${pt.x}${pt.y}`;
  const c = counting((_p, pt) => f(pt));
  const expect = (x: number[], y: string[]): string[] => gridPoints(['x', 'y'], { x, y }).map(f);

  // values, given out of order: results in grid order
  const v = cache.select({ values: { x: [5, 1], y: 'b' } });
  t.deepEqual(v.axisValues, { x: [1, 5], y: ['b'] });
  t.deepEqual((await run(v, c.fn)).output, expect([1, 5], ['b']));
  // int index
  t.deepEqual((await run(cache.select({ indices: { x: 2 } }), c.fn)).output, expect([2], ['a', 'b', 'c']));
  // list of indices, with a negative one
  t.deepEqual((await run(cache.select({ indices: { x: [0, -1], y: [-3] } }), c.fn)).output, expect([0, 7], ['a']));
  // slice
  t.deepEqual((await run(cache.select({ indices: { x: { start: 1, stop: 7, step: 2 } } }), c.fn)).output, expect([1, 3, 5], ['a', 'b', 'c']));
  // negative slice bounds
  t.deepEqual((await run(cache.select({ indices: { x: { start: -2 } } }), c.fn)).output, expect([6, 7], ['a', 'b', 'c']));
  // selection of a selection is relative to the view
  const sub = cache.select({ indices: { x: { start: 2, stop: 6 } } }).select({ indices: { x: [0, -1] } });
  t.deepEqual(sub.axisValues.x, [2, 5]);
  t.deepEqual((await run(sub, c.fn)).output, expect([2, 5], ['a', 'b', 'c']));

  // no point was computed twice
  t.is(new Set(c.seen).size, c.seen.length);
  const done = new Set(c.seen);
  t.is(cache.status().cachedPoints, done.size);

  // out of range / unknown value / unknown axis
  for (const bad of [
    () => cache.select({ indices: { x: 8 } }),
    () => cache.select({ indices: { x: [-9] } }),
    () => cache.select({ values: { x: 99 } }),
    () => cache.select({ values: { z: 1 } }),
    () => cache.select({ indices: { x: { start: 5, stop: 2 } } }),
  ]) {
    const e = t.throws(bad, { instanceOf: SelectionError });
    t.is(e?.code, 'ERR_SELECTION');
  }

  c.reset();
  const full = await run(cache, c.fn);
  t.deepEqual(full.output, expect(axisValues.x, axisValues.y));
  t.is(c.count, 24 - done.size);
  t.false(c.seen.some((k) => done.has(k)));
  t.is(full.diagnostics.executedPoints, 24 - done.size);
});

// ---------------------------------------------------------------- streaming and iterate

test('runStreaming then run uses the cache; memory is bounded by a chunk', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: Array.from({ length: 20 }, (_, i) => i), y: [1, 2, 3] }, chunkSpec: { x: 6, y: 2 } });
  const c = counting((_p, pt) => prod(pt));
  const d = await runStreaming(cache, c.fn);
  t.is(d.executedPoints, 60);
  t.is(d.totalChunks, 8);
  const largest = Math.max(...cache.status().cached.map((ch) => ch.points));
  t.is(largest, 12);
  t.true(d.maxBufferedPoints <= largest);
  t.true(d.maxBufferedPoints > 0);
  c.reset();
  const r = await run(cache, c.fn);
  t.is(c.count, 0);
  t.deepEqual(r.output, gridPoints(['x', 'y'], cache.axisValues).map(prod));
  const d2 = await runStreaming(cache, c.fn);
  t.is(d2.cachedPoints, 60);
  t.true(d2.maxBufferedPoints <= largest);
});

test('iterate yields chunks in order; breaking early keeps produced chunks', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2, 3, 4, 5, 6, 7], y: [1, 2] }, chunkSpec: { x: 2 } });
  const c = counting((_p, pt) => prod(pt));
  const seenIdx: number[] = [];
  for await (const r of iterate(cache, c.fn)) {
    seenIdx.push(r.index);
    t.deepEqual(r.output, gridPoints(['x', 'y'], r.axisValues).map(prod));
    if (r.index === 1) break;
  }
  t.deepEqual(seenIdx, [0, 1]);
  t.is(c.count, 8);
  const s = cache.status();
  t.is(s.cached.length, 2);
  t.deepEqual(s.cached.map((ch) => ch.index), [0, 1]);
  t.is(s.cachedPoints, 8);
  c.reset();
  const all: number[] = [];
  const xs: Value[] = [];
  for await (const r of iterate(cache, c.fn)) {
    all.push(r.index);
    xs.push(...r.axisValues.x!);
    t.is(r.cachedPoints + r.executedPoints, r.output.length);
  }
  t.deepEqual(all, [0, 1, 2, 3]);
  t.deepEqual(xs, [1, 2, 3, 4, 5, 6, 7]);
  t.is(c.count, 14 - 8);
});

// ---------------------------------------------------------------- memoize

test('memoize: extras are params (distinct ids), axis keys select, status', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2, 3, 4] }, chunkSpec: { x: 2 } });
  const c = counting((p, pt) => Number(pt.x) * Number(p.scale));
  const f = memoize(cache, c.fn);
  const r1 = await f({ x: [1, 3], scale: 10 });
  t.deepEqual(r1.output, [10, 30]);
  t.is(c.count, 2);
  t.true(c.params.every((p) => p.scale === 10));
  t.is(f.status({ scale: 10 }).cachedPoints, 2);
  t.is(f.status({ scale: 10, x: 1 }).cachedPoints, 1);
  t.is(f.status({ scale: 20 }).cachedPoints, 0);
  c.reset();
  const r2 = await f({ scale: 20 });
  t.deepEqual(r2.output, [20, 40, 60, 80]);
  t.is(c.count, 4);
  t.true(c.params.every((p) => p.scale === 20));
  c.reset();
  const r3 = await f({ scale: 10 });
  t.deepEqual(r3.output, [10, 20, 30, 40]);
  t.is(c.count, 2);
  c.reset();
  t.deepEqual((await f({ scale: 10, indices: { x: -1 } })).output, [40]);
  t.is(c.count, 0);
  // one cache per extra value, each with its extra in params
  const ids = ChunkCache.discover(root).filter((i) => 'scale' in i.params);
  t.is(ids.length, 2);
  t.not(ids[0]!.id, ids[1]!.id);
  t.deepEqual(ids.map((i) => i.params.scale).sort(), [10, 20]);
  // the memoized cache is bound to the function's code
  t.not(f.cache.id, cache.id);
  t.deepEqual(f.cache.axisValues, cache.axisValues);
});

test('memoize with extras keeps the code identity: a changed function does not reuse outputs', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2] } });
  const f1 = fromSource('function (p, axes) { return axes.x.map((v) => v * p.scale) }') as unknown as ChunkFn;
  const f2 = fromSource('function (p, axes) { return axes.x.map((v) => v + p.scale) }') as unknown as ChunkFn;
  const m1 = memoize(cache, f1);
  const m2 = memoize(cache, f2);
  t.not(m1.cache.id, m2.cache.id);
  t.deepEqual((await m1({ scale: 3 })).output, [3, 6]);
  const r = await m2({ scale: 3 });
  t.is(r.diagnostics.executedPoints, 2);
  t.deepEqual(r.output, [4, 5]);
  t.deepEqual((await m1({ scale: 3 })).output, [3, 6]);
});

// ---------------------------------------------------------------- failures

test('interrupted run: ExecError with cause; re-run executes only the rest', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] }, chunkSpec: { x: 2 } });
  const executed: number[] = [];
  let calls = 0;
  const boom = new Error('boom');
  const fn: ChunkFn = (_p, axes) => {
    calls++;
    if (calls === 4) throw boom;
    executed.push(...(axes.x as number[]));
    return axes.x!.map((v) => Number(v) ** 2);
  };
  const e = await t.throwsAsync(run(cache, fn), { instanceOf: ExecError });
  t.is(e?.code, 'ERR_EXEC_FAILED');
  t.is(e?.cause, boom);
  t.regex(e!.message, /chunk 3/);
  t.deepEqual(executed, [1, 2, 3, 4, 5, 6]);
  t.is(cache.status().cachedPoints, 6);
  const r = await run(cache, fn);
  t.deepEqual(executed, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  t.is(r.diagnostics.executedPoints, 4);
  t.deepEqual(r.output, [1, 4, 9, 16, 25, 36, 49, 64, 81, 100]);
});

test('AbortSignal stops the run and keeps finished chunks', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2, 3, 4, 5, 6], y: [0, 1] }, chunkSpec: { x: 1 } });
  const ac = new AbortController();
  const c = counting((_p, pt) => prod(pt));
  const fn: ChunkFn = (p, axes, ctx) => {
    const r = c.fn(p, axes, ctx);
    if (c.calls === 2) ac.abort();
    return r;
  };
  const e = await t.throwsAsync(run(cache, fn, { signal: ac.signal }));
  t.true(e instanceof ChunkMemoError);
  t.is((e as ChunkMemoError).code, 'ERR_ABORTED');
  t.is(c.count, 4);
  t.is(cache.status().cachedPoints, 4);
  const first = new Set(c.seen);
  c.reset();
  const r = await run(cache, fn);
  t.is(c.count, 8);
  t.false(c.seen.some((k) => first.has(k)));
  t.deepEqual(r.output, gridPoints(['x', 'y'], cache.axisValues).map(prod));
  // an already aborted signal executes nothing
  const ac2 = new AbortController();
  ac2.abort();
  const other = ChunkCache.open({ root, params: { o: 1 }, axisValues: { x: [1] } });
  const e2 = await t.throwsAsync(run(other, fn, { signal: ac2.signal }));
  t.is((e2 as ChunkMemoError).code, 'ERR_ABORTED');
});

test('exec function returning the wrong count is an ExecOutputError', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2, 3] } });
  const e = await t.throwsAsync(run(cache, (_p, axes) => axes.x!.slice(1)));
  t.is((e as ChunkMemoError).code, 'ERR_EXEC_OUTPUT');
  t.is((e as Error).name, 'ExecOutputError');
  t.regex((e as Error).message, /chunk 0/);
  t.is(cache.status().cachedPoints, 0);
  const e2 = await t.throwsAsync(run(cache, () => 42 as unknown as number[]));
  t.is((e2 as ChunkMemoError).code, 'ERR_EXEC_OUTPUT');
});

// ---------------------------------------------------------------- exclusive / overlap

test('exclusive: duplicate, covered and covering caches are refused; reopening is allowed', (t) => {
  const root = freshRoot();
  const base = ChunkCache.open({ root, params: { a: 1 }, axisValues: { x: [1, 2, 3] }, exclusive: true });
  // reopening the same id
  t.is(ChunkCache.open({ root, params: { a: 1 }, axisValues: { x: [1, 2, 3] }, exclusive: true }).id, base.id);
  t.is(ChunkCache.open({ root, params: { a: 1 }, axisValues: { x: [1, 2, 3, 4] }, exclusive: true }).id, base.id);
  // duplicate (same points, other code label)
  const dup = t.throws(() => ChunkCache.open({ root, params: { a: 1 }, axisValues: { x: [1, 2, 3, 4] }, code: 'other', exclusive: true }), {
    instanceOf: ExclusiveCacheError,
  });
  t.is(dup?.code, 'ERR_EXCLUSIVE');
  t.true(dup!.message.includes(base.id));
  // covered by: existing {a:1} x {1..4} covers a cache with a as an axis [1] and x [2,3]
  const cov = t.throws(() => ChunkCache.open({ root, axisValues: { a: [1], x: [2, 3] }, exclusive: true }), { instanceOf: ExclusiveCacheError });
  t.regex(cov!.message, /covered by/);
  // covering: a as an axis [1, 2] and x [1..5]
  const covering = t.throws(() => ChunkCache.open({ root, axisValues: { a: [1, 2], x: [1, 2, 3, 4, 5] }, exclusive: true }), {
    instanceOf: ExclusiveCacheError,
  });
  t.regex(covering!.message, /cover existing/);
  t.is(covering?.code, 'ERR_EXCLUSIVE');
  // disjoint and non-exclusive are fine
  t.notThrows(() => ChunkCache.open({ root, params: { a: 2 }, axisValues: { x: [1, 2, 3] }, exclusive: true }));
  t.notThrows(() => ChunkCache.open({ root, axisValues: { a: [1], x: [2, 3] } }));
  // nothing was created by the refused opens
  t.is(ChunkCache.discover(root).length, 3);
});

test('warnOnOverlap emits a CHUNK_MEMO_OVERLAP process warning', async (t) => {
  const root = freshRoot();
  const first = ChunkCache.open({ root, params: { a: 1 }, axisValues: { x: [1, 2, 3] } });
  let second!: ChunkCache;
  const got = await overlapWarningsDuring(() => {
    second = ChunkCache.open({ root, params: { a: 1 }, axisValues: { x: [3, 4] }, code: 'v2', warnOnOverlap: true });
  });
  t.is(got.length, 1);
  t.true(got[0]!.message.includes(first.id));
  t.true(got[0]!.message.includes(second.id));
});

// ---------------------------------------------------------------- autoLoad and discovery

test('autoLoad exact returns a view and executes nothing when cached', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, params: { m: 1 }, axisValues: { x: [1, 2, 3, 4], y: [5, 6] }, chunkSpec: { x: 2 } });
  const c = counting((_p, pt) => prod(pt));
  await run(cache, c.fn);
  c.reset();
  const v = autoLoad({ root, params: { m: 1 }, axisValues: { x: [2, 3], y: [5, 6] } });
  t.is(v.id, cache.id);
  const r = await run(v, c.fn);
  t.is(c.count, 0);
  t.deepEqual(r.output, gridPoints(['x', 'y'], { x: [2, 3], y: [5, 6] }).map(prod));
  const same = ChunkCache.autoLoad({ root, params: { m: 1 }, axisValues: { x: [1, 2, 3, 4], y: [5, 6] } });
  t.is(same.id, cache.id);
  t.deepEqual((await run(same, c.fn)).output, (await run(cache, c.fn)).output);
  t.is(c.count, 0);
});

test('autoLoad ambiguous: two caches with the same params', (t) => {
  const root = freshRoot();
  ChunkCache.open({ root, params: { m: 1 }, axisValues: { x: [1, 2] }, cacheVersion: 'v1' });
  ChunkCache.open({ root, params: { m: 1 }, axisValues: { x: [1, 2] }, cacheVersion: 'v2' });
  const e = t.throws(() => autoLoad({ root, params: { m: 1 }, axisValues: { x: [1] } }), { instanceOf: AmbiguousCacheError });
  t.is(e?.code, 'ERR_AMBIGUOUS_CACHE');
  t.throws(() => autoLoad({ root, params: { m: 1 } }), { instanceOf: AmbiguousCacheError });
  // naming the version disambiguates
  t.notThrows(() => autoLoad({ root, params: { m: 1 }, axisValues: { x: [1] }, cacheVersion: 'v2' }));
});

test('autoLoad superset: an axis serves a requested param as a pinned view', async (t) => {
  const root = freshRoot();
  const big = ChunkCache.open({ root, params: { a: 1 }, axisValues: { b: [1, 2, 3], x: [10, 20, 30] }, chunkSpec: { b: 1, x: 2 } });
  const c = counting((p, pt) => Number(p.a ?? 0) * 1000 + Number(p.b ?? pt.b) * 100 + Number(pt.x));
  const v = autoLoad({ root, params: { a: 1, b: 2 }, axisValues: { x: [10, 20, 30] }, allowSuperset: true });
  t.is(v.id, big.id);
  t.deepEqual(v.params, { a: 1, b: 2 });
  t.deepEqual(v.axisOrder, ['x']);
  const r1 = await run(v, c.fn);
  t.is(c.count, 3);
  t.true(c.params.every((p) => p.b === 2 && p.a === 1));
  t.true(c.seen.every((k) => !k.includes('"b"')));
  t.deepEqual(r1.output, [1210, 1220, 1230]);
  c.reset();
  const full = await run(big, c.fn);
  t.is(c.count, 6);
  t.deepEqual(full.output, gridPoints(['b', 'x'], big.axisValues).map((pt) => 1000 + Number(pt.b) * 100 + Number(pt.x)));
  c.reset();
  const again = autoLoad({ root, params: { a: 1, b: 3 }, axisValues: { x: [20] }, allowSuperset: true });
  const r2 = await run(again, c.fn);
  t.is(c.count, 0);
  t.deepEqual(r2.output, [1320]);
  // without allowSuperset it is a new cache
  const fresh = autoLoad({ root, params: { a: 1, b: 3 }, axisValues: { x: [20] } });
  t.not(fresh.id, big.id);
});

test('autoLoad creates new caches, including singletons', async (t) => {
  const root = freshRoot();
  const c = counting((p) => p.k);
  const n = autoLoad({ root, params: { k: 'new' }, axisValues: { x: [1, 2] } });
  t.is(ChunkCache.discover(root).length, 1);
  t.deepEqual(n.axisValues, { x: [1, 2] });
  const s = autoLoad({ root, params: { k: 'single' } });
  t.deepEqual(s.axisOrder, []);
  t.deepEqual((await run(s, c.fn)).output, ['single']);
  t.is(c.count, 1);
  const s2 = autoLoad({ root, params: { k: 'single' } });
  t.is(s2.id, s.id);
  t.deepEqual((await run(s2, c.fn)).output, ['single']);
  t.is(c.count, 1);
  t.is(ChunkCache.discover(root).length, 2);
});

test('discover, findCompatible, findOverlapping and load', async (t) => {
  const root = freshRoot();
  const a = ChunkCache.open({ root, params: { m: 'a' }, axisValues: { x: [1, 2, 3], y: [1, 2] }, chunkSpec: { x: 2 } });
  const b = ChunkCache.open({ root, params: { m: 'b' }, axisValues: { x: [3, 4] } });
  const c = counting((_p, pt) => prod(pt));
  await run(a, c.fn);
  const infos = ChunkCache.discover(root);
  t.is(infos.length, 2);
  const ia = infos.find((i) => i.id === a.id)!;
  t.deepEqual(ia.params, { m: 'a' });
  t.deepEqual(ia.axisValues, { x: [1, 2, 3], y: [1, 2] });
  t.deepEqual(ia.axisOrder, ['x', 'y']);
  t.is(ia.cacheVersion, 'v1');
  t.is(ia.points, 6);
  t.is(ia.chunks, 2);
  t.true(ia.bytes > 0);
  t.true(ia.createdAt <= ia.updatedAt);
  t.is(infos.find((i) => i.id === b.id)!.points, 0);

  t.deepEqual(ChunkCache.findCompatible(root, { params: { m: 'a' } }).map((i) => i.id), [a.id]);
  t.deepEqual(ChunkCache.findCompatible(root, { params: { m: 'a' }, axisValues: { x: [2, 3], y: [1] } }).map((i) => i.id), [a.id]);
  t.deepEqual(ChunkCache.findCompatible(root, { params: { m: 'a' }, axisValues: { x: [4], y: [1] } }), []);
  t.deepEqual(ChunkCache.findCompatible(root, { params: { m: 'c' } }), []);

  const ov = ChunkCache.findOverlapping(root, { params: { m: 'a' }, axisValues: { x: [3, 9], y: [2] } });
  t.is(ov.length, 1);
  t.deepEqual(ov[0]!.overlap, { x: [3], y: [2] });
  t.deepEqual(ChunkCache.findOverlapping(root, { params: { m: 'a' }, axisValues: { x: [9], y: [2] } }), []);

  const loaded = ChunkCache.load(root, a.id);
  t.is(loaded.id, a.id);
  t.deepEqual(loaded.params, { m: 'a' });
  t.deepEqual(loaded.axisValues, a.axisValues);
  c.reset();
  const r = await run(loaded, c.fn);
  t.is(c.count, 0);
  t.deepEqual(r.output, gridPoints(['x', 'y'], a.axisValues).map(prod));
  const rechunked = ChunkCache.load(root, a.id, { chunkSpec: { x: 1 } });
  t.is((await run(rechunked, c.fn)).diagnostics.executedPoints, 0);
  t.is((t.throws(() => ChunkCache.load(root, 'f'.repeat(32))) as ChunkMemoError).code, 'ERR_CACHE_NOT_FOUND');
});

// ---------------------------------------------------------------- code identity

test('code identity: formatting keeps the id, logic and labels change it', async (t) => {
  const root = freshRoot();
  const axisValues = { x: [1, 2] };
  const open = (code: ((...a: never[]) => unknown) | string | undefined) =>
    ChunkCache.open({ root, axisValues, ...(code !== undefined ? { code } : {}) });
  const f1 = fromSource('function f(p, axes) { return axes.x.map((v) => v * 2); }');
  const f1b = fromSource(`function f(p,axes){
    // doubled
    return axes.x.map(v => v*2)
  }`);
  const f2 = fromSource('function f(p, axes) { return axes.x.map((v) => v * 3); }');
  const id1 = open(f1).id;
  t.is(open(f1b).id, id1);
  t.not(open(f2).id, id1);
  t.not(open(undefined).id, id1);
  const v1 = open('v1').id;
  const v2 = open('v2').id;
  t.not(v1, v2);
  t.not(v1, open(undefined).id);
  t.is(open('v2').id, v2);
  // outputs are shared between reformatted functions
  let n = 0;
  const fn: ChunkFn = (_p, axes) => {
    n++;
    return axes.x!.map((v) => Number(v) * 2);
  };
  await run(open(f1), fn);
  await run(open(f1b), fn);
  t.is(n, 1);
});

// ---------------------------------------------------------------- validation

test('validation: duplicate axis values', (t) => {
  const root = freshRoot();
  const e = t.throws(() => ChunkCache.open({ root, axisValues: { x: [1, 2, 3], seed: [5, 6, 5] } }));
  t.is((e as ChunkMemoError).code, 'ERR_DUPLICATE_AXIS_VALUE');
  t.regex(e!.message, /axisValues\.seed/);
  t.regex(e!.message, /\b5\b/);
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2, 3] } });
  const e2 = t.throws(() => cache.extendAxisValues({ x: [4, 2] }));
  t.is((e2 as ChunkMemoError).code, 'ERR_DUPLICATE_AXIS_VALUE');
  t.regex(e2!.message, /axisValues\.x/);
  // 1 and 1.0 are the same value
  t.is((t.throws(() => ChunkCache.open({ root, axisValues: { x: [1, 1.0] } })) as ChunkMemoError).code, 'ERR_DUPLICATE_AXIS_VALUE');
});

test('validation: chunkSpec', (t) => {
  const root = freshRoot();
  const axisValues = { x: [1, 2, 3], y: [1] };
  for (const [spec, name] of [
    [{ x: 0 }, 'chunkSpec.x'],
    [{ y: 1.5 }, 'chunkSpec.y'],
    [{ x: -2 }, 'chunkSpec.x'],
    [{ x: { size: 0 } }, 'chunkSpec.x'],
    [{ x: '2' }, 'chunkSpec.x'],
  ] as const) {
    const e = t.throws(() => ChunkCache.open({ root, axisValues, chunkSpec: spec as unknown as Record<string, number> }));
    t.is((e as ChunkMemoError).code, 'ERR_INVALID_OPTION');
    t.true(e!.message.includes(name), e!.message);
  }
  const e = t.throws(() => ChunkCache.open({ root, axisValues, chunkSpec: { z: 1 } }));
  t.is((e as ChunkMemoError).code, 'ERR_INVALID_OPTION');
  t.regex(e!.message, /chunkSpec/);
  t.regex(e!.message, /"z"/);
});

test('validation: params key equal to an axis name, unhashable values, NaN, unknown options', (t) => {
  const root = freshRoot();
  const e1 = t.throws(() => ChunkCache.open({ root, params: { x: 1 }, axisValues: { x: [1, 2] } }));
  t.is((e1 as ChunkMemoError).code, 'ERR_INVALID_OPTION');
  t.regex(e1!.message, /"x"/);

  const e2 = t.throws(() => ChunkCache.open({ root, params: { model: { loss: (() => 1) as unknown as Value } }, axisValues: {} }));
  t.is((e2 as ChunkMemoError).code, 'ERR_UNHASHABLE_VALUE');
  t.true(e2!.message.startsWith('params.model.loss: functions cannot be hashed'), e2!.message);

  const e3 = t.throws(() => ChunkCache.open({ root, params: { a: NaN }, axisValues: {} }));
  t.is((e3 as ChunkMemoError).code, 'ERR_UNHASHABLE_VALUE');
  t.regex(e3!.message, /params\.a/);
  const e4 = t.throws(() => ChunkCache.open({ root, axisValues: { x: [1, NaN] } }));
  t.is((e4 as ChunkMemoError).code, 'ERR_UNHASHABLE_VALUE');
  t.regex(e4!.message, /axisValues\.x\[1\]/);

  const e5 = t.throws(() => ChunkCache.open({ root, params: { s: Symbol('q') as unknown as Value }, axisValues: {} }));
  t.is((e5 as ChunkMemoError).code, 'ERR_UNHASHABLE_VALUE');
  const cyc: Record<string, Value> = {};
  cyc.self = cyc;
  t.is((t.throws(() => ChunkCache.open({ root, params: { cyc }, axisValues: {} })) as ChunkMemoError).code, 'ERR_UNHASHABLE_VALUE');
  class K {}
  t.is((t.throws(() => ChunkCache.open({ root, params: { k: new K() as unknown as Value }, axisValues: {} })) as ChunkMemoError).code, 'ERR_UNHASHABLE_VALUE');

  t.is((t.throws(() => ChunkCache.open({ root, axisValues: { x: [] } })) as ChunkMemoError).code, 'ERR_INVALID_OPTION');
  t.is((t.throws(() => ChunkCache.open({ root, axisValues: { x: [1] }, bogus: 1 } as never)) as ChunkMemoError).code, 'ERR_INVALID_OPTION');
  t.is((t.throws(() => ChunkCache.open({ root, axisValues: { x: [1] }, axisOrder: ['y'] })) as ChunkMemoError).code, 'ERR_INVALID_OPTION');
  // none of the failures created anything
  t.is(ChunkCache.discover(root).length, 0);
});

test('Set and generator axis values are sorted canonically', async (t) => {
  const root = freshRoot();
  const a = ChunkCache.open({ root, axisValues: { x: new Set([3, 1, 2]), s: new Set(['b', 'c', 'a']) } });
  const b = ChunkCache.open({ root, axisValues: { x: new Set([2, 3, 1]), s: new Set(['c', 'a', 'b']) } });
  function* gen(): Generator<number> {
    yield 2;
    yield 1;
    yield 3;
  }
  const g = ChunkCache.open({ root, axisValues: { x: gen(), s: ['a', 'b', 'c'] } });
  t.deepEqual(a.axisValues, b.axisValues);
  t.deepEqual(a.axisValues.x, [1, 2, 3]);
  t.deepEqual(a.axisValues.s, ['a', 'b', 'c']);
  t.deepEqual(g.axisValues.x, [1, 2, 3]);
  t.is(a.id, b.id);
  const c = counting((_p, pt) => `${pt.s}${pt.x}`);
  const ra = await run(a, c.fn);
  const rb = await run(b, c.fn);
  t.deepEqual(ra.output, rb.output);
  t.is(c.count, 9);
  // arrays keep their order
  t.deepEqual(ChunkCache.open({ root: freshRoot(), axisValues: { x: [3, 1, 2] } }).axisValues.x, [3, 1, 2]);
});

test('typed outputs round-trip and run returns a typed array', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [0.5, 1.5, 2.5, 3.5, 4.5] }, chunkSpec: { x: 2 } });
  let n = 0;
  const fn: ChunkFn = (_p, axes) => {
    n += axes.x!.length;
    return Float64Array.from(axes.x!, (v) => Number(v) * 1.25);
  };
  const want = Float64Array.from([0.5, 1.5, 2.5, 3.5, 4.5], (v) => v * 1.25);
  const r1 = await run(cache, fn);
  t.true(r1.output instanceof Float64Array);
  t.deepEqual(Array.from(r1.output), Array.from(want));
  const r2 = await run(cache, fn);
  t.true(r2.output instanceof Float64Array);
  t.deepEqual(Array.from(r2.output), Array.from(want));
  t.is(n, 5);
  // a subset first, then the rest: still typed
  const other = ChunkCache.open({ root, params: { o: 1 }, axisValues: { x: [1, 2, 3, 4] }, chunkSpec: { x: 4 } });
  await run(other.select({ indices: { x: [1] } }), fn);
  const r3 = await run(other, fn);
  t.true(r3.output instanceof Float64Array);
  t.deepEqual(Array.from(r3.output), [1.25, 2.5, 3.75, 5]);
  for await (const ch of iterate(other, fn)) t.true(ch.output instanceof Float64Array);
});

test('close() then use is ERR_CLOSED; Symbol.dispose and using', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2] } });
  cache.close();
  t.is((t.throws(() => cache.status()) as ChunkMemoError).code, 'ERR_CLOSED');
  t.is((t.throws(() => cache.select({ indices: { x: 0 } })) as ChunkMemoError).code, 'ERR_CLOSED');
  const e = await t.throwsAsync(run(cache, (_p, axes) => axes.x!));
  t.is((e as ChunkMemoError).code, 'ERR_CLOSED');
  t.is(typeof (ChunkCache.prototype as unknown as Record<symbol, unknown>)[Symbol.dispose], 'function');
  let escaped: ChunkCache;
  {
    using c2 = ChunkCache.open({ root, axisValues: { x: [1, 2] } });
    escaped = c2;
    t.deepEqual((await run(c2, (_p, axes) => axes.x!)).output, [1, 2]);
  }
  t.is((t.throws(() => escaped.status()) as ChunkMemoError).code, 'ERR_CLOSED');
  // reopening works after close
  t.deepEqual((await run(ChunkCache.open({ root, axisValues: { x: [1, 2] } }), () => [0, 0])).output, [1, 2]);
});
