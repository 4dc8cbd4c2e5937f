/** Abort handling shared by the run engine. */
import { AbortedError, ChunkMemoError } from '../errors/index.js';

/**
 * Rejects with `ERR_ABORTED` as soon as `signal` fires, whatever `p` does.
 * A signal aborted already (e.g. by the exec call itself) keeps `p`'s result.
 */
export function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal || signal.aborted) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError('aborted', { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Whether `e` is how an aborted exec call ended (or `signal` fired meanwhile). */
export function isAbort(e: unknown, signal: AbortSignal | undefined): boolean {
  return (e instanceof ChunkMemoError && e.code === 'ERR_ABORTED') || (e as Error)?.name === 'AbortError' || signal?.aborted === true;
}
