// Code-aware identity (SPEC §4.4): the public entry points.
//
// `code: fn` binds a cache to the *logic* of a function: its source is parsed
// with acorn (parse.ts) and re-serialised from the AST into a compact canonical
// string (serialize.ts), so comments, whitespace, line breaks, semicolons vs
// ASI, quote style, trailing commas, redundant parentheses and the function's
// own name do not matter, while any change to an operator, literal, identifier
// or statement does. Free variables (identifiers captured from an enclosing
// scope, found by analyze.ts) cannot be hashed; they are reported so the
// caller can warn about them.
// `code: 'string'` is a user-chosen version label and is used verbatim.

import { NAME_HELPER } from './ast.js';
import { analyze } from './analyze.js';
import { KNOWN_GLOBALS } from './globals.js';
import { parseFunctionSource } from './parse.js';
import { serialize } from './serialize.js';

export interface NormalizedCode {
  /** Canonical form to hash: AST serialisation for functions, the label itself for versions. */
  normalized: string;
  /** Identifiers the function reads from an enclosing scope (sorted, unique; well-known globals excluded). */
  freeVariables: string[];
  kind: 'function' | 'version';
}

const NATIVE_RE = /\{\s*\[native code\]\s*\}\s*$/;

/**
 * Normalise `code` for hashing.
 *
 * - string: a user-chosen version label, used verbatim.
 * - function: its source (`fn.toString()`) is parsed and serialised from the AST,
 *   independent of formatting, comments, quote style and the function's own name.
 *   Native and bound functions have no source and throw.
 */
export function normalizeCode(code: Function | string): NormalizedCode {
  if (typeof code === 'string') return { normalized: code, freeVariables: [], kind: 'version' };
  if (typeof code !== 'function') {
    throw new TypeError(`code: expected a function or a version string, got ${code === null ? 'null' : typeof code}`);
  }
  const src = Function.prototype.toString.call(code);
  if (NATIVE_RE.test(src)) {
    throw new Error(
      `code: cannot hash native or bound function${code.name ? ` '${code.name}'` : ''} (its source is not available); pass a version string instead (code: '<version>').`,
    );
  }
  const parsed = parseFunctionSource(src);
  const analysis = analyze(parsed.root);
  let normalized = serialize(parsed.root, analysis);
  if (parsed.wrapper !== 'expression') normalized = `(Method ${parsed.methodKind ?? 'method'} ${normalized})`;
  const freeVariables = [...analysis.free.keys()]
    .filter((n) => !KNOWN_GLOBALS.has(n) && n !== NAME_HELPER)
    .sort();
  return { normalized, freeVariables, kind: 'function' };
}

/** Warning text for a function with free variables ('' when there are none). */
export function codeWarning(freeVariables: string[]): string {
  if (freeVariables.length === 0) return '';
  const noun = freeVariables.length === 1 ? 'variable' : 'variables';
  return (
    `code: the function refers to free ${noun} ${freeVariables.join(', ')} that cannot be hashed; ` +
    `their values are not part of the cache identity. Move them into params ` +
    `(or pass code: '<version>' to silence this).`
  );
}
