/** The metadata record of a cache, stored under its id in the `meta` database. */
import { Packr } from 'msgpackr';
import type { BindingStore } from '../binding/native.js';
import type { Params, Value } from '../value.js';

export const META_FORMAT = 1;

export interface CacheMeta {
  format: number;
  id: string;
  params: Params;
  axisOrder: string[];
  /** Union of every axis value ever used with this id, in first-seen order. */
  axisValues: Record<string, Value[]>;
  chunkSpec: Record<string, number>;
  cacheVersion: string;
  /** Code identity: null, `{ version }` or `{ fn: digest }`. */
  code: Value;
  /**
   * Caches without `code`: digest of the normalised source of the function
   * that computed the stored outputs (as `code: fn` would hash it), recorded
   * by the runners (cache/code-record.ts). Absent in blobs written before it
   * existed, or before any run of a function whose source could be hashed.
   */
  codeHash?: string;
  /**
   * The digest of the exact source text `codeHash` was last found for, so
   * that a run of that very text need not parse it (cache/code-record.ts).
   * Absent where the hash was recorded before this existed.
   */
  codeSource?: string;
  createdAt: number;
  updatedAt: number;
}

const packr = new Packr({ useRecords: false, moreTypes: true, int64AsType: 'bigint', variableMapSize: true });

/** Above this size a packed blob is copied out and msgpackr's encode buffer given back (see packMeta). */
const LARGE_META = 1 << 20;

/**
 * The blob of `m`. msgpackr encodes into one buffer shared by every Packr
 * of the process and keeps it, at the size of the largest value it has
 * encoded: the metadata of a million-value axis would pin ~13 MB for the
 * life of the process. A large blob is therefore copied out and msgpackr
 * handed a small buffer again.
 */
export function packMeta(m: CacheMeta): Buffer {
  const blob = packr.pack(m);
  if (blob.length < LARGE_META) return blob;
  const own = Buffer.from(blob);
  packr.useBuffer(Buffer.allocUnsafeSlow(8192));
  return own;
}

export function unpackMeta(b: Buffer): CacheMeta {
  return packr.unpack(b) as CacheMeta;
}

/** Every cache's metadata in a store (entries that do not decode are skipped; verify reports them). */
export function listMetas(store: BindingStore): CacheMeta[] {
  const out: CacheMeta[] = [];
  for (const e of store.listMeta()) {
    try {
      out.push(unpackMeta(e.blob));
    } catch {
      // reported by verify
    }
  }
  return out;
}
