/** Collects the CHUNK_MEMO_OVERLAP process warnings emitted by `action`. */
export async function overlapWarningsDuring(action: () => void): Promise<Array<Error & { code?: string }>> {
  const got: Array<Error & { code?: string }> = [];
  let resolve!: () => void;
  const matched = new Promise<void>((r) => (resolve = r));
  const listener = (w: Error & { code?: string }): void => {
    got.push(w);
    if (w.code === 'CHUNK_MEMO_OVERLAP') resolve();
  };
  process.on('warning', listener);
  try {
    action();
    // process.emitWarning emits on the next tick; setImmediate runs after it.
    await Promise.race([matched, new Promise<void>((r) => setImmediate(r))]);
    await new Promise<void>((r) => setImmediate(r));
  } finally {
    process.off('warning', listener);
  }
  return got.filter((w) => w.code === 'CHUNK_MEMO_OVERLAP');
}
