/**
 * Extension points of the runners, used by the management modules:
 * `beforeRun` (e.g. fill from shared roots) and `afterRun` (access times,
 * amortised eviction).
 *
 * The hooks also keep the in-process "in use" registry: a cache is in use
 * from `beforeRun` until the matching `afterRun` (which the runners call in
 * `finally`), and eviction never touches the records of a cache in use.
 */
import { resolve as resolvePath } from 'node:path';
import type { ChunkCache } from '../cache/cache.js';
import type { BindingPlan } from '../binding/native.js';

type AfterHook = (cache: ChunkCache) => void;
type BeforeHook = (cache: ChunkCache, plan: BindingPlan) => void;
const after: AfterHook[] = [];
const before: BeforeHook[] = [];

/** Runs in progress, per cache object (views are distinct objects). */
const active = new Map<ChunkCache, number>();
/** Per `root\0id`: sequence number of the last run end in this process. */
const lastUse = new Map<string, number>();
let seq = 0;

const keyOf = (root: string, id: string): string => `${resolvePath(root)}\0${id}`;

/** Registers a function called after each run. */
export function onAfterRun(h: AfterHook): void {
  after.push(h);
}

/** Registers a function called after planning, before resolving a run. */
export function onBeforeRun(h: BeforeHook): void {
  before.push(h);
}

/** True while a run of this process uses cache `id` of `root`. */
export function isInUse(root: string, id: string): boolean {
  const k = keyOf(root, id);
  for (const [c, n] of active) if (n > 0 && keyOf(c._core.root, c._core.id) === k) return true;
  return false;
}

/** Ids of the caches of `root` that runs of this process are using now. */
export function cachesInUse(root: string): Set<string> {
  const r = resolvePath(root);
  const out = new Set<string>();
  for (const [c, n] of active) if (n > 0 && resolvePath(c._core.root) === r) out.add(c._core.id);
  return out;
}

/**
 * Marks a cache in use until the returned function is called (for
 * management operations that read or write records outside a run).
 */
export function markInUse(cache: ChunkCache): () => void {
  active.set(cache, (active.get(cache) ?? 0) + 1);
  let done = false;
  return () => {
    if (done) return;
    done = true;
    release(cache);
  };
}

function release(cache: ChunkCache): void {
  const n = active.get(cache) ?? 0;
  if (n <= 1) active.delete(cache);
  else active.set(cache, n - 1);
}

/**
 * Order of the last use of a cache in this process (0: not used). Breaks ties
 * between access times of the same millisecond in LRU eviction.
 */
export function lastUseSeq(root: string, id: string): number {
  return lastUse.get(keyOf(root, id)) ?? 0;
}

export function beforeRun(cache: ChunkCache, plan: BindingPlan): void {
  active.set(cache, (active.get(cache) ?? 0) + 1);
  lastUse.set(keyOf(cache._core.root, cache._core.id), ++seq);
  for (const h of before) h(cache, plan);
}

export function afterRun(cache: ChunkCache): void {
  try {
    cache._core.store.flushAccessTimes();
  } catch {
    // Access times are advisory; a failure here must not fail the run.
  }
  // Only a run that reached beforeRun holds a mark.
  if (active.has(cache)) {
    release(cache);
    lastUse.set(keyOf(cache._core.root, cache._core.id), ++seq);
  }
  for (const h of after) h(cache);
}
