/**
 * Canonical encoding, format version 1 (docs/canonical-encoding.md). The
 * Rust core implements the same encoder; both pass docs/canonical-vectors.json.
 */
import { UnhashableValueError } from '../errors/index.js';
import { keepShape } from '../shapes.js';

export const TAG = {
  NULL: 0x00, FALSE: 0x01, TRUE: 0x02, INT: 0x03, FLOAT: 0x04, BIGINT: 0x05,
  STRING: 0x06, BYTES: 0x07, TYPED: 0x08, DATE: 0x09, ARRAY: 0x0a, OBJECT: 0x0b,
} as const;

/** dtype codes of typed arrays (shared with record kinds). */
export const DTYPE: Record<string, number> = {
  Int8Array: 1, Uint8ClampedArray: 2, Int16Array: 3, Uint16Array: 4, Int32Array: 5,
  Uint32Array: 6, Float32Array: 7, Float64Array: 8, BigInt64Array: 9, BigUint64Array: 10,
};

const I64_MIN = -(1n << 63n);
const I64_MAX = (1n << 63n) - 1n;
const utf8 = new TextEncoder();

/** Numbers encoded as TAG.INT: integers of at most 53 bits (larger ones are FLOAT). */
const isSafeInt = (n: number): boolean => Number.isInteger(n) && Math.abs(n) <= Number.MAX_SAFE_INTEGER;

class Writer {
  buf = new Uint8Array(256);
  view = new DataView(this.buf.buffer);
  len = 0;
  ensure(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(b: number): void { this.ensure(1); this.buf[this.len++] = b; }
  u32(n: number): void { this.ensure(4); this.view.setUint32(this.len, n, true); this.len += 4; }
  i64(n: bigint): void { this.ensure(8); this.view.setBigInt64(this.len, n, true); this.len += 8; }
  f64(n: number): void { this.ensure(8); this.view.setFloat64(this.len, n, true); this.len += 8; }
  /** A safe integer as TAG.INT and its i64 (two's complement, little-endian), without a BigInt. */
  int(n: number): void {
    this.ensure(9);
    const hi = Math.floor(n / 0x100000000);
    this.buf[this.len] = TAG.INT;
    this.view.setUint32(this.len + 1, n - hi * 0x100000000, true);
    this.view.setInt32(this.len + 5, hi, true);
    this.len += 9;
  }
  bytes(b: Uint8Array): void { this.ensure(b.length); this.buf.set(b, this.len); this.len += b.length; }
  str(s: string): void { const b = utf8.encode(s); this.u32(b.length); this.bytes(b); }
}

function fail(path: string, what: string): never {
  throw new UnhashableValueError(`${path}: ${what}`);
}

function encodeBigInt(w: Writer, v: bigint): void {
  if (v >= I64_MIN && v <= I64_MAX) { w.u8(TAG.INT); w.i64(v); return; }
  const neg = v < 0n;
  let mag = neg ? -v : v;
  const bytes: number[] = [];
  while (mag > 0n) { bytes.push(Number(mag & 0xffn)); mag >>= 8n; }
  w.u8(TAG.BIGINT); w.u8(neg ? 1 : 0); w.u32(bytes.length); w.bytes(Uint8Array.from(bytes));
}

function compareUtf8(a: string, b: string): number {
  // UTF-8 byte order equals code point order; JS `<` compares UTF-16 units,
  // which differs for astral characters, so compare by code points.
  if (a === b) return 0;
  const ia = a[Symbol.iterator](); const ib = b[Symbol.iterator]();
  for (;;) {
    const x = ia.next(); const y = ib.next();
    if (x.done) return y.done ? 0 : -1;
    if (y.done) return 1;
    const cx = x.value.codePointAt(0)!; const cy = y.value.codePointAt(0)!;
    if (cx !== cy) return cx < cy ? -1 : 1;
  }
}

/** Compares two strings by Unicode code point (the order of sorted axis names). */
export const compareCodePoints = compareUtf8;

function encodeValue(w: Writer, v: unknown, path: string, stack: Set<object>): void {
  switch (typeof v) {
    case 'number':
      if (Number.isNaN(v)) fail(path, 'NaN cannot be hashed (use null or a string)');
      if (isSafeInt(v)) w.int(v);
      else { w.u8(TAG.FLOAT); w.f64(v); }
      return;
    case 'bigint': encodeBigInt(w, v); return;
    case 'boolean': w.u8(v ? TAG.TRUE : TAG.FALSE); return;
    case 'string':
      if (!(v as string & { isWellFormed(): boolean }).isWellFormed()) fail(path, 'strings with lone surrogates cannot be hashed');
      w.u8(TAG.STRING); w.str(v); return;
    case 'undefined': fail(path, 'undefined cannot be hashed (use null, or omit the key)');
    // falls through (fail never returns)
    case 'function': fail(path, 'functions cannot be hashed');
    // falls through
    case 'symbol': fail(path, 'symbols cannot be hashed');
    // falls through
    default: break;
  }
  if (v === null) { w.u8(TAG.NULL); return; }
  const o = v as object;
  if (stack.has(o)) fail(path, 'cyclic structures cannot be hashed');
  if (o instanceof Date) {
    const t = o.getTime();
    if (Number.isNaN(t)) fail(path, 'invalid Date cannot be hashed');
    w.u8(TAG.DATE); w.f64(t); return;
  }
  if (ArrayBuffer.isView(o) && !(o instanceof DataView)) {
    const bytes = new Uint8Array(o.buffer, o.byteOffset, o.byteLength);
    if (o.constructor === Uint8Array || (typeof Buffer !== 'undefined' && o instanceof Buffer)) {
      w.u8(TAG.BYTES); w.u32(bytes.length); w.bytes(bytes); return;
    }
    const dt = DTYPE[o.constructor.name];
    if (dt === undefined) fail(path, `${o.constructor.name} cannot be hashed`);
    w.u8(TAG.TYPED); w.u8(dt); w.u32((o as unknown as { length: number }).length); w.bytes(bytes);
    return;
  }
  stack.add(o);
  try {
    if (Array.isArray(o)) {
      w.u8(TAG.ARRAY); w.u32(o.length);
      for (let i = 0; i < o.length; i++) {
        if (!(i in o)) fail(`${path}[${i}]`, 'sparse array holes cannot be hashed');
        encodeValue(w, o[i], `${path}[${i}]`, stack);
      }
      return;
    }
    const proto = Object.getPrototypeOf(o);
    if (proto !== Object.prototype && proto !== null) {
      const name = (o.constructor && o.constructor.name) || 'object';
      fail(path, `instances of ${name} cannot be hashed (use a plain object, array or typed array)`);
    }
    if (Object.getOwnPropertySymbols(o).length > 0) fail(path, 'symbol keys cannot be hashed');
    const keys = Object.keys(o).sort(compareUtf8);
    w.u8(TAG.OBJECT); w.u32(keys.length);
    for (const k of keys) {
      w.str(k);
      encodeValue(w, (o as Record<string, unknown>)[k], `${path}.${k}`, stack);
    }
  } finally {
    stack.delete(o);
  }
}

/**
 * Canonical bytes of a value. Throws `UnhashableValueError` naming the path
 * of the first value that cannot be encoded (e.g. `params.model.loss:
 * functions cannot be hashed`).
 */
export function encodeCanonical(value: unknown, path = 'value'): Uint8Array {
  const w = new Writer();
  encodeValue(w, value, path, new Set());
  return w.buf.slice(0, w.len);
}

/** Canonical bytes of many values, concatenated (one native call hashes them all). */
export function encodeConcatenated(values: readonly unknown[], path: (i: number) => string): Uint8Array {
  const w = new Writer();
  const stack = new Set<object>();
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    // Integers (the usual axis values) without building the value's path.
    if (typeof v === 'number' && isSafeInt(v)) w.int(v);
    else encodeValue(w, v, path(i), stack);
  }
  return w.buf.slice(0, w.len);
}

// See ts/shapes.ts.
keepShape(new Writer());
