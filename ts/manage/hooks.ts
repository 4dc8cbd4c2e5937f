/**
 * Extension points of the runners, used by the management modules:
 * `beforeRun` (e.g. fill from shared roots) and `afterRun` (access times,
 * amortised eviction).
 */
import type { ChunkCache } from '../cache/cache.js';
import type { BindingPlan } from '../binding/native.js';

type AfterHook = (cache: ChunkCache) => void;
type BeforeHook = (cache: ChunkCache, plan: BindingPlan) => void;
const after: AfterHook[] = [];
const before: BeforeHook[] = [];

/** Registers a function called after each run. */
export function onAfterRun(h: AfterHook): void {
  after.push(h);
}

/** Registers a function called after planning, before resolving a run. */
export function onBeforeRun(h: BeforeHook): void {
  before.push(h);
}

export function beforeRun(cache: ChunkCache, plan: BindingPlan): void {
  for (const h of before) h(cache, plan);
}

export function afterRun(cache: ChunkCache): void {
  try {
    cache._core.store.flushAccessTimes();
  } catch {
    // Access times are advisory; a failure here must not fail the run.
  }
  for (const h of after) h(cache);
}
