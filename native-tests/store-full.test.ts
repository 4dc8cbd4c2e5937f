import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runStreaming, run } from '../ts/index.js';
import { native } from '../ts/binding/native.js';
import { freshRoot } from './helpers/grid.js';
import { FULL_CHUNKS, FULL_PER_CHUNK, fullFn, openFull, unevenFn } from './fixtures/full-sweep.js';

const writer = fileURLToPath(new URL('./fixtures/full-writer.ts', import.meta.url));

test('a full store is a clear ERR_STORE_FULL; the map grows until then and nothing committed is lost', (t) => {
  const root = freshRoot();
  // The map starts at 256 KiB, may double up to 512 KiB: about half the
  // sweep's 640 KB of outputs fits.
  const r = spawnSync(process.execPath, ['--import', 'tsx', writer, root], {
    encoding: 'utf8',
    env: { ...process.env, CHUNK_MEMO_MAP_SIZE: String(256 * 1024), CHUNK_MEMO_MAX_MAP_SIZE: String(512 * 1024) },
  });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^ERR_STORE_FULL .*CHUNK_MEMO_MAX_MAP_SIZE=524288.*nothing committed before this write was lost/m);

  // Reopened without the cap: what was committed (chunk by chunk once the
  // batch did not fit) is complete and valid.
  const cache = openFull(root);
  const store = native.BindingStore.open(root);
  t.deepEqual(store.verify(cache._core.idBytes), []);
  const before = cache.status();
  t.true(before.cachedPoints > 0, 'the map grew past its initial size before the cap');
  t.is(before.partial.length, 0);
  t.is(before.cachedPoints % FULL_PER_CHUNK, 0);
  return (async () => {
    const seen = new Set<number>();
    const d = await runStreaming(cache, (p, axes, ctx) => {
      for (const c of axes.c as number[]) seen.add(c);
      return fullFn(p, axes, ctx);
    });
    t.is(d.executedPoints, FULL_CHUNKS * FULL_PER_CHUNK - before.cachedPoints);
    t.is(seen.size, FULL_CHUNKS - before.cached.length);
    const all = await run(cache, () => {
      throw new Error('everything is stored');
    });
    const out = all.output as Float64Array;
    t.is(out[FULL_PER_CHUNK * 3 + 7], 3 * 1e4 + 7);
    t.is(out[FULL_PER_CHUNK * (FULL_CHUNKS - 1) + 1999], (FULL_CHUNKS - 1) * 1e4 + 1999);
  })();
});

test('a full store keeps the chunks of a failed batch that fit, also after one that does not', async (t) => {
  const root = freshRoot();
  // Chunk 0 (about 600 KB) cannot fit in a map capped at 512 KiB; some of the others (tens of KB each) can.
  const r = spawnSync(process.execPath, ['--import', 'tsx', writer, root, 'uneven'], {
    encoding: 'utf8',
    env: { ...process.env, CHUNK_MEMO_MAP_SIZE: String(256 * 1024), CHUNK_MEMO_MAX_MAP_SIZE: String(512 * 1024) },
  });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^ERR_STORE_FULL /m);
  const cache = openFull(root);
  const st = cache.status();
  const stored = st.cached.map((e) => e.axisValues.c![0] as number);
  t.true(stored.length > 0, 'chunks after the one that did not fit are stored');
  t.false(stored.includes(0));
  t.is(st.partial.length, 0);
  t.is(st.cachedPoints, stored.length * FULL_PER_CHUNK);
  // Without the cap only the chunks that did not fit are computed again.
  const seen = new Set<number>();
  const d = await runStreaming(cache, (p, axes, ctx) => {
    for (const c of axes.c as number[]) seen.add(c);
    return unevenFn(p, axes, ctx);
  });
  t.is(d.executedPoints, (FULL_CHUNKS - stored.length) * FULL_PER_CHUNK);
  t.true(seen.has(0));
  t.false(stored.some((c) => seen.has(c)));
});
