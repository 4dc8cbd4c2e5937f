/**
 * Reliability of the store (docs/reliability.md §5): a full disk on a small
 * tmpfs, damaged index entries, in-use marks across processes, sparse
 * partial records.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { ChunkCache, read, run, verify, type ChunkFn } from '../ts/index.js';
import { freshRoot } from './helpers/grid.js';

const CHUNKS = 400;
const PER_CHUNK = 8192; // 64 KiB of float64 per chunk: 25 MiB in all

const fullFn: ChunkFn = (_p, axes) => {
  const c = axes.c as number[];
  const x = axes.x as number[];
  const out = new Float64Array(c.length * x.length);
  let k = 0;
  for (const i of c) for (const j of x) out[k++] = i * 1e5 + j;
  return out;
};

/** Mounts a tmpfs of `mb` MiB on a fresh directory; null where mount is not permitted (not root). */
function tmpfsRoot(t: { teardown: (f: () => void) => void }, mb: number): string | null {
  const dir = freshRoot();
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${mb}m`, 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  t.teardown(() => {
    spawnSync('umount', ['-l', dir]);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

test('a run that outgrows a 20 MiB tmpfs is ERR_STORE_FULL, keeps what fits and loses nothing committed', async (t) => {
  const root = tmpfsRoot(t, 20);
  if (!root) {
    t.log('SKIPPED: mounting a tmpfs is not permitted here (needs root); the cargo test tests/reliability.rs skips too');
    t.pass();
    return;
  }
  const open = () =>
    ChunkCache.open({
      root,
      params: { test: 'tmpfs-full' },
      axisValues: { c: Array.from({ length: CHUNKS }, (_, i) => i), x: Array.from({ length: PER_CHUNK }, (_, i) => i) },
      chunkSpec: { c: 1, x: PER_CHUNK },
    });
  const cache = open();
  const err = await t.throwsAsync(run(cache, fullFn));
  t.is((err as { code?: string }).code, 'ERR_STORE_FULL', String(err));
  t.regex(err!.message, /nothing committed before this write was lost/);

  // What fits was kept, whole chunks only, and every record is valid.
  t.deepEqual(cache._core.store.verify(cache._core.idBytes), []);
  const st = cache.status();
  t.is(st.partial.length, 0);
  t.is(st.cachedPoints % PER_CHUNK, 0);
  // A chunk costs about 137 KiB (its record and its index entry, which holds
  // the 8,192 value hashes): about 149 fit in 20 MiB.
  t.true(st.cachedPoints / PER_CHUNK > 100, `chunks kept: ${st.cachedPoints / PER_CHUNK} of about 149 that fit`);
  t.log(`kept ${st.cachedPoints / PER_CHUNK} of ${CHUNKS} chunks (64 KiB each) on a 20 MiB tmpfs`);

  // A later read (and another handle) returns everything committed.
  const r = await read<Float64Array>(open());
  t.is(r.missingPoints, CHUNKS * PER_CHUNK - st.cachedPoints);
  let checked = 0;
  for (let p = 0; p < r.present.length; p += 997) {
    if (!r.present[p]) continue;
    t.is(r.output[p], Math.floor(p / PER_CHUNK) * 1e5 + (p % PER_CHUNK));
    checked++;
  }
  t.true(checked > 1000);
  const v = verify(root);
  t.true(v.ok, JSON.stringify(v.problems));
});
