/**
 * Output payloads: one msgpack value per point ("items"), or raw
 * little-endian elements when a chunk function returns a numeric TypedArray.
 */
import { Packr, Unpackr, REUSE_BUFFER_MODE } from 'msgpackr';
import { DTYPE } from '../canonical/encode.js';
import { ExecOutputError } from '../errors/index.js';
import type { TypedArray } from '../value.js';
import { packFlatRecords, packScalars } from './flat-pack.js';
import { flatReader, type FlatReader } from './flat-unpack.js';

export const KIND_ITEMS = 0;

// Dictionaries (msgpack record structures) are plain msgpack arrays of key lists.
const plain = new Packr({ useRecords: false, moreTypes: true, variableMapSize: true });
// Binary data is unpacked as copies (`copyBuffers`): decoded values keep
// no view of the bytes they came from (a run reads batches into one scratch
// it reuses, and a view would keep a whole batch alive).
const plainUnpackr = new Unpackr({ useRecords: false, moreTypes: true, int64AsType: 'bigint', copyBuffers: true });
const EMPTY = Buffer.alloc(0);
const ONE_ROW = Uint32Array.of(0);

/** How items packed with one dictionary are decoded: msgpackr's unpacker, and the flat reader when its records allow one. */
interface Decoder {
  readonly unpackr: Unpackr;
  readonly flat: FlatReader | null;
}

const PLAIN: Decoder = { unpackr: plainUnpackr, flat: null };

// Decoders by dictionary content; chunks written by the same function share
// one, so the dictionary is parsed and msgpackr's and the flat reader's
// compiled code are made once across chunks.
const decoders = new Map<string, Decoder>();
function decoderFor(dict: Buffer): Decoder {
  if (dict.length === 0) return PLAIN;
  const key = dict.toString('latin1');
  let d = decoders.get(key);
  if (!d) {
    const structures = plainUnpackr.unpack(dict) as object[];
    const unpackr = new Unpackr({ useRecords: true, structures, moreTypes: true, int64AsType: 'bigint', copyBuffers: true });
    d = { unpackr, flat: flatReader(structures) };
    if (decoders.size >= 256) decoders.delete(decoders.keys().next().value!);
    decoders.set(key, d);
  }
  return d;
}

type TypedCtor = { new (n: number): TypedArray; new (b: ArrayBufferLike, o?: number, l?: number): TypedArray; BYTES_PER_ELEMENT: number; name: string };
const CTORS: Record<number, TypedCtor> = {
  1: Int8Array, 2: Uint8ClampedArray, 3: Int16Array, 4: Uint16Array, 5: Int32Array, 6: Uint32Array,
  7: Float32Array, 8: Float64Array, 9: BigInt64Array, 10: BigUint64Array, 11: Uint8Array,
} as unknown as Record<number, TypedCtor>;

export function typedCtor(kind: number): TypedCtor {
  const c = CTORS[kind];
  if (!c) throw new Error(`unknown output kind ${kind}`);
  return c;
}

/** Record kind of a chunk output: a dtype for numeric typed arrays, else items. */
export function kindOf(out: unknown): number {
  if (ArrayBuffer.isView(out) && !(out instanceof DataView)) {
    const name = out.constructor.name;
    if (name === 'Uint8Array' || name === 'Buffer') return 11;
    return DTYPE[name] ?? KIND_ITEMS;
  }
  return KIND_ITEMS;
}

export interface Encoded {
  kind: number;
  offsets: Uint32Array;
  data: Buffer;
  /** Items: the record structures the points were packed with (empty: none). */
  dict: Buffer;
}

/**
 * A growing byte area with the offset of each value in it: where outputs
 * are encoded (one sink per chunk, or one per write batch for many chunks).
 */
export class ByteSink {
  data: Buffer;
  at = 0;
  constructor(initial = 256) {
    this.data = Buffer.allocUnsafe(initial);
  }

  /** Room for `n` more bytes. */
  reserve(n: number): void {
    if (this.at + n <= this.data.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.data.length * 2, this.at + n));
    this.data.copy(grown, 0, 0, this.at);
    this.data = grown;
  }

  /** Appends the bytes of a view. */
  append(v: ArrayBufferView): void {
    this.reserve(v.byteLength);
    this.data.set(new Uint8Array(v.buffer, v.byteOffset, v.byteLength), this.at);
    this.at += v.byteLength;
  }

  /** The bytes written so far (a view, not a copy). */
  bytes(): Buffer {
    return this.data.subarray(0, this.at);
  }
}

/**
 * Encodes the outputs of `out.length` points at the end of `sink`: typed
 * outputs as their raw elements, items one msgpack value per point with
 * `offsets[offAt..offAt+n]` (relative to where this write starts) set. Returns the
 * dictionary the items were packed with (empty: none). Items that would not
 * come back the same (see `unstorable`) are an ExecOutputError naming
 * chunk `chunk` (-1: none), with nothing written.
 */
export function encodeInto(out: ArrayLike<unknown>, kind: number, sink: ByteSink, offsets: Uint32Array, offAt = 0, chunk = -1): Buffer {
  if (kind !== KIND_ITEMS) {
    sink.append(out as unknown as TypedArray);
    return EMPTY;
  }
  // Numbers, strings, booleans and null pack the same with or without
  // record structures: no dictionary. They, and plain objects of one shape
  // holding them, are packed here without a msgpackr call per point.
  if (out.length === 0 || packScalars(out, sink, offsets, offAt)) return EMPTY;
  const keys = packFlatRecords(out, sink, offsets, offAt);
  if (keys) return plain.pack([keys]);
  // Only values the flat forms above refuse can be unstorable: they are
  // checked here, once, not as each exec call returns.
  assertStorable(out, chunk);
  // One Packr per write: objects of the same shape share a record structure
  // whose keys are stored once, in the record's dictionary, not per point.
  const structures: object[] = [];
  const packr = new Packr({ useRecords: true, structures, moreTypes: true, variableMapSize: true });
  packEach(packr, out, sink, offsets, offAt);
  return structures.length ? plain.pack(structures.map((x) => [...(x as unknown[])])) : EMPTY;
}

/** Encodes the outputs of `n` points. */
export function encodeOutputs(out: ArrayLike<unknown>, kind: number): Encoded {
  if (kind !== KIND_ITEMS) {
    const ta = out as unknown as TypedArray;
    return { kind, offsets: new Uint32Array(0), data: Buffer.from(ta.buffer, ta.byteOffset, ta.byteLength), dict: EMPTY };
  }
  const sink = new ByteSink(Math.max(64, out.length * 16));
  const offsets = new Uint32Array(out.length + 1);
  const dict = encodeInto(out, kind, sink, offsets);
  return { kind, offsets, data: sink.bytes(), dict };
}

/** What `pack` gives in REUSE_BUFFER_MODE: the packer's own buffer, the value at start..end. */
type Packed = Buffer & { start: number; end: number };

/**
 * Packs each value of `out` at the end of `sink`, with the offset of each
 * (relative to where the first one starts): the packer writes into its own
 * buffer and each value is copied out (no Buffer object per point).
 */
function packEach(packr: Packr, out: ArrayLike<unknown>, sink: ByteSink, offsets: Uint32Array, offAt: number): void {
  const n = out.length;
  const base = sink.at;
  offsets[offAt] = 0;
  for (let i = 0; i < n; i++) {
    const t = packr.pack(out[i], REUSE_BUFFER_MODE) as Packed;
    const len = t.end - t.start;
    sink.reserve(len);
    const data = sink.data;
    let at = sink.at;
    if (len <= 32) for (let k = t.start; k < t.end; k++) data[at++] = t[k]!;
    else {
      t.copy(data, at, t.start, t.end);
      at += len;
    }
    sink.at = at;
    offsets[offAt + i + 1] = at - base;
  }
}

/**
 * Decodes `count` present points of a read (items: concatenated msgpack,
 * each point packed with `dicts[pointDicts[i]]`).
 */
export function decodeOutputs(kind: number, data: Buffer, count: number, dicts: Buffer[] = [], pointDicts?: Uint16Array, offsets?: Uint32Array): ArrayLike<unknown> {
  if (kind === KIND_ITEMS) {
    if (count === 0) return [];
    if (dicts.length <= 1) {
      const { unpackr, flat } = decoderFor(dicts[0] ?? EMPTY);
      if (flat) {
        const out: unknown[] = new Array(count);
        if (flat(data, count, out, ONE_ROW, count)) return out;
      }
      return unpackr.unpackMultiple(data) as unknown[];
    }
    // Several dictionaries (points merged from several writes): one row of all the points.
    const out: unknown[] = new Array(count);
    decodeItemsInto(out, { starts: ONE_ROW, len: count }, data, count, dicts, pointDicts!, offsets!);
    return out;
  }
  const C = typedCtor(kind);
  // Copy into an aligned buffer (the native buffer may be unaligned).
  const arr = new C(count);
  new Uint8Array(arr.buffer).set(data.subarray(0, count * C.BYTES_PER_ELEMENT));
  return arr;
}

/**
 * Decodes `count` items points (as `decodeOutputs`) straight into `out`, in
 * rows: row r of `len` points goes to `starts[r]` onwards (a chunk's place
 * in a run's flat output), with no array of the chunk's own in between.
 */
export function decodeItemsInto(out: unknown[], rows: { starts: Uint32Array; len: number }, data: Buffer, count: number, dicts: Buffer[], pointDicts: Uint16Array, offsets: Uint32Array): void {
  const { starts, len } = rows;
  let r = 0;
  let k = 0;
  let at = starts[0]!;
  const put = (v: unknown): void => {
    out[at + k] = v;
    if (++k === len) {
      k = 0;
      at = starts[++r]!;
    }
  };
  if (dicts.length <= 1) {
    const { unpackr, flat } = decoderFor(dicts[0] ?? EMPTY);
    // Flat records (what flat-pack writes) without msgpackr; anything else,
    // also after a reader gave up part way, with it (every point rewritten).
    if (flat?.(data, count, out, starts, len)) return;
    unpackr.unpackMultiple(data, put);
    return;
  }
  // Several dictionaries: runs of points sharing one.
  for (let i = 0; i < count; ) {
    let j = i + 1;
    while (j < count && pointDicts[j] === pointDicts[i]) j++;
    decoderFor(dicts[pointDicts[i]!]!).unpackr.unpackMultiple(data.subarray(offsets[i]!, offsets[j]!), put);
    i = j;
  }
}

/** `TypedArray.prototype.slice`: a copy also for a Buffer (whose own `slice` is a view). */
const typedSlice = Object.getPrototypeOf(Uint8Array.prototype).slice as (this: TypedArray) => TypedArray;

/** A copy of outputs (an array or a typed array of any kind, a Buffer too). */
export function copyOutputs<T extends unknown[] | TypedArray>(out: T): T {
  return (Array.isArray(out) ? out.slice() : typedSlice.call(out as TypedArray)) as T;
}

/**
 * The `count` elements of dtype `kind` at `start` of `data`, as a typed array
 * over the same memory when aligned (a batch read pads typed chunks to 8
 * bytes), else copied.
 */
export function typedView(kind: number, data: Buffer, start: number, count: number): TypedArray {
  const C = typedCtor(kind);
  const at = data.byteOffset + start;
  if (at % C.BYTES_PER_ELEMENT === 0) return new C(data.buffer, at, count);
  return decodeOutputs(kind, data.subarray(start, start + count * C.BYTES_PER_ELEMENT), count) as TypedArray;
}

/** Throws an ExecOutputError naming chunk `chunk` (-1: none) and the first of `out` that would not come back the same from the store. */
function assertStorable(out: ArrayLike<unknown>, chunk: number): void {
  for (let j = 0; j < out.length; j++) {
    const bad = unstorable(out[j], `output ${j}`);
    if (bad) {
      throw new ExecOutputError(
        `${chunk >= 0 ? `chunk ${chunk}` : 'outputs'}: ${bad}; return values that round-trip (plain objects, arrays, numbers, strings, booleans, null, bigint, Date, Map, Set, typed arrays)`,
      );
    }
  }
}

/**
 * Why `v` would not come back the same from the store (a function, a
 * symbol, a class instance), as `path: reason`; null when it is storable.
 * Plain objects, arrays, Maps, Sets, Dates, RegExps, Errors, typed arrays
 * and primitives round-trip. The path is built only for a failure.
 */
export function unstorable(v: unknown, path: string): string | null {
  const bad = why(v, 0);
  return bad ? `${path}${bad.path.reverse().join('')}: ${bad.reason}` : null;
}

type Why = { path: string[]; reason: string } | null;

/** Plain values, fast: null means storable. */
function why(v: unknown, depth: number): Why {
  const t = typeof v;
  if (t !== 'object') {
    if (t === 'function') return { path: [], reason: 'a function cannot be stored' };
    if (t === 'symbol') return { path: [], reason: 'a symbol cannot be stored' };
    return null;
  }
  if (v === null) return null;
  if (depth > 64) return { path: [], reason: 'nested more than 64 levels (a cycle?)' };
  const proto = Object.getPrototypeOf(v);
  if (proto === Object.prototype || proto === null) {
    const o = v as Record<string, unknown>;
    for (const k in o) {
      const x = o[k];
      const tx = typeof x;
      if (tx === 'object' ? x === null : tx !== 'function' && tx !== 'symbol') continue;
      const bad = why(x, depth + 1);
      if (bad) return (bad.path.push(`.${k}`), bad);
    }
    return null;
  }
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x = v[i];
      const tx = typeof x;
      if (tx === 'object' ? x === null : tx !== 'function' && tx !== 'symbol') continue;
      const bad = why(x, depth + 1);
      if (bad) return (bad.path.push(`[${i}]`), bad);
    }
    return null;
  }
  if (ArrayBuffer.isView(v) || v instanceof Date || v instanceof RegExp || v instanceof Error) return null;
  if (v instanceof Map) {
    for (const [k, x] of v) {
      const bad = why(k, depth + 1) ?? why(x, depth + 1);
      if (bad) return (bad.path.push(` (Map entry ${String(k)})`), bad);
    }
    return null;
  }
  if (v instanceof Set) {
    for (const x of v) {
      const bad = why(x, depth + 1);
      if (bad) return (bad.path.push(' (a Set element)'), bad);
    }
    return null;
  }
  return { path: [], reason: `an instance of ${(v as object).constructor?.name ?? 'a class'} would come back as a plain object` };
}
