/**
 * The reading half of flat-pack: items points that are records of one
 * structure holding scalars (what `packFlatRecords` writes, and what
 * msgpackr writes for such objects) are decoded by a reader compiled for
 * the structure's keys, without a call into msgpackr per point. It builds
 * exactly what msgpackr's unpacker builds from the same bytes; on any byte
 * it does not know (a nested value, a second structure, an extension) it
 * gives up and the caller decodes the points with msgpackr instead.
 */

/** Writes `count` decoded points into `out` in rows (see `decodeItemsInto`); false when the bytes are not flat records of its structure. */
export type FlatReader = (data: Buffer, count: number, out: unknown[], starts: Uint32Array, len: number) => boolean;

/** Keys this reader takes at most (a larger record is left to msgpackr). */
const MAX_KEYS = 64;

/** The record id of the first structure of a dictionary (see flat-pack.ts). */
const FIRST_RECORD = 0x40;

/** Returned by `other` for a form the reader does not decode. */
const NOT_FLAT = Symbol('not flat');

/** Where `other` left off (one reader runs at a time: decoding is synchronous). */
let next = 0;

/**
 * A scalar in a form other than the few read inline (see `compile`): the
 * remaining integer forms, booleans, null and longer strings. Sets `next`
 * past it; NOT_FLAT for any other form.
 */
function other(d: Buffer, dv: DataView, at: number): unknown {
  const x = d[at]!;
  if (x >= 0xe0) {
    next = at + 1;
    return x - 0x100;
  }
  switch (x) {
    case 0xc0:
    case 0xc2:
    case 0xc3:
      next = at + 1;
      return x === 0xc0 ? null : x === 0xc3;
    case 0xce:
      next = at + 5;
      return dv.getUint32(at + 1);
    case 0xd0:
      next = at + 2;
      return dv.getInt8(at + 1);
    case 0xd1:
      next = at + 3;
      return dv.getInt16(at + 1);
    case 0xd2:
      next = at + 5;
      return dv.getInt32(at + 1);
    case 0xd9:
      return text(d, at + 2, d[at + 1]!);
    case 0xda:
      return text(d, at + 3, dv.getUint16(at + 1));
    case 0xdb:
      return text(d, at + 5, dv.getUint32(at + 1));
    default:
      return NOT_FLAT;
  }
}

function text(d: Buffer, start: number, n: number): unknown {
  if (start + n > d.length) return NOT_FLAT;
  next = start + n;
  return d.toString('utf8', start, start + n);
}

/**
 * The reader for records of `keys`, compiled once per structure: each
 * value's common forms (small integers, float64, the uint8 and uint16
 * forms, short strings) are read inline, the rest by `other`, and each
 * point is an object literal of the structure's keys.
 */
function compile(keys: readonly string[]): FlatReader | null {
  const n = keys.length;
  const vars = keys.map((_, i) => `v${i}`);
  const field = (v: string): string => `
        if (at >= end) return false;
        x = d[at];
        if (x < ${FIRST_RECORD}) { ${v} = x; at += 1; }
        else if (x === 0xcb) { if (at + 9 > end) return false; ${v} = dv.getFloat64(at + 1); at += 9; }
        else if (x === 0xcc) { ${v} = d[at + 1]; at += 2; }
        else if (x === 0xcd) { ${v} = (d[at + 1] << 8) | d[at + 2]; at += 3; }
        else if (x >= 0xa0 && x < 0xc0) { l = x & 0x1f; if (at + 1 + l > end) return false; ${v} = d.toString('utf8', at + 1, at + 1 + l); at += 1 + l; }
        else { ${v} = other(d, dv, at); if (${v} === NOT_FLAT) return false; at = getNext(); }`;
  const source = `
    return function readFlat(d, count, out, starts, len) {
      const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
      const end = d.length;
      let at = 0, r = 0, k = 0, base = starts[0], x = 0, l = 0;
      ${vars.map((v) => `let ${v};`).join(' ')}
      for (let i = 0; i < count; i++) {
        if (at >= end || d[at] !== ${FIRST_RECORD}) return false;
        at += 1;
        ${vars.map(field).join('')}
        out[base + k] = { ${keys.map((key, i) => `${JSON.stringify(key)}: ${vars[i]}`).join(', ')} };
        if (++k === len) { k = 0; base = starts[++r]; }
      }
      return at === end;
    };`;
  if (n === 0 || n > MAX_KEYS) return null;
  try {
    return new Function('other', 'NOT_FLAT', 'getNext', source)(other, NOT_FLAT, () => next) as FlatReader;
  } catch {
    // Code generation from strings is disabled (a V8 flag or policy): msgpackr reads these.
    return null;
  }
}

/**
 * The flat reader for items packed with a dictionary of `structures` (as
 * msgpackr's unpacker takes them); null when there is none: not exactly
 * one structure, or keys a plain object literal would treat otherwise.
 * Compiled once per dictionary by its caller's cache (payload.ts).
 */
export function flatReader(structures: readonly unknown[]): FlatReader | null {
  const keys = structures.length === 1 && Array.isArray(structures[0]) ? (structures[0] as unknown[]) : null;
  return keys && keys.every((k) => typeof k === 'string' && k !== '__proto__') && new Set(keys).size === keys.length ? compile(keys as string[]) : null;
}
