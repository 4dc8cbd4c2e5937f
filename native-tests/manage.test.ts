/**
 * Management API on real LMDB roots: stats, LRU eviction (by hand,
 * automatic and amortised, never touching caches in use), shared roots
 * layered under a local root, verify/repair, rm/clear, export/import.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ChunkCache, run, pointwise, stats, cacheStats, gc, verify, rm, clear, exportCaches, importArchive, parseSize,
  coverageMap, isInUse, ChunkMemoError,
} from '../ts/index.js';
import { openStore } from '../ts/cache/stores.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'cm-manage-'));

let calls = 0;
const fn = pointwise((p, { x, y }) => {
  calls++;
  return { name: p.name, v: (x as number) * 100 + ((y as number) ?? 0), pad: 'z'.repeat(40) };
});

function open(root: string, name: string, extra: Record<string, unknown> = {}): ChunkCache {
  return ChunkCache.open({ root, params: { name }, axisValues: { x: [0, 1, 2, 3, 4, 5, 6, 7] }, chunkSpec: { x: 2 }, ...extra });
}

test('stats: per root and per cache counts, bytes and times', async (t) => {
  const root = tmp();
  const a = open(root, 'a');
  await run(a, fn);
  await run(a.select({ values: { x: [0] } }), fn); // a read: access time
  const b = open(root, 'b');
  await run(b.select({ indices: { x: { start: 0, stop: 3 } } }), fn);
  const s = stats(root);
  t.is(s.caches, 2);
  const sa = s.perCache.find((c) => c.id === a.id)!;
  const sb = s.perCache.find((c) => c.id === b.id)!;
  t.like(sa, { chunks: 4, points: 8, gridPoints: 8 });
  t.like(sb, { chunks: 2, points: 3 });
  t.true(sa.bytes > 0);
  t.is(s.bytes, sa.bytes + sb.bytes);
  t.is(s.points, 11);
  t.true(typeof sa.lastAccess === 'number' && sa.lastAccess >= sa.createdAt);
  t.true(s.diskBytes > 0);
  t.deepEqual(cacheStats(root, b.id), sb);
  t.throws(() => stats(join(root, 'nope')), { code: 'ERR_CACHE_NOT_FOUND' });
  t.false(existsSync(join(root, 'nope')));
});

test('parseSize reads plain bytes, decimal and binary units', (t) => {
  t.is(parseSize('12345'), 12345);
  t.is(parseSize('10MB'), 10_000_000);
  t.is(parseSize('1GiB'), 2 ** 30);
  t.is(parseSize('1.5k'), 1500);
  t.throws(() => parseSize('lots'), { code: 'ERR_INVALID_OPTION' });
});

test.serial('gc evicts least-recently-used records; the next run recomputes exactly them', async (t) => {
  const root = tmp();
  const [a, b, c] = ['a', 'b', 'c'].map((n) => open(root, n));
  for (const x of [a, b, c]) t.is((await run(x!, fn)).diagnostics.executedPoints, 8);
  // Use a again: b is now the least recently used cache, then c.
  t.is((await run(a!, fn)).diagnostics.executedPoints, 0);
  const before = stats(root);
  const bytesOf = (id: string): number => before.perCache.find((x) => x.id === id)!.bytes;

  // A budget that drops one record: it is one of b's.
  const one = gc(root, { maxBytes: before.bytes - 1 });
  t.is(one.evicted.length, 1);
  t.is(one.evicted[0]!.id, b!.id);
  t.true(one.bytesAfter <= before.bytes - 1);

  // A budget that only a+c fit: all of b goes, a and c stay whole.
  const r = gc(root, { maxBytes: bytesOf(a!.id) + bytesOf(c!.id) });
  t.true(r.evicted.every((e) => e.id === b!.id));
  t.is(r.evicted.length, 3);
  t.true(r.bytesAfter <= bytesOf(a!.id) + bytesOf(c!.id));
  const after = stats(root);
  t.is(after.perCache.find((x) => x.id === b!.id)!.chunks, 0);
  t.is(after.perCache.find((x) => x.id === a!.id)!.chunks, 4);
  t.is(after.perCache.find((x) => x.id === c!.id)!.chunks, 4);

  t.is((await run(a!, fn)).diagnostics.executedPoints, 0);
  t.is((await run(c!, fn)).diagnostics.executedPoints, 0);
  const evictedPoints = [...one.evicted, ...r.evicted].reduce((x, e) => x + e.points, 0);
  t.is(evictedPoints, 8);
  t.is((await run(b!, fn)).diagnostics.executedPoints, evictedPoints);
});

test.serial('gc keeps a part of the LRU cache when the budget allows it', async (t) => {
  const root = tmp();
  const a = open(root, 'a');
  const b = open(root, 'b');
  await run(a, fn);
  await run(b, fn);
  await run(b.select({ values: { x: [7] } }), fn); // b used last
  const s = stats(root);
  const bBytes = s.perCache.find((x) => x.id === b.id)!.bytes;
  // Room for b and a little of a: a loses some records, b none.
  const r = gc(root, { maxBytes: bBytes + Math.floor((s.bytes - bBytes) / 2) });
  t.true(r.evicted.length > 0 && r.evicted.length < 4);
  t.true(r.evicted.every((e) => e.id === a.id));
  const expected = r.evicted.reduce((x, e) => x + e.points, 0);
  t.is((await run(b, fn)).diagnostics.executedPoints, 0);
  t.is((await run(a, fn)).diagnostics.executedPoints, expected);
});

test.serial('gc never evicts records of a cache that a run of this process is using', async (t) => {
  const root = tmp();
  const other = open(root, 'other');
  await run(other, fn);
  const busy = open(root, 'busy');
  await run(busy.select({ values: { x: [0, 1, 2, 3] } }), fn);
  let during: ReturnType<typeof gc> | null = null;
  const res = await run(busy, async (params, axes, ctx) => {
    t.true(isInUse(root, busy.id));
    if ((axes.x as number[]).includes(4)) during = gc(root, { maxBytes: 0 });
    return fn(params, axes, ctx);
  });
  t.is(res.diagnostics.executedPoints, 4);
  t.false(isInUse(root, busy.id));
  t.truthy(during);
  const d = during as unknown as ReturnType<typeof gc>;
  t.is(d.keptInUse, 2, 'records of the running cache were kept');
  t.true(d.evicted.every((e) => e.id === other.id));
  t.is(d.evicted.length, 4);
  // Everything the running cache stored is still there.
  t.is((await run(busy, fn)).diagnostics.executedPoints, 0);
});

test.serial('maxBytes applies eviction automatically after runs, amortised', async (t) => {
  const root = tmp();
  // Measure one cache's record bytes in a scratch root.
  const probeRoot = tmp();
  await run(open(probeRoot, 'p'), fn);
  const one = stats(probeRoot).bytes;
  const budget = Math.floor(one * 2.5);
  const caches = ['a', 'b', 'c', 'd'].map((n) => open(root, n, { maxBytes: budget }));
  for (const c of caches) {
    await run(c, fn);
    // After every run the root is within the budget plus the amortisation slack.
    t.true(stats(root).bytes <= budget * 1.1 + one, `${stats(root).bytes} <= ${budget}`);
  }
  const s = stats(root);
  t.true(s.bytes <= budget * 1.1);
  // The oldest cache lost records, the newest kept all.
  const chunksOf = (c: ChunkCache): number => s.perCache.find((x) => x.id === c.id)!.chunks;
  t.true(chunksOf(caches[0]!) < 4);
  t.is(chunksOf(caches[3]!), 4);
  const plain = ChunkCache.load(root, caches[3]!.id);
  t.is((await run(plain, fn)).diagnostics.executedPoints, 0);
});

async function sharedFixture() {
  const shared = tmp();
  const grid = { params: { name: 'sh' }, axisValues: { x: [0, 1, 2, 3, 4, 5], y: [0, 1, 2, 3] }, chunkSpec: { x: 2, y: 2 } };
  const s = ChunkCache.open({ root: shared, ...grid });
  const first = await run(s, fn);
  t0Executed = first.diagnostics.executedPoints;
  const store = openStore(s.root);
  const snapshot = (): { descs: string; data: string } => ({
    descs: JSON.stringify(store.descriptors(Buffer.from(s.id, 'hex')).map((d) => [d.chunk.toString('hex'), d.present, d.bytes, d.updatedMs])),
    data: createHash('sha256').update(readFileSync(join(shared, 'data.mdb'))).digest('hex'),
  });
  return { shared, grid, s, expected: first.output, snapshot };
}
let t0Executed = 0;

test.serial('a shared root serves a run with zero executions; writes go to the local root only', async (t) => {
  const { shared, grid, s, expected, snapshot } = await sharedFixture();
  t.is(t0Executed, 24);
  const before = snapshot();
  const local = tmp();
  const c = ChunkCache.open({ root: local, ...grid, sharedRoots: [shared] });
  t.is(c.id, s.id);
  calls = 0;
  const r = await run(c, fn);
  t.is(r.diagnostics.executedPoints, 0);
  t.is(calls, 0);
  t.deepEqual(r.output, expected);
  // The local root received the records...
  t.is(cacheStats(local, c.id).points, 24);
  const alone = ChunkCache.open({ root: local, ...grid });
  t.is((await run(alone, fn)).diagnostics.executedPoints, 0);
  // ...and the shared root is unchanged.
  t.deepEqual(snapshot(), before);
});

test.serial('a shared root fills part of a request, other chunkings and subsets; the rest is computed locally', async (t) => {
  const { shared, grid, snapshot } = await sharedFixture();
  const before = snapshot();
  const local = tmp();
  // Longer x axis, another chunking: only the new values are computed.
  const c = ChunkCache.open({ root: local, params: grid.params, axisValues: { x: [0, 1, 2, 3, 4, 5, 6, 7], y: [0, 1, 2, 3] }, chunkSpec: { x: 3, y: 4 }, sharedRoots: [shared] });
  const r = await run(c, fn);
  t.is(r.diagnostics.executedPoints, 8);
  t.is(r.diagnostics.cachedPoints, 24);
  const sub = ChunkCache.open({ root: tmp(), ...grid, sharedRoots: [shared] }).select({ values: { x: [3], y: [1, 2] } });
  t.is((await run(sub, fn)).diagnostics.executedPoints, 0);
  t.deepEqual(snapshot(), before);
});

test.serial('verify finds a planted bad record; repair makes the next run recompute exactly its points', async (t) => {
  const root = tmp();
  const c = open(root, 'v');
  await run(c, fn);
  t.deepEqual(verify(root).problems, []);
  const store = openStore(c.root);
  const id = Buffer.from(c.id, 'hex');
  const victim = store.descriptors(id)[1]!;
  const bytes = Buffer.from(store.getRecord(id, victim.chunk)!);
  bytes[bytes.length - 3]! ^= 0xff;
  store.putRawRecordForTests(id, victim.chunk, bytes);
  const found = verify(root);
  t.false(found.ok);
  t.is(found.problems.length, 1);
  t.is(found.problems[0]!.chunk, victim.chunk.toString('hex'));
  const fixed = verify(root, { repair: true });
  t.true(fixed.ok);
  t.true(fixed.problems[0]!.repaired);
  t.true(verify(root).ok);
  const r = await run(c, fn);
  t.is(r.diagnostics.executedPoints, victim.present);
  t.is(r.diagnostics.executedChunks, 1);
});

test.serial('rm and clear delete caches; unknown ids are refused', async (t) => {
  const root = tmp();
  const a = open(root, 'a');
  const b = open(root, 'b');
  await run(a, fn);
  await run(b, fn);
  t.throws(() => rm(root, ['0'.repeat(32)]), { code: 'ERR_CACHE_NOT_FOUND' });
  t.is(stats(root).caches, 2);
  t.deepEqual(rm(root, [a.id]), [{ id: a.id, records: 4 }]);
  t.deepEqual(stats(root).perCache.map((c) => c.id), [b.id]);
  clear(root);
  t.is(stats(root).caches, 0);
});

test.serial('export/import through the API: a selection, merge into an existing cache', async (t) => {
  const root = tmp();
  const a = open(root, 'a');
  await run(a, fn);
  const file = join(tmp(), 'sel.tar.gz');
  const ex = await exportCaches(root, [a.id], file, { selection: { values: { x: [0, 1, 2] } } });
  t.is(ex.caches[0]!.records, 2); // chunks x[0..1] and x[2..3]
  const target = tmp();
  const pre = open(target, 'a');
  await run(pre.select({ values: { x: [7] } }), fn);
  const im = await importArchive(file, target);
  t.like(im.caches[0], { id: a.id, records: 2, created: false });
  const again = open(target, 'a');
  const r = await run(again, fn);
  t.is(r.diagnostics.executedPoints, 8 - 4 - 1);
  t.true(coverageMap(target, a.id).counts.cached === 4);
  await t.throwsAsync(importArchive(join(target, 'missing.tar.gz'), tmp()), { instanceOf: ChunkMemoError, code: 'ERR_ARCHIVE' });
});
