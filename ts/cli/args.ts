/** Command-line arguments: the default root, cache ids by prefix, suggestions. */
import { existsSync } from 'node:fs';
import type { BindingStore } from '../binding/native.js';
import { resolveId } from '../cache/ids.js';
import { defaultRoot, ROOT_ENV } from '../cache/root.js';
import { InvalidOptionError } from '../errors/index.js';
import { existingStore } from '../manage/util.js';

/** The root a command works on: the one given, else `$CHUNK_MEMO_ROOT`, else `.chunk_memo`. */
export function rootArg(root: string | undefined): string {
  return root ?? defaultRoot();
}

/** Opens an existing root (never creates one); says where the default came from. */
export function openRoot(root: string | undefined, where: string): { abs: string; store: BindingStore } {
  try {
    return existingStore(rootArg(root), where);
  } catch (e) {
    if (root === undefined && e instanceof Error) {
      const from = process.env[ROOT_ENV] ? `$${ROOT_ENV}` : `the default root (set $${ROOT_ENV} or give ROOT)`;
      e.message = `${e.message}; ROOT was taken from ${from}`;
    }
    throw e;
  }
}

/** A cache id from a full id or a unique prefix of one. */
export function cacheIdArg(store: BindingStore, abs: string, idOrPrefix: string, where: string): string {
  return resolveId(store, abs, idOrPrefix, where, `list caches with \`chunk-memo ls ${abs}\``);
}

const HEX_ID = /^[0-9a-f]{1,32}$/i;

/**
 * Splits `[ROOT] ID...`: the first argument is ROOT when more than one is
 * given and it names an existing path or is not an id (prefix).
 */
export function rootAndIds(args: readonly string[], where: string): { root: string | undefined; ids: string[] } {
  if (args.length === 0) throw new InvalidOptionError(`${where}: give at least one cache ID`);
  const [first, ...rest] = args;
  if (args.length > 1 && (existsSync(first!) || !HEX_ID.test(first!))) return { root: first, ids: rest };
  if (args.length === 1 && !HEX_ID.test(first!)) {
    throw new InvalidOptionError(`${where}: ${JSON.stringify(first)} is not a cache id; give the cache ids after ROOT`);
  }
  return { root: undefined, ids: [...args] };
}

/** Edit distance (optimal string alignment: a swap of neighbours counts 1). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** Candidates close to `word` (by edit distance, or starting with it), best first. */
export function suggestions(word: string, candidates: readonly string[]): string[] {
  const w = word.toLowerCase();
  const limit = Math.max(1, Math.floor(w.replace(/^-+/, '').length / 3));
  const scored = candidates
    .map((c) => ({ c, d: editDistance(w, c.toLowerCase()) }))
    .filter(({ c, d }) => d <= limit || (w.replace(/^-+/, '').length >= 2 && c.toLowerCase().startsWith(w)));
  scored.sort((x, y) => x.d - y.d || (x.c < y.c ? -1 : 1));
  return [...new Set(scored.map((s) => s.c))];
}
