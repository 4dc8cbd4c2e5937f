/**
 * Reliability of the store (docs/reliability.md §5): a full disk on a small
 * tmpfs, damaged index entries, in-use marks across processes, sparse
 * partial records.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import fs from 'node:fs';
import { ChunkCache, iterate, read, run, runStreaming, verify, type ChunkFn } from '../ts/index.js';
import { native } from '../ts/binding/native.js';
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
  // the 8,192 value hashes): at most about 149 fit in 20 MiB; how many are
  // kept depends on where the batch that hit the limit began (it is then
  // written chunk by chunk), so only "some" is asserted.
  t.true(st.cachedPoints > 0 && st.cachedPoints / PER_CHUNK <= 160, `chunks kept: ${st.cachedPoints / PER_CHUNK} of about 149 that fit`);
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
  // Every 997th point of what is stored was compared.
  t.true(checked >= Math.floor(st.cachedPoints / 997) - 1 && checked > 0, `checked ${checked}`);
  const v = verify(root);
  t.true(v.ok, JSON.stringify(v.problems));
});

test('a damaged index entry is missing to runs across chunkings, reported by verify, rebuilt or dropped by repair', async (t) => {
  const root = freshRoot();
  const axisValues = { x: [0, 1, 2, 3, 4, 5, 6, 7], y: [0, 1, 2, 3] };
  const open = (chunkSpec: Record<string, number>) => ChunkCache.open({ root, params: { test: 'index-entries' }, axisValues, chunkSpec });
  const fn: ChunkFn = (_p, axes) => {
    const out: number[] = [];
    for (const x of axes.x as number[]) for (const y of axes.y as number[]) out.push(x * 10 + y);
    return Float64Array.from(out);
  };
  const expected = Float64Array.from(axisValues.x.flatMap((x) => axisValues.y.map((y) => x * 10 + y)));
  const c4 = open({ x: 4, y: 4 });
  await run(c4, fn);
  const { store, idBytes: id } = c4._core;
  const keys = store.descriptors(id).map((d) => d.chunk);
  t.is(keys.length, 2);
  const damage = () => {
    for (const k of keys) {
      const raw = store.getRawIndexForTests(id, k)!;
      raw[Math.floor(raw.length / 3)]! ^= 0x04;
      store.putRawIndexForTests(id, k, raw);
    }
  };
  damage();

  // Another chunking: its run neither fails nor reads the records through
  // their damaged entries; it recomputes their points and reports them.
  const c2 = open({ x: 2, y: 2 });
  const r = await run(c2, fn);
  t.deepEqual(r.output, expected);
  t.is(r.diagnostics.executedPoints, 32);
  t.is(r.diagnostics.corruptRecords.length, 2);
  t.regex(r.diagnostics.corruptRecords[0]!, /damaged index entry/);

  // verify reports them (it threw a raw Error before).
  const v = verify(root);
  t.false(v.ok);
  t.deepEqual(v.problems.map((p) => p.chunk).sort(), keys.map((k) => k.toString('hex')).sort());
  t.true(v.problems.every((p) => /damaged index entry/.test(p.reason)));

  // store.repair with the cache's grid rebuilds the entries from the records.
  const done = store.repair(id, c4._core.grid);
  t.deepEqual(done.map((d) => d.rebuilt), [true, true]);
  t.true(verify(root).ok);
  t.is(store.descriptors(id).length, 2 + 8);

  // verify --repair (deleteRecords) drops what it cannot rebuild; the next
  // run through the first chunking reads the records of the second.
  damage();
  const fixed = verify(root, { repair: true });
  t.is(fixed.problems.length, 2);
  t.true(fixed.ok);
  t.true(verify(root).ok);
  const again = await run(open({ x: 4, y: 4 }), fn);
  t.deepEqual(again.output, expected);
  t.is(again.diagnostics.executedPoints, 0);
});

test('in-use marks are seen by other processes and end with the process that made them', async (t) => {
  const root = freshRoot();
  const store = native.BindingStore.open(root);
  const mine = Buffer.alloc(16, 1);
  const theirs = Buffer.alloc(16, 2);
  const token = store.markInUse(mine);
  t.deepEqual(store.cachesInUse(), [mine.toString('hex')]);
  // Another process marks a cache and stays alive until killed.
  const binding = fileURLToPath(new URL('../ts/binding/binding.cjs', import.meta.url));
  const child = spawn(process.execPath, ['-e', `
    const b = require(${JSON.stringify(binding)});
    const s = b.BindingStore.open(${JSON.stringify(root)});
    const id = Buffer.from(${JSON.stringify(theirs.toString('hex'))}, 'hex');
    const ended = s.markInUse(Buffer.alloc(16, 3));
    s.unmarkInUse(Buffer.alloc(16, 3), ended);
    s.markInUse(id);
    process.stdout.write('ready\\n');
    setInterval(() => {}, 1000);
  `], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((res, rej) => {
    child.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && res());
    child.on('exit', () => rej(new Error('the child ended early')));
  });
  t.deepEqual(store.cachesInUse(), [mine.toString('hex'), theirs.toString('hex')].sort());
  // Asked of one cache: the same answers.
  t.true(store.isCacheInUse(mine));
  t.true(store.isCacheInUse(theirs));
  t.false(store.isCacheInUse(Buffer.alloc(16, 3)), 'a mark that ended');
  t.false(store.isCacheInUse(Buffer.alloc(16, 4)), 'a cache never marked');
  child.kill('SIGKILL');
  await new Promise((res) => child.on('exit', res));
  // The kernel dropped the child's owner lock: its mark no longer counts.
  t.deepEqual(store.cachesInUse(), [mine.toString('hex')]);
  t.false(store.isCacheInUse(theirs));
  t.false(store.unmarkInUse(theirs, token), 'a token ends only its own mark');
  t.true(store.unmarkInUse(mine, token));
  t.false(store.unmarkInUse(mine, token), 'twice is a no-op');
  t.deepEqual(store.cachesInUse(), []);
  t.false(store.isCacheInUse(mine));
});

test('a 4096 x 4096 chunk holding a few points is a record of a few hundred bytes; one more point adds a few bytes', async (t) => {
  const root = freshRoot();
  const n = 4096; // 2^24 points: the largest chunk allowed
  const cache = ChunkCache.open({
    root,
    params: { test: 'sparse' },
    axisValues: { x: Array.from({ length: n }, (_, i) => i), y: Array.from({ length: n }, (_, i) => i) },
    chunkSpec: { x: n, y: n },
  });
  const fn: ChunkFn = (_p, axes) => {
    const out: number[] = [];
    for (const x of axes.x as number[]) for (const y of axes.y as number[]) out.push(x * 1e4 + y);
    return Float64Array.from(out);
  };
  const pts = [[0, 0], [1, 2], [4095, 4095], [2000, 17], [17, 2000], [42, 43]] as const;
  for (const [x, y] of pts) await run(cache.select({ values: { x: [x], y: [y] } }), fn);
  const { store, idBytes } = cache._core;
  const [desc] = store.descriptors(idBytes);
  const six = store.getRecord(idBytes, desc!.chunk)!;
  t.true(six.length < 512, `6 points: ${six.length} bytes`);
  await run(cache.select({ values: { x: [123], y: [456] } }), fn);
  const seven = store.getRecord(idBytes, desc!.chunk)!;
  t.is(seven.length - six.length, 12, 'one more point: its index and its element');
  t.log(`a 2^24-point chunk: ${six.length} bytes with 6 points, ${seven.length} with 7 (dense: 128 MiB)`);
  // A run over stored and missing points computes only the missing ones.
  const again = await run(cache.select({ values: { x: [1, 123], y: [2, 456] } }), fn);
  t.is(again.diagnostics.executedPoints, 2, 'only the 2 points never stored are computed');
  t.deepEqual(Array.from(again.output as Float64Array), [10002, 10456, 1230002, 1230456]);
  t.deepEqual(store.verify(idBytes), []);
});

/**
 * Flips a byte in the data of `cache`'s stored record number `nth` (in key
 * order), `back` bytes before its checksum: its structure still parses,
 * its checksum no longer matches.
 */
function damageData(cache: ChunkCache, nth: number, back: number): void {
  const { store, idBytes: id } = cache._core;
  const key = store.descriptors(id).map((d) => d.chunk).sort(Buffer.compare)[nth]!;
  const raw = Buffer.from(store.getRecord(id, key)!);
  raw[raw.length - 8 - back]! ^= 0x5a;
  store.putRawRecordForTests(id, key, raw);
}

test('a record whose data went bad is caught as a warm run reads it: that chunk is computed again, every other one read', async (t) => {
  const root = freshRoot();
  const axisValues = { c: Array.from({ length: 6 }, (_, i) => i), x: Array.from({ length: PER_CHUNK }, (_, i) => i) };
  const chunkSpec = { c: 1, x: PER_CHUNK };
  const expected = fullFn({}, axisValues, { axisOrder: ['c', 'x'] }) as Float64Array;
  const objectsFn: ChunkFn = (_p, axes) => (axes.c as number[]).flatMap((c) => (axes.x as number[]).map((x) => ({ c, x })));

  // Typed outputs, gathered straight into the run's output: the damage is
  // in the record's second 32 KiB stretch, found while it is copied.
  const typed = ChunkCache.open({ root, params: { test: 'read-damage-typed' }, axisValues, chunkSpec });
  await run(typed, fullFn);
  damageData(typed, 3, 40_000);
  const events: Array<{ pointsDone: number; pointsTotal: number; cachedPoints: number }> = [];
  const r = await run(typed, fullFn, { onProgress: (e) => events.push(e) });
  t.deepEqual(r.output, expected);
  t.is(r.diagnostics.executedPoints, PER_CHUNK);
  t.is(r.diagnostics.cachedPoints, 5 * PER_CHUNK);
  t.is(r.diagnostics.corruptRecords.length, 1);
  t.regex(r.diagnostics.corruptRecords[0]!, /checksum/);
  const last = events.at(-1)!;
  t.deepEqual([last.pointsDone, last.pointsTotal, last.cachedPoints], [PER_CHUNK, PER_CHUNK, 5 * PER_CHUNK]);
  t.true(verify(root).ok);
  t.is((await run(typed, fullFn)).diagnostics.executedPoints, 0);

  // Objects, read through `iterate` (no typed output to gather into).
  const objects = ChunkCache.open({ root, params: { test: 'read-damage-objects' }, axisValues, chunkSpec });
  await runStreaming(objects, objectsFn);
  damageData(objects, 1, 100);
  let executed = 0;
  for await (const chunk of iterate(objects, objectsFn)) {
    const c = chunk.axisValues.c![0] as number;
    t.deepEqual(chunk.output, axisValues.x.map((x) => ({ c, x })));
    executed += chunk.executedPoints;
  }
  t.is(executed, PER_CHUNK);
  t.true(verify(root).ok);
});

test('a warm typed run over thousands of small chunks reads the whole ones together, around partly stored and damaged ones', async (t) => {
  // 6,000 chunks of 8 points: the whole ones are looked up and copied into
  // the output a few thousand at a time, on several threads; partly stored
  // chunks and a damaged record in the same reads take the one-by-one path.
  const root = freshRoot();
  const C = 6000;
  const axisValues = { c: Array.from({ length: C }, (_, i) => i), x: Array.from({ length: 8 }, (_, i) => i) };
  const cache = ChunkCache.open({ root, params: { test: 'gather-mixed' }, axisValues, chunkSpec: { c: 1, x: 8 } });
  const expected = fullFn({}, axisValues, { axisOrder: ['c', 'x'] }) as Float64Array;
  const partly = Array.from({ length: 10 }, (_, i) => 3000 + i * 7);
  const rest = axisValues.c.filter((c) => !partly.includes(c));
  await run(cache.select({ indices: { c: rest } }), fullFn);
  await run(cache.select({ indices: { c: partly, x: [0, 1, 2] } }), fullFn);
  damageData(cache, 4000, 10);
  const r = await run(cache, fullFn);
  t.deepEqual(r.output, expected);
  t.is(r.diagnostics.executedPoints, partly.length * 5 + 8, 'the missing points of the partly stored chunks, and the damaged chunk');
  t.is(r.diagnostics.corruptRecords.length, 1);
  const again = await run(cache, fullFn);
  t.is(again.diagnostics.executedPoints, 0);
  t.deepEqual(again.output, expected);
  // A subset read the same way: every 3rd c, all x.
  const every3 = axisValues.c.filter((c) => c % 3 === 1);
  const sub = await run(cache.select({ indices: { c: every3 } }), fullFn);
  t.deepEqual(sub.output, fullFn({}, { c: every3, x: axisValues.x }, { axisOrder: ['c', 'x'] }));
  t.is(sub.diagnostics.executedPoints, 0);
});

test('a run made its typed output before resolving (the cache held typed records) and still returns items computed now, every point in place', async (t) => {
  const root = freshRoot();
  const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
  const cache = ChunkCache.open({ root, params: { test: 'gather-mixed-kinds' }, axisValues: { a: range(40), b: range(10) }, chunkSpec: { a: 2, b: 10 } });
  const value = (a: number, b: number): number => a * 100 + b;
  const typedFn: ChunkFn = (_p, axes) => Float64Array.from((axes.a as number[]).flatMap((a) => (axes.b as number[]).map((b) => value(a, b))));
  const itemsFn: ChunkFn = (_p, axes) => (axes.a as number[]).flatMap((a) => (axes.b as number[]).map((b) => value(a, b)));
  // The first chunks stored typed, some later ones as items, the rest missing.
  await run(cache.select({ indices: { a: range(10) } }), typedFn);
  await run(cache.select({ indices: { a: range(30).map((x) => x + 10).filter((x) => x % 4 < 2) } }), itemsFn);
  const r = await run(cache, itemsFn);
  t.deepEqual(Array.from(r.output as ArrayLike<number>), range(400).map((k) => value(Math.floor(k / 10), k % 10)));
  t.is(r.diagnostics.cachedPoints, 240);
  t.is(r.diagnostics.executedPoints, 160);
});
