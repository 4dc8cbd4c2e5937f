/**
 * Safe identity by default (SPEC §4.4, issue 16): runs of a cache opened
 * without `code` record the normalised code hash of their function, and a run
 * whose function differs warns once (CHUNK_MEMO_CODE_CHANGED), naming the
 * cache and the ways out. Reformatting does not warn; `code` caches are bound
 * already and record nothing.
 */
import test from 'ava';
import { ChunkCache, pointwise, run, runParallel, runStreaming, type ChunkFn, type PointFn } from '../ts/index.js';
import { checkCodeChange } from '../ts/cache/code-record.js';
import { codeIdentity } from '../ts/cache/code-digest.js';
import { packMeta, unpackMeta } from '../ts/cache/meta.js';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freshRoot } from './helpers/grid.js';

const here = dirname(fileURLToPath(import.meta.url));

// Built from exact source text (tsx rewrites functions written in this file).
const globalEval = eval;
const fromSource = (src: string): ChunkFn => globalEval(`(${src}\n)`) as ChunkFn;

const times10 = 'function f(p, axes) { return axes.x.map((x) => x * 10) }';
const times10Reformatted = `function f(p, axes) {
  // same logic, other layout
  return axes.x.map(
    (x) => x * 10,
  );
}`;
const times1000 = 'function f(p, axes) { return axes.x.map((x) => x * 1000) }';

type Warn = Error & { code?: string };

/** CHUNK_MEMO_CODE_CHANGED warnings about cache `id` emitted while `action` runs. */
async function codeWarnings(id: () => string, action: () => Promise<unknown> | unknown): Promise<Warn[]> {
  const got: Warn[] = [];
  const listener = (w: Warn): void => void got.push(w);
  process.on('warning', listener);
  try {
    await action();
    // process.emitWarning emits on the next tick.
    await new Promise<void>((r) => setImmediate(r));
    await new Promise<void>((r) => setImmediate(r));
  } finally {
    process.off('warning', listener);
  }
  return got.filter((w) => w.code === 'CHUNK_MEMO_CODE_CHANGED' && w.message.includes(id()));
}

// Ids depend on params only, not on the root: each cache gets its own params so
// that warnings of tests running at the same time are told apart by id.
let nextK = 0;
const open = (root: string, extra: Record<string, unknown> = {}): ChunkCache =>
  ChunkCache.open({ root, params: { k: nextK++ }, axisValues: { x: [1, 2, 3, 4] }, chunkSpec: { x: 2 }, ...extra });

const recorded = (c: ChunkCache): string | undefined => unpackMeta(c._core.store.getMeta(c._core.idBytes)!).codeHash;

test('the first run records the code hash (as code: fn would hash it) without a warning', async (t) => {
  const c = open(freshRoot());
  const fn = fromSource(times10);
  const w = await codeWarnings(() => c.id, () => run(c, fn));
  t.deepEqual(w, []);
  t.deepEqual({ fn: recorded(c) }, codeIdentity(fn, 'test'));
  c.close();
});

test('a changed function warns once per run, with the code, naming the cache and the ways out; outputs stay as stored', async (t) => {
  const c = open(freshRoot());
  await run(c, fromSource(times10));
  const before = recorded(c);
  let out: unknown;
  const w = await codeWarnings(() => c.id, async () => (out = (await run(c, fromSource(times1000))).output));
  t.is(w.length, 1);
  t.regex(w[0]!.message, new RegExp(`cache ${c.id}`));
  t.true(w[0]!.message.includes('code: fn'));
  t.true(w[0]!.message.includes('cacheVersion'));
  t.true(w[0]!.message.includes('cache.invalidate()'));
  t.deepEqual(out, [10, 20, 30, 40]);
  // The record still names the function that computed what is stored: the next run warns again.
  t.is(recorded(c), before);
  t.is((await codeWarnings(() => c.id, () => runStreaming(c, fromSource(times1000)))).length, 1);
  c.close();
});

test('a reformatted function does not warn', async (t) => {
  const c = open(freshRoot());
  await run(c, fromSource(times10));
  const w = await codeWarnings(() => c.id, () => run(c, fromSource(times10Reformatted)));
  t.deepEqual(w, []);
  c.close();
});

test('pointwise functions are compared by their point function', async (t) => {
  const c = open(freshRoot());
  const point = (src: string) => pointwise(globalEval(`(${src}\n)`) as PointFn<number>);
  await run(c, point('(p, { x }) => x * 10'));
  t.deepEqual(await codeWarnings(() => c.id, () => run(c, point('(p, {x}) =>   x*10'))), []);
  t.is((await codeWarnings(() => c.id, () => run(c, point('(p, { x }) => x * 1000')))).length, 1);
  c.close();
});

test('runParallel with a function checks the code too', async (t) => {
  const c = open(freshRoot());
  await runParallel(c, fromSource(times10), { mapFn: (f, jobs) => jobs.map(f) });
  const w = await codeWarnings(() => c.id, () => runParallel(c, fromSource(times1000), { mapFn: (f, jobs) => jobs.map(f) }));
  t.is(w.length, 1);
  c.close();
});

test('a cache with code: fn or code: string records nothing and does not warn', async (t) => {
  const root = freshRoot();
  for (const code of [fromSource(times10), 'v1']) {
    const c = open(root, { code });
    await run(c, fromSource(times10));
    const w = await codeWarnings(() => c.id, () => run(c, fromSource(times1000)));
    t.deepEqual(w, []);
    t.is(recorded(c), undefined);
    c.close();
  }
});

test('metadata written by an older version (no recorded hash) records without a warning', async (t) => {
  const c = open(freshRoot());
  await run(c, fromSource(times10));
  // What an older version wrote: the same record without codeHash.
  c._core.store.updateMeta(c._core.idBytes, (old) => {
    const m = unpackMeta(old!);
    delete m.codeHash;
    return packMeta(m);
  });
  t.is(recorded(c), undefined);
  const fn = fromSource(times1000);
  t.deepEqual(await codeWarnings(() => c.id, () => run(c, fn)), []);
  t.deepEqual({ fn: recorded(c) }, codeIdentity(fn, 'test'));
  c.close();
});

test('native and bound functions record nothing', async (t) => {
  const c = open(freshRoot());
  const bound = fromSource(times10).bind(null) as ChunkFn;
  t.deepEqual(await codeWarnings(() => c.id, () => run(c, bound)), []);
  t.is(recorded(c), undefined);
  checkCodeChange(c, Math.max, 'test');
  t.is(recorded(c), undefined);
  c.close();
});

test('once every stored output is invalidated, a new function is recorded silently', async (t) => {
  const c = open(freshRoot());
  await run(c, fromSource(times10));
  c.invalidate();
  const fn = fromSource(times1000);
  let out: unknown;
  t.deepEqual(await codeWarnings(() => c.id, async () => (out = (await run(c, fn)).output)), []);
  t.deepEqual(out, [1000, 2000, 3000, 4000]);
  t.deepEqual({ fn: recorded(c) }, codeIdentity(fn, 'test'));
  c.close();
});

test('checkCodeChange caches the digest per function object and leaves the metadata otherwise intact', (t) => {
  const c = open(freshRoot());
  const fn = fromSource(times10);
  const before = unpackMeta(c._core.store.getMeta(c._core.idBytes)!);
  checkCodeChange(c, fn, 'test');
  checkCodeChange(c, fn, 'test');
  const after = unpackMeta(c._core.store.getMeta(c._core.idBytes)!);
  t.deepEqual({ ...after, codeHash: undefined, codeSource: undefined }, { ...before, codeHash: undefined, codeSource: undefined });
  t.is(typeof after.codeHash, 'string');
  t.is(typeof after.codeSource, 'string');
  c.close();
});

// ------------------------------------------------------------ not parsing again

/** A fresh process running `src` over the cache of params { k } in `root`: whether it loaded acorn (parsed the source), and its code warnings. */
function childRun(root: string, k: string, src: string): { acorn: boolean; warnings: string[] } {
  const r = spawnSync(process.execPath, ['--import=tsx', join(here, 'fixtures', 'code-record-child.ts'), root, k, src], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`child exited ${r.status ?? r.signal}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { acorn: boolean; warnings: string[] };
}

test('a fresh process running the very source text recorded does not parse it; other text of the same logic is parsed once, then not', async (t) => {
  const root = freshRoot();
  const k = `child-${process.pid}`;
  const first = childRun(root, k, times10);
  t.deepEqual(first, { acorn: true, warnings: [] }, 'the first run parses the source to record its hash');
  t.deepEqual(childRun(root, k, times10), { acorn: false, warnings: [] }, 'the same text: the recorded hash is taken as it is');
  t.deepEqual(childRun(root, k, times10Reformatted), { acorn: true, warnings: [] }, 'reformatted: parsed, same hash, no warning');
  t.deepEqual(childRun(root, k, times10Reformatted), { acorn: false, warnings: [] }, 'the reformatted text is the one remembered now');
  const changed = childRun(root, k, times1000);
  t.true(changed.acorn);
  t.is(changed.warnings.length, 1, 'a changed function still warns');
  // A warning records nothing: the outputs are still those of the first logic.
  t.deepEqual(childRun(root, k, times10Reformatted), { acorn: false, warnings: [] }, 'the stored logic in the remembered text, after the warning');
});

test('a source digest left by an earlier record does not stand for a hash recorded without one', async (t) => {
  const root = freshRoot();
  const c = open(root);
  await run(c, fromSource(times10));
  // A version that kept no source digest records another function's hash, leaving the old digest behind.
  c._core.store.updateMeta(c._core.idBytes, (old) => packMeta({ ...unpackMeta(old!), codeHash: 'f'.repeat(64) }));
  const w = await codeWarnings(() => c.id, () => run(c, fromSource(times10)));
  t.is(w.length, 1, 'the run parses its source and finds it differs from the recorded hash');
  c.close();
});
