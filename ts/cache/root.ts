/** The default cache root: `$CHUNK_MEMO_ROOT`, else `.chunk_memo` under the working directory. */
import { resolve as resolvePath } from 'node:path';

/** Name of the environment variable that sets the default root. */
export const ROOT_ENV = 'CHUNK_MEMO_ROOT';

/** Directory used when no root is given (read at each call, not at import). */
export function defaultRoot(): string {
  const env = process.env[ROOT_ENV];
  return resolvePath(env !== undefined && env.trim() !== '' ? env : '.chunk_memo');
}
