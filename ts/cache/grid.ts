/** Hashing of axis values and value lookup per axis. */
import { encodeCanonical, encodeConcatenated } from '../canonical/encode.js';
import { native } from '../binding/native.js';
import type { Value } from '../value.js';

/** u64 value hashes of a list of values (one native call). */
export function hashList(values: readonly Value[], where: string): BigUint64Array {
  const bytes = encodeConcatenated(values, (i) => `${where}[${i}]`);
  const h = native.hashValues(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  const out = new BigUint64Array(h.length / 8);
  new Uint8Array(out.buffer).set(h);
  return out;
}

export function hashOne(value: Value, where: string): bigint {
  const b = encodeCanonical(value, where);
  const h = native.hashValues(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  return h.readBigUInt64LE(0);
}

export function indexOf(hashes: BigUint64Array): Map<bigint, number> {
  const m = new Map<bigint, number>();
  hashes.forEach((h, i) => m.set(h, i));
  return m;
}
