/**
 * The common items output packed without a call into msgpackr per point:
 * numbers, strings, booleans and null, alone or as the values of plain
 * objects that all have the same keys in the same order. The bytes are
 * what msgpackr's unpacker reads back (with `useRecords` and the record
 * structures of the dictionary): a record id byte (0x40, the first
 * structure) before each object's values, each value in its shortest
 * msgpack form. Anything else (another shape, a nested value, a class
 * instance) is left to msgpackr: these functions then write nothing and
 * return null.
 */

/** What the caller's byte area offers (see `ByteSink` in payload.ts). */
export interface Sink {
  data: Buffer;
  at: number;
  reserve(n: number): void;
}

/** The record id of the first structure of a dictionary. */
const FIRST_RECORD = 0x40;

/** Bytes a value other than a string takes at most (a float64). */
const MAX_SCALAR = 9;

/**
 * Writes `v` (a number, string, boolean or null) at the sink's end; false
 * (nothing written) for any other value. Room for MAX_SCALAR bytes must
 * be reserved; a string reserves its own. Inside `records`, the bytes
 * 0x40 to 0x7f name record structures, so the integers 64 to 127 take the
 * one-byte unsigned form instead.
 */
function put(sink: Sink, v: unknown, records: boolean): boolean {
  const d = sink.data;
  let at = sink.at;
  switch (typeof v) {
    case 'number':
      if (Number.isInteger(v) && (v !== 0 || 1 / v > 0)) {
        if (v >= 0) {
          if (v < (records ? FIRST_RECORD : 0x80)) d[at++] = v;
          else if (v <= 0xff) (d[at++] = 0xcc), (d[at++] = v);
          else if (v <= 0xffff) (d[at++] = 0xcd), (d[at++] = v >>> 8), (d[at++] = v & 0xff);
          else if (v <= 0xffffffff) (d[at++] = 0xce), d.writeUInt32BE(v, at), (at += 4);
          else (d[at++] = 0xcb), d.writeDoubleBE(v, at), (at += 8);
        } else if (v >= -32) d[at++] = v & 0xff;
        else if (v >= -0x80) (d[at++] = 0xd0), (d[at++] = v & 0xff);
        else if (v >= -0x8000) (d[at++] = 0xd1), d.writeInt16BE(v, at), (at += 2);
        else if (v >= -0x80000000) (d[at++] = 0xd2), d.writeInt32BE(v, at), (at += 4);
        else (d[at++] = 0xcb), d.writeDoubleBE(v, at), (at += 8);
      } else {
        // Fractions, -0, NaN and the infinities: a float64, exact.
        d[at++] = 0xcb;
        d.writeDoubleBE(v, at);
        at += 8;
      }
      break;
    case 'string': {
      // The header is chosen for the most bytes the string can take (3
      // per UTF-16 unit); a shorter string still reads back under it.
      const most = v.length * 3;
      sink.reserve(most + 5);
      const s = sink.data;
      const head = most < 32 ? 1 : most <= 0xff ? 2 : most <= 0xffff ? 3 : 5;
      const n = s.write(v, at + head, 'utf8');
      if (head === 1) s[at] = 0xa0 | n;
      else if (head === 2) (s[at] = 0xd9), (s[at + 1] = n);
      else if (head === 3) (s[at] = 0xda), s.writeUInt16BE(n, at + 1);
      else (s[at] = 0xdb), s.writeUInt32BE(n, at + 1);
      at += head + n;
      break;
    }
    case 'boolean':
      d[at++] = v ? 0xc3 : 0xc2;
      break;
    case 'object':
      if (v !== null) return false;
      d[at++] = 0xc0;
      break;
    default:
      return false;
  }
  sink.at = at;
  return true;
}

/**
 * Packs numbers, strings, booleans and null, one msgpack value per point,
 * with each point's end in `offsets[offAt + 1..]` (relative to where the
 * first starts); false, with nothing written, when `out` holds anything
 * else.
 */
export function packScalars(out: ArrayLike<unknown>, sink: Sink, offsets: Uint32Array, offAt: number): boolean {
  const base = sink.at;
  offsets[offAt] = 0;
  for (let i = 0; i < out.length; i++) {
    sink.reserve(MAX_SCALAR);
    if (!put(sink, out[i], false)) {
      sink.at = base;
      return false;
    }
    offsets[offAt + i + 1] = sink.at - base;
  }
  return true;
}

/**
 * Packs plain objects that all have the keys of the first, in its order,
 * with scalar values (see `packScalars`), as records of one structure;
 * returns that structure (the keys), or null with nothing written.
 */
export function packFlatRecords(out: ArrayLike<unknown>, sink: Sink, offsets: Uint32Array, offAt: number): string[] | null {
  const first = out[0];
  if (!isPlain(first)) return null;
  const keys: string[] = [];
  for (const k in first) keys.push(k);
  // An empty object, or a key an object literal would not take as its own.
  if (keys.length === 0 || keys.includes('__proto__')) return null;
  const nk = keys.length;
  const base = sink.at;
  const fail = (): null => {
    sink.at = base;
    return null;
  };
  offsets[offAt] = 0;
  for (let i = 0; i < out.length; i++) {
    const o = out[i];
    if (!isPlain(o)) return fail();
    sink.reserve(1 + nk * MAX_SCALAR);
    sink.data[sink.at++] = FIRST_RECORD;
    let j = 0;
    for (const k in o) {
      if (j === nk || k !== keys[j]) return fail();
      sink.reserve(MAX_SCALAR);
      if (!put(sink, (o as Record<string, unknown>)[k], true)) return fail();
      j++;
    }
    if (j !== nk) return fail();
    offsets[offAt + i + 1] = sink.at - base;
  }
  return keys;
}

function isPlain(v: unknown): v is object {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}
