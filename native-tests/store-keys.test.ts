/**
 * Chunk keys start with the order keys of their first values (so records of
 * neighbouring chunks are stored side by side). Records written before that,
 * under plain digest keys, stay readable, extendable and invalidatable.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native } from '../ts/binding/native.js';
import { encodeCanonical } from '../ts/canonical/encode.js';
import { ChunkCache, run, type ChunkFn } from '../ts/index.js';

function tempRoot(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'cm-keys-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const buf = (u: ArrayBufferView): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const hashesOf = (values: unknown[]): Buffer => native.hashValues(Buffer.concat(values.map((v) => buf(encodeCanonical(v)))));
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const KIND_F64 = 8;

/** f(a, b) = 10 a + b, as Float64Array outputs; counts the points it computes. */
function counted(): { fn: ChunkFn; computed: () => number } {
  let n = 0;
  const fn: ChunkFn = (_p, axes) => {
    const a = axes.a as number[];
    const b = axes.b as number[];
    const out = new Float64Array(a.length * b.length);
    a.forEach((x, i) => b.forEach((y, j) => (out[i * b.length + j] = 10 * x + y)));
    n += out.length;
    return out;
  };
  return { fn, computed: () => n };
}

/**
 * Writes every chunk of `cache` the way versions before order keys did:
 * under the plain digest key of a grid without order keys.
 */
function writeUnderPlainKeys(cache: ChunkCache, A: number[], B: number[], ca: number, cb: number): void {
  const core = cache._core;
  const plan = new native.BindingGrid(['a', 'b'], [hashesOf(A), hashesOf(B)], [ca, cb]).plan([null, null]);
  const writes = [];
  for (let i = 0; i < plan.chunkCount; i++) {
    const ba = Math.floor(i / Math.ceil(B.length / cb));
    const bb = i % Math.ceil(B.length / cb);
    const as = A.slice(ba * ca, ba * ca + ca);
    const bs = B.slice(bb * cb, bb * cb + cb);
    const data = new Float64Array(as.length * bs.length);
    as.forEach((x, k) => bs.forEach((y, j) => (data[k * bs.length + j] = 10 * x + y)));
    writes.push({ chunk: i, kind: KIND_F64, points: Uint32Array.from(range(data.length)), offsets: new Uint32Array(0), data: buf(data), dict: Buffer.alloc(0) });
  }
  plan.writeBatch(core.store, core.idBytes, writes);
}

test('chunk keys start with the order of their first values; the digest part is the plain key', (t) => {
  const A = range(40);
  const B = [0, 1, 2];
  const cache = ChunkCache.open({ root: tempRoot(t), params: { keys: 1 }, axisValues: { a: A, b: B }, chunkSpec: { a: 1, b: 3 } });
  const plan = cache._core.grid.plan([null, null]);
  const keys = range(40).map((i) => plan.chunkKey(i));
  // Grid order is key order: records of neighbouring chunks share LMDB pages.
  for (let i = 1; i < keys.length; i++) t.true(Buffer.compare(keys[i - 1]!, keys[i]!) < 0, `key ${i} sorts after key ${i - 1}`);
  const plain = new native.BindingGrid(['a', 'b'], [hashesOf(A), hashesOf(B)], [1, 3]).plan([null, null]);
  for (const i of [0, 7, 39]) {
    t.deepEqual(keys[i]!.subarray(6), plain.chunkKey(i).subarray(6));
    t.notDeepEqual(keys[i]!.subarray(0, 6), plain.chunkKey(i).subarray(0, 6));
  }
  // Numbered names follow their numbers too.
  const names = range(300).map((i) => `sample_${String(i).padStart(6, '0')}`);
  const named = ChunkCache.open({ root: tempRoot(t), params: { keys: 3 }, axisValues: { s: names }, chunkSpec: { s: 1 } })._core.grid.plan([null]);
  for (let i = 1; i < 300; i++) t.true(Buffer.compare(named.chunkKey(i - 1), named.chunkKey(i)) < 0, `name key ${i} sorts after ${i - 1}`);
  // keyOf gives a record layout's grid the record's own prefix.
  const keyed = new native.BindingGrid(['a', 'b'], [hashesOf([7]), hashesOf(B)], [1, 3], undefined, keys[7]).plan([null, null]);
  t.deepEqual(keyed.chunkKey(0), keys[7]);
  t.throws(() => new native.BindingGrid(['a'], [hashesOf([1])], [1], undefined, Buffer.alloc(3)), { message: /keyOf must be a 16-byte chunk key/ });
  t.throws(() => new native.BindingGrid(['a'], [hashesOf([1, 2])], [1], [Buffer.alloc(4)]), { message: /one key per axis value/ });
});

test('records stored under plain keys are read, extended and invalidated', async (t) => {
  const root = tempRoot(t);
  const A = range(12);
  const B = [0, 1];
  const open = (a: number[]) => ChunkCache.open({ root, params: { keys: 2 }, axisValues: { a, b: B }, chunkSpec: { a: 4, b: 2 } });
  writeUnderPlainKeys(open(A), A, B, 4, 2);
  const expected = (a: number[]) => Float64Array.from(a.flatMap((x) => B.map((y) => 10 * x + y)));

  // Warm: every point comes from the plain-key records.
  const f = counted();
  const warm = await run(open(A), f.fn);
  t.is(f.computed(), 0);
  t.is(warm.diagnostics.cachedPoints, 24);
  t.deepEqual(warm.output, expected(A));

  // Extended: only the new bin is computed; a subset reads the old records.
  const ext = range(16);
  const g = counted();
  const r = await run(open(ext), g.fn);
  t.is(g.computed(), 8);
  t.deepEqual(r.output, expected(ext));
  const sub = await run(open(ext).select({ indices: { a: { step: 3 } } }), counted().fn);
  t.is(sub.diagnostics.executedPoints, 0);

  // Invalidating part of an old record keeps its other points.
  const gone = open(ext).select({ values: { a: [1, 2] } }).invalidate();
  t.is(gone.points, 4);
  const h = counted();
  const again = await run(open(ext), h.fn);
  t.is(h.computed(), 4, 'only the invalidated points are recomputed');
  t.deepEqual(again.output, expected(ext));
});
