/**
 * Direct round trips through the native binding (no TS cache layer): store
 * handles, metadata, value hashing, planning, resolving, reading and writing
 * items and typed records (complete and partial), the async forms, error
 * codes, descriptors, verification and planted corruption. The last test goes
 * through the public API and counts binding crossings per chunk.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { native, type BindingPlan, type BindingStore, type BindingChunkData } from '../ts/binding/native.js';
import { encodeCanonical } from '../ts/canonical/encode.js';
import { ChunkCache, run, pointwise } from '../ts/index.js';
import { AxisBins } from '../ts/cache/geometry.js';

// ---------------------------------------------------------------------------
// Helpers

function tempRoot(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'cm-binding-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

const buf = (u: ArrayBufferView): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength);
const u32 = (a: number[]): Uint32Array => Uint32Array.from(a);
const none = new Uint32Array(0);

/** A 16-byte cache id derived from a label. */
const idOf = (label: string): Buffer => native.canonicalId(buf(encodeCanonical({ label })));

/** u64 LE value hashes of a list of values. */
const hashesOf = (values: unknown[]): Buffer => native.hashValues(Buffer.concat(values.map((v) => buf(encodeCanonical(v)))));

const X = Array.from({ length: 10 }, (_, i) => i * 0.5);
const Y = ['a', 'b', 'c'];

/** Grid x[10] (chunk 4: bins of 4, 4, 2) by y[3] (one bin): three chunks of 12, 12 and 6 points. */
function grid() {
  return new native.BindingGrid(['x', 'y'], [hashesOf(X), hashesOf(Y)], [4, 3]);
}

/** Items payload of a set of points: one small byte string per point. */
function items(labels: string[]): { offsets: Uint32Array; data: Buffer } {
  const parts = labels.map((s) => Buffer.from(s, 'utf8'));
  const offsets = new Uint32Array(parts.length + 1);
  for (let i = 0; i < parts.length; i++) offsets[i + 1] = offsets[i]! + parts[i]!.length;
  return { offsets, data: Buffer.concat(parts) };
}

/** Decodes an items read into a list with `null` for absent points. */
function itemsOf(rd: BindingChunkData): (string | null)[] {
  const out: (string | null)[] = [];
  let w = 0;
  for (let j = 0; j < rd.present.length; j++) {
    if (rd.present[j]) {
      out.push(rd.data.subarray(rd.offsets[w]!, rd.offsets[w + 1]!).toString('utf8'));
      w++;
    } else out.push(null);
  }
  return out;
}

/** Decodes a f64 read into a list with `null` for absent points. */
function f64Of(rd: BindingChunkData): (number | null)[] {
  const out: (number | null)[] = [];
  let w = 0;
  for (let j = 0; j < rd.present.length; j++) out.push(rd.present[j] ? rd.data.readDoubleLE(8 * w++) : null);
  return out;
}

const label = (chunk: number, p: number): string => `c${chunk}p${p}`;
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Asserts that `fn` throws (sync) an error whose message starts with `code`. */
/** Binding errors carry their stable code as `code`, never inside the message. */
function throwsCode(t: ExecutionContext, fn: () => unknown, code: string): Error & { code?: string } {
  const e = t.throws(fn) as Error & { code?: string };
  t.truthy(e);
  t.is(e.code, code, e.message);
  t.false(e.message.startsWith('ERR_'), e.message);
  return e;
}

async function rejectsCode(t: ExecutionContext, fn: () => Promise<unknown>, code: string): Promise<void> {
  const e = (await t.throwsAsync(async () => fn())) as Error & { code?: string };
  t.truthy(e);
  t.is(e.code, code, e.message);
  t.false(e.message.startsWith('ERR_'), e.message);
}

function writeItems(plan: BindingPlan, store: BindingStore, id: Buffer, chunk: number, points: number[]): void {
  const { offsets, data } = items(points.map((p) => label(chunk, p)));
  plan.write(store, id, chunk, 0, Uint32Array.from(points), offsets, data);
}

// ---------------------------------------------------------------------------
// Store and metadata

test('BindingStore.open twice on one path works and both handles see the same data', (t) => {
  const root = tempRoot(t);
  const a = native.BindingStore.open(root);
  const b = native.BindingStore.open(root);
  const c = native.BindingStore.open(join(root, '.', '')); // same directory, another spelling
  t.is(a.path, b.path);
  t.is(a.path, c.path);
  const id = idOf('m');
  a.putMeta(id, Buffer.from('hello'));
  t.deepEqual(b.getMeta(id), Buffer.from('hello'));
  t.deepEqual(c.getMeta(id), Buffer.from('hello'));
});

test('putMeta / getMeta / listMeta', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id1 = idOf('one');
  const id2 = idOf('two');
  t.is(store.getMeta(id1), null);
  t.deepEqual(store.listMeta(), []);
  store.putMeta(id1, Buffer.from([1, 2, 3]));
  store.putMeta(id2, Buffer.from('second'));
  store.putMeta(id1, Buffer.from([9])); // overwrite
  t.deepEqual(store.getMeta(id1), Buffer.from([9]));
  const list = store.listMeta().map((e) => [e.id.toString('hex'), e.blob.toString('hex')]).sort();
  t.deepEqual(list, [[id1.toString('hex'), '09'], [id2.toString('hex'), Buffer.from('second').toString('hex')]].sort());
  throwsCode(t, () => store.getMeta(Buffer.alloc(5)), 'ERR_INVALID_ARGUMENT');
});

test('hashValues: 8 bytes per value of a concatenation; equal values give equal hashes', (t) => {
  const values = [1, 'a', null, { k: [1, 2] }, 1, 2.5, 'a', new Float64Array([1, 2]), { k: [1, 2] }];
  const h = native.hashValues(Buffer.concat(values.map((v) => buf(encodeCanonical(v)))));
  t.is(h.length, 8 * values.length);
  const at = (i: number): string => h.subarray(8 * i, 8 * i + 8).toString('hex');
  t.is(at(0), at(4)); // 1 and 1
  t.is(at(1), at(6)); // 'a' and 'a'
  t.is(at(3), at(8)); // equal objects
  const distinct = new Set([0, 1, 2, 3, 5, 7].map(at));
  t.is(distinct.size, 6);
  // Hashing one value alone gives the same hash as inside a concatenation.
  t.is(native.hashValues(buf(encodeCanonical({ k: [1, 2] }))).toString('hex'), at(3));
  t.is(native.hashValues(Buffer.alloc(0)).length, 0);
  // A truncated encoding is refused.
  const e = t.throws(() => native.hashValues(buf(encodeCanonical('abc')).subarray(0, 4))) as Error & { code?: string };
  t.true(e.code?.startsWith('ERR_'), e.message);
});

// ---------------------------------------------------------------------------
// Plans, reads and writes

test('grid and plan geometry', (t) => {
  const g = grid();
  t.is(g.chunkCount, 3);
  const plan = g.plan([null, null]);
  t.is(plan.chunkCount, 3);
  t.deepEqual(plan.shape, [10, 3]);
  // Whole axes list nothing per bin; AxisBins answers from values and chunk size.
  const d = plan.describe();
  t.like(d[0], { whole: true, values: 10, chunk: 4 });
  t.is(d[0]!.bin.length, 0);
  const x = new AxisBins(d[0]!);
  t.is(x.count, 3);
  t.deepEqual([0, 1, 2].map((b) => [x.bin(b), x.start(b), x.selPos(b), x.selCount(b), [...x.sel(b)]]), [
    [0, 0, 0, 4, [0, 1, 2, 3]],
    [1, 4, 4, 4, [0, 1, 2, 3]],
    [2, 8, 8, 2, [0, 1]],
  ]);
  t.is(new AxisBins(d[1]!).count, 1);
  t.is(plan.chunkKey(0).length, 16);
  t.not(plan.chunkKey(0).toString('hex'), plan.chunkKey(1).toString('hex'));
  // A selection touching bins 0 and 2 only.
  const sub = g.plan([Uint32Array.of(1, 9), Uint32Array.of(2)]);
  t.is(sub.chunkCount, 2);
  t.deepEqual(sub.shape, [2, 1]);
  const sd = sub.describe()[0]!;
  t.false(sd.whole);
  t.deepEqual(Array.from(sd.bin), [0, 2]);
  const sx = new AxisBins(sd);
  t.deepEqual([0, 1].map((b) => [sx.bin(b), sx.start(b), sx.selPos(b), sx.selCount(b), [...sx.sel(b)]]), [
    [0, 0, 0, 1, [1]],
    [2, 8, 1, 1, [1]],
  ]);
  t.is(sub.chunkKey(1).toString('hex'), plan.chunkKey(2).toString('hex'));
  const dup = throwsCode(t, () => new native.BindingGrid(['x'], [hashesOf([7, 1, 1])], [1]), 'ERR_DUPLICATE_AXIS_VALUE');
  t.like(dup, { axis: 'x', first: 1, second: 2 });
  throwsCode(t, () => new native.BindingGrid(['x'], [hashesOf([1, 2])], [0]), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => new native.BindingGrid(['x', 'y'], [hashesOf([1, 2])], [1]), 'ERR_INVALID_ARGUMENT');
});

test('items (kind 0): complete and partial chunks round trip with presence flags and offsets', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('items');
  const plan = grid().plan([null, null]);
  t.deepEqual(Array.from(plan.resolve(store, id).available), [0, 0, 0]);

  writeItems(plan, store, id, 0, range(12)); // complete
  writeItems(plan, store, id, 1, [0, 5, 7]); // partial
  const res = plan.resolve(store, id);
  t.deepEqual(Array.from(res.available), [12, 3, 0]);
  t.deepEqual(res.corrupt, []);

  const r0 = plan.read(store, id, 0);
  t.is(r0.kind, 0);
  t.deepEqual([...r0.present], Array(12).fill(1));
  t.is(r0.offsets.length, 13);
  t.deepEqual(itemsOf(r0), range(12).map((p) => label(0, p)));
  t.deepEqual(r0.corrupt, []);

  const r1 = plan.read(store, id, 1);
  t.deepEqual([...r1.present], range(12).map((p) => ([0, 5, 7].includes(p) ? 1 : 0)));
  t.is(r1.offsets.length, 4);
  t.deepEqual(itemsOf(r1), range(12).map((p) => ([0, 5, 7].includes(p) ? label(1, p) : null)));

  const r2 = plan.read(store, id, 2);
  t.deepEqual([...r2.present], Array(6).fill(0));
  t.is(r2.data.length, 0);

  // Missing points of the partial chunk, and presence.
  t.deepEqual([...plan.presence(store, id, 1)], [...r1.present]);
  const miss = plan.missing(store, id, 1);
  t.deepEqual([...miss.points].sort((a, b) => a - b), range(12).filter((p) => ![0, 5, 7].includes(p)));

  // Filling the partial chunk keeps the stored points and completes it;
  // points already stored are never overwritten.
  const { offsets, data } = items(range(12).map((p) => `new${p}`));
  plan.write(store, id, 1, 0, Uint32Array.from(range(12)), offsets, data);
  const full = itemsOf(plan.read(store, id, 1));
  t.deepEqual(full, range(12).map((p) => ([0, 5, 7].includes(p) ? label(1, p) : `new${p}`)));
  t.deepEqual(Array.from(plan.resolve(store, id).available), [12, 12, 0]);

  // A fresh plan of a subset reads just the requested points of a stored chunk.
  const sub = grid().plan([Uint32Array.of(1, 3, 9), Uint32Array.of(0, 2)]);
  t.deepEqual(Array.from(sub.resolve(store, id).available), [4, 0]);
  // x=1 and 3 are offsets 1 and 3 of bin 0; y=0 and 2: record positions 3, 5, 9, 11.
  t.deepEqual(itemsOf(sub.read(store, id, 0)), [label(0, 3), label(0, 5), label(0, 9), label(0, 11)]);
});

test('typed (kind 8 = f64): complete and partial chunks round trip as raw little-endian elements', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('typed');
  const plan = grid().plan([null, null]);
  const values = Float64Array.from(range(12), (p) => p * 1.25 - 3);
  plan.write(store, id, 0, 8, Uint32Array.from(range(12)), new Uint32Array(0), buf(values));
  const part = Float64Array.of(Math.PI, -0, 1e300);
  plan.write(store, id, 2, 8, Uint32Array.of(5, 0, 3), new Uint32Array(0), buf(part));
  t.deepEqual(Array.from(plan.resolve(store, id).available), [12, 0, 3]);

  const r0 = plan.read(store, id, 0);
  t.is(r0.kind, 8);
  t.is(r0.data.length, 12 * 8);
  t.is(r0.offsets.length, 0);
  t.deepEqual(f64Of(r0), Array.from(values));

  const r2 = plan.read(store, id, 2);
  t.is(r2.kind, 8);
  t.deepEqual([...r2.present], [1, 0, 0, 1, 0, 1]);
  t.is(r2.data.length, 3 * 8);
  const got = f64Of(r2);
  // Points 5, 0, 3 were given in that order with PI, -0, 1e300.
  t.deepEqual(got, [-0, null, null, 1e300, null, Math.PI]);
  t.true(Object.is(got[0], -0));

  // Changing the kind of a stored chunk is refused with a clear code.
  throwsCode(t, () => writeItems(plan, store, id, 0, [0]), 'ERR_INVALID_ARGUMENT');
});

test('writeFlat stores a range of a flat batch (items with offsets and a dictionary, typed raw) like writeBatch; bad arrays are refused', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('flat');
  const plan = grid().plan([null, null]);
  // Chunk 0: items points 0..2 (no dictionary); chunk 2: typed f64 points 4, 5; chunk 1: items 7, 8 with a dictionary.
  const a = items([label(0, 0), label(0, 1), label(0, 2)]);
  const c = items([label(1, 7), label(1, 8)]);
  const f = buf(Float64Array.of(4.5, 5.5));
  // The typed chunk's bytes come as a buffer of their own (part 1); the items share part 0.
  const data = Buffer.concat([a.data, c.data]);
  const dict = Buffer.from([0x90]);
  const args = (from: number, to: number): Parameters<typeof plan.writeFlat> =>
    [store, id, Uint32Array.of(0, 2, 1), Uint8Array.of(0, 8, 0), Uint32Array.of(3, 5, 7), Uint8Array.of(0, 0, 0), Uint32Array.of(0, 1, 2, 4, 5, 7, 8),
      Uint32Array.from([...a.offsets, ...c.offsets]), Uint32Array.of(0, 1, 0), Uint32Array.of(a.data.length, 16, data.length), [data, f], Uint32Array.of(0, 0, 1), [dict], from, to];
  // Only chunks 1..3 of the batch (plan chunks 2 and 1): chunk 0 stays unwritten.
  plan.writeFlat(...args(1, 3));
  t.deepEqual(Array.from(grid().plan([null, null]).resolve(store, id).available), [0, 2, 2]);
  plan.writeFlat(...args(0, 1));
  const reader = grid().plan([null, null]);
  t.deepEqual(Array.from(reader.resolve(store, id).available), [3, 2, 2]);
  t.deepEqual(itemsOf(reader.read(store, id, 0)).slice(0, 4), [label(0, 0), label(0, 1), label(0, 2), null]);
  const one = reader.read(store, id, 1);
  t.deepEqual(itemsOf(one).slice(6, 9), [null, label(1, 7), label(1, 8)]);
  t.deepEqual(one.dicts, [dict]);
  const typed = reader.read(store, id, 2);
  t.deepEqual([...new Float64Array(Uint8Array.from(typed.data).buffer)], [4.5, 5.5]);
  // Arrays that disagree, a range outside them, ends past the data: ERR_INVALID_ARGUMENT, nothing written.
  const bad: unknown[] = args(0, 3);
  throwsCode(t, () => plan.writeFlat(...(bad.map((x, k) => (k === 3 ? Uint8Array.of(0) : x)) as unknown as Parameters<typeof plan.writeFlat>)), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => plan.writeFlat(...(bad.map((x, k) => (k === 14 ? 4 : x)) as unknown as Parameters<typeof plan.writeFlat>)), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => plan.writeFlat(...(bad.map((x, k) => (k === 9 ? Uint32Array.of(1, 2, 9999) : x)) as unknown as Parameters<typeof plan.writeFlat>)), 'ERR_INVALID_ARGUMENT');
});

test('writeFlat takes whole chunks without point lists (in record order, or a selection merged by request order); bad whole flags are refused', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('flat-whole');
  const plan = grid().plan([null, null]);
  // Plan chunks 0 (4 x 3 points) and 2 (2 x 3), whole: no points listed.
  const f0 = Float64Array.from({ length: 12 }, (_, k) => k + 0.5);
  const f2 = Float64Array.from({ length: 6 }, (_, k) => 100 + k);
  type Args = Parameters<typeof plan.writeFlat>;
  const whole = (chunks: number[], parts: Float64Array[], flags = chunks.map(() => 1), listed: number[] = []): Args => [
    store, id, Uint32Array.from(chunks), Uint8Array.from(chunks.map(() => 8)), Uint32Array.from(chunks.map(() => listed.length)), Uint8Array.from(flags),
    Uint32Array.from(listed), new Uint32Array(0), Uint32Array.from(parts.map((_, k) => k + 1)), Uint32Array.from(parts.map((f) => f.byteLength)),
    [Buffer.alloc(0), ...parts.map(buf)], Uint32Array.from(chunks.map(() => 0)), [], 0, chunks.length,
  ];
  plan.writeFlat(...whole([0, 2], [f0, f2]));
  const reader = grid().plan([null, null]);
  t.deepEqual(Array.from(reader.resolve(store, id).available), [12, 0, 6]);
  const valuesOf = (d: { data: Buffer }): number[] => [...new Float64Array(Uint8Array.from(d.data).buffer)];
  t.deepEqual(valuesOf(reader.read(store, id, 0)), [...f0]);
  t.deepEqual(valuesOf(reader.read(store, id, 2)), [...f2]);
  // A selection (x 1, 3 of the first bin, y 0, 2): its four points in request order land at record positions 3, 5, 9, 11.
  const sub = grid().plan([Uint32Array.of(1, 3, 9), Uint32Array.of(0, 2)]);
  const id2 = idOf('flat-whole-sub');
  sub.writeFlat(...(whole([0], [Float64Array.of(1, 2, 3, 4)]).map((x, k) => (k === 1 ? id2 : x)) as Args));
  const got = grid().plan([null, null]).read(store, id2, 0);
  t.deepEqual(Array.from(got.present).flatMap((p, k) => (p ? [k] : [])), [3, 5, 9, 11]);
  t.deepEqual(valuesOf(got), [1, 2, 3, 4]);
  // A whole chunk with points listed, a flag other than 0 or 1, or bytes for another count: refused, nothing written.
  const fresh = grid().plan([null, null]);
  throwsCode(t, () => fresh.writeFlat(...whole([1], [f0], [1], [0])), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => fresh.writeFlat(...whole([1], [f0], [2])), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => fresh.writeFlat(...whole([1], [f2])), 'ERR_INVALID_ARGUMENT');
  t.is(grid().plan([null, null]).resolve(store, id).available[1], 0);
});

test('writeBatch writes several chunks in one call; readMany reads them in one call and agrees with read', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('batch');
  const plan = grid().plan([null, null]);
  const payloads: [number, number[]][] = [[0, range(12)], [1, [11, 1, 2]]];
  plan.writeBatch(
    store,
    id,
    payloads.map(([chunk, pts]) => ({ chunk, kind: 0, points: Uint32Array.from(pts), ...items(pts.map((p) => label(chunk, p))) })),
  );
  const idT = idOf('batch-typed');
  plan.writeBatch(store, idT, [{ chunk: 2, kind: 8, points: Uint32Array.of(0, 1, 2), offsets: new Uint32Array(0), data: buf(Float64Array.of(1, 2, 3)) }]);

  const reader = grid().plan([null, null]);
  t.deepEqual(Array.from(reader.resolve(store, id).available), [12, 3, 0]);
  const b = reader.readMany(store, id, Uint32Array.of(0, 1, 2));
  t.deepEqual([...b.counts], [12, 3, 0]);
  t.deepEqual(b.corrupt, []);
  // Per chunk: its bytes, and its present flags when some points are
  // missing (chunk 0 has every point: no flags).
  let at = 0;
  for (const i of [0, 1, 2]) {
    const one = reader.read(store, id, i);
    if (b.counts[i]! < one.present.length) {
      t.deepEqual([...b.present.subarray(at, at + one.present.length)], [...one.present]);
      at += one.present.length;
    }
    t.deepEqual(b.data.subarray(b.starts[i]!, b.starts[i + 1]!), one.data);
    if (b.counts[i]! > 0) t.is(b.kinds[i], 0);
  }
  t.is(at, b.present.length);
  t.is(at, 12 + reader.read(store, id, 2).present.length);
  // One dictionary at most: each chunk's bytes decode as one msgpack
  // sequence, so there are no offsets or per-point dictionaries.
  t.true(b.dicts.length <= 1);
  t.is(b.offsets.length + b.pointDicts.length, 0);
  t.false(b.inScratch);
  // Into the caller's scratch: the same bytes there, none in data; a scratch
  // too small leaves them in data.
  const scratch = Buffer.alloc(4096, 0xee);
  const s = reader.readMany(store, id, Uint32Array.of(0, 1, 2), undefined, undefined, scratch);
  t.true(s.inScratch);
  t.is(s.data.length, 0);
  t.deepEqual(scratch.subarray(0, s.starts[3]!), b.data);
  t.deepEqual([...s.starts], [...b.starts]);
  const small = reader.readMany(store, id, Uint32Array.of(0, 1, 2), undefined, undefined, Buffer.alloc(8));
  t.false(small.inScratch);
  t.deepEqual(small.data, b.data);
  // Two dictionaries in one batch: count+1 offsets per items chunk and each
  // point's dictionary, as the one-chunk reads give them.
  const idD = idOf('batch-dicts');
  plan.writeBatch(store, idD, [
    { chunk: 0, kind: 0, points: Uint32Array.from(range(12)), ...items(range(12).map((p) => label(0, p))), dict: Buffer.from('dict A') },
    { chunk: 1, kind: 0, points: Uint32Array.of(4, 5), ...items([label(1, 4), label(1, 5)]), dict: Buffer.from('dict B') },
  ]);
  const d = grid().plan([null, null]).readMany(store, idD, Uint32Array.of(0, 1), undefined, undefined, scratch);
  t.deepEqual(d.dicts.map(String), ['dict A', 'dict B']);
  t.deepEqual([...d.offsets], [...reader.read(store, idD, 0).offsets, ...reader.read(store, idD, 1).offsets]);
  t.deepEqual([...d.pointDicts], [...Array(12).fill(0), 1, 1]);
  t.true(d.inScratch);
  t.deepEqual(itemsOf(reader.read(store, id, 1)), range(12).map((p) => ([1, 2, 11].includes(p) ? label(1, p) : null)));
  // A typed chunk: raw elements, no offsets.
  const typed = grid().plan([null, null]).readMany(store, idT, Uint32Array.of(2));
  t.deepEqual([...typed.kinds, ...typed.counts], [8, 3]);
  t.deepEqual([...new Float64Array(typed.data.buffer.slice(typed.data.byteOffset, typed.data.byteOffset + 24))], [1, 2, 3]);
  t.is(typed.offsets.length, 0);
  // Typed bytes never go to the scratch (JS views them in place).
  const typedScratch = grid().plan([null, null]).readMany(store, idT, Uint32Array.of(2), undefined, undefined, scratch);
  t.false(typedScratch.inScratch);
  t.deepEqual(typedScratch.data, typed.data);
});

test('errors carry their stable code as `code`', async (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('errors');
  const plan = grid().plan([null, null]);
  // Chunk index out of range.
  throwsCode(t, () => plan.read(store, id, 3), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => plan.write(store, id, 99, 8, Uint32Array.of(0), none, Buffer.alloc(8)), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => plan.chunkKey(3), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => plan.presence(store, id, 7), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => plan.readMany(store, id, Uint32Array.of(0, 3)), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => plan.writeBatch(store, id, [{ chunk: 3, kind: 8, points: Uint32Array.of(0), offsets: none, data: Buffer.alloc(8) }]), 'ERR_INVALID_ARGUMENT');
  // Bad typed data length.
  throwsCode(t, () => plan.write(store, id, 0, 8, Uint32Array.of(0, 1), none, Buffer.alloc(15)), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => plan.writeBatch(store, id, [{ chunk: 0, kind: 8, points: Uint32Array.of(0, 1), offsets: none, data: Buffer.alloc(7) }]), 'ERR_INVALID_ARGUMENT');
  // Point index out of the chunk.
  throwsCode(t, () => plan.write(store, id, 2, 8, Uint32Array.of(6), none, Buffer.alloc(8)), 'ERR_INVALID_ARGUMENT');
  // Unknown kind.
  throwsCode(t, () => plan.write(store, id, 0, 42, Uint32Array.of(0), none, Buffer.alloc(8)), 'ERR_INVALID_ARGUMENT');
  // Item offsets that do not match.
  throwsCode(t, () => plan.write(store, id, 0, 0, Uint32Array.of(0, 1), Uint32Array.of(0, 3), Buffer.alloc(3)), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => plan.write(store, id, 0, 0, Uint32Array.of(0, 1), Uint32Array.of(0, 4, 3), Buffer.alloc(3)), 'ERR_INVALID_ARGUMENT');
  // Wrong id length.
  throwsCode(t, () => plan.resolve(store, Buffer.alloc(3)), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => plan.readMany(store, Buffer.alloc(17), Uint32Array.of(0)), 'ERR_INVALID_ARGUMENT');
  // The async call (importSpool) rejects with the code; a bad argument throws at once.
  await rejectsCode(t, () => store.importSpool([], join(store.path, 'no-such-spool')), 'ERR_INVALID_ARGUMENT');
  throwsCode(t, () => store.importSpool([{ id: Buffer.alloc(3) }], 'x'), 'ERR_INVALID_ARGUMENT');
  // Nothing was stored by the failed calls.
  t.deepEqual(store.descriptors(id), []);
  t.deepEqual(Array.from(plan.resolve(store, id).available), [0, 0, 0]);
});

test('descriptors list records with n / present / bytes; verify on a clean store is empty; deleteCache removes records', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('desc');
  const other = idOf('other');
  const plan = grid().plan([null, null]);
  writeItems(plan, store, id, 0, range(12));
  writeItems(plan, store, id, 2, [1, 2]);
  writeItems(plan, store, other, 1, [0]);
  store.putMeta(id, Buffer.from('meta'));
  const descs = store.descriptors(id);
  t.is(descs.length, 2);
  const byKey = new Map(descs.map((d) => [d.chunk.toString('hex'), d]));
  const d0 = byKey.get(plan.chunkKey(0).toString('hex'))!;
  const d2 = byKey.get(plan.chunkKey(2).toString('hex'))!;
  t.truthy(d0);
  t.truthy(d2);
  t.is(d0.n, 12);
  t.is(d0.present, 12);
  t.is(d2.n, 6);
  t.is(d2.present, 2);
  t.is(d0.bytes, store.getRecord(id, d0.chunk)!.length);
  t.is(d2.bytes, store.getRecord(id, d2.chunk)!.length);
  t.deepEqual(d0.axes.map((a) => a.name), ['x', 'y']);
  t.deepEqual(d0.axes[0]!.hashes, hashesOf(X.slice(0, 4)));
  t.deepEqual(d2.axes[0]!.hashes, hashesOf(X.slice(8)));
  t.deepEqual(d0.axes[1]!.hashes, hashesOf(Y));
  t.true(d0.updatedMs > 0);
  t.deepEqual(store.verify(id), []);
  t.deepEqual(store.verify(other), []);
  t.true(store.diskBytes() > 0);

  t.is(store.deleteCache(id), 2);
  t.deepEqual(store.descriptors(id), []);
  t.is(store.getMeta(id), null);
  t.is(store.getRecord(id, d0.chunk), null);
  t.deepEqual(Array.from(plan.resolve(store, id).available), [0, 0, 0]);
  t.deepEqual([...plan.read(store, id, 0).present], Array(12).fill(0));
  // The other cache is untouched.
  t.is(store.descriptors(other).length, 1);
  t.deepEqual(Array.from(plan.resolve(store, other).available), [0, 1, 0]);
  t.is(store.deleteCache(id), 0);
});

/** Flips one byte in the data area of a stored record (checksum no longer matches). */
function corrupt(store: BindingStore, id: Buffer, key: Buffer): void {
  const raw = Buffer.from(store.getRecord(id, key)!);
  raw[raw.length - 12] ^= 0x5a;
  store.putRawRecordForTests(id, key, raw);
}

test('a corrupt partial record is reported by verify() and resolve().corrupt and counts as missing', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('corrupt-partial');
  const plan = grid().plan([null, null]);
  writeItems(plan, store, id, 0, range(12));
  writeItems(plan, store, id, 1, [2, 3, 4]);
  const key = plan.chunkKey(1);
  corrupt(store, id, key);

  const bad = store.verify(id);
  t.is(bad.length, 1);
  t.is(bad[0]!.chunk.toString('hex'), key.toString('hex'));
  t.regex(bad[0]!.reason, /checksum/);

  const res = plan.resolve(store, id);
  t.deepEqual(Array.from(res.available), [12, 0, 0]);
  t.is(res.corrupt.length, 1);
  t.true(res.corrupt[0]!.startsWith(key.toString('hex')), res.corrupt[0]);
  const rd = plan.read(store, id, 1);
  t.deepEqual([...rd.present], Array(12).fill(0));
  t.is(rd.data.length, 0);
  t.deepEqual(plan.missing(store, id, 1).points.length, 12);
  // The good record is unaffected.
  t.deepEqual(itemsOf(plan.read(store, id, 0)), range(12).map((p) => label(0, p)));

  // Writing the chunk again replaces the corrupt record with a valid one.
  writeItems(plan, store, id, 1, range(12));
  t.deepEqual(store.verify(id), []);
  t.deepEqual(itemsOf(plan.read(store, id, 1)), range(12).map((p) => label(1, p)));
});

test('a corrupt complete record is reported by verify() and resolve().corrupt and counts as missing', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('corrupt-complete');
  const plan = grid().plan([null, null]);
  for (const c of [0, 1, 2]) writeItems(plan, store, id, c, range(c === 2 ? 6 : 12));
  const key = plan.chunkKey(1);
  corrupt(store, id, key);

  const bad = store.verify(id);
  t.deepEqual(bad.map((b) => b.chunk.toString('hex')), [key.toString('hex')]);

  const fresh = grid().plan([null, null]);
  const res = fresh.resolve(store, id);
  t.deepEqual(Array.from(res.available), [12, 0, 6]);
  t.is(res.corrupt.length, 1);
  t.true(res.corrupt[0]!.startsWith(key.toString('hex')));
  const rd = fresh.read(store, id, 1);
  t.deepEqual([...rd.present], Array(12).fill(0));
  t.is(rd.data.length, 0);
  t.is(fresh.missing(store, id, 1).points.length, 12);
  t.deepEqual([...fresh.presence(store, id, 1)], Array(12).fill(0));
});

test('a truncated record is never returned as data', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('truncated');
  const plan = grid().plan([null, null]);
  plan.write(store, id, 2, 8, Uint32Array.from(range(6)), new Uint32Array(0), buf(Float64Array.from(range(6))));
  const key = plan.chunkKey(2);
  store.putRawRecordForTests(id, key, store.getRecord(id, key)!.subarray(0, 20));
  t.is(store.verify(id).length, 1);
  const fresh = grid().plan([null, null]);
  const res = fresh.resolve(store, id);
  t.is(res.available[2], 0);
  t.is(res.corrupt.length, 1);
  const rd = fresh.read(store, id, 2);
  t.deepEqual([...rd.present], Array(6).fill(0));
  t.is(rd.data.length, 0);
});

test.serial('the public API crosses the binding once per chunk or batch, not per point', async (t) => {
  const root = tempRoot(t);
  type M = 'read' | 'readMany' | 'resolve' | 'write' | 'writeBatch' | 'writeFlat' | 'writeFlatBehind';
  const proto = native.BindingPlan.prototype as unknown as Record<M, (...a: unknown[]) => unknown>;
  const counts = { read: 0, readMany: 0, resolve: 0, gathering: 0, chunksRead: 0, write: 0, writeBatch: 0, writeFlat: 0, writeFlatBehind: 0, chunksWritten: 0 };
  const orig = { read: proto.read, readMany: proto.readMany, resolve: proto.resolve, write: proto.write, writeBatch: proto.writeBatch, writeFlat: proto.writeFlat, writeFlatBehind: proto.writeFlatBehind };
  for (const m of ['read', 'readMany', 'resolve', 'write', 'writeBatch', 'writeFlat', 'writeFlatBehind'] as const) {
    proto[m] = function (this: unknown, ...a: unknown[]) {
      counts[m]++;
      if (m === 'read') counts.chunksRead++;
      if (m === 'readMany') counts.chunksRead += (a[2] as Uint32Array).length;
      if (m === 'write') counts.chunksWritten++;
      if (m === 'writeBatch') counts.chunksWritten += (a[2] as unknown[]).length;
      if (m === 'writeFlat' || m === 'writeFlatBehind') counts.chunksWritten += (a[14] as number) - (a[13] as number);
      const r = orig[m].apply(this, a);
      if (m === 'resolve') {
        // A resolution that copied whole chunks into the run's output read them.
        const gathered = (r as { gathered: Uint8Array }).gathered.reduce((n, g) => n + g, 0);
        counts.chunksRead += gathered;
        if (gathered > 0) counts.gathering++;
      }
      return r;
    };
  }
  t.teardown(() => {
    Object.assign(proto, orig);
  });
  const crossings = () => counts.write + counts.writeBatch + counts.writeFlat + counts.writeFlatBehind;
  const readCrossings = () => counts.read + counts.readMany + counts.gathering;
  const nChunks = 5;
  const size = 10_000;
  const open = () =>
    ChunkCache.open({ root, params: { test: 'crossings' }, axisValues: { x: range(nChunks * size) }, chunkSpec: { x: size } });
  // A chunk function returning typed outputs, and a point function returning objects.
  const typed = async (_p: unknown, axes: Record<string, unknown[]>) => Float64Array.from(axes.x as number[], (x) => x * 2);
  const first = await run(open(), typed);
  t.is(first.diagnostics.executedPoints, nChunks * size);
  // Each chunk is written once, in batches of one or more chunks per call.
  t.is(counts.chunksWritten, nChunks);
  t.true(crossings() >= 1 && crossings() <= nChunks);
  t.is(counts.chunksRead, 0);
  const second = await run(open(), typed);
  t.is(second.diagnostics.cachedPoints, nChunks * size);
  // Each stored chunk is read once, alone or in a batch of chunks per call.
  t.is(counts.chunksRead, nChunks);
  t.true(readCrossings() >= 1 && readCrossings() <= nChunks);
  t.is(counts.chunksWritten, nChunks);
  const out = second.output as ArrayLike<number>;
  t.is(out.length, nChunks * size);
  t.is(out[12_345], 24_690);

  counts.read = 0;
  counts.readMany = 0;
  counts.gathering = 0;
  counts.chunksRead = 0;
  counts.write = 0;
  counts.writeBatch = 0;
  counts.writeFlat = 0;
  counts.writeFlatBehind = 0;
  counts.chunksWritten = 0;
  const objs = () =>
    ChunkCache.open({ root, params: { test: 'objects' }, axisValues: { x: range(3 * size) }, chunkSpec: { x: size } });
  const f = pointwise((_p, { x }) => ({ x, sq: (x as number) ** 2 }));
  await run(objs(), f);
  t.is(counts.chunksWritten, 3);
  t.true(crossings() >= 1 && crossings() <= 3);
  const again = await run(objs(), f);
  t.is(counts.chunksRead, 3);
  t.true(readCrossings() >= 1 && readCrossings() <= 3);
  t.is(counts.chunksWritten, 3);
  t.deepEqual((again.output as unknown[])[20_001], { x: 20_001, sq: 20_001 ** 2 });
});

test('through the public API a corrupt record is recomputed, never returned', async (t) => {
  const root = tempRoot(t);
  const cache = ChunkCache.open({ root, params: { test: 'corrupt-run' }, axisValues: { x: range(30) }, chunkSpec: { x: 10 } });
  const calls: number[] = [];
  const f = pointwise((_p, { x }) => {
    calls.push(x as number);
    return { x, half: (x as number) / 2 };
  });
  await run(cache, f);
  const core = cache._core;
  const plan = core.grid.plan([null]);
  corrupt(core.store, core.idBytes, plan.chunkKey(1));
  t.is(core.store.verify(core.idBytes).length, 1);
  t.is(cache.status().cachedPoints, 20);
  calls.length = 0;
  const { output, diagnostics } = await run(cache, f);
  t.deepEqual(calls, range(10).map((i) => 10 + i));
  t.is(diagnostics.executedPoints, 10);
  t.is(diagnostics.cachedPoints, 20);
  t.true(diagnostics.corruptRecords.length >= 1);
  t.deepEqual(output, range(30).map((x) => ({ x, half: x / 2 })));
  t.deepEqual(core.store.verify(core.idBytes), []);
});

test('store calls: metadata, records, descriptors, verify, access times, deletion', (t) => {
  const root = tempRoot(t);
  const store = native.BindingStore.open(root);
  const id = idOf('store-calls');
  store.putMeta(id, Buffer.from('meta'));
  t.deepEqual(store.getMeta(id), Buffer.from('meta'));
  t.is(store.getMeta(idOf('absent')), null);
  t.deepEqual(native.BindingStore.open(root).listMeta().map((e) => e.id.toString('hex')), [id.toString('hex')]);
  const g = grid();
  const plan = g.plan([null, null]);
  plan.resolve(store, id);
  const { offsets, data } = items(['p', 'q']);
  plan.write(store, id, 0, 0, Uint32Array.of(0, 1), offsets, data);
  plan.resolve(store, id);
  const m = plan.missing(store, id, 0);
  t.is(m.points.length + 2, plan.presence(store, id, 0).length);
  const descs = store.descriptors(id);
  t.deepEqual(descs.map((d) => d.present), [2]);
  const rec = store.getRecord(id, descs[0]!.chunk);
  t.truthy(rec);
  const other = idOf('store-copy');
  store.putRecord(other, descs[0]!, rec!);
  t.deepEqual(store.verify(other), []);
  t.deepEqual(store.getRecord(other, descs[0]!.chunk), rec);
  store.flushAccessTimes();
  t.true(Array.isArray(store.accessTimes(id)));
  store.deleteRecords(other, [descs[0]!.chunk]);
  t.deepEqual(store.descriptors(other), []);
  t.is(store.deleteCache(id), 1);
  t.deepEqual(store.descriptors(id), []);
});

test('claimFlat claims whole chunks without point lists, like listed ones; bad whole entries are refused', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('claim-whole');
  const plan = grid().plan([null, null]);
  // Session 1: chunk 0 whole (no points listed), chunk 1 by list.
  const a = plan.claimFlat(store, id, 1, u32([0, 1]), u32([0, 12]), u32(Array.from({ length: 12 }, (_, i) => i)), null, Uint8Array.from([1, 0]));
  t.deepEqual([...a.whole], [1, 1]);
  t.is(a.state.length, 0);
  t.is(store.claimCount(), 24);
  // Session 2 asks for chunk 0 whole and chunk 2 whole: chunk 0 is held
  // point by point (state in request order), chunk 2 is granted.
  writeItems(plan, store, id, 0, [0, 1]);
  const b = plan.claimFlat(store, id, 2, u32([0, 2]), u32([0, 0]), none, null, Uint8Array.from([1, 1]));
  t.deepEqual([...b.whole], [0, 1]);
  t.deepEqual([...b.state], [1, 1, ...Array(10).fill(2)]);
  t.deepEqual([...b.available], [2, 0]);
  // A whole entry with points listed, or a whole array of the wrong length.
  t.throws(() => plan.claimFlat(store, id, 3, u32([2]), u32([1]), u32([0]), null, Uint8Array.from([1])), { message: /claimed whole lists no points/ });
  t.throws(() => plan.claimFlat(store, id, 3, u32([2]), u32([0]), none, null, Uint8Array.from([1, 1])), { message: /one byte per chunk entry/ });
});

test('writeFlatBehind and claimFlatBehind run on the writer thread: a claim made once a write settled sees its points stored; errors come once from settle', (t) => {
  const store = native.BindingStore.open(tempRoot(t));
  const id = idOf('behind');
  const plan = grid().plan([null, null]);
  // Chunk 2 typed, points 4 and 5, queued behind; then a claim of chunk 2 whole by session 7.
  const f = buf(Float64Array.of(4.5, 5.5));
  const write = plan.writeFlatBehind(store, id, u32([2]), Uint8Array.of(8), u32([2]), Uint8Array.of(0), u32([4, 5]), none, u32([0]), u32([16]), [f], u32([0]), [], 0, 1);
  t.true(write.settle(true));
  t.true(write.settle(false));
  const claim = plan.claimFlatBehind(store, id, 7, u32([2]), u32([0]), none, null, Uint8Array.of(1));
  const answer = claim.settle(true)!;
  // The write's two points are stored (1), the others granted (0).
  t.deepEqual([...answer.whole], [0]);
  t.deepEqual([...answer.state], [0, 0, 0, 0, 1, 1]);
  t.deepEqual([...answer.available], [2]);
  // The answer is taken once.
  t.is(claim.settle(true), null);
  const typed = grid().plan([null, null]).read(store, id, 2);
  t.deepEqual([...new Float64Array(Uint8Array.from(typed.data).buffer)], [4.5, 5.5]);
  // A malformed batch is refused at the call; a write that fails in its transaction (items into the typed chunk) throws from settle, once.
  throwsCode(t, () => plan.writeFlatBehind(store, id, u32([2]), Uint8Array.of(8), u32([2]), Uint8Array.of(0), u32([4, 5]), none, u32([0]), u32([17]), [f], u32([0]), [], 0, 1), 'ERR_INVALID_ARGUMENT');
  const it = items([label(2, 0)]);
  const bad = plan.writeFlatBehind(store, id, u32([2]), Uint8Array.of(0), u32([1]), Uint8Array.of(0), u32([0]), Uint32Array.from(it.offsets), u32([0]), u32([it.data.length]), [it.data], u32([0]), [], 0, 1);
  throwsCode(t, () => bad.settle(true), 'ERR_INVALID_ARGUMENT');
  t.true(bad.settle(true));
  t.is(store.releaseSession(7), 4);
});
