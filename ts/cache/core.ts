/** The state shared by a cache and all its views (a module of its own, so modules of the cache layer can name it without importing the class). */
import type { BindingGrid, BindingStore } from '../binding/native.js';
import { fromNative } from '../errors/index.js';
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

/** @internal What the cache layer's helpers need of a cache or view (the class implements it). */
export interface ViewState {
  readonly _core: CacheCore;
  /** Per axis: the selected global indices, or null for the whole axis. */
  readonly _sel: (number[] | null)[];
  /** Axes pinned by a superset match (served as params). */
  readonly _pinned: ReadonlySet<string>;
  /** The core, or ERR_CLOSED. */
  _check(): CacheCore;
}

/** @internal The binding plan of a view. */
export function planOf(view: ViewState) {
  const core = view._check();
  try {
    return core.grid.plan(view._sel.map((s) => (s ? Uint32Array.from(s) : null)));
  } catch (e) {
    throw fromNative(e, 'plan');
  }
}
