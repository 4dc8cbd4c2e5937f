/**
 * How values and options appear in error messages, and the shared check for
 * unknown options: the lowest layer, imported by every folder.
 */
import { InvalidOptionError } from './errors/index.js';

/** A short, readable rendering of any value for an error message. */
export function describeValue(v: unknown): string {
  try {
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'function') return `a function${v.name ? ` (${v.name})` : ''}`;
    if (v instanceof Date) return `Date(${Number.isNaN(v.getTime()) ? 'invalid' : v.toISOString()})`;
    if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as Uint8Array).length ?? v.byteLength})`;
    const s = JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x));
    if (s !== undefined) return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    /* fall through */
  }
  return String(v);
}

/** The values of a product block, per axis, for error messages: `a=[1, 2] b=[10]`. */
export function describeBlock(axes: Record<string, readonly unknown[]>): string {
  const parts = Object.entries(axes).map(([a, v]) => `${a}=[${v.slice(0, 6).map(describeValue).join(', ')}${v.length > 6 ? `, ... ${v.length} values` : ''}]`);
  return parts.join(' ') || 'the singleton point';
}

/** True for `{}`-style objects (not arrays, class instances or null). */
export function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

/**
 * Throws `ERR_INVALID_OPTION` when `options` is not a plain object or has a
 * key outside `known`, naming it, suggesting the closest valid name and
 * listing the valid ones.
 */
export function checkKnownOptions(where: string, options: unknown, known: readonly string[]): asserts options is Record<string, unknown> | undefined {
  if (options === undefined) return;
  if (!isPlainObject(options)) throw new InvalidOptionError(`${where}: options must be a plain object (got ${describeValue(options)})`);
  for (const k of Object.keys(options)) {
    if (known.includes(k)) continue;
    const near = closest(k, known);
    throw new InvalidOptionError(
      `${where}: unknown option ${JSON.stringify(k)}${near ? ` (did you mean ${JSON.stringify(near)}?)` : ''}; valid options: ${known.join(', ')}`,
    );
  }
}

function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const c of candidates) {
    const d = distance(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best;
}

function distance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const up = prev[j]!;
      prev[j] = Math.min(up + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = up;
    }
  }
  return prev[b.length]!;
}

/** The first line of an error's message (for one-line reasons). */
export function firstLine(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0] ?? text;
}
