/**
 * The child processes of bench/scale.ts (issue 15): each measurement runs
 * alone in a fresh process, so its memory neither leaks into the parent nor
 * mixes with another's peak RSS. Prints one JSON line (the last line of
 * stdout) with the timings in ms and the peak RSS in MB.
 *
 * `node dist/bench/scale-child.js <mode> <n> [reps]` with mode:
 * - `per-chunk`: `run` over n one-point chunks, cold then warm (one run each),
 *   and the times of opening the cache (an axis of n values) and reopening it;
 * - `mixed`: `run` over n one-point chunks (a square grid) of which every
 *   other column is stored: the run reads one, computes the next, in turn
 *   (one run, after the half is stored untimed); then all of it read with
 *   `read`, and that half invalidated;
 * - `stream`: a cold `runStreaming` over n one-point chunks (one run) in
 *   the root given after n; `stream-warm`: the same again over that root;
 * - `typed`: n points (a x b, 1000 chunks) of Float64Array outputs: cold run
 *   (each repetition in a fresh root) in turns with the same bytes written
 *   raw to LMDB in one transaction and with the function called on every
 *   chunk and its outputs copied into one array (nothing stored), warm run in turns with the plain LMDB
 *   read loop over the records, and a 1% subset (medians of `reps`,
 *   default 3);
 * - `typed-small`: n points of Float64Array outputs in chunks of 100 (an
 *   n/100 x 100 grid): one cold run, then the warm run in turns with the
 *   plain LMDB read loop (medians of `reps`, default 3);
 * - `objects`: n points of `{ a, b, v }` objects: cold run (one run), warm
 *   run in turns with its floor, `decodeOutputs` of the same msgpack bytes
 *   into the same objects; for cold, `encodeOutputs` of each chunk (one pass)
 *   and a raw write of those bytes (medians of `reps`, default 3).
 *
 * With SCALE_SAMPLES=1 in the environment, every timing behind a median is
 * printed to stderr (bench/scale.ts passes it on), to tell a slow run of the
 * measurement from a slow run of its ceiling.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkCache, read, run, runStreaming, type ChunkFn } from '../ts/index.js';
import { decodeOutputs, encodeOutputs, KIND_ITEMS } from '../ts/run/payload.js';
import { floats, objects } from './tasks.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const trivial = (_p: unknown, axes: Record<string, unknown[]>): unknown[] => (axes.a as number[]).map((x) => x * 2);
/**
 * This process' peak RSS in MB: VmHWM of /proc/self/status where there is
 * one. getrusage's maxRSS is not used there: Linux carries the RSS a
 * process had before exec over (a child forked from a large parent would
 * report the parent's size).
 */
const peakMb = (): number => {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // Not Linux: fall back below.
  }
  return process.resourceUsage().maxRSS / 1024;
};
const since = (t: number): number => performance.now() - t;

const roots: string[] = [];
const newRoot = (): string => {
  const r = mkdtempSync(join(tmpdir(), 'chunk-memo-scale-'));
  roots.push(r);
  return r;
};

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(`scale bench: ${what}`);
}

/** The store of a fresh root, for raw writes under a throwaway id. */
const rawStore = () => ChunkCache.open({ root: newRoot(), params: { bench: 'scale-raw' }, axisValues: { a: [0] } })._core.store;

/** Median of `reps` timings of `fn` (ms). */
async function median(reps: number, fn: () => unknown): Promise<number> {
  return (await medians(reps, [fn]))[0]!;
}

/**
 * Medians of `reps` timings of each of `fns` (ms), taken in turns (each
 * repetition times every function once): a measurement and its ceiling or
 * floor see the same state of the machine, whose disk and memory speeds
 * drift over seconds. A function that returns a number has timed itself
 * (a ceiling that times only its last step, after an untimed warm-up).
 */
async function medians(reps: number, fns: Array<() => unknown>): Promise<number[]> {
  const s: number[][] = fns.map(() => []);
  for (let i = 0; i < reps; i++) {
    for (let f = 0; f < fns.length; f++) {
      // Each timing starts from a collected heap (children run with
      // --expose-gc), so garbage of the previous one is not charged to it.
      (globalThis as { gc?: () => void }).gc?.();
      const t = performance.now();
      const own = await fns[f]!();
      s[f]!.push(typeof own === 'number' ? own : since(t));
    }
  }
  if (process.env.SCALE_SAMPLES) console.error(JSON.stringify(s.map((x) => x.map((v) => Math.round(v)))));
  return s.map((x) => x.sort((a, b) => a - b)[Math.floor(reps / 2)]!);
}

async function perChunk(n: number): Promise<object> {
  const root = newRoot();
  const axis = range(n);
  let t = performance.now();
  const cache = ChunkCache.open({ root, axisValues: { a: axis }, chunkSpec: { a: 1 } });
  const openMs = since(t);
  t = performance.now();
  const c = await run(cache, trivial);
  const coldMs = since(t);
  check(c.diagnostics.executedPoints === n && c.diagnostics.executedChunks === n, 'per-chunk cold run did not execute every chunk');
  t = performance.now();
  const w = await run(cache, trivial);
  const warmMs = since(t);
  check(w.diagnostics.executedPoints === 0 && w.diagnostics.cachedChunks === n, 'per-chunk warm run executed points');
  check((w.output as number[])[n - 1] === 2 * (n - 1), 'per-chunk warm run: wrong output');
  // The peak over cold and warm, before the reopen below adds a second handle.
  const peak = peakMb();
  // Opening the same grid again in this process (an axis this long is hashed again).
  t = performance.now();
  ChunkCache.open({ root, axisValues: { a: axis }, chunkSpec: { a: 1 } }).close();
  const reopenMs = since(t);
  return { coldMs, warmMs, openMs, reopenMs, peakMb: peak };
}

async function mixed(n: number): Promise<object> {
  const side = Math.round(Math.sqrt(n));
  const root = newRoot();
  const cache = ChunkCache.open({ root, axisValues: { a: range(side), b: range(side) }, chunkSpec: { a: 1, b: 1 } });
  const f = (_p: unknown, axes: Record<string, unknown[]>): number[] => (axes.a as number[]).map((x, k) => x * side + (axes.b as number[])[k]!);
  await run(cache.select({ indices: { b: { step: 2 } } }), f);
  const t = performance.now();
  const r = await run(cache, f);
  const ms = since(t);
  const d = r.diagnostics;
  check(d.executedPoints === side * Math.floor(side / 2) && d.cachedPoints === side * Math.ceil(side / 2), 'mixed run: wrong counts');
  check((r.output as number[])[side * side - 1] === side * side - 1, 'mixed run: wrong output');
  // Everything read back without a function (`read`), batch by batch.
  const tr = performance.now();
  const all = await read(cache);
  const readMs = since(tr);
  check(all.missingPoints === 0 && (all.output as number[])[side * side - 1] === side * side - 1, 'mixed: read returned the wrong outputs');
  // Every other column invalidated again: its records found from the index and deleted.
  const ti = performance.now();
  const inv = cache.select({ indices: { b: { step: 2 } } }).invalidate();
  const invalidateMs = since(ti);
  check(inv.deletedRecords === side * Math.ceil(side / 2), 'mixed: invalidate deleted the wrong records');
  return { chunks: side * side, ms, claims: d.claimTransactions, readMs, invalidateMs, invalidated: inv.deletedRecords, peakMb: peakMb() };
}

/**
 * `runStreaming` over n one-point chunks in `root`: cold (every point
 * computed) or, over the root a cold one filled, warm (none computed).
 */
async function stream(n: number, root: string, warm: boolean): Promise<object> {
  const cache = ChunkCache.open({ root, axisValues: { a: range(n) }, chunkSpec: { a: 1 } });
  const t = performance.now();
  const d = await runStreaming(cache, trivial);
  const ms = since(t);
  check(d.executedPoints === (warm ? 0 : n) && d.cachedPoints === (warm ? n : 0), `${warm ? 'warm' : 'cold'} runStreaming: wrong counts`);
  return { ms, peakMb: peakMb() };
}

/**
 * The grid of `n` points: a = range(n / 1000), b = range(1000), cut along a
 * into 1000 chunks (fewer when a has fewer values); chunk i's axes.
 */
function gridOf(n: number): { A: number; B: number; ca: number; chunks: number; axesOf: (i: number) => { a: number[]; b: number[] } } {
  const B = 1000;
  const A = n / B;
  const chunks = Math.min(1000, A);
  const ca = A / chunks;
  check(Number.isInteger(A) && Number.isInteger(ca), `grid of ${n} points: n must be a multiple of 1000 (and of 1e6 above 1e6)`);
  const b = range(B);
  return { A, B, ca, chunks, axesOf: (i) => ({ a: range(ca).map((k) => i * ca + k), b }) };
}

async function typed(n: number, reps: number): Promise<object> {
  const g = gridOf(n);
  const open = (): ChunkCache => ChunkCache.open({ root: newRoot(), params: { bench: 'scale-typed' }, axisValues: { a: range(g.A), b: range(g.B) }, chunkSpec: { a: g.ca, b: g.B } });
  // The write ceiling: the same output bytes, one blob per chunk, written raw in one transaction (a fresh root, like the cold run's).
  const blobs: Uint8Array[] = [];
  let bytes = 0;
  for (let i = 0; i < g.chunks; i++) {
    const f = floats({}, g.axesOf(i));
    blobs.push(new Uint8Array(f.buffer, f.byteOffset, f.byteLength));
    bytes += f.byteLength;
  }
  check(bytes === n * 8, 'typed blobs: wrong size');
  // Cold: compute and store everything, each repetition in a fresh root
  // (the last one is read warm below), in turns with the raw write.
  let cache!: ChunkCache;
  let coldOut!: Float64Array;
  // Warm-up, untimed: one cold run in its own root, so the timed ones run
  // the engine's optimized code, as a sweep's later runs do (the raw write
  // is timed after an untimed one too).
  {
    const warmup = open();
    await run(warmup, floats as ChunkFn);
    warmup.close();
  }
  const [coldMs, rawWriteMs, computeMs] = await medians(reps, [
    // The run alone (opening the fresh root is not timed, as the raw
    // write's is not).
    async () => {
      cache = open();
      const t = performance.now();
      const c = await run(cache, floats as ChunkFn);
      const ms = since(t);
      check(c.diagnostics.executedPoints === n && c.diagnostics.totalChunks === g.chunks, 'typed cold run: wrong counts');
      coldOut = c.output as Float64Array;
      return ms;
    },
    () => {
      // Warm-up, untimed: the allocator of this thread then holds memory
      // for LMDB's dirty pages, as it would after earlier writes here (the
      // fastest raw write: the strictest ceiling).
      rawStore().writeRawRecords(randomBytes(16), blobs);
      const t = performance.now();
      rawStore().writeRawRecords(randomBytes(16), blobs);
      return since(t);
    },
    // What any cold run does besides storing: call the function on every
    // chunk and copy its outputs into one output array (nothing stored).
    () => {
      const out = new Float64Array(n);
      for (let i = 0, at = 0; i < g.chunks; i++) {
        const f = floats({}, g.axesOf(i));
        out.set(f, at);
        at += f.length;
      }
    },
  ]);
  blobs.length = 0;
  // Warm: everything read back, in turns with the read ceiling: a plain
  // LMDB read loop over the same records, touching every byte.
  const [records, recordBytes] = cache._core.store.scanRecords(cache._core.idBytes);
  check(records === g.chunks && recordBytes! >= bytes, `typed read loop: ${records} records, ${recordBytes} bytes`);
  const [warmMs, readLoopMs] = await warmAndReadLoop(cache, coldOut, reps, 'typed');
  // A 1% subset: every 10th value of each axis (touches every chunk).
  const view = cache.select({ indices: { a: { step: 10 }, b: { step: 10 } } });
  const subsetMs = await median(reps, async () => {
    const s = await run(view, floats as ChunkFn);
    check(s.diagnostics.executedPoints === 0 && s.diagnostics.cachedPoints === n / 100, 'typed subset executed points');
  });
  return { chunks: g.chunks, coldMs, rawWriteMs, computeMs, warmMs, readLoopMs, subsetMs, bytes, recordBytes, peakMb: peakMb() };
}

/**
 * Medians of `reps` warm runs of `cache` (every point stored, as `coldOut`
 * holds them) taken in turns with the plain LMDB read loop over its
 * records: [warm ms, read loop ms]. Checks the last warm output against
 * `coldOut`.
 */
async function warmAndReadLoop(cache: ChunkCache, coldOut: Float64Array, reps: number, what: string): Promise<number[]> {
  const n = coldOut.length;
  const store = cache._core.store;
  let warmOut: Float64Array | undefined;
  const ms = await medians(reps, [
    async () => {
      warmOut = undefined;
      const w = await run(cache, floats as ChunkFn);
      check(w.diagnostics.executedPoints === 0 && w.diagnostics.cachedPoints === n, `${what} warm run executed points`);
      warmOut = w.output as Float64Array;
    },
    () => store.scanRecords(cache._core.idBytes),
  ]);
  check(warmOut!.length === n && warmOut!.every((x, k) => x === coldOut[k]), `${what} warm output differs from cold`);
  return ms;
}

/**
 * n points of Float64Array outputs in chunks of `per` points (an
 * n/per x per grid, one row of a per chunk): one cold run, then the warm
 * run in turns with the plain LMDB read loop over its records (medians of
 * `reps`).
 */
async function typedSmall(n: number, per: number, reps: number): Promise<object> {
  check(n % per === 0, `typed-small: n must be a multiple of ${per}`);
  const cache = ChunkCache.open({ root: newRoot(), params: { bench: 'scale-typed-small' }, axisValues: { a: range(n / per), b: range(per) }, chunkSpec: { a: 1, b: per } });
  const t = performance.now();
  const c = await run(cache, floats as ChunkFn);
  const coldMs = since(t);
  check(c.diagnostics.executedPoints === n, 'typed-small cold run: wrong counts');
  const coldOut = c.output as Float64Array;
  const [records] = cache._core.store.scanRecords(cache._core.idBytes);
  check(records === n / per, `typed-small read loop: ${records} records`);
  const [warmMs, readLoopMs] = await warmAndReadLoop(cache, coldOut, reps, 'typed-small');
  return { chunks: n / per, coldMs, warmMs, readLoopMs, peakMb: peakMb() };
}

async function objectRows(n: number, reps: number): Promise<object> {
  const g = gridOf(n);
  const cache = ChunkCache.open({ root: newRoot(), params: { bench: 'scale-objects' }, axisValues: { a: range(g.A), b: range(g.B) }, chunkSpec: { a: g.ca, b: g.B } });
  let t = performance.now();
  const c = await run(cache, objects as ChunkFn);
  const coldMs = since(t);
  check(c.diagnostics.executedPoints === n, 'objects cold run: wrong counts');
  c.output = [];
  const lastV = (g.A - 1) * 0.5 + g.B - 1;
  // The floors: encode each chunk's outputs (as a write does), write those bytes raw, and decode them back into objects.
  const enc: Array<{ data: Buffer; dict: Buffer }> = [];
  let encodeMs = 0;
  let bytes = 0;
  for (let i = 0; i < g.chunks; i++) {
    const o = objects({}, g.axesOf(i));
    t = performance.now();
    const e = encodeOutputs(o, KIND_ITEMS);
    encodeMs += since(t);
    enc.push({ data: e.data, dict: e.dict });
    bytes += e.data.length;
  }
  const rawWriteMs = await median(reps, () => rawStore().writeRawRecords(randomBytes(16), enc.map((e) => e.data)));
  // Warm, in turns with the decode floor. Decoded arrays are kept until
  // the repetition ends, as a run's output keeps every object.
  const per = n / g.chunks;
  const [warmMs, decodeMs] = await medians(reps, [
    async () => {
      const w = await run(cache, objects as ChunkFn);
      check(w.diagnostics.executedPoints === 0, 'objects warm run executed points');
      const out = w.output as Array<{ a: number; b: number; v: number }>;
      const last = out[n - 1]!;
      check(out.length === n && last.a === g.A - 1 && last.b === g.B - 1 && last.v === lastV, 'objects warm run: wrong output');
    },
    () => {
      const kept: unknown[] = new Array(g.chunks);
      for (let i = 0; i < g.chunks; i++) kept[i] = decodeOutputs(KIND_ITEMS, enc[i]!.data, per, [enc[i]!.dict]);
      const lastChunk = kept[g.chunks - 1] as Array<{ v: number }>;
      check(lastChunk.length === per && lastChunk[per - 1]!.v === lastV, 'objects decode floor: wrong output');
    },
  ]);
  return { coldMs, warmMs, encodeMs, rawWriteMs, decodeMs, bytes, peakMb: peakMb() };
}

const [mode, arg, repsArg] = process.argv.slice(2);
const n = Number(arg);
try {
  let r: object;
  if (mode === 'per-chunk') r = await perChunk(n);
  else if (mode === 'mixed') r = await mixed(n);
  else if (mode === 'stream' || mode === 'stream-warm') r = await stream(n, repsArg!, mode === 'stream-warm');
  else if (mode === 'typed') r = await typed(n, Number(repsArg ?? 3));
  else if (mode === 'typed-small') r = await typedSmall(n, 100, Number(repsArg ?? 3));
  else if (mode === 'objects') r = await objectRows(n, Number(repsArg ?? 3));
  else throw new Error(`scale-child: unknown mode ${mode}`);
  console.log(JSON.stringify(r));
} finally {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
}
