/**
 * The "in use" registry: a cache is in use while a run (or a management
 * operation) reads or writes its records, and eviction never touches the
 * records of a cache in use. Marks are kept in this process (cheap checks,
 * and the order of last uses within one millisecond for LRU eviction) and
 * at the root (a shared OS lock on the cache's file under `<root>/inuse/`),
 * where every process sharing the root sees them; they end when the marking
 * process dies.
 */
import { resolve as resolvePath } from 'node:path';
import type { BindingStore } from '../binding/native.js';

/** What marking needs of a cache or view. */
interface Markable {
  readonly _core: { readonly root: string; readonly id: string; readonly store: BindingStore; readonly idBytes: Buffer };
}

/** Uses in progress, per `root\0id`. */
const active = new Map<string, number>();
/** Per `root\0id`: sequence number of the last use in this process. */
const lastUse = new Map<string, number>();
let seq = 0;

const keyOf = (root: string, id: string): string => `${resolvePath(root)}\0${id}`;

/**
 * Marks cache `id` of `root` in use until the returned function is called
 * (the runners do this for every run; management operations that read or
 * write records outside a run do it too).
 */
export function beginUse(root: string, id: string): () => void {
  const k = keyOf(root, id);
  active.set(k, (active.get(k) ?? 0) + 1);
  lastUse.set(k, ++seq);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    const n = active.get(k) ?? 0;
    if (n <= 1) active.delete(k);
    else active.set(k, n - 1);
    lastUse.set(k, ++seq);
  };
}

/**
 * Marks a cache (or view) in use, here and at its root, until the returned
 * function is called.
 */
export function markInUse(cache: Markable): () => void {
  const { root, id, store, idBytes } = cache._core;
  const release = beginUse(root, id);
  let token: number | null = null;
  try {
    token = store.markInUse(idBytes);
  } catch {
    // The shared mark is a safety net for other processes; the run goes on without it.
  }
  return () => {
    release();
    if (token === null) return;
    try {
      store.unmarkInUse(idBytes, token);
    } catch {
      // The mark ends with this process at the latest.
    }
    token = null;
  };
}

/** True while any process sharing the root (this one included) uses cache `id`. */
export function isInUseAnywhere(store: BindingStore, root: string, id: string): boolean {
  if (isInUse(root, id)) return true;
  try {
    return store.isCacheInUse(Buffer.from(id, 'hex'));
  } catch {
    return false;
  }
}

/** True while a run of this process uses cache `id` of `root`. */
export function isInUse(root: string, id: string): boolean {
  return (active.get(keyOf(root, id)) ?? 0) > 0;
}

/** Ids of the caches of `root` that this process is using now. */
export function cachesInUse(root: string): Set<string> {
  const prefix = `${resolvePath(root)}\0`;
  const out = new Set<string>();
  for (const [k, n] of active) if (n > 0 && k.startsWith(prefix)) out.add(k.slice(prefix.length));
  return out;
}

/**
 * Order of the last use of a cache in this process (0: not used). Breaks ties
 * between access times of the same millisecond in LRU eviction.
 */
export function lastUseSeq(root: string, id: string): number {
  return lastUse.get(keyOf(root, id)) ?? 0;
}
