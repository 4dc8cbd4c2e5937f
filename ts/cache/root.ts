/** Cache roots: the default root (`$CHUNK_MEMO_ROOT`, else `.chunk_memo` under the working directory), and opening existing ones. */
import { existsSync } from 'node:fs';
import { join, resolve as resolvePath } from 'node:path';
import type { BindingStore } from '../binding/native.js';
import { CacheNotFoundError } from '../errors/index.js';
import { openStore } from './stores.js';

/** Name of the environment variable that sets the default root. */
export const ROOT_ENV = 'CHUNK_MEMO_ROOT';

/** Directory used when no root is given (read at each call, not at import). */
export function defaultRoot(): string {
  const env = process.env[ROOT_ENV];
  return resolvePath(env !== undefined && env.trim() !== '' ? env : '.chunk_memo');
}

/** True when `root` holds a cache store (an LMDB environment). */
export function isCacheRoot(root: string): boolean {
  return existsSync(join(resolvePath(root), 'data.mdb'));
}

/** Opens an existing root; never creates one. */
export function existingStore(root: string, where: string): { abs: string; store: BindingStore } {
  const abs = resolvePath(root);
  if (!isCacheRoot(abs)) throw new CacheNotFoundError(`${where}: no cache root at ${abs} (no data.mdb there)`);
  return { abs, store: openStore(abs) };
}

/** u64 value hashes packed little-endian in a buffer. */
export function hashesOf(b: Buffer): bigint[] {
  const out: bigint[] = new Array(b.length >> 3);
  for (let i = 0; i < out.length; i++) out[i] = b.readBigUInt64LE(i * 8);
  return out;
}
