/** Work done after every run: access times and amortised eviction. */
import type { ChunkCache } from '../cache/cache.js';

type Hook = (cache: ChunkCache) => void;
const hooks: Hook[] = [];

/** Registers a function called after each run (management modules use it). */
export function onAfterRun(h: Hook): void {
  hooks.push(h);
}

export function afterRun(cache: ChunkCache): void {
  try {
    cache._core.store.flushAccessTimes();
  } catch {
    // Access times are advisory; a failure here must not fail the run.
  }
  for (const h of hooks) h(cache);
}
