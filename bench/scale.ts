/**
 * Scale rows (issue 15), each beside its goal and, where one exists, the
 * ceiling or floor measured in the same run (the ratio is in the note):
 * - the engine's per-chunk overhead with a trivial function at 1e5 one-point
 *   chunks (in this process) and at 1e6 (in a child process, with its peak
 *   RSS), cold and warm, and over 1e6 chunks every other one stored;
 * - `status()` of a 1e6-chunk grid (nothing, a tenth, over half and all of it
 *   stored), and the peak RSS of a 1e6-chunk
 *   `runStreaming` (in a child process, so the figure is that run's alone);
 * - 1e7 points of Float64Array outputs in 1,000 chunks: cold against a raw
 *   LMDB write of the same bytes in one transaction, warm and a 1% subset
 *   against a plain LMDB read loop over the same records;
 * - 1e7 points of `{ a, b, v }` objects: warm against decoding the same
 *   msgpack bytes into the same objects in JS (child with an 8 GB heap).
 * The children are in bench/scale-child.ts. `--quick` shrinks every size
 * (1e4 and 1e5 one-point chunks, 1e5 points).
 *
 * `node dist/bench/scale.js [--quick]` runs it alone; `npm run bench` runs it
 * among the rest.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChunkCache, run, runStreaming } from '../ts/index.js';
import { fmt, type Row } from './lib.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const trivial = (_p: unknown, axes: Record<string, unknown[]>): unknown[] => (axes.a as number[]).map((x) => x * 2);
const newRoot = (): string => mkdtempSync(join(tmpdir(), 'chunk-memo-scale-'));
const rssMb = (): number => process.memoryUsage().rss / 2 ** 20;

/** Per-chunk overhead of `run` over n one-point chunks, cold then warm (µs/chunk). */
async function perChunk(n: number): Promise<{ cold: number; warm: number; rss: number }> {
  const root = newRoot();
  try {
    const cache = ChunkCache.open({ root, axisValues: { a: range(n) }, chunkSpec: { a: 1 } });
    let t = performance.now();
    await run(cache, trivial);
    const cold = ((performance.now() - t) * 1000) / n;
    t = performance.now();
    await run(cache, trivial);
    const warm = ((performance.now() - t) * 1000) / n;
    return { cold, warm, rss: rssMb() };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/**
 * Warm reads through another chunking: `n` points stored in chunks of
 * `stored` points, read with chunks of `read` points (every point served by
 * records of the other layout), against a warm read of the same points in
 * chunks of `read` points that have their own records (the floor). Best of
 * `reps` each (ms).
 */
async function rechunked(n: number, stored: number, read: number, reps: number): Promise<{ ms: number; floor: number }> {
  const roots = [newRoot(), newRoot()];
  try {
    const axis = range(n);
    const open = (root: string, size: number): ChunkCache => ChunkCache.open({ root, axisValues: { a: axis }, chunkSpec: { a: size } });
    await run(open(roots[0]!, stored), trivial);
    const other = open(roots[0]!, read);
    const own = open(roots[1]!, read);
    await run(own, trivial);
    const best = async (cache: ChunkCache): Promise<number> => {
      let ms = Infinity;
      for (let i = 0; i < reps; i++) {
        const t = performance.now();
        const r = await run(cache, trivial);
        ms = Math.min(ms, performance.now() - t);
        if (r.diagnostics.executedPoints !== 0 || (r.output as number[])[n - 1] !== 2 * (n - 1)) throw new Error('rechunked read: wrong result');
      }
      return ms;
    };
    return { ms: await best(other), floor: await best(own) };
  } finally {
    for (const r of roots) rmSync(r, { recursive: true, force: true });
  }
}

/**
 * `status()` of a side x side grid of one-point chunks: nothing stored (best
 * of `reps`, ms, and RSS growth over them), a tenth stored, every chunk
 * stored.
 */
async function statusOf(side: number, reps: number): Promise<{ ms: number; grew: number; storedMs: number; stored: number; halfMs: number; half: number; fullMs: number }> {
  const root = newRoot();
  try {
    const cache = ChunkCache.open({ root, axisValues: { a: range(side), b: range(side) }, chunkSpec: { a: 1, b: 1 } });
    const best = (points: number): number => {
      let ms = Infinity;
      for (let i = 0; i < reps; i++) {
        const t = performance.now();
        const s = cache.status();
        if (s.totalChunks !== side * side || s.cachedPoints !== points) throw new Error('status: wrong counts');
        ms = Math.min(ms, performance.now() - t);
      }
      return ms;
    };
    cache.status();
    const before = rssMb();
    const ms = best(0);
    const grew = rssMb() - before;
    // A tenth of the chunks stored (every 10th value of a): status reads their index entries.
    const tenth = (_p: unknown, axes: Record<string, unknown[]>): number[] => (axes.a as number[]).map((x) => x * 2);
    const d = await runStreaming(cache.select({ indices: { a: { step: 10 } } }), tenth);
    const storedMs = best(d.executedPoints);
    // Every other value of b stored too (more than half of the chunks, in
    // columns across the rows): status looks at every chunk's own record,
    // and finds that no other record could serve those without one.
    const h = await runStreaming(cache.select({ indices: { b: { step: 2 } } }), tenth);
    const half = d.executedPoints + h.executedPoints;
    const halfMs = best(half);
    // Every chunk stored: status looks at every chunk's own record.
    await runStreaming(cache, tenth);
    return { ms, grew, storedMs, stored: d.executedPoints, halfMs, half, fullMs: best(side * side) };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Runs a mode of bench/scale-child in a fresh process and returns its JSON line. */
function child<T>(mode: string, n: number, opts: { reps?: number; heapMb?: number; root?: string } = {}): T {
  const self = fileURLToPath(import.meta.url);
  const script = self.replace(/scale\.(ts|js)$/, 'scale-child.$1');
  const args = [...process.execArgv, '--expose-gc', ...(opts.heapMb ? [`--max-old-space-size=${opts.heapMb}`] : []), script, mode, String(n), opts.root ?? String(opts.reps ?? 3)];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`scale child ${mode} ${n} failed (${r.status ?? r.signal}): ${r.stderr}`);
  // SCALE_SAMPLES=1: the children print every timing of their medians.
  if (process.env.SCALE_SAMPLES) process.stderr.write(`${mode}: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as T;
}

const count = (n: number): string => n.toLocaleString('en-US');
/** "1.4x of <what>" */
const of = (value: number, ceiling: number, what: string): string => {
  const x = value / ceiling;
  return `${x >= 0.1 ? x.toFixed(2) : x.toPrecision(2)}x of ${what}`;
};

interface PerChunk { coldMs: number; warmMs: number; openMs: number; reopenMs: number; peakMb: number }
interface Stream { ms: number; peakMb: number }
interface Mixed { chunks: number; ms: number; claims: number; readMs: number; invalidateMs: number; invalidated: number; peakMb: number }
interface Typed { chunks: number; coldMs: number; rawWriteMs: number; computeMs: number; warmMs: number; readLoopMs: number; subsetMs: number; bytes: number; recordBytes: number; peakMb: number }
interface TypedSmall { chunks: number; coldMs: number; warmMs: number; readLoopMs: number; peakMb: number }
interface Objects { coldMs: number; warmMs: number; encodeMs: number; rawWriteMs: number; decodeMs: number; bytes: number; peakMb: number }

export async function scaleBench(add: (r: Row) => void, quick: boolean): Promise<void> {
  // Per-chunk overhead, in this process (1e5 chunks) and in a child (1e6 chunks, with its peak RSS).
  const n = quick ? 10_000 : 100_000;
  const p = await perChunk(n);
  add({ bench: `per-chunk overhead, ${count(n)} one-point chunks, cold`, value: fmt(p.cold), unit: 'µs/chunk', target: '≤ 10 µs', note: `${of(p.cold, 10, 'goal')}; run, trivial function, one run` });
  add({ bench: `per-chunk overhead, ${count(n)} one-point chunks, warm`, value: fmt(p.warm), unit: 'µs/chunk', target: '≤ 5 µs', note: `${of(p.warm, 5, 'goal')}; one run; RSS after both ${fmt(p.rss, 0)} MB` });
  const nBig = quick ? 100_000 : 1_000_000;
  const q = child<PerChunk>('per-chunk', nBig);
  const [cold, warm] = [(q.coldMs * 1000) / nBig, (q.warmMs * 1000) / nBig];
  add({ bench: `per-chunk overhead, ${count(nBig)} one-point chunks, cold`, value: fmt(cold), unit: 'µs/chunk', target: '≤ 10 µs', note: `${of(cold, 10, 'goal')}; run, trivial function, one run in a child process` });
  add({ bench: `per-chunk overhead, ${count(nBig)} one-point chunks, warm`, value: fmt(warm), unit: 'µs/chunk', target: '≤ 5 µs', note: `${of(warm, 5, 'goal')}; one run; the child's peak RSS over cold and warm ${fmt(q.peakMb, 0)} MB` });
  const mx = child<Mixed>('mixed', nBig);
  const mixedUs = (mx.ms * 1000) / mx.chunks;
  add({ bench: `per-chunk overhead, ${count(mx.chunks)} one-point chunks, every other column stored`, value: fmt(mixedUs), unit: 'µs/chunk', target: '≤ 10 µs', note: `${of(mixedUs, 10, 'goal')}; run reads one chunk and computes the next, in turn; ${fmt(mx.claims, 0)} claim transactions; one run in a child process` });
  add({ bench: `read(), ${count(mx.chunks)} one-point chunks, every one stored`, value: fmt(mx.readMs), unit: 'ms', target: '', note: `${fmt((mx.readMs * 1000) / mx.chunks)} µs per chunk; stored chunks read 1,024 at a time, nothing computed; the child above` });
  add({ bench: `invalidate, ${count(mx.invalidated)} one-point chunks of a ${count(mx.chunks)}-chunk grid (every other column)`, value: fmt(mx.invalidateMs), unit: 'ms', target: '', note: `${fmt((mx.invalidateMs * 1000) / mx.invalidated)} µs per record; the records found from the index in native code and deleted in one transaction; the child above` });
  add({ bench: `ChunkCache.open, one axis of ${count(nBig)} values, first open`, value: fmt(q.openMs), unit: 'ms', target: '', note: `hashes every value, checks for duplicates, stores the grid; one run in the child above` });
  add({ bench: `ChunkCache.open, one axis of ${count(nBig)} values, reopened`, value: fmt(q.reopenMs), unit: 'ms', target: '', note: `the same grid again in the same process (another handle): hashes the values again (an axis this long is not among the remembered ones) and compares them with the stored grid; one run` });

  // Re-chunking: stored points read through another chunking, both ways.
  const nr = quick ? 10_000 : 100_000;
  for (const [stored, read] of [[1, 1000], [1000, 1]] as const) {
    const r = await rechunked(nr, stored, read, quick ? 1 : 3);
    add({
      bench: `run warm through another chunking: ${count(nr)} points stored in chunks of ${count(stored)}, read in chunks of ${count(read)}`, value: fmt(r.ms), unit: 'ms', target: '',
      note: `${of(r.ms, r.floor, 'floor')}: the same points read in chunks of ${count(read)} from their own records ${fmt(r.floor)} ms; best of ${quick ? 1 : 3}`,
    });
  }

  const side = quick ? 300 : 1000;
  const s = await statusOf(side, quick ? 2 : 5);
  add({ bench: `status(), ${count(side * side)}-chunk grid, nothing stored`, value: fmt(s.ms), unit: 'ms', target: '≤ 200 ms', note: `${of(s.ms, 200, 'goal')}; best of ${quick ? 2 : 5}; RSS grew ${fmt(s.grew, 0)} MB over the repeats` });
  add({ bench: `status(), ${count(side * side)}-chunk grid, ${count(s.stored)} one-point chunks stored`, value: fmt(s.storedMs), unit: 'ms', target: '≤ 200 ms', note: `${of(s.storedMs, 200, 'goal')}; best of ${quick ? 2 : 5}` });
  add({ bench: `status(), ${count(side * side)}-chunk grid, ${count(s.half)} one-point chunks stored (every 10th row and every other column)`, value: fmt(s.halfMs), unit: 'ms', target: '≤ 200 ms', note: `${of(s.halfMs, 200, 'goal')}; best of ${quick ? 2 : 5}; a chunk without its own record is known empty when every record is laid out as a chunk of the grid` });
  add({ bench: `status(), ${count(side * side)}-chunk grid, every chunk stored`, value: fmt(s.fullMs), unit: 'ms', target: '≤ 200 ms', note: `${of(s.fullMs, 200, 'goal')}; best of ${quick ? 2 : 5}; every record walked with its index entry and placed in the grid by it, on every core` });
  const m = quick ? 100_000 : 1_000_000;
  const streamRoot = newRoot();
  try {
    const r = child<Stream>('stream', m, { root: streamRoot });
    add({ bench: `runStreaming peak RSS, ${count(m)} one-point chunks, cold`, value: fmt(r.peakMb, 0), unit: 'MB', target: '< 300 MB', note: `${of(r.peakMb, 300, 'goal')}; child process, one run; ${fmt((r.ms * 1000) / m)} µs/chunk` });
    const w = child<Stream>('stream-warm', m, { root: streamRoot });
    add({ bench: `runStreaming peak RSS, ${count(m)} one-point chunks, warm`, value: fmt(w.peakMb, 0), unit: 'MB', target: '< 300 MB', note: `${of(w.peakMb, 300, 'goal')}; another child process over the same root, one run; ${fmt((w.ms * 1000) / m)} µs/chunk` });
  } finally {
    rmSync(streamRoot, { recursive: true, force: true });
  }

  // 1e7 points (a = range(10,000), b = range(1,000), 1,000 chunks of 10,000 points), each kind in a child process.
  const big = quick ? 100_000 : 10_000_000;
  const grid = `${count(big)} points (${count(big / 1000)} x 1,000), ${count(Math.min(1000, big / 1000))} chunks`;
  const pps = (ms: number, pts = big): string => `${fmt(pts / (ms / 1000) / 1e6, 2)}M points/s`;
  const t = child<Typed>('typed', big, { reps: 3 });
  const mb = fmt(t.bytes / 2 ** 20, 0);
  add({
    bench: `run cold, ${grid}, Float64Array`, value: fmt(t.coldMs), unit: 'ms', target: '≤ 2x raw LMDB write',
    note: `${of(t.coldMs, t.rawWriteMs, 'ceiling')}: the same ${mb} MB written raw to LMDB (one blob per chunk, one transaction, timed after an untimed one) ${fmt(t.rawWriteMs)} ms; the function on every chunk with its outputs copied into one array, nothing stored, ${fmt(t.computeMs)} ms; ${pps(t.coldMs)}; medians of 3 taken in turns, each cold run in a fresh root opened untimed, after an untimed run`,
  });
  add({
    bench: `run warm, ${grid}, Float64Array`, value: fmt(t.warmMs), unit: 'ms', target: '≤ 2x LMDB read loop',
    note: `${of(t.warmMs, t.readLoopMs, 'ceiling')}: plain LMDB read loop over the same ${count(t.chunks)} records (${fmt(t.recordBytes / 2 ** 20, 0)} MB, every byte touched) ${fmt(t.readLoopMs)} ms; ${pps(t.warmMs)}; medians of 3 taken in turns`,
  });
  add({
    bench: `run 1% subset (every 10th value per axis), ${grid}, Float64Array`, value: fmt(t.subsetMs), unit: 'ms', target: '≤ 2x LMDB read loop',
    note: `${of(t.subsetMs, t.readLoopMs, 'ceiling')}: the read loop over all records above; ${pps(t.subsetMs, big / 100)}; median of 3; child's peak RSS ${fmt(t.peakMb, 0)} MB`,
  });
  const ts = child<TypedSmall>('typed-small', big, { reps: 3 });
  add({
    bench: `run warm, ${count(big)} points in ${count(ts.chunks)} chunks of 100, Float64Array`, value: fmt(ts.warmMs), unit: 'ms', target: '≤ 2x LMDB read loop',
    note: `${of(ts.warmMs, ts.readLoopMs, 'ceiling')}: plain LMDB read loop over the same ${count(ts.chunks)} records ${fmt(ts.readLoopMs)} ms; ${pps(ts.warmMs)}; medians of 3 taken in turns; cold run ${fmt(ts.coldMs)} ms (one run); child's peak RSS ${fmt(ts.peakMb, 0)} MB`,
  });
  const o = child<Objects>('objects', big, { reps: 3, heapMb: 8192 });
  add({
    bench: `run cold, ${grid}, objects {a,b,v}`, value: fmt(o.coldMs), unit: 'ms', target: '',
    note: `${of(o.coldMs, o.encodeMs + o.rawWriteMs, 'floor')}: encodeOutputs of every chunk ${fmt(o.encodeMs)} ms + raw LMDB write of the ${fmt(o.bytes / 2 ** 20, 0)} MB ${fmt(o.rawWriteMs)} ms; ${pps(o.coldMs)}; one run`,
  });
  add({
    bench: `run warm, ${grid}, objects {a,b,v}`, value: fmt(o.warmMs), unit: 'ms', target: '≤ 1.5x JS decode',
    note: `${of(o.warmMs, o.decodeMs, 'floor')}: decodeOutputs of the same msgpack bytes into the same objects (all kept) ${fmt(o.decodeMs)} ms; ${pps(o.warmMs)}; medians of 3 taken in turns; child with an 8 GB heap, peak RSS ${fmt(o.peakMb, 0)} MB`,
  });
}

const argv = process.argv;
if (argv[1] && fileURLToPath(import.meta.url) === argv[1]) {
  await scaleBench((r) => console.log(`${r.bench}: ${r.value} ${r.unit}${r.target ? ` (goal ${r.target})` : ''}${r.note ? ` — ${r.note}` : ''}`), argv.includes('--quick'));
}
