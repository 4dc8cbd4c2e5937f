/**
 * Behaviour at sweep scale (issue 15): `status()` of a 1e6-chunk grid and a
 * warm run over 1e5 one-point chunks, each checked in full against a
 * reference computed independently (a plain loop, and the same data seen
 * through another chunking).
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, realpathSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { Packr, REUSE_BUFFER_MODE } from 'msgpackr';
import { ChunkCache, iterate, run, runStreaming, type ChunkFn, type ChunkStatusEntry, type Value } from '../ts/index.js';
import { freshRoot, prng } from './helpers/grid.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const here = dirname(fileURLToPath(import.meta.url));

/** Distinct sorted integers in [0, n), `k` of them, drawn with `rand`. */
function pick(rand: () => number, n: number, k: number): number[] {
  const s = new Set<number>();
  while (s.size < k) s.add(Math.floor(rand() * n));
  return [...s].sort((x, y) => x - y);
}

// ------------------------------------------------------------ status, 1e6 chunks

const SIDE = 1000;
/** Output of point (a, b): a plain number, so the stored value names its point. */
const code = (a: number, b: number): number => a * SIDE + b;
/** A chunk function over axes a, b that records every point it computes. */
function recording(seen: number[]): ChunkFn {
  return (_p, axes) => {
    const a = axes.a as number[];
    const b = axes.b as number[];
    const out: number[] = [];
    for (const x of a) for (const y of b) {
      seen.push(code(x, y));
      out.push(code(x, y));
    }
    return out;
  };
}

/** The status entry of one one-point chunk (a, b) of a view starting at (a0, b0) with `bs` values of b. */
function onePointEntry(a: number, b: number, a0 = 0, b0 = 0, bs = SIDE): ChunkStatusEntry {
  return { index: (a - a0) * bs + (b - b0), bins: { a, b }, axisValues: { a: [a], b: [b] }, indices: { a: [a - a0], b: [b - b0] }, points: 1 };
}

test('status of a 1,000,000-chunk grid: counts and every cached and missing chunk match a naive reference', async (t) => {
  const root = freshRoot();
  const axisValues = { a: range(SIDE), b: range(SIDE) };
  const big = ChunkCache.open({ root, params: { t: 'scale-status' }, axisValues, chunkSpec: { a: 1, b: 1 } });
  // The same cache (same params) under 10 x 100 chunks: it shares stored outputs.
  const small = ChunkCache.open({ root, params: { t: 'scale-status' }, axisValues, chunkSpec: { a: 10, b: 100 } });
  t.is(small.id, big.id);

  // What gets stored, as a plain set of point codes.
  const stored = new Set<number>();
  const rand = prng(15);
  const as1 = pick(rand, SIDE, 40);
  const bs1 = pick(rand, SIDE, 50);
  const seen1: number[] = [];
  const r1 = await run(big.select({ indices: { a: as1, b: bs1 } }), recording(seen1));
  for (const a of as1) for (const b of bs1) stored.add(code(a, b));
  t.is(r1.diagnostics.executedPoints, 2000);
  t.is(r1.diagnostics.executedChunks, 2000);
  t.deepEqual([...seen1].sort((x, y) => x - y), [...stored].sort((x, y) => x - y));

  // A block stored through the 10 x 100 chunking: partial chunks there, and
  // one-point chunks of the big cache resolved across chunkings.
  const before = new Set(stored);
  const seen2: number[] = [];
  const r2 = await run(small.select({ indices: { a: { start: 100, stop: 120 }, b: { start: 0, stop: 150 } } }), recording(seen2));
  const block2: number[] = [];
  for (let a = 100; a < 120; a++) for (let b = 0; b < 150; b++) block2.push(code(a, b));
  for (const c of block2) stored.add(c);
  const fresh2 = block2.filter((c) => !before.has(c));
  t.is(r2.diagnostics.executedPoints, fresh2.length);
  t.deepEqual([...seen2].sort((x, y) => x - y), fresh2);

  // The corners, one run each.
  for (const [a, b] of [[0, 0], [SIDE - 1, SIDE - 1]] as const) {
    const r = await run(big.select({ values: { a: [a], b: [b] } }), recording([]));
    t.deepEqual(r.output, [code(a, b)]);
    stored.add(code(a, b));
  }
  const n = stored.size;
  t.true(n > 4000 && n < 6000, `stored ${n}`);

  // Everything stored reads back warm through the one-point chunks.
  const again: number[] = [];
  const warm = await run(big.select({ indices: { a: { start: 100, stop: 120 }, b: { start: 0, stop: 150 } } }), recording(again));
  t.is(again.length, 0);
  t.deepEqual(warm.output, block2);

  // The status, checked in full against the naive expectation.
  const s = big.status();
  t.is(s.totalChunks, SIDE * SIDE);
  t.is(s.totalPoints, SIDE * SIDE);
  t.is(s.cachedPoints, n);
  t.is(s.missingPoints, SIDE * SIDE - n);
  const sortedCodes = [...stored].sort((x, y) => x - y);
  t.deepEqual(s.cached, sortedCodes.map((c) => onePointEntry(Math.floor(c / SIDE), c % SIDE)));
  t.deepEqual(s.partial, [], 'a one-point chunk is never partial');
  const missing = s.missing;
  t.is(missing.length, SIDE * SIDE - n);
  // 995,000 entries: compared field by field in a loop (deepEqual per entry would take minutes).
  let k = 0;
  let bad: string | null = null;
  for (let c = 0; c < SIDE * SIDE && bad === null; c++) {
    if (stored.has(c)) continue;
    const e = missing[k++]!;
    const a = Math.floor(c / SIDE);
    const b = c % SIDE;
    const ok = e.index === c && e.points === 1 && e.bins.a === a && e.bins.b === b
      && e.axisValues.a!.length === 1 && e.axisValues.a![0] === a && e.axisValues.b!.length === 1 && e.axisValues.b![0] === b
      && e.indices.a!.length === 1 && e.indices.a![0] === a && e.indices.b!.length === 1 && e.indices.b![0] === b
      && Object.keys(e.bins).length === 2 && Object.keys(e.axisValues).length === 2 && Object.keys(e.indices).length === 2;
    if (!ok) bad = `missing[${k - 1}] = ${JSON.stringify(e)}, expected ${JSON.stringify(onePointEntry(a, b))}`;
  }
  t.is(bad, null);
  t.is(k, missing.length);
  // Spot checks through deepEqual, so the shape itself is compared too.
  t.deepEqual(missing[0], onePointEntry(0, 1));
  t.deepEqual(missing.at(-1), onePointEntry(SIDE - 1, SIDE - 2));

  // A view of the big cache: indices and positions relative to the view, bins of the whole axis.
  const [a0, a1, b0, b1] = [95, 125, 120, 160];
  const view = big.select({ indices: { a: { start: a0, stop: a1 }, b: { start: b0, stop: b1 } } });
  const vs = view.status();
  const inView: number[] = [];
  for (let a = a0; a < a1; a++) for (let b = b0; b < b1; b++) inView.push(code(a, b));
  const entry = (c: number): ChunkStatusEntry => onePointEntry(Math.floor(c / SIDE), c % SIDE, a0, b0, b1 - b0);
  t.is(vs.totalChunks, inView.length);
  t.is(vs.totalPoints, inView.length);
  t.is(vs.cachedPoints, inView.filter((c) => stored.has(c)).length);
  t.true(vs.cachedPoints > 0 && vs.cachedPoints < inView.length);
  t.deepEqual(vs.cached, inView.filter((c) => stored.has(c)).map(entry));
  t.deepEqual(vs.missing, inView.filter((c) => !stored.has(c)).map(entry));
  t.deepEqual(vs.partial, []);

  // The same data under the 10 x 100 chunking: its cached and partial chunks
  // (less their missing points) give back exactly the stored set.
  const ss = small.status();
  t.is(ss.totalChunks, (SIDE / 10) * (SIDE / 100));
  t.is(ss.cachedPoints, n);
  t.is(ss.missingPoints, SIDE * SIDE - n);
  t.true(ss.partial.length > 0);
  t.true(ss.cached.length > 0, 'the 20 x 100 block fills two 10 x 100 chunks');
  const fromSmall = new Set<number>();
  for (const e of ss.cached) {
    t.is(e.points, 1000);
    for (const a of e.axisValues.a as number[]) for (const b of e.axisValues.b as number[]) fromSmall.add(code(a, b));
  }
  for (const e of ss.partial) {
    const gone = new Set(e.missingPoints.map((p: Record<string, Value>) => code(p.a as number, p.b as number)));
    t.is(e.cachedPoints, e.points - gone.size);
    for (const a of e.axisValues.a as number[]) for (const b of e.axisValues.b as number[]) if (!gone.has(code(a, b))) fromSmall.add(code(a, b));
  }
  t.deepEqual([...fromSmall].sort((x, y) => x - y), sortedCodes);
  t.is(ss.cached.length + ss.partial.length + ss.missing.length, ss.totalChunks);
});

test('status of a 1,000,000-chunk grid a third stored: chunks without their own record count what records of another chunking hold', async (t) => {
  const root = freshRoot();
  const axisValues = { a: range(SIDE), b: range(SIDE) };
  const big = ChunkCache.open({ root, params: { t: 'scale-third' }, axisValues, chunkSpec: { a: 1, b: 1 } });
  const small = ChunkCache.open({ root, params: { t: 'scale-third' }, axisValues, chunkSpec: { a: 10, b: 100 } });
  const fn: ChunkFn = (_p, axes) => {
    const out: number[] = [];
    for (const x of axes.a as number[]) for (const y of axes.b as number[]) out.push(code(x, y));
    return out;
  };
  // Every third row through one-point chunks: more than a quarter of the
  // grid's chunks, so status looks at every chunk's own record.
  const stored = new Set<number>();
  const d = await runStreaming(big.select({ indices: { a: { step: 3 } } }), fn);
  for (let a = 0; a < SIDE; a += 3) for (let b = 0; b < SIDE; b++) stored.add(code(a, b));
  t.is(d.executedPoints, stored.size);
  let s = big.status();
  t.is(s.cachedPoints, stored.size);
  t.is(s.cached.length, stored.size);
  // A block through the 10 x 100 chunking: chunks of its rows between the
  // stored ones have no record of their own, yet hold stored points.
  const r = await run(small.select({ indices: { a: { start: 500, stop: 520 }, b: { start: 0, stop: 100 } } }), fn);
  for (let a = 500; a < 520; a++) for (let b = 0; b < 100; b++) stored.add(code(a, b));
  t.is(r.diagnostics.executedPoints, 20 * 100 - 7 * 100);
  s = big.status();
  t.is(s.totalChunks, SIDE * SIDE);
  t.is(s.cachedPoints, stored.size);
  t.is(s.missingPoints, SIDE * SIDE - stored.size);
  t.deepEqual(s.partial, []);
  // Every cached entry, in order, against the reference set.
  const want = [...stored].sort((x, y) => x - y);
  t.is(s.cached.length, want.length);
  const wrong = s.cached.findIndex((e, k) => e.index !== want[k] || e.bins.a !== Math.floor(want[k]! / SIDE) || e.bins.b !== want[k]! % SIDE);
  t.is(wrong, -1, wrong < 0 ? '' : `cached[${wrong}] = ${JSON.stringify(s.cached[wrong])}`);
  // And they read back warm, the block's from the 10 x 100 records.
  const seen: number[] = [];
  const warm = await run(big.select({ indices: { a: { start: 499, stop: 521 }, b: { start: 0, stop: 100 } } }), recording(seen));
  const region = range(22 * 100).map((k) => code(499 + Math.floor(k / 100), k % 100));
  t.deepEqual(seen.sort((x, y) => x - y), region.filter((c) => !stored.has(c)));
  t.is(seen.length, 200, 'rows 499 and 520 alone are computed');
  t.deepEqual(warm.output, region);
  big.close();
  small.close();
  rmSync(root, { recursive: true, force: true });
});

// ------------------------------------------------------------ warm run, 1e5 chunks

test('warm run over 100,000 one-point chunks executes nothing and returns what a plain loop and a 1000-point chunking return', async (t) => {
  const N = 100_000;
  const axisValues = { a: range(N) };
  let calls = 0;
  let points = 0;
  const fn: ChunkFn = (_p, axes) => {
    calls++;
    const a = axes.a as number[];
    points += a.length;
    return a.map((x) => (x * 7919) % 10007 - x / 4);
  };
  const expected = range(N).map((x) => (x * 7919) % 10007 - x / 4);

  const root = freshRoot();
  const cache = ChunkCache.open({ root, params: { t: 'scale-warm' }, axisValues, chunkSpec: { a: 1 } });
  const cold = await run(cache, fn);
  t.is(points, N);
  t.like(cold.diagnostics, {
    totalChunks: N, cachedChunks: 0, executedChunks: N, partialChunks: 0,
    totalPoints: N, cachedPoints: 0, executedPoints: N, waitedPoints: 0, takenOverPoints: 0,
    streamFlushes: N, corruptRecords: [],
  });
  t.is(cold.diagnostics.execChunks, calls);
  t.deepEqual(cold.output, expected);

  calls = 0;
  points = 0;
  const warm = await run(cache, fn);
  t.is(calls, 0);
  t.is(points, 0);
  t.like(warm.diagnostics, {
    totalChunks: N, cachedChunks: N, executedChunks: 0, partialChunks: 0,
    totalPoints: N, cachedPoints: N, executedPoints: 0, waitedPoints: 0, takenOverPoints: 0,
    execChunks: 0, streamFlushes: 0, corruptRecords: [],
  });
  t.is(warm.output.length, N);
  t.deepEqual(warm.output, expected);

  // Reference: the same function over 1000-point chunks in another root.
  const refRoot = freshRoot();
  const ref = ChunkCache.open({ root: refRoot, params: { t: 'scale-warm' }, axisValues, chunkSpec: { a: 1000 } });
  const r = await run(ref, fn);
  t.like(r.diagnostics, { totalChunks: 100, executedChunks: 100, executedPoints: N });
  t.deepEqual(r.output, warm.output);

  // The 1000-point chunking over the one-point root reads all 100,000 records, computing nothing.
  calls = 0;
  const across = await run(ChunkCache.open({ root, params: { t: 'scale-warm' }, axisValues, chunkSpec: { a: 1000 } }), fn);
  t.is(calls, 0);
  t.like(across.diagnostics, { totalChunks: 100, cachedChunks: 100, cachedPoints: N, executedPoints: 0, execChunks: 0 });
  t.deepEqual(across.output, expected);

  // And a status of the one-point cache agrees.
  const s = cache.status();
  t.like(s, { totalChunks: N, totalPoints: N, cachedPoints: N, missingPoints: 0 });
  t.is(s.missing.length, 0);
  t.is(s.cached.length, N);

  // A warm run lets timers in as it goes (it awaits nothing else): an abort
  // from a timer lands mid-run. (`run` reads and places every output,
  // ~150 ms here, well past the 20 ms between pauses; a warm runStreaming
  // of these chunks takes about those 20 ms, too close to tell.)
  const ac = new AbortController();
  let chunksDone = 0;
  setTimeout(() => ac.abort(), 0);
  const err = await t.throwsAsync(run(cache, fn, { signal: ac.signal, onProgress: (e) => void (chunksDone = e.chunksDone) }));
  t.is((err as { code?: string }).code, 'ERR_ABORTED');
  t.true(chunksDone > 0 && chunksDone < N, `run stopped after ${chunksDone} of ${N} chunks`);
});

// ------------------------------------------------------------ resident memory

/** Resident kB of this process' mapping of `file` (Linux /proc/self/smaps). */
function residentKb(file: string): number {
  let kb = 0;
  let inFile = false;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inFile = line.endsWith(file);
    else if (inFile && line.startsWith('Rss:')) kb += Number(line.split(/\s+/)[1]);
  }
  return kb;
}

/** A store of n one-point chunks, written cold, and the warm run over it with the peak resident kB of its data file. */
async function warmResident(n: number): Promise<{ kb: number; peakKb: number; fileKb: number; executed: number }> {
  const root = freshRoot();
  const cache = ChunkCache.open({ root, axisValues: { a: range(n) }, chunkSpec: { a: 1 } });
  const fn: ChunkFn = (_p, axes) => (axes.a as number[]).map((x) => ({ x, s: `point ${x}` }));
  await run(cache, fn);
  const file = join(realpathSync(root), 'data.mdb');
  let peakKb = 0;
  let events = 0;
  // Sampled every 2,000 chunks (progress events come once per chunk).
  const warm = await run(cache, fn, { onProgress: () => void (++events % 2000 === 0 && (peakKb = Math.max(peakKb, residentKb(file)))) });
  const kb = residentKb(file);
  return { kb, peakKb: Math.max(peakKb, kb), fileKb: statSync(file).size / 1024, executed: warm.diagnostics.executedPoints };
}

test.serial('a run over a store larger than the resident budget releases the data file pages it touched, during the run; a smaller store stays resident', async (t) => {
  if (process.platform !== 'linux') {
    t.pass('resident pages are read from /proc/self/smaps, which only Linux has');
    return;
  }
  // A 1 MB budget: the store (about 11 MB) is many times larger.
  process.env.CHUNK_MEMO_MAP_RESIDENT_MB = '1';
  let big;
  try {
    big = await warmResident(40_000);
  } finally {
    delete process.env.CHUNK_MEMO_MAP_RESIDENT_MB;
  }
  t.is(big.executed, 0);
  t.true(big.fileKb > 8 * 1024, `the store is large enough to tell (${big.fileKb} kB)`);
  // Every record was read, every index entry and record written: without
  // releasing, the whole file would be resident.
  t.true(big.peakKb < big.fileKb / 2, `resident at most ${big.peakKb} kB of a ${Math.round(big.fileKb)} kB data file`);
  // The default budget (32 MB) is larger than this store of about 22 MB:
  // its pages stay mapped rather than being faulted in again and again.
  // (With the 16 MB it had, a warm run over a store like this one released
  // all of it and faulted it in again on the next run.)
  const small = await warmResident(80_000);
  t.is(small.executed, 0);
  t.log({ big, small });
  t.true(small.fileKb > 16 * 1024, `the store is larger than the old budget (${small.fileKb} kB)`);
  t.true(small.kb > small.fileKb / 2, `resident ${small.kb} kB of a ${Math.round(small.fileKb)} kB data file`);
});

// ------------------------------------------------------------ typed reads into the output

test('stored typed chunks read straight into the run output equal a plain loop: whole grid, a view of whole chunks, and mixed dtypes', async (t) => {
  const A = 300;
  const B = 500;
  const value = (a: number, b: number): number => a * 1000 + b + 0.25;
  const f64: ChunkFn = (_p, axes) => {
    const out = new Float64Array((axes.a as number[]).length * (axes.b as number[]).length);
    let k = 0;
    for (const a of axes.a as number[]) for (const b of axes.b as number[]) out[k++] = value(a, b);
    return out;
  };
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { a: range(A), b: range(B) }, chunkSpec: { a: 10, b: 100 } });
  await run(cache, f64);
  // 150,000 points in 150 chunks: the first read batch decides the dtype,
  // the later ones are read into the output.
  const warm = await run(cache, f64);
  t.is(warm.diagnostics.executedPoints, 0);
  t.true(warm.output instanceof Float64Array);
  const want = new Float64Array(A * B);
  for (let a = 0, k = 0; a < A; a++) for (let b = 0; b < B; b++) want[k++] = value(a, b);
  t.deepEqual(warm.output, want);
  // A view of whole chunks away from the origin (rows start mid-output).
  const view = cache.select({ indices: { a: { start: 20, stop: 290 }, b: { start: 100, stop: 400 } } });
  const v = await run(view, f64);
  t.is(v.diagnostics.executedPoints, 0);
  const wantView: number[] = [];
  for (let a = 20; a < 290; a++) for (let b = 100; b < 400; b++) wantView.push(value(a, b));
  t.deepEqual(Array.from(v.output as Float64Array), wantView);
  // Extending b with chunks of another dtype: the output becomes a plain array holding both.
  const wide = cache.extendAxisValues({ b: range(B + 100).slice(B) });
  const f32: ChunkFn = (_p, axes) => Float32Array.from((axes.a as number[]).flatMap((a) => (axes.b as number[]).map((b) => value(a, b))));
  const mixed = await run(wide, f32);
  t.is(mixed.diagnostics.executedPoints, A * 100);
  t.true(Array.isArray(mixed.output));
  const out = mixed.output as number[];
  for (let a = 0; a < A; a++) {
    for (const b of [0, 99, 250, 499]) t.is(out[a * (B + 100) + b], value(a, b));
    for (const b of [500, 599]) t.is(out[a * (B + 100) + b], Math.fround(value(a, b)));
  }
});

test('stored items read batch after batch through one reused scratch come back exact: binary values, partial chunks and chunk outputs', async (t) => {
  // 200,000 points in 100 chunks of 2,000: several read batches (each of
  // about 65,536 points) share the run's scratch; a Buffer decoded as a view
  // of it would be overwritten by the next batch.
  const A = 1000;
  const B = 200;
  const value = (a: number, b: number): { k: number; bin: Buffer; s: string } => {
    const bin = Buffer.alloc(4);
    bin.writeUInt32LE(a * B + b);
    return { k: a * B + b, bin, s: `p${a}-${b}` };
  };
  const fn: ChunkFn = (_p, axes) => (axes.a as number[]).flatMap((a) => (axes.b as number[]).map((b) => value(a, b)));
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { a: range(A), b: range(B) }, chunkSpec: { a: 10, b: B } });
  // Some chunks stored in part first (every third row of a), so batches mix
  // whole chunks with chunks read in part.
  const part = cache.select({ indices: { a: { step: 3 } } });
  await run(part, fn);
  const cold = await run(cache, fn);
  t.is(cold.diagnostics.executedPoints, A * B - Math.ceil(A / 3) * B);
  const check = (out: unknown[], at: (k: number) => [number, number]): void => {
    let bad = 0;
    for (let k = 0; k < out.length; k++) {
      const [a, b] = at(k);
      const got = out[k] as { k: number; bin: Buffer; s: string };
      if (got.k !== a * B + b || got.s !== `p${a}-${b}` || !Buffer.isBuffer(got.bin) || got.bin.length !== 4 || got.bin.readUInt32LE() !== a * B + b) bad++;
    }
    t.is(bad, 0);
  };
  const warm = await run(cache, fn);
  t.is(warm.diagnostics.executedPoints, 0);
  check(warm.output as unknown[], (k) => [Math.floor(k / B), k % B]);
  // Per-chunk outputs (a chunk's whole read is handed out as it is), all
  // kept until the last batch has been read, then checked.
  const kept: Array<{ a0: number; out: unknown[] }> = [];
  for await (const c of iterate(cache, fn)) kept.push({ a0: (c.axisValues.a as number[])[0]!, out: c.output as unknown[] });
  t.is(kept.length, A / 10);
  for (const { a0, out } of kept) check(out, (k) => [a0 + Math.floor(k / B), k % B]);
});

test('large typed chunks written from the run output (one part per batch when their rows follow each other, a copy when they do not) read back exactly', async (t) => {
  const values = (a: number[], b: number[]): Float64Array => Float64Array.from(a.flatMap((x) => b.map((y) => x * 4096 + y + 0.5)));
  const f: ChunkFn = (_p, axes) => values(axes.a as number[], axes.b as number[]);
  const never: ChunkFn = () => {
    throw new Error('a warm run computed a point');
  };
  const A = range(64);
  const B = range(1024);
  // Chunks of 4 x 1024 points (32 KB) lie one after another in the output;
  // chunks of 4 x 512 do not (each row is split between two chunks).
  for (const b of [1024, 512]) {
    const cache = ChunkCache.open({ root: freshRoot(), params: { rows: b }, axisValues: { a: A, b: B }, chunkSpec: { a: 4, b } });
    const cold = await run(cache, f);
    t.is(cold.diagnostics.executedPoints, 64 * 1024);
    const warm = await run(cache, never);
    t.is(warm.diagnostics.cachedPoints, 64 * 1024);
    t.deepEqual(warm.output, values(A, B));
    t.deepEqual(cold.output, values(A, B));
  }
});

test('opening a cache over a million-value axis leaves no axis-sized encode buffer behind (msgpackr keeps its largest one for the process)', (t) => {
  const values = Array.from({ length: 1_000_000 }, (_, i) => i * 0.5);
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { x: values }, chunkSpec: { x: 1000 } });
  // In REUSE_BUFFER_MODE msgpackr hands back the buffer it encodes into, shared by every Packr.
  const shared = new Packr().pack(1, REUSE_BUFFER_MODE);
  t.true(shared.buffer.byteLength < 1 << 20, `msgpackr's encode buffer is ${shared.buffer.byteLength} bytes`);
  // The metadata is whole: the same cache opens again from it.
  const again = ChunkCache.open({ root: cache._core.root, axisValues: { x: values }, chunkSpec: { x: 1000 } });
  t.is(again._core.id, cache._core.id);
  t.is(again.axisValues.x!.length, 1_000_000);
});

test('repeated runs in one process keep their optimized code: the hidden classes of a run\'s objects outlive the run', (t) => {
  // Each run used to free the maps of its session, queues, geometry and chunk
  // assemblers once it ended, and V8 then threw away the optimized code of
  // the functions depending on them (7-15 functions per run here, re-optimized
  // by the next run). Only msgpackr's `read` (which builds the metadata's
  // objects) is left out of the count.
  const dir = freshRoot();
  const r = spawnSync(process.execPath, ['--import=tsx', '--expose-gc', '--trace-deopt', join(here, 'fixtures', 'repeat-runs.ts'), dir, '8'], { encoding: 'utf8', timeout: 120_000 });
  rmSync(dir, { recursive: true, force: true });
  t.is(r.status, 0, r.stderr);
  const perRun: number[] = [];
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('run ')) perRun.push(0);
    else if (line.includes('reason: weak objects') && perRun.length > 0 && !/SharedFunctionInfo read>/.test(line)) perRun[perRun.length - 1]!++;
  }
  t.is(perRun.length, 8);
  // The first runs optimize; from the fourth on, code thrown away is rare.
  // (The third still throws away the few functions whose feedback names a
  // run's objects, 4 here, and on a loaded machine some of that spills into
  // the fourth.)
  const later = perRun.slice(3);
  t.true(later.reduce((a, b) => a + b, 0) <= later.length, `optimized functions thrown away per run: ${perRun.join(', ')}`);
});

test('streaming runs of many one-point chunks keep V8\'s old generation small: the objects made per chunk die young', (t) => {
  // A chunk's objects live while some two thousand chunks are open, less
  // than one young collection apart. They used to reach the old generation
  // two ways, in one process in two or three: V8 allocated the objects of an
  // object literal there once it saw most of them alive at one collection,
  // and the hash tables a Map of open chunks dropped as it churned kept
  // finished chunks alive from there. The old space then filled with
  // garbage between full collections: 31-80 MB here, and a 1e6-chunk run
  // peaked at 270-300 MB RSS instead of ~210 MB.
  const dir = freshRoot();
  const r = spawnSync(process.execPath, ['--import=tsx', join(here, 'fixtures', 'stream-old-space.ts'), dir, '300000', '4'], { encoding: 'utf8', timeout: 180_000 });
  rmSync(dir, { recursive: true, force: true });
  t.is(r.status, 0, r.stderr);
  const peaks = JSON.parse(r.stdout.trim().split('\n').pop()!) as number[];
  t.log({ oldSpacePeaksMb: peaks });
  t.is(peaks.length, 4);
  t.true(Math.max(...peaks) <= 28, `old space peaked at ${peaks.join(', ')} MB over four runs of 300,000 chunks`);
});

test('large typed reads copied into the output on several threads equal a plain loop, and a damaged record among them is recomputed', async (t) => {
  // 1,000,000 float64 points (8 MB per read batch: the binding splits the
  // copy across threads), in chunks of 10 x 500: each chunk's rows are half
  // an output row apart.
  const A = 1000;
  const B = 1000;
  const value = (a: number, b: number): number => a * 1000 + b + 0.5;
  const computed: number[] = [];
  const f64: ChunkFn = (_p, axes) => {
    const as = axes.a as number[];
    const bs = axes.b as number[];
    computed.push(as.length * bs.length);
    const out = new Float64Array(as.length * bs.length);
    let k = 0;
    for (const a of as) for (const b of bs) out[k++] = value(a, b);
    return out;
  };
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { a: range(A), b: range(B) }, chunkSpec: { a: 10, b: 500 } });
  await run(cache, f64);
  const want = new Float64Array(A * B);
  for (let a = 0, k = 0; a < A; a++) for (let b = 0; b < B; b++) want[k++] = value(a, b);
  const warm = await run(cache, f64);
  t.is(warm.diagnostics.executedPoints, 0);
  t.true(warm.output instanceof Float64Array);
  t.true(Buffer.from((warm.output as Float64Array).buffer).equals(Buffer.from(want.buffer)));
  // A view of whole chunks away from the origin.
  const view = cache.select({ indices: { a: { start: 100, stop: 900 }, b: { start: 500, stop: 1000 } } });
  const v = await run(view, f64);
  t.is(v.diagnostics.executedPoints, 0);
  const wantView = new Float64Array(800 * 500);
  for (let a = 100, k = 0; a < 900; a++) for (let b = 500; b < 1000; b++) wantView[k++] = value(a, b);
  t.true(Buffer.from((v.output as Float64Array).buffer).equals(Buffer.from(wantView.buffer)));
  // One record in the middle of a batch damaged (a data byte flipped): it is
  // reported and its chunk computed again; every other point is read.
  const core = cache._core;
  const key = core.grid.plan([null, null]).chunkKey(2 * 57 + 1);
  const raw = Buffer.from(core.store.getRecord(core.idBytes, key)!);
  raw[raw.length - 1000] ^= 0x5a;
  core.store.putRawRecordForTests(core.idBytes, key, raw);
  computed.length = 0;
  const again = await run(cache, f64);
  t.is(again.diagnostics.executedPoints, 5000);
  t.deepEqual(computed, [5000]);
  t.is(again.diagnostics.corruptRecords.length, 1);
  t.true(Buffer.from((again.output as Float64Array).buffer).equals(Buffer.from(want.buffer)));
});

test.serial('a status that looks at every record of a store larger than the resident budget releases the data file pages as it goes', (t) => {
  if (process.platform !== 'linux') {
    t.pass('the peak RSS is reset and read through /proc/self, which only Linux has');
    return;
  }
  const root = freshRoot();
  const r = spawnSync(process.execPath, ['--import=tsx', '--expose-gc', join(here, 'fixtures', 'status-resident.ts'), root, '250000'], {
    encoding: 'utf8', timeout: 180_000, env: { ...process.env, CHUNK_MEMO_MAP_RESIDENT_MB: '1' },
  });
  rmSync(root, { recursive: true, force: true });
  t.is(r.status, 0, r.stderr);
  const { fileKb, grewKb } = JSON.parse(r.stdout.trim().split('\n').pop()!) as { fileKb: number; grewKb: number };
  t.log({ fileKb, grewKb });
  t.true(fileKb > 60 * 1024, `the store is large enough to tell (${fileKb} kB)`);
  // Every chunk's record is looked at in one read transaction: without
  // releasing its pages as it goes, the whole file would be resident. The
  // peak also holds what the status allocates on the JS heap, which grows
  // further on a loaded machine (30 MB seen with the whole suite running):
  // half the file leaves room for that and still tells the two apart.
  t.true(grewKb < fileKb / 2, `the status grew the peak RSS by ${grewKb} kB over a ${Math.round(fileKb)} kB data file`);
});
