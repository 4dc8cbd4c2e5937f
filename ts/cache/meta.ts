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
  createdAt: number;
  updatedAt: number;
}

const packr = new Packr({ useRecords: false, moreTypes: true, int64AsType: 'bigint', variableMapSize: true });

export function packMeta(m: CacheMeta): Buffer {
  return packr.pack(m);
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
