/**
 * Safe identity by default (SPEC §4.4): a cache opened without `code` records
 * the normalised code hash of the function that computes its outputs, and a
 * later run whose function's hash differs warns (`CHUNK_MEMO_CODE_CHANGED`)
 * that the stored outputs came from other code. Reformatting the function
 * does not change its hash. Caches with `code` are bound to their code
 * already and are left alone.
 *
 * Normalising a source parses it, which in a fresh process costs ~15-20 ms
 * (acorn loads and compiles first): more than a warm run over a 1% subset
 * of a million stored points. The record therefore also keeps the digest of
 * the exact source text it was taken from (`codeSource`): a run whose
 * function's text is that one has the recorded hash without parsing
 * anything.
 */
import { normalizeCode } from '../code-identity/normalize.js';
import { codeDigest } from './code-digest.js';
import type { ViewState } from './core.js';
import { packMeta, unpackMeta } from './meta.js';

export const CODE_CHANGED_WARNING = 'CHUNK_MEMO_CODE_CHANGED';

/** Digest per function object (null: no source to hash): runs call the check every time. */
const digests = new WeakMap<Function, string | null>();

/**
 * The digest of a function's exact source text together with the code hash
 * recorded for it (not normalised: cheap, and equal only for equal text).
 * Binding the two means a hash recorded by a version that kept no source
 * digest never matches a digest left from an earlier record.
 */
function sourceDigestOf(fn: Function, codeHash: string): string | null {
  let src: string;
  try {
    src = Function.prototype.toString.call(fn);
  } catch {
    return null;
  }
  return codeDigest(`source ${codeHash} ${src}`);
}

/** The function whose code counts: a `pointwise` wrapper stands for its point function. */
function codeOf(fn: Function): Function {
  const source = (fn as { source?: unknown }).source;
  return typeof source === 'function' ? source : fn;
}

/** Digest of a function's normalised source, or null when it has none (native, bound, unparseable). */
function digestOf(fn: Function): string | null {
  let d = digests.get(fn);
  if (d === undefined) {
    try {
      d = codeDigest(normalizeCode(fn).normalized);
    } catch {
      d = null;
    }
    digests.set(fn, d);
  }
  return d;
}

function changedMessage(label: string, id: string, recorded: string, now: string): string {
  return (
    `${label}: cache ${id} holds outputs computed by a different version of this function ` +
    `(code hash ${recorded.slice(0, 12)}, now ${now.slice(0, 12)}); stored outputs are returned as they are, ` +
    'so they may be stale. Ways out: bind the cache to its code with ChunkCache.open({ ..., code: fn }) ' +
    '(a new cache per version of fn), or open it with another cacheVersion, ' +
    'or call cache.invalidate() to drop the stored outputs so they are computed again.'
  );
}

/**
 * Called by every runner once per run, before computing. For a cache opened
 * without `code`: hashes `fn` (for `pointwise`, its point function), and
 * records the hash in the cache's metadata when none is recorded yet (or the
 * cache holds no outputs any more); warns once, with code
 * `CHUNK_MEMO_CODE_CHANGED`, when a different hash is recorded and the cache
 * holds outputs. Functions without a hashable source record nothing. The
 * record is advisory: a store error here is left to the run itself to meet.
 */
export function checkCodeChange(view: ViewState, fn: Function, label: string): void {
  const core = view._check();
  if (core.code !== null) return;
  const code = codeOf(fn);
  let recorded: string | undefined;
  let digest: string | null;
  try {
    const blob = core.store.getMeta(core.idBytes);
    if (!blob) return;
    const meta = unpackMeta(blob);
    recorded = meta.codeHash;
    // The very text the recorded hash was taken from: nothing to parse.
    const text = recorded !== undefined && meta.codeSource !== undefined ? sourceDigestOf(code, recorded) : null;
    if (text !== null && text === meta.codeSource) return;
    digest = digestOf(code);
    if (digest === null) return;
    if (recorded === digest) {
      // Same logic in other text (reformatted, or recorded before the text was): remember this text.
      const source = text ?? sourceDigestOf(code, digest);
      if (source !== null) record(view, recorded, digest, source);
      return;
    }
    // Another function's outputs are gone (invalidated, evicted): record this one silently.
    if (recorded !== undefined && core.store.summary(core.idBytes).records > 0) {
      warnChanged(label, core.id, recorded, digest);
      return;
    }
    recorded = record(view, recorded, digest, sourceDigestOf(code, digest));
  } catch {
    return;
  }
  // Another process recorded a different function meanwhile.
  if (recorded !== undefined && recorded !== digest) warnChanged(label, core.id, recorded, digest);
}

/**
 * Writes `digest`, and the digest of the source text it was taken from
 * (`source`, when there is one), if the record is still `expected`; returns
 * the record found otherwise (undefined when written).
 */
function record(view: ViewState, expected: string | undefined, digest: string, source: string | null): string | undefined {
  const core = view._check();
  let found: string | undefined;
  core.store.updateMeta(core.idBytes, (old) => {
    if (!old) return null;
    const meta = unpackMeta(old);
    if (meta.codeHash !== expected) {
      found = meta.codeHash;
      return null;
    }
    if (meta.codeHash === digest && (source === null || meta.codeSource === source)) return null;
    meta.codeHash = digest;
    if (source === null) delete meta.codeSource;
    else meta.codeSource = source;
    return packMeta(meta);
  });
  return found;
}

function warnChanged(label: string, id: string, recorded: string, digest: string): void {
  process.emitWarning(changedMessage(label, id, recorded, digest), { code: CODE_CHANGED_WARNING });
}
