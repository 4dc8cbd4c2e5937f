/** The state shared by a cache and all its views (a module of its own, so modules of the cache layer can name it without importing the class). */
import type { BindingGrid, BindingStore } from '../binding/native.js';
import type { Params, Value } from '../value.js';
import type { ValueIndex } from './grid.js';

/** @internal State shared by a cache and all its views. */
export interface CacheCore {
  store: BindingStore;
  root: string;
  idBytes: Buffer;
  id: string;
  params: Params;
  cacheVersion: string;
  code: Value;
  axisOrder: string[];
  axisValues: Record<string, Value[]>;
  chunkSpec: Record<string, number>;
  hashes: BigUint64Array[];
  /** Value positions per axis, built on first use (selection by value, items). */
  index: ValueIndex[];
  grid: BindingGrid;
  verbose: 0 | 1 | 2;
  maxBytes: number | undefined;
  sharedRoots: string[];
  closed: boolean;
}
