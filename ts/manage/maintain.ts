/** verify (and repair), rm and clear. */
import { cacheIdOf } from '../cache/cache.js';
import { unpackMeta } from '../cache/meta.js';
import { CacheNotFoundError, ChunkMemoError } from '../errors/index.js';
import { isInUseAnywhere } from '../store/in-use.js';
import { ChunkCache } from '../cache/cache.js';
import { checkId, existingStore } from './util.js';

/** A problem found by `verify`. */
export interface VerifyProblem {
  readonly id: string;
  /** Chunk key (32 hex chars), or null for a problem with the metadata. */
  readonly chunk: string | null;
  readonly reason: string;
  /** True when `repair` deleted the record (it is recomputed by the next run). */
  readonly repaired: boolean;
}

/** Result of `verify`. */
export interface VerifyResult {
  readonly root: string;
  readonly caches: number;
  readonly records: number;
  readonly problems: VerifyProblem[];
  /** True when no problem is left (none found, or all repaired). */
  readonly ok: boolean;
}

/**
 * Checks every record of every cache in `root`: checksum, structure and
 * agreement with its index entry; and that each cache's metadata decodes and
 * hashes to its id. With `repair`, bad records are deleted so that the next
 * run recomputes exactly their points.
 */
export function verify(root: string, options: { repair?: boolean } = {}): VerifyResult {
  const { abs, store } = existingStore(root, 'verify');
  const problems: VerifyProblem[] = [];
  let records = 0;
  const entries = store.listMeta();
  for (const e of entries) {
    const id = e.id.toString('hex');
    try {
      const m = unpackMeta(e.blob);
      const again = cacheIdOf(m.params, m.cacheVersion, m.code).id;
      if (m.id !== id || again !== id) problems.push({ id, chunk: null, reason: `metadata describes cache ${again}, not ${id}`, repaired: false });
    } catch (err) {
      problems.push({ id, chunk: null, reason: `metadata does not decode: ${(err as Error).message}`, repaired: false });
    }
    records += store.summary(e.id).records;
    const bad = store.verify(e.id);
    if (bad.length && options.repair) {
      // Index entries are rebuilt from valid records where the cache's grid
      // places them; everything else is dropped and recomputed by the next run.
      let grid = null;
      try {
        grid = ChunkCache.load(abs, id)._core.grid;
      } catch {
        // Metadata that does not load: repair without a grid (drop).
      }
      const done = new Map(store.repair(e.id, grid).map((r) => [r.chunk.toString('hex'), r]));
      for (const b of bad) {
        const r = done.get(b.chunk.toString('hex'));
        problems.push({ id, chunk: b.chunk.toString('hex'), reason: r ? `${b.reason} (${r.rebuilt ? 'index entry rebuilt' : 'record dropped'})` : b.reason, repaired: !!r });
      }
    } else for (const b of bad) problems.push({ id, chunk: b.chunk.toString('hex'), reason: b.reason, repaired: false });
  }
  return { root: abs, caches: entries.length, records, problems, ok: problems.every((p) => p.repaired) };
}

/** Deletes caches (metadata and every record). Unknown ids are an error and nothing is deleted. */
export function rm(root: string, ids: readonly string[]): Array<{ id: string; records: number }> {
  const { abs, store } = existingStore(root, 'rm');
  for (const id of ids) {
    checkId('rm', id);
    if (!store.getMeta(Buffer.from(id, 'hex'))) throw new CacheNotFoundError(`rm: no cache ${id} in ${abs}; nothing was deleted`);
    if (isInUseAnywhere(store, abs, id)) throw new ChunkMemoError('ERR_IN_USE', `rm: cache ${id} is in use by a run (of this or another process); nothing was deleted`);
  }
  return [...new Set(ids)].map((id) => ({ id, records: store.deleteCache(Buffer.from(id, 'hex')) }));
}

/** Deletes every cache of `root`. */
export function clear(root: string): Array<{ id: string; records: number }> {
  const { store } = existingStore(root, 'clear');
  return rm(root, store.listMeta().map((e) => e.id.toString('hex')));
}
