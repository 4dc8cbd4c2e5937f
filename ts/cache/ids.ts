/** Cache ids given in full or as a unique prefix. */
import type { BindingStore } from '../binding/native.js';
import { AmbiguousCacheError, CacheNotFoundError, InvalidOptionError } from '../errors/index.js';

/** Length of a full cache id (hex characters). */
export const ID_LENGTH = 32;

/**
 * Resolves a full id or a unique prefix of one among the caches of `store`.
 * `hint` ends the not-found message (how to list the caches).
 * @throws InvalidOptionError (not hex), CacheNotFoundError, AmbiguousCacheError (lists the matches)
 */
export function resolveId(store: BindingStore, root: string, idOrPrefix: unknown, where: string, hint: string): string {
  if (typeof idOrPrefix !== 'string' || !/^[0-9a-f]{1,32}$/i.test(idOrPrefix)) {
    throw new InvalidOptionError(`${where}: a cache id is up to ${ID_LENGTH} hex characters (a full id or a unique prefix of one; got ${JSON.stringify(idOrPrefix)})`);
  }
  const want = idOrPrefix.toLowerCase();
  if (want.length === ID_LENGTH) {
    if (store.getMeta(Buffer.from(want, 'hex'))) return want;
    throw new CacheNotFoundError(`${where}: no cache ${want} in ${root}; ${hint}`);
  }
  const matches = store.listMeta().map((e) => e.id.toString('hex')).filter((id) => id.startsWith(want)).sort();
  if (matches.length === 1) return matches[0]!;
  if (matches.length === 0) throw new CacheNotFoundError(`${where}: no cache id starts with ${want} in ${root}; ${hint}`);
  const shown = matches.slice(0, 10).join(', ') + (matches.length > 10 ? `, ... (${matches.length} in all)` : '');
  throw new AmbiguousCacheError(`${where}: id prefix ${want} matches ${matches.length} caches in ${root}: ${shown}; give more characters`);
}
