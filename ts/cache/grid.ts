/** Hashing of axis values and value lookup per axis. */
import { encodeCanonical, encodeConcatenated } from '../canonical/encode.js';
import { native } from '../binding/native.js';
import type { Value } from '../value.js';

/** The canonical encodings of a list of values, concatenated (what the hashing calls take). */
function encodeList(values: readonly Value[], where: string): Buffer {
  const bytes = encodeConcatenated(values, (i) => `${where}[${i}]`);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** u64 LE hashes as bigints (an aligned copy). */
function bigints(h: Buffer): BigUint64Array {
  const out = new BigUint64Array(h.length / 8);
  new Uint8Array(out.buffer).set(h);
  return out;
}

/** u64 value hashes of a list of values (one native call). */
export function hashList(values: readonly Value[], where: string): BigUint64Array {
  return bigints(native.hashValues(encodeList(values, where)));
}

/**
 * u64 value hashes and u32 order keys (what chunk keys start with, so that
 * neighbouring chunks are stored side by side) of an axis' values, in one
 * native call.
 */
export function hashAxis(values: readonly Value[], where: string): { hashes: BigUint64Array; order: Buffer } {
  const h = native.hashAxisValues(encodeList(values, where));
  return { hashes: bigints(h.hashes), order: h.order };
}

export function hashOne(value: Value, where: string): bigint {
  const b = encodeCanonical(value, where);
  const h = native.hashValues(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  return h.readBigUInt64LE(0);
}

/**
 * Position of each value hash along an axis. Keys are the low 52 bits as a
 * JS number (maps of numbers are far faster than maps of bigints); a hit is
 * confirmed against the full 64-bit hash, and the rare 52-bit collisions go
 * to a small exact map.
 */
export class ValueIndex {
  private readonly byLow = new Map<number, number>();
  private readonly exact = new Map<bigint, number>();
  constructor(private readonly hashes: BigUint64Array) {
    const words = new Uint32Array(hashes.buffer, hashes.byteOffset, hashes.length * 2);
    for (let i = 0; i < hashes.length; i++) {
      const key = low52(words[2 * i]!, words[2 * i + 1]!);
      const j = this.byLow.get(key);
      if (j === undefined) this.byLow.set(key, i);
      else if (hashes[j] !== hashes[i] && !this.exact.has(hashes[i]!)) this.exact.set(hashes[i]!, i);
    }
  }

  get(h: bigint): number | undefined {
    const j = this.byLow.get(Number(h & 0xfffffffffffffn));
    if (j !== undefined && this.hashes[j] === h) return j;
    return this.exact.get(h);
  }

  has(h: bigint): boolean {
    return this.get(h) !== undefined;
  }
}

function low52(lo: number, hi: number): number {
  return (hi & 0xfffff) * 0x100000000 + lo;
}
