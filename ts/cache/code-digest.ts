/** The code component of a cache identity (SPEC §4.4), and the digest of a normalised function. */
import { native } from '../binding/native.js';
import { encodeCanonical } from '../canonical/encode.js';
import { InvalidOptionError } from '../errors/index.js';
import { codeWarning, normalizeCode } from '../code-identity/normalize.js';
import type { Value } from '../value.js';

/** BLAKE3 (hex) of the canonical encoding of a normalised source: the `fn` of a code identity. */
export function codeDigest(normalized: string): string {
  const bytes = encodeCanonical(normalized);
  return native.canonicalDigestHex(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}

/**
 * `null` without code, `{ version }` for a label, `{ fn: digest }` for a
 * function (BLAKE3 of its normalised source). Warns about free variables.
 */
export function codeIdentity(code: ((...a: never[]) => unknown) | string | undefined, where: string): Value {
  if (code === undefined) return null;
  let n;
  try {
    n = normalizeCode(code as (...a: unknown[]) => unknown);
  } catch (e) {
    throw new InvalidOptionError(`${where}: options.code: ${(e as Error).message}`, { cause: e });
  }
  if (n.kind === 'version') return { version: n.normalized };
  if (n.freeVariables.length > 0) {
    process.emitWarning(codeWarning(n.freeVariables), { code: 'CHUNK_MEMO_FREE_VARIABLES' });
  }
  return { fn: codeDigest(n.normalized) };
}

/** Code identity used by `memoize`. */
export function memoCodeIdentity(fn: (...a: never[]) => unknown): Value {
  return codeIdentity(fn, 'memoize');
}
