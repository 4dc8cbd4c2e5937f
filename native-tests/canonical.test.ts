/**
 * The TS canonical encoder against the committed vectors
 * (docs/canonical-vectors.json), which the Rust core also passes
 * (crates/chunk_memo_core/tests/vectors.rs); digests come from the native
 * binding. Also: values that cannot be encoded are refused with an error
 * naming their path.
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { encodeCanonical, encodeConcatenated, compareCodePoints } from '../ts/canonical/encode.js';

const require = createRequire(import.meta.url);
const native = require('../ts/binding/binding.cjs') as {
  canonicalDigestHex(bytes: Buffer): string;
  canonicalId(bytes: Buffer): Buffer;
};

type Tagged = Record<string, unknown>;
interface Vector { name: string; value: Tagged; hex: string; digest: string }

const vectors = JSON.parse(
  readFileSync(new URL('../docs/canonical-vectors.json', import.meta.url), 'utf8'),
) as Vector[];

const hexOf = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

const toFloat = (x: unknown): number => (typeof x === 'string' ? Number(x) : (x as number));

/** Integers: Number when safe, else BigInt (the JS number rule). */
function toInt(x: unknown): number | bigint {
  const b = BigInt(x as string | number);
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

const TYPED: Record<string, (vals: unknown[]) => ArrayBufferView> = {
  i8: (v) => Int8Array.from(v.map(Number)),
  u8c: (v) => Uint8ClampedArray.from(v.map(Number)),
  i16: (v) => Int16Array.from(v.map(Number)),
  u16: (v) => Uint16Array.from(v.map(Number)),
  i32: (v) => Int32Array.from(v.map(Number)),
  u32: (v) => Uint32Array.from(v.map(Number)),
  f32: (v) => Float32Array.from(v.map(toFloat)),
  f64: (v) => Float64Array.from(v.map(toFloat)),
  i64: (v) => BigInt64Array.from(v.map((x) => BigInt(x as string))),
  u64: (v) => BigUint64Array.from(v.map((x) => BigInt(x as string))),
};

/** Builds the JS value of a tagged JSON value. */
function build(t: Tagged): unknown {
  const keys = Object.keys(t);
  if (keys.length !== 1) throw new Error(`bad tagged value ${JSON.stringify(t)}`);
  const tag = keys[0]!;
  const body = t[tag];
  switch (tag) {
    case 'null': return null;
    case 'bool': return body as boolean;
    case 'int': return toInt(body);
    case 'float': return toFloat(body);
    case 'bigint': return BigInt(body as string);
    case 'str': return body as string;
    case 'bytes': return new Uint8Array(Buffer.from(body as string, 'hex'));
    case 'typed': {
      const { dtype, values } = body as { dtype: string; values: unknown[] };
      const make = TYPED[dtype];
      if (!make) throw new Error(`unknown dtype ${dtype}`);
      return make(values);
    }
    case 'date': return new Date(body as number);
    case 'array': return (body as Tagged[]).map(build);
    case 'object': {
      const out: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(body as Record<string, Tagged>)) out[k] = build(v);
      return out;
    }
    default: throw new Error(`unknown tag ${tag}`);
  }
}

test('the vectors file has enough vectors with distinct names', (t) => {
  t.true(vectors.length >= 30);
  t.is(new Set(vectors.map((v) => v.name)).size, vectors.length);
  for (const v of vectors) {
    t.regex(v.hex, /^[0-9a-f]+$/);
    t.regex(v.digest, /^[0-9a-f]{64}$/);
  }
});

for (const v of vectors) {
  test(`vector: ${v.name}`, (t) => {
    const bytes = encodeCanonical(build(v.value));
    t.is(hexOf(bytes), v.hex, 'encoding');
    t.is(native.canonicalDigestHex(Buffer.from(bytes)), v.digest, 'digest');
    t.is(native.canonicalId(Buffer.from(bytes)).toString('hex'), v.digest.slice(0, 32), 'id is the 16-byte digest prefix');
  });
}

test('encodeConcatenated is the concatenation of the encodings', (t) => {
  const values = vectors.map((v) => build(v.value));
  const all = encodeConcatenated(values, (i) => `values[${i}]`);
  t.is(hexOf(all), vectors.map((v) => v.hex).join(''));
});

test('object keys are ordered by code point whatever their insertion order', (t) => {
  const a = encodeCanonical({ '\u{1F600}': 1, '\uFFFF': 2, b: 3, a: 4, 10: 5, 9: 6 });
  const b = encodeCanonical({ 9: 6, a: 4, '\uFFFF': 2, 10: 5, b: 3, '\u{1F600}': 1 });
  t.is(hexOf(a), hexOf(b));
  // UTF-16 order would put the astral key first.
  t.true('\u{1F600}' < '\uFFFF');
  t.is(compareCodePoints('\uFFFF', '\u{1F600}'), -1);
  t.is(compareCodePoints('\u{1F600}', '\u{1F600}'), 0);
  t.is(compareCodePoints('a', 'ab'), -1);
  t.is(compareCodePoints('ab', 'a'), 1);
});

test('the JS number rule: safe integers are INT, others FLOAT, -0 is 0', (t) => {
  t.is(hexOf(encodeCanonical(Number.MAX_SAFE_INTEGER)), hexOf(encodeCanonical(BigInt(Number.MAX_SAFE_INTEGER))));
  t.is(encodeCanonical(2 ** 53)[0], 0x04);
  t.is(hexOf(encodeCanonical(-0)), hexOf(encodeCanonical(0)));
  t.is(hexOf(encodeCanonical(3)), hexOf(encodeCanonical(3n)));
  t.is(encodeCanonical(2n ** 63n)[0], 0x05);
  t.is(encodeCanonical(-(2n ** 63n))[0], 0x03);
});

test('Buffer, a Uint8Array view and a Uint8Array encode alike as BYTES', (t) => {
  const backing = new Uint8Array([9, 1, 2, 3, 9]);
  const view = backing.subarray(1, 4);
  const plain = new Uint8Array([1, 2, 3]);
  const buf = Buffer.from([1, 2, 3]);
  t.is(hexOf(encodeCanonical(view)), '070300000001' + '0203');
  t.is(hexOf(encodeCanonical(plain)), hexOf(encodeCanonical(view)));
  t.is(hexOf(encodeCanonical(buf)), hexOf(encodeCanonical(view)));
  // A typed view at an offset encodes only its own elements.
  const f = new Float64Array([1, 2, 3]).subarray(1);
  t.is(hexOf(encodeCanonical(f)), hexOf(encodeCanonical(new Float64Array([2, 3]))));
});

// ---------------------------------------------------------------------------
// Refused values.

function refused(t: import('ava').ExecutionContext, value: unknown, path: string, message: string | RegExp): void {
  const err = t.throws(() => encodeCanonical(value, path)) as Error & { code?: string };
  t.is(err?.code, 'ERR_UNHASHABLE_VALUE');
  if (typeof message === 'string') t.true(err.message.startsWith(message), err.message);
  else t.regex(err.message, message);
}

test('functions are refused with their path', (t) => {
  refused(t, { model: { loss: () => 1 } }, 'params', 'params.model.loss: functions cannot be hashed');
});

test('NaN is refused', (t) => {
  refused(t, { lr: NaN }, 'params', 'params.lr: NaN cannot be hashed');
  refused(t, [1, [2, NaN]], 'values', 'values[1][1]: NaN cannot be hashed');
});

test('undefined is refused (a key holding undefined too)', (t) => {
  refused(t, { a: undefined }, 'params', 'params.a: undefined cannot be hashed');
  refused(t, undefined, 'value', 'value: undefined cannot be hashed');
});

test('class instances are refused', (t) => {
  refused(t, { m: new Map() }, 'params', /^params\.m: instances of Map cannot be hashed/);
  refused(t, { s: new Set([1]) }, 'params', /^params\.s: instances of Set cannot be hashed/);
  class Point { x = 1; }
  refused(t, [new Point()], 'axis', /^axis\[0\]: instances of Point cannot be hashed/);
  refused(t, new DataView(new ArrayBuffer(4)), 'value', /^value: instances of DataView cannot be hashed/);
});

test('cycles are refused, shared (acyclic) references are not', (t) => {
  const a: Record<string, unknown> = { x: 1 };
  a.self = a;
  refused(t, { a }, 'params', 'params.a.self: cyclic structures cannot be hashed');
  const arr: unknown[] = [1];
  arr.push(arr);
  refused(t, arr, 'value', 'value[1]: cyclic structures cannot be hashed');
  const shared = { k: 1 };
  t.notThrows(() => encodeCanonical({ p: shared, q: [shared, shared] }));
});

test('symbols and symbol keys are refused', (t) => {
  refused(t, { s: Symbol('x') }, 'params', 'params.s: symbols cannot be hashed');
  refused(t, { [Symbol('k')]: 1 }, 'params', 'params: symbol keys cannot be hashed');
});

test('sparse arrays, invalid dates and lone surrogates are refused', (t) => {
  // eslint-disable-next-line no-sparse-arrays
  refused(t, [1, , 3], 'value', 'value[1]: sparse array holes cannot be hashed');
  refused(t, { d: new Date(NaN) }, 'params', 'params.d: invalid Date cannot be hashed');
  refused(t, { s: 'a\uD800b' }, 'params', 'params.s: strings with lone surrogates cannot be hashed');
});

test('objects with a null prototype are plain objects', (t) => {
  const o = Object.create(null) as Record<string, unknown>;
  o.b = 1;
  o.a = 2;
  t.is(hexOf(encodeCanonical(o)), hexOf(encodeCanonical({ a: 2, b: 1 })));
});
