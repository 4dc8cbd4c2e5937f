/**
 * Items outputs packed without msgpackr (ts/run/flat-pack.ts): scalars and
 * plain objects of one shape read back exactly, every msgpack form at its
 * boundaries included, also among other writes in one byte area; anything
 * else still goes through msgpackr and reads back as before.
 */
import test from 'ava';
import { Packr, Unpackr } from 'msgpackr';
import { ByteSink, decodeItemsInto, decodeOutputs, encodeInto, encodeOutputs, KIND_ITEMS } from '../ts/run/payload.js';
import { ChunkCache, run, type ChunkFn } from '../ts/index.js';
import { freshRoot, prng } from './helpers/grid.js';

/** Numbers at the edges of every msgpack number form, and the ones only a float64 holds. */
const NUMBERS = [
  0, -0, 1, 63, 64, 65, 100, 126, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53, 2 ** 53 + 2, -(2 ** 53),
  -1, -31, -32, -33, -127, -128, -129, -32767, -32768, -32769, -(2 ** 31) + 1, -(2 ** 31), -(2 ** 31) - 1,
  0.5, -0.5, 1.5, 1e-300, -1e300, Number.MIN_VALUE, Number.MAX_VALUE, Number.EPSILON, NaN, Infinity, -Infinity, Math.PI,
];

/** Strings around the header sizes (chosen by 3 bytes per UTF-16 unit) and beyond one byte per character. */
const STRINGS = [
  '', 'a', 'x'.repeat(10), 'x'.repeat(11), 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(85), 'x'.repeat(86), 'x'.repeat(255),
  'x'.repeat(256), 'x'.repeat(21845), 'x'.repeat(21846), 'x'.repeat(70000), 'é', 'ü'.repeat(40), '😀', '日本語'.repeat(30), 'a\u0000b',
];

/** Every value of `got` is `want`'s (Object.is for numbers: -0 and NaN too). */
function same(t: import('ava').ExecutionContext, got: ArrayLike<unknown>, want: readonly unknown[], what: string): void {
  t.is(got.length, want.length, what);
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i], want[i]];
    if (typeof w === 'number') t.true(Object.is(g, w), `${what}[${i}]: ${String(g)} for ${String(w)}`);
    else t.deepEqual(g, w, `${what}[${i}]`);
  }
}

function roundTrip(values: readonly unknown[]): ArrayLike<unknown> {
  const e = encodeOutputs(values as unknown[], KIND_ITEMS);
  return decodeOutputs(KIND_ITEMS, e.data, values.length, e.dict.length ? [e.dict] : [], undefined, e.offsets);
}

test('scalars read back exactly: every number form at its edges, strings at every header size, booleans and null', (t) => {
  const values = [...NUMBERS, ...STRINGS, true, false, null];
  same(t, roundTrip(values), values, 'scalars');
  // Each on its own, and the bytes of each point are where its offsets say.
  const e = encodeOutputs(values as unknown[], KIND_ITEMS);
  t.is(e.dict.length, 0, 'scalars need no dictionary');
  const u = new Unpackr({ useRecords: false, moreTypes: true, int64AsType: 'bigint' });
  for (let i = 0; i < values.length; i++) {
    const v = u.unpack(e.data.subarray(e.offsets[i], e.offsets[i + 1]));
    if (typeof values[i] === 'number') t.true(Object.is(v, values[i]), `point ${i}`);
    else t.deepEqual(v, values[i], `point ${i}`);
  }
});

test('plain objects of one shape read back exactly as records of one structure: every value above, then random ones', (t) => {
  const every = NUMBERS.map((v, i) => ({ v, s: STRINGS[i % STRINGS.length], b: i % 2 === 0, n: null }));
  same(t, roundTrip(every), every, 'every value');
  const rand = prng(7);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const scalars: unknown[] = [...NUMBERS, ...STRINGS.slice(0, 12), true, false, null];
  for (let round = 0; round < 30; round++) {
    const keys = Array.from({ length: 1 + Math.floor(rand() * 6) }, () => pick(['a', 'b', 'v', 'long_key_name', 'é', '10', '2', 'x y'])).filter((k, i, all) => all.indexOf(k) === i);
    const n = 1 + Math.floor(rand() * 300);
    const values = Array.from({ length: n }, () => {
      const o: Record<string, unknown> = {};
      for (const k of keys) o[k] = pick(scalars);
      return o;
    });
    const e = encodeOutputs(values, KIND_ITEMS);
    t.true(e.dict.length > 0, 'one structure');
    same(t, roundTrip(values), values, `round ${round}`);
  }
});

test('anything else still goes through msgpackr and reads back: other shapes, nested values, binary, bigint, dates, a mix', (t) => {
  const cases: unknown[][] = [
    [{ a: 1, b: 2 }, { b: 2, a: 1 }],
    [{ a: 1 }, { a: 1, b: 2 }],
    [{ a: 1, b: 2 }, { a: 1 }],
    [{ a: [1, 2] }, { a: [3] }],
    [{ a: { b: 1 } }],
    [{ a: 1n }, { a: 2n ** 70n }],
    [{ d: new Date(5) }],
    [{ u: Uint8Array.of(1, 2, 3) }],
    [1, 'a', { a: 1 }, null],
    [{}],
    [[1, 2], [3]],
    [Object.create(null)],
  ];
  for (const [k, values] of cases.entries()) t.deepEqual(Array.from(roundTrip(values)), values, `case ${k}`);
  // A record packed here and one packed by msgpackr read the same.
  const obj = [{ a: 1, b: 'x', c: 2.5, d: null, e: true }];
  const mine = encodeOutputs(obj, KIND_ITEMS);
  const structures: object[] = [];
  const theirs = new Packr({ useRecords: true, structures, moreTypes: true, variableMapSize: true }).pack(obj[0]);
  t.deepEqual(new Unpackr({ useRecords: true, structures, moreTypes: true }).unpack(theirs), obj[0]);
  t.deepEqual(decodeOutputs(KIND_ITEMS, mine.data, 1, [mine.dict], undefined, mine.offsets), obj);
});

test('bytes msgpackr packed (earlier versions, other shapes) read back as msgpackr reads them', (t) => {
  const scalars: unknown[] = [...NUMBERS, ...STRINGS.slice(0, 10), true, false, null, 2n ** 60n, -(2n ** 60n), 70, 100];
  const plainPackr = new Packr({ useRecords: false, moreTypes: true, variableMapSize: true });
  const concat = (bufs: Uint8Array[]): Buffer => Buffer.concat(bufs.map((b) => Buffer.from(b)));
  const plainBytes = concat(scalars.map((v) => plainPackr.pack(v)));
  const want = new Unpackr({ useRecords: false, moreTypes: true, int64AsType: 'bigint' }).unpackMultiple(plainBytes) as unknown[];
  same(t, decodeOutputs(KIND_ITEMS, plainBytes, scalars.length), want, 'scalars packed by msgpackr');
  // Records packed by msgpackr, one structure: its first record defines it inline.
  const structures: object[] = [];
  const recPackr = new Packr({ useRecords: true, structures, moreTypes: true, variableMapSize: true });
  const objs = NUMBERS.map((v, i) => ({ v, k: i, s: STRINGS[i % 8] }));
  const recBytes = concat(objs.map((o) => recPackr.pack(o)));
  const dict = plainPackr.pack(structures.map((x) => [...(x as unknown[])]));
  const wantObjs = new Unpackr({ useRecords: true, structures: structures.map((x) => [...(x as unknown[])]), moreTypes: true, int64AsType: 'bigint' }).unpackMultiple(recBytes) as unknown[];
  t.deepEqual(Array.from(decodeOutputs(KIND_ITEMS, recBytes, objs.length, [dict])), wantObjs);
  // Packed here, the same objects read back (and -0 stays -0, where msgpackr packs 0).
  const mine = encodeOutputs(objs, KIND_ITEMS);
  same(t, decodeOutputs(KIND_ITEMS, mine.data, objs.length, [mine.dict]), objs, 'packed here: exact, -0 too');
});

test('records read without msgpackr give way to it at any point that is not flat, and what they wrote first is rewritten', (t) => {
  const keys = ['a', 'b'];
  // msgpackr with the structure shared writes the record id and the values, as flat-pack does.
  const packr = new Packr({ useRecords: true, structures: [keys], moreTypes: true, variableMapSize: true });
  const unpackr = new Unpackr({ useRecords: true, structures: [keys], moreTypes: true, int64AsType: 'bigint' });
  const dict = Buffer.from(new Packr({ useRecords: false, moreTypes: true, variableMapSize: true }).pack([keys]));
  const flat = Array.from({ length: 50 }, (_, i) => ({ a: i * 7 - 100, b: i % 3 ? `s${i}` : i + 0.5 }));
  const odd = [{ a: [1], b: 2 }, { a: 1, b: { c: 3 } }, { a: undefined, b: 1 }, { a: 2n ** 70n, b: 1 }, { a: new Date(3), b: 0 }, { a: 1.5, b: new Map([[1, 2]]) }, { a: Uint8Array.of(9), b: 1 }];
  for (const [n, o] of odd.entries()) {
    for (const at of [0, 25, 49]) {
      const values: unknown[] = [...flat];
      values[at] = o;
      const bytes = Buffer.concat(values.map((v) => Buffer.from(packr.pack(v))));
      const want = unpackr.unpackMultiple(bytes) as unknown[];
      const what = `odd value ${n} at point ${at}`;
      t.deepEqual(Array.from(decodeOutputs(KIND_ITEMS, bytes, values.length, [dict])), want, what);
      // In rows of 7 at places apart in a larger output, as a run places a chunk.
      const starts = Uint32Array.from({ length: 8 }, (_, r) => 3 + r * 11);
      const out: unknown[] = new Array(100).fill('untouched');
      decodeItemsInto(out, { starts, len: 7 }, bytes, values.length, [dict], new Uint16Array(values.length), new Uint32Array(values.length + 1));
      const expect: unknown[] = new Array(100).fill('untouched');
      want.forEach((v, i) => (expect[starts[Math.floor(i / 7)]! + (i % 7)] = v));
      t.deepEqual(out, expect, `${what}, in rows`);
    }
  }
  // Every point flat: the same objects, in rows too.
  const bytes = Buffer.concat(flat.map((v) => Buffer.from(packr.pack(v))));
  t.deepEqual(Array.from(decodeOutputs(KIND_ITEMS, bytes, flat.length, [dict])), flat);
  // A key an object literal would take as the prototype is left to msgpackr.
  const protoKeys = ['__proto__', 'a'];
  const protoPackr = new Packr({ useRecords: true, structures: [protoKeys], moreTypes: true, variableMapSize: true });
  const protoBytes = Buffer.from(protoPackr.pack(JSON.parse('{"__proto__": 1, "a": 2}')));
  const protoDict = Buffer.from(new Packr({ useRecords: false, moreTypes: true, variableMapSize: true }).pack([protoKeys]));
  const protoWant = new Unpackr({ useRecords: true, structures: [protoKeys], moreTypes: true }).unpackMultiple(protoBytes);
  t.deepEqual(Array.from(decodeOutputs(KIND_ITEMS, protoBytes, 1, [protoDict])), protoWant);
  t.is(Object.getPrototypeOf((decodeOutputs(KIND_ITEMS, protoBytes, 1, [protoDict]) as unknown[])[0]), Object.prototype);
});

test('writes packed one after another into one byte area keep their own offsets and dictionaries', (t) => {
  const sink = new ByteSink(8);
  const offsets = new Uint32Array(64);
  const writes: unknown[][] = [[1, -0, 'a'], [{ a: 1, b: 'é' }, { a: 2.5, b: 'x'.repeat(40) }], [{ a: [1] }, { a: [2] }], ['z'.repeat(300)]];
  const parts: { from: number; to: number; offAt: number; dict: Buffer }[] = [];
  let offAt = 0;
  for (const w of writes) {
    const from = sink.at;
    const dict = encodeInto(w, KIND_ITEMS, sink, offsets, offAt);
    parts.push({ from, to: sink.at, offAt, dict });
    offAt += w.length + 1;
  }
  for (const [k, w] of writes.entries()) {
    const p = parts[k]!;
    const data = sink.bytes().subarray(p.from, p.to);
    t.is(offsets[p.offAt + w.length], p.to - p.from, `write ${k}: its last offset is its size`);
    same(t, decodeOutputs(KIND_ITEMS, data, w.length, p.dict.length ? [p.dict] : [], undefined, offsets.subarray(p.offAt, p.offAt + w.length + 1)), w, `write ${k}`);
  }
});

test('a run of plain objects stores them packed here and reads them back warm, exactly', async (t) => {
  const root = freshRoot();
  const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
  const cache = ChunkCache.open({ root, params: { t: 'flat-pack' }, axisValues: { a: range(40), b: range(30) }, chunkSpec: { a: 7, b: 8 } });
  const f: ChunkFn = (_p, axes) => (axes.a as number[]).flatMap((x) => (axes.b as number[]).map((y) => ({ a: x, b: y, v: x * 0.5 - y, s: `p${x}-${y}`, z: x === y ? -0 : null })));
  const cold = await run(cache, f);
  const warm = await run(cache, f);
  t.is(warm.diagnostics.executedPoints, 0);
  t.deepEqual(warm.output, cold.output);
  const want = range(40).flatMap((x) => range(30).map((y) => ({ a: x, b: y, v: x * 0.5 - y, s: `p${x}-${y}`, z: x === y ? -0 : null })));
  t.deepEqual(warm.output, want);
  t.true(Object.is((warm.output as Array<{ z: unknown }>)[0]!.z, -0), '-0 comes back as -0');
  cache.close();
});
