/**
 * One test per known defect of the Python peers (SPEC §7). Archive path
 * traversal is covered by the management tests.
 */
import test from 'ava';
import { ChunkCache, ChunkMemoError, pointwise, run, type ChunkFn, type Params, type Value } from '../ts/index.js';
import { freshRoot, type Point, gridPoints, keyOf } from './helpers/grid.js';
import { overlapWarningsDuring } from './helpers/warnings.js';


function counting(f: (params: Params, pt: Point) => unknown) {
  const seen: string[] = [];
  const fn = pointwise((p: Params, pt: Point) => {
    seen.push(keyOf(pt));
    return f(p, pt);
  });
  return { fn: fn as ChunkFn, seen };
}

const label = (pt: Point): string => `a=${pt.a},z=${pt.z}`;

test('subset reads with a non-sorted axisOrder return the right items', async (t) => {
  const root = freshRoot();
  const axisValues = { a: [1, 2, 3, 4, 5], z: ['p', 'q', 'r', 's'] };
  const zFirst = ChunkCache.open({ root, axisValues, axisOrder: ['z', 'a'], chunkSpec: { a: 2, z: 3 } });
  t.deepEqual(zFirst.axisOrder, ['z', 'a']);
  const c = counting((_p, pt) => label(pt));
  const full = await run(zFirst, c.fn);
  t.deepEqual(full.output, gridPoints(['z', 'a'], axisValues).map(label));
  t.is(c.seen.length, 20);

  const subsets: Array<Record<string, Value[]>> = [
    { a: [2, 5], z: ['q', 's'] },
    { a: [1, 3, 4], z: ['p'] },
    { a: [5], z: ['s', 'r', 'p'] },
    { a: [4, 2], z: ['r', 'q'] },
  ];
  for (const values of subsets) {
    const view = zFirst.select({ values });
    const r = await run(view, c.fn);
    const want = gridPoints(['z', 'a'], view.axisValues).map(label);
    t.deepEqual(r.output, want, JSON.stringify(values));
    t.is(r.diagnostics.executedPoints, 0);
  }
  // Index selections over the z-first grid.
  const byIdx = zFirst.select({ indices: { z: [-1, 0], a: { start: 1, step: 2 } } });
  t.deepEqual((await run(byIdx, c.fn)).output, gridPoints(['z', 'a'], { z: ['p', 's'], a: [2, 4] }).map(label));

  // The same records read in the other (sorted) order.
  const aFirst = ChunkCache.open({ root, axisValues, chunkSpec: { a: 3, z: 1 } });
  t.is(aFirst.id, zFirst.id);
  t.deepEqual(aFirst.axisOrder, ['a', 'z']);
  t.deepEqual((await run(aFirst, c.fn)).output, gridPoints(['a', 'z'], axisValues).map(label));
  const sub = aFirst.select({ values: { a: [5, 3], z: ['s', 'q'] } });
  t.deepEqual((await run(sub, c.fn)).output, gridPoints(['a', 'z'], { a: [3, 5], z: ['q', 's'] }).map(label));
  t.is(c.seen.length, 20);
});

test('items missing from a partly cached chunk are computed', async (t) => {
  const root = freshRoot();
  const axisValues = { x: [1, 2, 3, 4, 5, 6], y: [1, 2, 3] };
  const cache = ChunkCache.open({ root, axisValues, chunkSpec: { x: 3, y: 3 } });
  const f = (pt: Point): number => Number(pt.x) * 10 + Number(pt.y);
  const c = counting((_p, pt) => f(pt));
  const subset = cache.select({ values: { x: [2, 3, 5], y: [1, 3] } });
  t.deepEqual((await run(subset, c.fn)).output, gridPoints(['x', 'y'], subset.axisValues).map(f));
  const first = new Set(c.seen);
  t.is(first.size, 6);
  const st = cache.status();
  t.is(st.partial.length, 2);
  t.is(st.cached.length, 0);
  t.is(st.partial.reduce((s, p) => s + p.missingPoints.length, 0), 18 - 6);
  t.true(st.partial[0]!.missingPoints.some((m) => m.x === 1 && m.y === 1));

  c.seen.length = 0;
  const r = await run(cache, c.fn);
  t.true(r.diagnostics.partialChunks > 0);
  t.is(r.diagnostics.partialChunks, 2);
  t.is(r.diagnostics.executedPoints, 12);
  t.is(r.diagnostics.cachedPoints, 6);
  t.is(c.seen.length, 12);
  t.false(c.seen.some((k) => first.has(k)));
  t.deepEqual(r.output, gridPoints(['x', 'y'], axisValues).map(f));
  const after = cache.status();
  t.is(after.partial.length, 0);
  t.is(after.cachedPoints, 18);
  c.seen.length = 0;
  t.deepEqual((await run(cache, c.fn)).output, gridPoints(['x', 'y'], axisValues).map(f));
  t.is(c.seen.length, 0);
});

test('collate is applied exactly once', async (t) => {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { x: [1, 2, 3, 4, 5] }, chunkSpec: { x: 2 } });
  const fn = pointwise((_p, pt) => Number(pt.x) * 2);
  const plain = (await run(ChunkCache.open({ root, params: { plain: true }, axisValues: { x: [1, 2, 3, 4, 5] } }), fn)).output;
  let calls = 0;
  const collate = (out: unknown[] | ArrayLike<unknown>): { total: number; n: number; items: unknown[] } => {
    calls++;
    const items = Array.from(out as ArrayLike<unknown>);
    return { total: items.reduce<number>((s, v) => s + Number(v), 0), n: items.length, items };
  };
  const r1 = await run(cache, fn, { collate });
  t.is(calls, 1);
  t.deepEqual(r1.output, collate(plain));
  calls = 0;
  const r2 = await run(cache, fn, { collate });
  t.is(calls, 1);
  t.deepEqual(r2.output, { total: 30, n: 5, items: [2, 4, 6, 8, 10] });
  // a non-idempotent collate makes a double application visible
  const r3 = await run(cache.select({ indices: { x: [0, 4] } }), fn, { collate: (o) => Array.from(o as ArrayLike<number>, (v) => v + 1) });
  t.deepEqual(r3.output, [3, 11]);
});

test('identity is canonical, not repr: types matter, key order does not, 1 equals 1.0', (t) => {
  const root = freshRoot();
  const id = (params: Params): string => ChunkCache.open({ root, params, axisValues: {} }).id;
  t.not(id({ a: 1 }), id({ a: '1' }));
  t.not(id({ a: true }), id({ a: 1 }));
  t.not(id({ a: null }), id({ a: 'null' }));
  t.not(id({ a: [1, 2] }), id({ a: '1,2' }));
  t.not(id({ a: [1, 2] }), id({ a: [2, 1] }));
  t.is(id({ a: 1, b: 2 }), id({ b: 2, a: 1 }));
  t.is(id({ m: { lr: 0.1, depth: 3 } }), id({ m: { depth: 3, lr: 0.1 } }));
  t.is(id({ a: 1 }), id({ a: 1.0 }));
  t.not(id({ a: 0.1 + 0.2 }), id({ a: 0.3 }));
  // axis values: 1 and '1' are two distinct values, not duplicates
  const c = ChunkCache.open({ root, axisValues: { x: [1, '1', true] } });
  t.deepEqual(c.axisValues.x, [1, '1', true]);
  t.deepEqual(c.select({ values: { x: '1' } }).axisValues.x, ['1']);
});

test('superset matching compares axis values', (t) => {
  const root = freshRoot();
  const big = ChunkCache.open({ root, params: { a: 1 }, axisValues: { b: [1, 2], x: [1, 2, 3] } });
  const find = (params: Params, axisValues: Record<string, Value[]>) =>
    ChunkCache.findCompatible(root, { params, axisValues, allowSuperset: true }).map((i) => [i.id, i.match, i.pinned]);
  t.deepEqual(find({ a: 1, b: 2 }, { x: [1, 3] }), [[big.id, 'superset', { b: 2 }]]);
  // the pinned axis lacks the value
  t.deepEqual(find({ a: 1, b: 3 }, { x: [1] }), []);
  // another axis lacks a requested value
  t.deepEqual(find({ a: 1, b: 1 }, { x: [1, 4] }), []);
  // a stored param differs
  t.deepEqual(find({ a: 2, b: 1 }, { x: [1] }), []);
  // an axis name that is not in the cache
  t.deepEqual(find({ a: 1, b: 1 }, { w: [1] }), []);
  // autoLoad without a match creates a new cache rather than serving wrong data
  const created = ChunkCache.autoLoad({ root, params: { a: 1, b: 3 }, axisValues: { x: [1] }, allowSuperset: true });
  t.not(created.id, big.id);
  t.deepEqual(created.params, { a: 1, b: 3 });
});

test('overlap warnings fire (and only on overlap)', async (t) => {
  const root = freshRoot();
  const base = ChunkCache.open({ root, axisValues: { a: [1, 2], x: [1, 2, 3] } });
  // the new cache pins a=2 as a param: its points overlap the existing cache's
  let created!: ChunkCache;
  const w1 = await overlapWarningsDuring(() => {
    created = ChunkCache.open({ root, params: { a: 2 }, axisValues: { x: [3, 4] }, warnOnOverlap: true });
  });
  t.is(w1.length, 1);
  t.true(w1[0]!.message.includes(base.id));
  t.true(w1[0]!.message.includes(created.id));
  // disjoint: no warning
  const w2 = await overlapWarningsDuring(() => {
    ChunkCache.open({ root, params: { a: 3 }, axisValues: { x: [1] }, warnOnOverlap: true });
  });
  t.is(w2.length, 0);
  // reopening an existing cache does not warn
  const w3 = await overlapWarningsDuring(() => {
    ChunkCache.open({ root, params: { a: 2 }, axisValues: { x: [3, 4] }, warnOnOverlap: true });
  });
  t.is(w3.length, 0);
});

test('duplicate axis values are an error, not collapsed', (t) => {
  const root = freshRoot();
  const cases: Array<[Record<string, Iterable<Value>>, string]> = [
    [{ x: [1, 2, 1] }, 'x'],
    [{ x: [1], y: ['a', 'b', 'a'] }, 'y'],
    [{ d: new Set([new Date(0), new Date(0)]) }, 'd'],
    [{ v: [[1, 2], [1, 2]] }, 'v'],
    [{ o: [{ p: 1, q: 2 }, { q: 2, p: 1 }] }, 'o'],
  ];
  for (const [axisValues, axis] of cases) {
    const e = t.throws(() => ChunkCache.open({ root, axisValues }));
    t.true(e instanceof ChunkMemoError);
    t.is((e as ChunkMemoError).code, 'ERR_DUPLICATE_AXIS_VALUE');
    t.true(e!.message.includes(`axisValues.${axis}`), e!.message);
  }
  t.is(ChunkCache.discover(root).length, 0);
});

test('output order is identical between runs and across chunkSpecs', async (t) => {
  const root = freshRoot();
  const axisValues = { x: [9, 3, 7, 1, 5, 2, 8], y: ['c', 'a', 'b'], w: [true, false] };
  const f = (pt: Point): string => `${pt.w}:${pt.x}:${pt.y}`;
  const c = counting((_p, pt) => f(pt));
  const want = gridPoints(['w', 'x', 'y'], axisValues).map(f);
  const first = await run(ChunkCache.open({ root, axisValues, chunkSpec: { x: 3, y: 2 } }), c.fn);
  t.deepEqual(first.output, want);
  t.is(c.seen.length, 42);
  const specs: Array<Record<string, number>> = [{ x: 3, y: 2 }, { x: 1 }, { x: 7, y: 3, w: 2 }, { x: 2, y: 1, w: 1 }, { x: 4 }, {}];
  for (const chunkSpec of specs) {
    const cache = ChunkCache.open({ root, axisValues, chunkSpec });
    const r = await run(cache, c.fn);
    t.deepEqual(r.output, first.output, JSON.stringify(chunkSpec));
    t.is(r.diagnostics.executedPoints, 0);
    const loaded = ChunkCache.load(root, cache.id, { chunkSpec });
    t.deepEqual((await run(loaded, c.fn)).output, first.output);
  }
  t.is(c.seen.length, 42);
});

test('object outputs of different shapes written by several runs into one chunk decode correctly', async (t) => {
  // Each write packs its objects with its own record structures; a chunk
  // merged from several writes (and read through another chunking) keeps
  // every point's own dictionary.
  const root = freshRoot();
  const shape = (x: number, y: number) => (x % 2 ? { x, y, odd: true } : { y, x, even: [x, y], tag: `p${x}.${y}` });
  const fn = pointwise((_p, pt) => shape(pt.x as number, pt.y as number));
  const axisValues = { x: [0, 1, 2, 3, 4, 5], y: [0, 1, 2] };
  const cache = ChunkCache.open({ root, axisValues, chunkSpec: { x: 6, y: 3 } });
  await run(cache.select({ values: { x: [1, 2] } }), fn);
  await run(cache.select({ values: { y: [2] } }), fn);
  const full = await run(cache, fn);
  t.is(full.diagnostics.partialChunks, 1);
  const want = gridPoints(['x', 'y'], axisValues).map((p) => shape(p.x as number, p.y as number));
  t.deepEqual(full.output, want);
  // Warm, the merged record whole (decoded straight into the run's output, dictionary run by dictionary run).
  const warm = await run(cache, () => {
    throw new Error('must not run');
  });
  t.deepEqual(warm.output, want);
  const other = ChunkCache.open({ root, axisValues, chunkSpec: { x: 4, y: 2 }, axisOrder: ['y', 'x'] });
  const again = await run(other, () => {
    throw new Error('must not run');
  });
  t.deepEqual(again.output, gridPoints(['y', 'x'], axisValues).map((p) => shape(p.x as number, p.y as number)));
});
