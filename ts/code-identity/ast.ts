/** The ESTree shapes the code-identity modules share (acorn's output, loosely typed). */

/** Loose view of an ESTree node as produced by acorn. */
export interface AstNode {
  type: string;
  [key: string]: any;
}

/** Position / raw-text fields: not part of a function's logic, skipped by every walk. */
export const SKIP_KEYS: ReadonlySet<string> = new Set(['type', 'start', 'end', 'loc', 'range', 'raw', 'sourceFile']);

export function isNode(v: unknown): v is AstNode {
  return typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string';
}

/**
 * esbuild's keepNames helper (`__name(fn, "fn")`), injected by tsx and other
 * bundlers. Calls to it are stripped from the normalised form so that the same
 * source hashes alike whether it was run through tsx or compiled by tsc.
 */
export const NAME_HELPER = '__name';
