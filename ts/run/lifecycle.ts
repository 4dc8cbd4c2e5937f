/**
 * The steps around every run, called directly by the runners (no hooks):
 * before — mark the cache in use, copy what shared roots hold, plan and
 * resolve the view; after — flush access times, release the mark, and run
 * the amortised eviction of caches opened with `maxBytes`.
 */
import type { BindingPlan, BindingResolved } from '../binding/native.js';
import type { ChunkCache } from '../cache/cache.js';
import { planOf } from '../cache/core.js';
import { autoGc } from '../cache/eviction.js';
import { PlanGeometry } from '../cache/geometry.js';
import { fillFromShared } from '../cache/shared-roots.js';
import { fromNative } from '../errors/index.js';
import { markInUse } from '../store/in-use.js';
import { KIND_ITEMS } from './payload.js';

/** A view planned for a run and resolved against its store; `end()` once the run is over. */
export interface ResolvedRun {
  readonly plan: BindingPlan;
  readonly resolved: BindingResolved;
  readonly geometry: PlanGeometry;
  /** The after-run steps (idempotent). */
  end(): void;
}

/**
 * Where a run that reads every stored chunk wants whole typed chunks
 * copied as the resolution finds them: given the kind of the cache's first
 * record, its typed output's bytes (made now, of that kind), or null.
 */
export type GatherInto = (kind: number, totalPoints: number) => Uint8Array | null;

/**
 * Plans a view and resolves every chunk against the store, with the
 * before-run steps. With `verifyOnRead`, records serving whole chunks are
 * verified as they are read, not here (one pass over their bytes): the
 * caller reads every chunk the resolution found stored and computes what a
 * read did not return (see `BindingPlan.resolve`). With `gatherInto`, whole
 * chunks requested in full of the output's dtype go straight into it as the
 * resolution finds them (`resolved.gathered`), so they are not read again.
 */
export function beginRun(cache: ChunkCache, where: string, verifyOnRead = false, gatherInto?: GatherInto): ResolvedRun {
  const core = cache._check();
  const plan = planOf(cache);
  const release = markInUse(cache);
  let ended = false;
  const end = (): void => {
    if (ended) return;
    ended = true;
    try {
      core.store.flushAccessTimes();
    } catch {
      // Access times are advisory; a failure here must not fail the run.
    }
    release();
    try {
      autoGc(cache);
    } catch (e) {
      process.emitWarning(`chunk-memo: automatic eviction in ${core.root} failed: ${(e as Error).message}`, { code: 'CHUNK_MEMO_GC' });
    }
  };
  try {
    if (core.sharedRoots.length) fillFromShared(cache, plan);
    const geometry = new PlanGeometry(plan);
    const kind = gatherInto ? plan.firstStoredKind(core.store, core.idBytes) : null;
    const out = kind !== null && kind !== KIND_ITEMS ? gatherInto!(kind, geometry.total) : null;
    const resolved = plan.resolve(core.store, core.idBytes, !verifyOnRead, out ? kind : null, out);
    return { plan, resolved, geometry, end };
  } catch (e) {
    end();
    throw fromNative(e, where);
  }
}
