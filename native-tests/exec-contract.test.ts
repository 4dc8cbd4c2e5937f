/**
 * One exec-function contract for every runner (SPEC §3, §4.2, §4.6): the
 * same chunk function, written for `run` (product blocks), gives identical
 * outputs and stored records through `run`, `runParallel` on threads at
 * several exec chunk sizes, a `mapFn`, and `executeJob` in another process;
 * scripts that call `runParallel` exit by themselves; a serial run of a
 * synchronous function stops within one exec call when aborted by a timer.
 */
import test from 'ava';
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChunkCache, defineTask, iterate, memoize, pointwise, run, runParallel, runStreaming, type ChunkFn, type MapFn } from '../ts/index.js';
import { closeWorkerPools } from '../ts/parallel/pools.js';
import { productMix } from './fixtures/tasks.js';
import { prng } from './helpers/grid.js';

const TASKS = new URL('./fixtures/tasks.ts', import.meta.url);
const roots: string[] = [];
const freshRoot = (): string => {
  const r = mkdtempSync(join(tmpdir(), 'cm-contract-'));
  roots.push(r);
  return r;
};
let child: ChildProcess | null = null;
test.after.always(async () => {
  child?.disconnect();
  await closeWorkerPools();
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

const pickInt = (r: () => number, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
const subset = <T>(r: () => number, xs: T[]): T[] => {
  const s = xs.filter(() => r() < 0.6);
  return s.length ? s : [xs[0]!];
};

/** Executes jobs in a child process (executeJob there), as a mapFn. */
function remoteMapFn(): MapFn {
  if (!child) {
    child = fork(fileURLToPath(new URL('./fixtures/job-runner.ts', import.meta.url)), [], { execArgv: ['--import', 'tsx'], serialization: 'advanced' });
    child.on('message', (m: { id: number; out?: unknown; error?: string }) => {
      const p = waiting.get(m.id)!;
      waiting.delete(m.id);
      if (m.error) p.reject(new Error(m.error));
      else p.resolve(m.out);
    });
  }
  return (_fn, jobs) => jobs.map((job) => new Promise((resolve, reject) => {
    const id = nextId++;
    waiting.set(id, { resolve, reject });
    child!.send({ id, job });
  }));
}
const waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>();
let nextId = 1;

type Runner = { name: string; go: (c: ChunkCache) => Promise<ArrayLike<number>> };
const task = defineTask(TASKS, 'productMix');
const runners: Runner[] = [
  { name: 'run', go: async (c) => (await run(c, productMix as ChunkFn)).output as Float64Array },
  ...[1, 7, 64, 100_000].map((n) => ({ name: `threads execChunkSize ${n}`, go: async (c: ChunkCache) => (await runParallel(c, task, { workers: 2, execChunkSize: n })).output as Float64Array })),
  { name: 'mapFn', go: async (c) => (await runParallel(c, task, { mapFn: (fn, jobs) => jobs.map((j) => fn(structuredClone(j))) })).output as Float64Array },
  { name: 'executeJob in another process', go: async (c) => (await runParallel(c, task, { mapFn: remoteMapFn(), execChunkSize: 5 })).output as Float64Array },
];

test('property: one chunk function, identical outputs and stored records through every runner', async (t) => {
  for (let seed = 1; seed <= 8; seed++) {
    const r = prng(seed);
    const nAxes = pickInt(r, 1, 3);
    const names = ['a', 'b', 'c'].slice(0, nAxes);
    const axisValues = Object.fromEntries(names.map((a) => [a, Array.from({ length: pickInt(r, 1, 7) }, (_, i) => i * 3 + pickInt(r, 0, 2) * 0.5)]));
    const chunkSpec = Object.fromEntries(names.map((a) => [a, pickInt(r, 1, 4)]));
    const axisOrder = r() < 0.5 ? [...names].reverse() : names;
    const sel = Object.fromEntries(names.map((a) => [a, subset(r, axisValues[a]!)]));
    const pre = Object.fromEntries(names.map((a) => [a, subset(r, axisValues[a]!)]));
    const expected = (c: ChunkCache) => productMix({ k: 0.25 }, c.axisValues, { axisOrder: c.axisOrder });
    let reference: number[] | null = null;
    for (const runner of runners) {
      const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0.25 }, axisValues, chunkSpec, axisOrder });
      // Partial chunks first: a run over another selection.
      await run(cache.select({ values: pre }), productMix as ChunkFn);
      const view = cache.select({ values: sel });
      const out = Array.from(await runner.go(view));
      const where = `seed ${seed}: ${runner.name} ${JSON.stringify({ axisValues, chunkSpec, axisOrder, sel, pre })}`;
      t.deepEqual(out, Array.from(expected(view)), `${where} on the view`);
      const whole = Array.from(await runner.go(cache));
      t.deepEqual(whole, Array.from(expected(cache)), `${where} on the whole cache`);
      // What is stored reads back the same, with nothing to compute.
      const back = await run(cache, () => {
        throw new Error('nothing should run');
      });
      t.is(back.diagnostics.executedPoints, 0);
      const stored = Array.from(back.output as Float64Array);
      reference ??= stored;
      t.deepEqual(stored, reference, `${where}: stored records`);
    }
  }
});

test('pointwise works in every runner and a wrong output count is an ExecOutputError naming the chunk', async (t) => {
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { a: [1, 2, 3], b: [10, 20] } });
  const pw = pointwise((_p, { a, b }) => (a as number) * (b as number));
  t.deepEqual((await run(cache.select({ values: { a: [1] } }), pw)).output, [10, 20]);
  const other = ChunkCache.open({ root: freshRoot(), axisValues: { a: [1, 2, 3], b: [10, 20] } });
  t.deepEqual((await runParallel(other, defineTask(TASKS, 'fixed'), { workers: 2, execChunkSize: 2 })).output, [110, 120, 210, 220, 310, 320]);
  const bad = ChunkCache.open({ root: freshRoot(), axisValues: { a: [1, 2, 3] } });
  const e = await t.throwsAsync(run(bad, () => [1]), { code: 'ERR_EXEC_OUTPUT' });
  t.regex(e!.message, /chunk 0 at a=\[1, 2, 3\]/);
  t.regex(e!.message, /1 outputs for 3 points/);
});

for (const mode of ['small', 'warm', 'failing', 'aborted']) {
  test(`a script that calls runParallel exits by itself (${mode})`, (t) => {
    const script = fileURLToPath(new URL('./fixtures/exit-script.ts', import.meta.url));
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--no-warnings=ExperimentalWarning', script, mode], { encoding: 'utf8', timeout: 60_000 });
    t.is(r.signal, null, `killed by the timeout: the script did not exit by itself\n${r.stderr}`);
    t.is(r.status, 0, r.stderr);
    const expect: Record<string, RegExp> = { small: /^ok 3$/m, warm: /^ok 0$/m, failing: /^failed ERR_EXEC_FAILED$/m, aborted: /^aborted ERR_ABORTED$/m };
    t.regex(r.stdout, expect[mode]!);
  });
}

test('a serial run of a synchronous busy function stops within one exec call when a timer aborts it', async (t) => {
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { x: Array.from({ length: 40 }, (_, i) => i) }, chunkSpec: { x: 1 } });
  const ac = new AbortController();
  let calls = 0;
  let callsAtAbort = -1;
  const busy: ChunkFn = (_p, axes) => {
    calls++;
    const end = performance.now() + 25;
    while (performance.now() < end);
    return (axes.x as number[]).map((x) => x * 2);
  };
  setTimeout(() => {
    callsAtAbort = calls;
    ac.abort();
  }, 150);
  const e = await t.throwsAsync(run(cache, busy, { signal: ac.signal }), { code: 'ERR_ABORTED' });
  t.truthy(e);
  t.true(callsAtAbort > 0 && callsAtAbort < 40, `calls at abort ${callsAtAbort}`);
  // Within one exec call: at most the call that was running when the timer fired.
  t.true(calls <= callsAtAbort + 1, `calls ${calls}, at abort ${callsAtAbort}`);
  // Finished chunks are stored; a re-run computes only the rest.
  const stored = cache.status().cachedPoints;
  t.is(stored, calls);
  calls = 0;
  const r = await run(cache, busy);
  t.is(r.diagnostics.executedPoints, 40 - stored);
  t.deepEqual(r.output, Array.from({ length: 40 }, (_, i) => i * 2));
});

test('runParallel applies collate once, to the whole output', async (t) => {
  const cache = ChunkCache.open({ root: freshRoot(), params: { k: 0 }, axisValues: { a: [1, 2, 3], b: [1, 2] } });
  let calls = 0;
  const r = await runParallel(cache, defineTask(TASKS, 'fixed'), {
    workers: 2,
    execChunkSize: 1,
    collate: (out) => {
      calls++;
      return (out as number[]).reduce((x, y) => x + y, 0);
    },
  });
  t.is(calls, 1);
  t.is(r.output, 101 + 102 + 201 + 202 + 301 + 302);
});

test('unknown and misspelled options are ERR_INVALID_OPTION naming them and the valid ones', async (t) => {
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { a: [1] } });
  const e1 = await t.throwsAsync(run(cache, () => [1], { colate: () => 1 } as never), { code: 'ERR_INVALID_OPTION' });
  t.regex(e1!.message, /unknown option "colate" \(did you mean "collate"\?\).*valid options: collate, signal/);
  const e2 = await t.throwsAsync(runParallel(cache, defineTask(TASKS, 'fixed'), { workerz: 2 } as never), { code: 'ERR_INVALID_OPTION' });
  t.regex(e2!.message, /"workerz" \(did you mean "workers"\?\)/);
});

test('defineTask refuses a .ts task module in a process without a TypeScript loader, saying to compile it', (t) => {
  const dist = new URL('../dist/ts/index.js', import.meta.url).href;
  const code = `import(${JSON.stringify(dist)}).then((m) => { try { m.defineTask('/tmp/tasks.ts', 'f'); console.log('accepted'); } catch (e) { console.log(e.code + ' ' + e.message); } })`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^ERR_INVALID_OPTION .*TypeScript module.*compile the task module to \.js first/);
});

test('outputs that would not come back the same are ERR_EXEC_OUTPUT; undefined and Maps round-trip cold and warm', async (t) => {
  class Point {
    constructor(readonly x: number) {}
  }
  const bad: Array<[string, unknown, RegExp]> = [
    ['a symbol', Symbol('s'), /output 0: a symbol cannot be stored/],
    ['a function', { f: () => 1 }, /output 0\.f: a function cannot be stored/],
    ['a class instance', [new Point(1)], /output 0\[0\]: an instance of Point would come back as a plain object/],
  ];
  for (const [what, value, message] of bad) {
    const cache = ChunkCache.open({ root: freshRoot(), axisValues: { x: [1] } });
    const e = await t.throwsAsync(run(cache, () => [value]), { code: 'ERR_EXEC_OUTPUT' }, what);
    t.regex(e!.message, message, what);
    t.is(cache.status().cachedPoints, 0, what);
  }
  // Checked as each chunk's write encodes it: a chunk of plain records with
  // one bad point fails as a whole, naming the point; the chunk before it is stored.
  const mixed = ChunkCache.open({ root: freshRoot(), axisValues: { x: Array.from({ length: 10 }, (_, i) => i) }, chunkSpec: { x: 5 } });
  const records = (_p: unknown, { x }: Record<string, unknown[]>) => (x as number[]).map((v) => (v === 7 ? new Point(v) : { x: v, half: v / 2 }));
  for (const runner of ['run', 'runStreaming'] as const) {
    const e = await t.throwsAsync((runner === 'run' ? run : runStreaming)(mixed, records), { code: 'ERR_EXEC_OUTPUT' }, runner);
    t.regex(e!.message, /chunk 1: output 2: an instance of Point would come back as a plain object/, runner);
    t.deepEqual(mixed.status().cached.map((c) => c.index), [0], runner);
  }
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { x: [1, 2] } });
  const fn = () => [undefined, new Map([['k', { v: 1 }]])];
  const cold = await run(cache, fn);
  const warm = await run(cache, fn);
  t.is(warm.diagnostics.executedPoints, 0);
  t.deepEqual(warm.output, cold.output);
  t.is((warm.output as unknown[])[0], undefined);
});

test('a runner given something else than a cache says so', async (t) => {
  for (const f of [run, runStreaming] as const) {
    const e = await t.throwsAsync(f({} as never, () => []), { code: 'ERR_INVALID_OPTION' });
    t.regex(e!.message, /first argument must be a ChunkCache/);
  }
});

test('memoize: extras named in ignore reach the function but not the identity', async (t) => {
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { x: [1, 2] } });
  const seen: unknown[] = [];
  const f = memoize(cache, pointwise((p, { x }) => {
    seen.push(p.device);
    return (x as number) * (p.scale as number);
  }), { ignore: ['device'] });
  const a = await f({ scale: 3, device: 'gpu0' });
  t.deepEqual(a.output, [3, 6]);
  t.deepEqual(seen, ['gpu0', 'gpu0']);
  // Another device: the same identity, nothing recomputed.
  const b = await f({ scale: 3, device: 'gpu1' });
  t.is(b.diagnostics.executedPoints, 0);
  t.deepEqual(b.output, [3, 6]);
  // scale is an extra that is part of the identity: a new cache.
  const c = await f({ scale: 4, device: 'gpu1' });
  t.is(c.diagnostics.executedPoints, 2);
  t.deepEqual(seen.slice(2), ['gpu1', 'gpu1']);
});

test('a function that reuses its output buffer (typed or an array) stores and returns what each call computed, in the serial runners', async (t) => {
  const a = Array.from({ length: 12 }, (_, i) => i);
  const b = Array.from({ length: 40 }, (_, i) => i);
  const expected = a.flatMap((x) => b.map((y) => x * 100 + y));
  // One buffer for every call: each call overwrites what the previous one returned.
  const shared = new Float64Array(4 * 40);
  const sharedItems: unknown[] = [];
  const typedFn: ChunkFn = (_p, axes) => {
    const out = shared.subarray(0, axes.a!.length * axes.b!.length);
    let k = 0;
    for (const x of axes.a as number[]) for (const y of axes.b as number[]) out[k++] = x * 100 + y;
    return out;
  };
  const itemsFn: ChunkFn = (_p, axes) => {
    sharedItems.length = 0;
    for (const x of axes.a as number[]) for (const y of axes.b as number[]) sharedItems.push(x * 100 + y);
    return sharedItems;
  };
  const open = (chunkSpec: Record<string, number>) => ChunkCache.open({ root: freshRoot(), axisValues: { a, b }, chunkSpec });
  for (const [name, fn] of [['typed', typedFn], ['items', itemsFn]] as const) {
    // Whole chunks (straight into run's output) and chunks that split the last axis (rows apart).
    for (const chunkSpec of [{ a: 4, b: 40 }, { a: 4, b: 16 }]) {
      const label = `${name} ${JSON.stringify(chunkSpec)}`;
      const cold = open(chunkSpec);
      t.deepEqual(Array.from((await run(cold, fn)).output as ArrayLike<number>), expected, `${label}: run cold`);
      t.deepEqual(Array.from((await run(cold, fn)).output as ArrayLike<number>), expected, `${label}: run warm`);
      const streamed = open(chunkSpec);
      await runStreaming(streamed, fn);
      t.deepEqual(Array.from((await run(streamed, fn)).output as ArrayLike<number>), expected, `${label}: runStreaming, read back`);
      const it = open(chunkSpec);
      const got: number[] = new Array(expected.length);
      for await (const c of iterate(it, fn)) (c.output as ArrayLike<number>).length && Array.from(c.output as ArrayLike<number>).forEach((v, k) => (got[c.outIndex[k]!] = v));
      t.deepEqual(got, expected, `${label}: iterate`);
      t.deepEqual(Array.from((await run(it, fn)).output as ArrayLike<number>), expected, `${label}: iterate, read back`);
    }
  }
});
