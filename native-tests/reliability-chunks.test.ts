/**
 * Huge grids and chunk sizes (SPEC §4.2): the default chunkSpec holds at
 * most 65,536 points per memo chunk (full lengths reduced, last axis
 * first); a chunkSpec over the hard limit (2^24 points per chunk) is
 * ERR_INVALID_OPTION suggesting sizes; a 70,000 x 70,000 grid opens with a
 * sane default and a 1-point run on it stays small.
 */
import test from 'ava';
import { ChunkCache, ChunkMemoError, run, pointwise } from '../ts/index.js';
import { openStore } from '../ts/cache/stores.js';
import { DEFAULT_CHUNK_POINTS, MAX_CHUNK_POINTS, normalizeChunkSpec } from '../ts/cache/options.js';
import { freshRoot } from './helpers/grid.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const points = (spec: Record<string, number>, lens: Record<string, number>): number =>
  Object.keys(lens).reduce((p, a) => p * Math.min(spec[a]!, lens[a]!), 1);

test('the default chunkSpec reduces the last axis first to at most 65,536 points per chunk', (t) => {
  const root = freshRoot();
  const c = ChunkCache.open({ root, axisValues: { x: range(1000), y: range(1000) } });
  t.deepEqual(c.chunkSpec, { x: 1000, y: 65 });
  t.true(points(c.chunkSpec, { x: 1000, y: 1000 }) <= DEFAULT_CHUNK_POINTS);
  // axisOrder decides which axis is last.
  const r = ChunkCache.open({ root, params: { o: 1 }, axisValues: { x: range(1000), y: range(1000) }, axisOrder: ['y', 'x'] });
  t.deepEqual(r.chunkSpec, { x: 65, y: 1000 });
  // Small grids keep one chunk per axis.
  t.deepEqual(ChunkCache.open({ root, params: { s: 1 }, axisValues: { a: range(10), b: range(20) } }).chunkSpec, { a: 10, b: 20 });
  // Three axes: the last two shrink to 1 before the first is cut.
  const three = normalizeChunkSpec('t', undefined, { a: range(100_000), b: range(3), c: range(5) }, ['a', 'b', 'c']);
  t.deepEqual(three, { a: 65_536, b: 1, c: 1 });
  // Given sizes are kept; only the others are reduced.
  t.deepEqual(normalizeChunkSpec('t', { x: 1000 }, { x: range(1000), y: range(1000) }, ['x', 'y']), { x: 1000, y: 65 });
  t.deepEqual(normalizeChunkSpec('t', { y: 1000 }, { x: range(1000), y: range(1000) }, ['x', 'y']), { x: 65, y: 1000 });
  // Above the default but under the hard limit: accepted as given.
  t.deepEqual(normalizeChunkSpec('t', { x: 1000, y: 1000 }, { x: range(1000), y: range(1000) }, ['x', 'y']), { x: 1000, y: 1000 });
});

test('a chunkSpec over the hard limit is ERR_INVALID_OPTION suggesting sizes that work', (t) => {
  const root = freshRoot();
  const axisValues = { x: range(5000), y: range(5000) };
  const e = t.throws(() => ChunkCache.open({ root, axisValues, chunkSpec: { x: 5000, y: 5000 } }));
  t.true(e instanceof ChunkMemoError);
  t.is((e as ChunkMemoError).code, 'ERR_INVALID_OPTION');
  t.regex(e!.message, new RegExp(`25000000 points .*limit of ${MAX_CHUNK_POINTS}`));
  const m = /chunkSpec: (\{[^}]*\})/.exec(e!.message);
  t.truthy(m, e!.message);
  const suggested = JSON.parse(m![1]!) as Record<string, number>;
  t.deepEqual(suggested, { x: 5000, y: 13 });
  t.deepEqual(ChunkCache.open({ root, axisValues, chunkSpec: suggested }).chunkSpec, suggested);
  // Sizes larger than the axis count as the axis length.
  t.notThrows(() => ChunkCache.open({ root, params: { k: 1 }, axisValues: { x: range(10) }, chunkSpec: { x: 2 ** 30 } }));
});

test('non-integer, NaN and Infinity chunk sizes name the value', (t) => {
  const root = freshRoot();
  for (const [size, shown] of [[NaN, 'NaN'], [Infinity, 'Infinity'], [-Infinity, '-Infinity'], [1.5, '1.5'], [0, '0'], [2 ** 33, String(2 ** 33)]] as const) {
    const e = t.throws(() => ChunkCache.open({ root, axisValues: { x: range(4) }, chunkSpec: { x: size } }));
    t.is((e as ChunkMemoError).code, 'ERR_INVALID_OPTION');
    t.true(e!.message.includes(`chunkSpec.x must be a positive integer`), e!.message);
    t.true(e!.message.includes(`(got ${shown})`), e!.message);
  }
  const e = t.throws(() => ChunkCache.open({ root, axisValues: { x: range(4) }, chunkSpec: { x: { size: NaN } } }));
  t.true(e!.message.includes('(got NaN)'), e!.message);
});

test('a 70,000 x 70,000 grid opens with a sane default and a 1-point run writes a small record', async (t) => {
  const root = freshRoot();
  const c = ChunkCache.open({ root, axisValues: { x: range(70_000), y: range(70_000) } });
  t.deepEqual(c.chunkSpec, { x: 65_536, y: 1 });
  // (status() of the whole 4.9e9-point grid builds every chunk's value lists
  // eagerly: see the report; a selection's status is cheap.)
  const one = c.select({ values: { x: [12_345], y: [54_321] } });
  t.like(one.status(), { totalChunks: 1, totalPoints: 1, missingPoints: 1 });
  const r = await run(one, pointwise((_p, { x, y }) => (x as number) + (y as number)));
  t.deepEqual(r.output, [66_666]);
  t.is(r.diagnostics.executedPoints, 1);
  const descs = openStore(root).descriptors(Buffer.from(c.id, 'hex'));
  t.is(descs.length, 1);
  t.is(descs[0]!.n, 65_536);
  t.is(descs[0]!.present, 1);
  t.true(descs[0]!.bytes < 2 ** 21, `record of ${descs[0]!.bytes} bytes`);
  const again = await run(one, pointwise(() => -1));
  t.deepEqual(again.output, [66_666]);
  t.is(again.diagnostics.executedPoints, 0);
});
