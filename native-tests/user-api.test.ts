/**
 * User-facing API around stored results: `read(cache)` (stored outputs
 * without a function), `cache.invalidate()` (delete a view's points, also
 * from records written with other chunkings) and `$CHUNK_MEMO_ROOT` as the
 * default root.
 */
import test from 'ava';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkCache, autoLoad, read, run, pointwise, type ChunkFn, type Value } from '../ts/index.js';
import { openStore } from '../ts/cache/stores.js';

const { discover, findCompatible, findOverlapping, load } = ChunkCache;

const tmp = (): string => mkdtempSync(join(tmpdir(), 'cm-user-'));

const X = [0, 1, 2, 3, 4, 5];
const Y = [0, 1, 2, 3];
const open = (root: string, chunkSpec: Record<string, number> = { x: 2, y: 2 }, tag = 't'): ChunkCache =>
  ChunkCache.open({ root, params: { tag }, axisValues: { x: X, y: Y }, chunkSpec });

/** A point function that records the points it computes. */
function counted(): { fn: ChunkFn; calls: string[] } {
  const calls: string[] = [];
  const fn = pointwise((_p, { x, y }) => {
    calls.push(`${x},${y}`);
    return { v: (x as number) * 10 + (y as number) };
  });
  return { fn, calls };
}

/** Typed outputs, one Float64Array per block. */
const typedFn: ChunkFn = (_p, axes) => {
  const out = new Float64Array(axes.x!.length * axes.y!.length);
  let i = 0;
  for (const x of axes.x as number[]) for (const y of axes.y as number[]) out[i++] = x * 10 + y + 0.5;
  return out;
};

const expected = (x: number, y: number) => ({ v: x * 10 + y });
const gridPoints = (xs: number[], ys: number[]): Array<[number, number]> => xs.flatMap((x) => ys.map((y): [number, number] => [x, y]));
const records = (c: ChunkCache) => openStore(c.root).descriptors(Buffer.from(c.id, 'hex'));

// ---------------------------------------------------------------------------
// read

test('read returns stored outputs in grid order, undefined where missing, and computes nothing', async (t) => {
  const root = tmp();
  const c = open(root);
  const { fn, calls } = counted();
  await run(c.select({ values: { x: [1, 2, 5], y: [0, 3] } }), fn);
  const before = JSON.stringify(records(c));
  const n = calls.length;
  const r = await read(c);
  t.is(calls.length, n);
  t.is(JSON.stringify(records(c)), before);
  t.is(r.present.length, 24);
  t.is(r.missingPoints, 24 - 6);
  const out = r.output as unknown[];
  gridPoints(X, Y).forEach(([x, y], i) => {
    const stored = [1, 2, 5].includes(x) && [0, 3].includes(y);
    t.is(r.present[i], stored ? 1 : 0, `present at ${x},${y}`);
    if (stored) t.deepEqual(out[i], expected(x, y));
    else t.is(out[i], undefined);
  });
  // A view, in its own grid order, with another chunking and axis order.
  const other = ChunkCache.open({ root, params: { tag: 't' }, axisValues: { x: X, y: Y }, chunkSpec: { x: 4, y: 1 }, axisOrder: ['y', 'x'] });
  const v = await read(other.select({ values: { x: [5, 2], y: [3, 1] } }));
  // Grid order of the view: y slowest (1, 3), then x (2, 5).
  t.deepEqual(v.output, [undefined, undefined, expected(2, 3), expected(5, 3)]);
  t.deepEqual([...v.present], [0, 0, 1, 1]);
  t.is(v.missingPoints, 2);
});

test('read of a full cache equals the run output; an empty cache reads as all missing', async (t) => {
  const root = tmp();
  const c = open(root);
  const { fn } = counted();
  const { output } = await run(c, fn);
  const r = await read(c);
  t.deepEqual(r.output, output);
  t.is(r.missingPoints, 0);
  t.true(r.present.every((p) => p === 1));
  const empty = await read(open(root, undefined, 'nothing stored'));
  t.is(empty.missingPoints, 24);
  t.deepEqual(empty.output, new Array(24).fill(undefined));
  // A singleton cache.
  const s = ChunkCache.open({ root, params: { k: 1 }, axisValues: {} });
  t.deepEqual((await read(s)).output, [undefined]);
  await run(s, () => [42]);
  const rs = await read(s);
  t.deepEqual(rs.output, [42]);
  t.deepEqual([...rs.present], [1]);
});

test('read keeps TypedArray outputs typed: NaN for missing floats, 0 and present for integers', async (t) => {
  const root = tmp();
  const c = open(root);
  await run(c.select({ values: { x: [0, 3] } }), typedFn);
  const r = await read<Float64Array>(c);
  t.true(r.output instanceof Float64Array);
  gridPoints(X, Y).forEach(([x, y], i) => {
    if (x === 0 || x === 3) t.is(r.output[i], x * 10 + y + 0.5);
    else t.true(Number.isNaN(r.output[i]));
  });
  const ints = ChunkCache.open({ root, params: { tag: 'ints' }, axisValues: { x: X }, chunkSpec: { x: 4 } });
  await run(ints.select({ values: { x: [1, 5] } }), (_p, axes) => Int32Array.from(axes.x as number[], (x) => x * 7));
  const ri = await read(ints);
  t.true(ri.output instanceof Int32Array);
  t.deepEqual([...(ri.output as Int32Array)], [0, 7, 0, 0, 0, 35]);
  t.deepEqual([...ri.present], [0, 1, 0, 0, 0, 1]);
});

test('read of thousands of chunks in batches: stored ones in place, typed and items, views whose chunks lie apart in the output', async (t) => {
  const root = tmp();
  const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
  const A = range(60);
  const B = range(40);
  // One-point chunks (2,400: several read batches), every other b stored.
  const cache = ChunkCache.open({ root, params: { t: 'read-batches' }, axisValues: { a: A, b: B }, chunkSpec: { a: 1, b: 1 } });
  const f: ChunkFn = (_p, axes) => (axes.a as number[]).flatMap((a) => (axes.b as number[]).map((b) => ({ a, b })));
  await run(cache.select({ indices: { b: { step: 2 } } }), f);
  const r = await read(cache);
  const want = A.flatMap((a) => B.map((b) => (b % 2 === 0 ? { a, b } : undefined)));
  t.deepEqual(r.output, want);
  t.deepEqual(Array.from(r.present), want.map((v) => (v ? 1 : 0)));
  t.is(r.missingPoints, 60 * 20);
  // Chunks of 3 x 4 seen through a view that cuts them: each chunk's points
  // lie apart in the view's output.
  const blocks = ChunkCache.open({ root, params: { t: 'read-batches-typed' }, axisValues: { a: A, b: B }, chunkSpec: { a: 3, b: 4 } });
  const g: ChunkFn = (_p, axes) => Float64Array.from((axes.a as number[]).flatMap((a) => (axes.b as number[]).map((b) => a * 100 + b)));
  await run(blocks.select({ indices: { a: { stop: 30 } } }), g);
  const view = blocks.select({ indices: { a: { start: 25, stop: 35 }, b: { step: 3 } } });
  const v = await read<Float64Array>(view);
  const bs = B.filter((b) => b % 3 === 0);
  const wantV = range(10).flatMap((k) => bs.map((b) => (25 + k < 30 ? (25 + k) * 100 + b : NaN)));
  t.true(v.output instanceof Float64Array);
  t.deepEqual(Array.from(v.output), wantV);
  t.is(v.missingPoints, 5 * bs.length);
});

test('read rejects something that is not a cache', async (t) => {
  await t.throwsAsync(() => read({} as ChunkCache), { code: 'ERR_INVALID_OPTION', message: /read: expected a cache/ });
});

// ---------------------------------------------------------------------------
// invalidate

test('invalidate of a selection deletes only its points; the next run recomputes exactly them', async (t) => {
  const root = tmp();
  const c = open(root);
  const first = counted();
  const full = await run(c, first.fn);
  // x = 1, 2 crosses two bins of x: every record touched is kept in part.
  const keys = (): string[] => records(c).map((d) => d.chunk.toString('hex')).sort();
  const before = keys();
  const r = c.select({ values: { x: [1, 2], y: [0, 1, 2] } }).invalidate();
  t.is(r.points, 6);
  t.is(r.rewrittenRecords, 4);
  t.is(r.deletedRecords, 0);
  // The records keep their layout and key; no piece is left over.
  t.deepEqual(keys(), before);
  t.is(records(c).reduce((x, d) => x + d.present, 0), 18);
  const st = c.status();
  t.is(st.missingPoints, 6);
  t.is(st.cachedPoints, 18);
  const again = counted();
  const res = await run(c, again.fn);
  t.is(res.diagnostics.executedPoints, 6);
  t.deepEqual(again.calls.sort(), ['1,0', '1,1', '1,2', '2,0', '2,1', '2,2']);
  t.deepEqual(res.output, full.output);
  // Invalidating again what was just invalidated and nothing else stored: 0 points.
  t.is(ChunkCache.open({ root, params: { tag: 'none' }, axisValues: { x: X, y: Y } }).invalidate().points, 0);
});

test('invalidate of a whole cache deletes every record; other caches keep theirs', async (t) => {
  const root = tmp();
  const a = open(root, undefined, 'a');
  const b = open(root, undefined, 'b');
  const { fn } = counted();
  await run(a, fn);
  await run(b, fn);
  const r = a.invalidate();
  t.deepEqual(r, { points: 24, deletedRecords: 6, rewrittenRecords: 0 });
  t.is(records(a).length, 0);
  t.is(records(b).length, 6);
  t.is((await run(b, fn)).diagnostics.executedPoints, 0);
  t.is((await run(a, fn)).diagnostics.executedPoints, 24);
  // Whole records covered by a selection are deleted, not rewritten.
  const w = a.select({ values: { x: [0, 1] } }).invalidate();
  t.deepEqual(w, { points: 8, deletedRecords: 2, rewrittenRecords: 0 });
});

test('invalidate reaches records of other chunkings that the view covers in part', async (t) => {
  const root = tmp();
  const { fn } = counted();
  // Three chunkings wrote overlapping parts of the grid.
  await run(open(root, { x: 2, y: 2 }).select({ values: { x: [0, 1, 2, 3] } }), fn);
  await run(open(root, { x: 3, y: 4 }).select({ values: { x: [2, 3, 4], y: [1, 2, 3] } }), fn);
  await run(open(root, { x: 6, y: 1 }).select({ values: { y: [0] } }), fn);
  const c = open(root, { x: 1, y: 3 });
  const stored = new Set<string>();
  const before = await read(c);
  gridPoints(X, Y).forEach(([x, y], i) => before.present[i] && stored.add(`${x},${y}`));
  t.is(stored.size, 16 + 3 + 2); // x 0..3 by every y; (4, 1..3); (4..5, 0)
  const sel = { x: [1, 2, 3, 4], y: [1, 2] };
  const want = [...stored].filter((k) => {
    const [x, y] = k.split(',').map(Number);
    return sel.x.includes(x!) && sel.y.includes(y!);
  }).length;
  const r = c.select({ values: sel }).invalidate();
  t.is(r.points, want);
  const after = await read(c);
  const out = after.output as unknown[];
  gridPoints(X, Y).forEach(([x, y], i) => {
    const gone = sel.x.includes(x) && sel.y.includes(y);
    const should = stored.has(`${x},${y}`) && !gone;
    t.is(after.present[i], should ? 1 : 0, `point ${x},${y}`);
    if (should) t.deepEqual(out[i], expected(x, y));
  });
  // Every chunking sees the same: none of the selected points is stored.
  for (const spec of [{ x: 2, y: 2 }, { x: 3, y: 4 }, { x: 6, y: 1 }]) {
    const v = await read(open(root, spec).select({ values: sel }));
    t.is(v.missingPoints, 8, JSON.stringify(spec));
  }
  const again = counted();
  const res = await run(c, again.fn);
  t.is(res.diagnostics.executedPoints, 24 - (stored.size - want));
});

test('invalidate keeps a record of another chunking whose layout is one of the moved blocks', async (t) => {
  const root = tmp();
  const { fn } = counted();
  // Row x = 0 stored alone (chunking x: 1), then the whole grid (chunking x: 2).
  await run(open(root, { x: 1, y: 4 }).select({ values: { x: [0] } }), fn);
  const c = open(root, { x: 2, y: 4 });
  await run(c, fn);
  const before = records(c).length;
  t.is(before, 4);
  // The points of record [x 0..1] outside the view are x = 0 (every y) and
  // (1, 0): the first block is exactly the layout of the x: 1 record.
  const r = c.select({ values: { x: [1], y: [1, 2, 3] } }).invalidate();
  t.like(r, { points: 3, rewrittenRecords: 1 });
  t.is(records(c).length, before);
  const again = counted();
  const row = await run(open(root, { x: 1, y: 4 }).select({ values: { x: [0] } }), again.fn);
  t.is(row.diagnostics.executedPoints, 0);
  const all = await run(c, again.fn);
  t.is(all.diagnostics.executedPoints, 3);
  t.deepEqual(again.calls.sort(), ['1,1', '1,2', '1,3']);
});

test('invalidate keeps typed outputs and items packed with several dictionaries intact', async (t) => {
  const root = tmp();
  const c = open(root, { x: 3, y: 4 });
  await run(c, typedFn);
  c.select({ values: { y: [1] } }).invalidate();
  const r = await read<Float64Array>(c);
  t.true(r.output instanceof Float64Array);
  gridPoints(X, Y).forEach(([x, y], i) => {
    if (y === 1) t.true(Number.isNaN(r.output[i]));
    else t.is(r.output[i], x * 10 + y + 0.5);
  });
  // Items from several writes (objects of different shapes, so several dictionaries per record).
  const items = open(root, { x: 6, y: 4 }, 'items');
  const shapeA = pointwise((_p, { x, y }) => ({ a: x as number, big: BigInt(y as number), when: new Date(Date.UTC(2020, 0, 1 + (x as number))) }));
  const shapeB = pointwise((_p, { x, y }) => ({ b: [x, y] as Value[], s: `${x}/${y}` }));
  await run(items.select({ values: { x: [0, 1, 2] } }), shapeA);
  await run(items.select({ values: { x: [3, 4, 5] } }), shapeB);
  const whole = (await read(items)).output as unknown[];
  const res = items.select({ values: { x: [2, 3], y: [0, 3] } }).invalidate();
  t.is(res.points, 4);
  t.is(res.rewrittenRecords, 1);
  const after = await read(items);
  gridPoints(X, Y).forEach(([x, y], i) => {
    if ([2, 3].includes(x) && [0, 3].includes(y)) t.is(after.present[i], 0);
    else t.deepEqual((after.output as unknown[])[i], whole[i]);
  });
});

test('invalidate of a singleton cache and of a pinned (superset) view', async (t) => {
  const root = tmp();
  const s = ChunkCache.open({ root, params: { k: 2 }, axisValues: {} });
  await run(s, () => ['one']);
  t.is(s.invalidate().points, 1);
  t.is((await read(s)).missingPoints, 1);
  // A superset cache served as a pinned view: only the pinned slice goes.
  const big = ChunkCache.open({ root, params: { m: 'sup' }, axisValues: { lr: [1, 2, 3], x: X }, chunkSpec: { lr: 3, x: 2 } });
  const { fn } = counted();
  await run(big, pointwise((_p, { lr, x }) => (lr as number) * 100 + (x as number)));
  void fn;
  const view = autoLoad({ root, params: { m: 'sup', lr: 2 }, axisValues: { x: X }, allowSuperset: true });
  t.deepEqual(view.params, { m: 'sup', lr: 2 });
  t.is(view.invalidate().points, 6);
  const rb = await read(big);
  t.deepEqual([...rb.present], [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
});

// ---------------------------------------------------------------------------
// $CHUNK_MEMO_ROOT and id prefixes

test.serial('CHUNK_MEMO_ROOT is the default root of open, discover, find*, load and autoLoad', async (t) => {
  const root = tmp();
  const saved = process.env.CHUNK_MEMO_ROOT;
  process.env.CHUNK_MEMO_ROOT = root;
  try {
    const c = ChunkCache.open({ params: { env: 1 }, axisValues: { x: [1, 2, 3] } });
    t.is(c.root, root);
    await run(c, pointwise((_p, { x }) => x));
    t.deepEqual(discover().map((i) => i.id), [c.id]);
    t.deepEqual(findCompatible({ params: { env: 1 } }).map((i) => i.id), [c.id]);
    t.deepEqual(findCompatible(undefined, { params: { env: 1 } }).map((i) => i.id), [c.id]);
    t.deepEqual(findOverlapping({ params: { env: 1 }, axisValues: { x: [3, 4] } }).map((i) => i.id), [c.id]);
    t.is(load(c.id).id, c.id);
    t.is(load(c.id.slice(0, 6)).id, c.id);
    t.is(load(undefined, c.id).id, c.id);
    const a = autoLoad({ params: { env: 1 } });
    t.is(a.id, c.id);
    t.is(a.root, root);
    t.deepEqual((await read(a)).output, [1, 2, 3]);
    // An explicit root still wins.
    const other = tmp();
    t.is(ChunkCache.open({ root: other, axisValues: {} }).root, other);
    t.deepEqual(discover(other).length, 1);
  } finally {
    if (saved === undefined) delete process.env.CHUNK_MEMO_ROOT;
    else process.env.CHUNK_MEMO_ROOT = saved;
  }
});

test('load takes a unique id prefix; an ambiguous or unknown one is an error naming the matches', (t) => {
  const root = tmp();
  const ids: string[] = [];
  for (let i = 0; i < 40; i++) ids.push(ChunkCache.open({ root, params: { i }, axisValues: {} }).id);
  t.is(load(root, ids[0]!.slice(0, 8)).id, ids[0]);
  t.is(load(root, ids[0]!.toUpperCase()).id, ids[0]);
  // With 40 ids, some first hex digit is shared.
  const byFirst = new Map<string, string[]>();
  for (const id of ids) byFirst.set(id[0]!, [...(byFirst.get(id[0]!) ?? []), id]);
  const [prefix, shared] = [...byFirst].find(([, l]) => l.length > 1)!;
  const e = t.throws(() => load(root, prefix), { code: 'ERR_AMBIGUOUS_CACHE' });
  for (const id of shared) t.true(e!.message.includes(id));
  const unused = '0123456789abcdef'.split('').find((h) => !byFirst.has(h));
  if (unused) t.throws(() => load(root, unused), { code: 'ERR_CACHE_NOT_FOUND', message: /no cache id starts with/ });
  t.throws(() => load(root, 'xyz'), { code: 'ERR_INVALID_OPTION' });
});
