/**
 * `npm run bench`: store, API and parallel benchmarks. Prints a table and
 * rewrites the "core" section of BENCHMARKS.md.
 *
 * Options: --quick (smaller grids, fewer repetitions; for smoke tests).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkCache, defineTask, run, runParallel, runStreaming, type ChunkFn } from '../ts/index.js';
import { planOf } from '../ts/cache/core.js';
import { busyWork, floats, objects } from './tasks.js';
import { fmt, table, timeMedian, writeSection, type Row } from './lib.js';
import { claimOverhead, sharedSweep } from './claims.js';
import { distributedBench } from './distributed.js';
import { gpuBench } from './gpu.js';

const quick = process.argv.includes('--quick');
const N = quick ? 200 : 1000;
const REPS = quick ? 2 : 5;
const rows: Row[] = [];
const roots: string[] = [];
const newRoot = (): string => {
  const r = mkdtempSync(join(tmpdir(), 'chunk-memo-bench-'));
  roots.push(r);
  return r;
};
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const add = (r: Row): void => {
  rows.push(r);
  console.log(`${r.bench}: ${r.value} ${r.unit}${r.note ? ` (${r.note})` : ''}`);
};

async function statusBench(): Promise<void> {
  const root = newRoot();
  for (const chunk of [N / 10, N / 100]) {
    const cache = ChunkCache.open({ root, params: { bench: 'status', chunk }, axisValues: { a: range(N), b: range(N) }, chunkSpec: { a: chunk, b: chunk } });
    const chunks = (N / chunk) ** 2;
    const cold = await timeMedian(REPS, () => cache.status());
    add({ bench: `status, ${N}x${N} grid, ${chunks} chunks, nothing stored`, value: fmt(cold.median), unit: 'ms' });
    await runStreaming(cache, floats as ChunkFn);
    const warm = await timeMedian(REPS, () => cache.status());
    const resolve = await timeMedian(REPS, () => planOf(cache).resolve(cache._core.store, cache._core.idBytes));
    add({
      bench: `status, ${N}x${N} grid, ${chunks} chunks, all stored`, value: fmt(warm.median), unit: 'ms',
      ...(chunks === 10_000 ? { target: '< 50 ms' } : {}), note: `native plan+resolve alone ${fmt(resolve.median)} ms`,
    });
  }
}

async function storeBench(): Promise<void> {
  // 100 chunks of 100x100 float64 (8 MB) and of small objects.
  const root = newRoot();
  for (const [label, fn] of [['float64', floats], ['objects', objects]] as const) {
    const cache = ChunkCache.open({ root, params: { bench: 'store', label }, axisValues: { a: range(N), b: range(N) }, chunkSpec: { a: N / 10, b: N / 10 } });
    const plan = planOf(cache);
    plan.resolve(cache._core.store, cache._core.idBytes);
    // Pre-encode every chunk's payload, then time only the store write.
    const { encodeOutputs, kindOf } = await import('../ts/run/payload.js');
    const { PlanGeometry } = await import('../ts/cache/geometry.js');
    const G = new PlanGeometry(plan);
    const writes = [];
    let bytes = 0;
    for (let i = 0; i < G.chunkCount; i++) {
      const geo = G.chunk(i);
      const axes = { a: Array.from(geo.sel[0]!, (s) => geo.start[0]! + s), b: Array.from(geo.sel[1]!, (s) => geo.start[1]! + s) };
      const out = fn({}, axes);
      const kind = kindOf(out);
      const enc = encodeOutputs(out as ArrayLike<unknown>, kind);
      bytes += enc.data.length;
      writes.push({ chunk: i, kind, points: Uint32Array.from({ length: geo.points }, (_, j) => j), offsets: enc.offsets, data: enc.data, dict: enc.dict });
    }
    const tw = performance.now();
    plan.writeBatch(cache._core.store, cache._core.idBytes, writes);
    const wMs = performance.now() - tw;
    add({ bench: `store write, ${label}, ${G.chunkCount} chunks in one transaction`, value: fmt(bytes / 2 ** 20 / (wMs / 1000)), unit: 'MB/s', note: `${fmt(bytes / 2 ** 20)} MB payload` });
    const p2 = planOf(cache);
    p2.resolve(cache._core.store, cache._core.idBytes);
    const read = await timeMedian(REPS, () => {
      for (let i = 0; i < p2.chunkCount; i++) p2.read(cache._core.store, cache._core.idBytes, i);
    });
    const scan = await timeMedian(REPS, () => cache._core.store.scanRecords(cache._core.idBytes));
    const recordBytes = cache._core.store.scanRecords(cache._core.idBytes)[1]!;
    const src = Buffer.alloc(recordBytes, 7);
    const dst = Buffer.alloc(recordBytes);
    const copy = await timeMedian(REPS, () => src.copy(dst));
    const rate = (ms: number, b: number) => b / 2 ** 20 / (ms / 1000);
    add({
      bench: `store read (plan.read per chunk, checksummed), ${label}`, value: fmt(rate(read.median, bytes)), unit: 'MB/s',
      note: `plain LMDB read loop ${fmt(rate(scan.median, recordBytes))} MB/s; memcpy ${fmt(rate(copy.median, recordBytes))} MB/s`,
    });
  }
}

async function apiBench(): Promise<void> {
  for (const [label, fn] of [['objects {a,b,v}', objects], ['Float64Array', floats]] as const) {
    const cold: number[] = [];
    const warm: number[] = [];
    const sub: number[] = [];
    for (let rep = 0; rep < Math.min(REPS, 3); rep++) {
      const root = newRoot();
      const cache = ChunkCache.open({ root, params: { bench: 'api' }, axisValues: { a: range(N), b: range(N) }, chunkSpec: { a: N / 10, b: N / 10 } });
      let t = performance.now();
      const c = await run(cache, fn as ChunkFn);
      cold.push(performance.now() - t);
      if (c.diagnostics.executedPoints !== N * N) throw new Error('cold run did not execute everything');
      t = performance.now();
      const w = await run(cache, fn as ChunkFn);
      warm.push(performance.now() - t);
      if (w.diagnostics.executedPoints !== 0) throw new Error('warm run executed points');
      const view = cache.select({ indices: { a: { step: 10 }, b: { step: 10 } } });
      t = performance.now();
      const s = await run(view, fn as ChunkFn);
      sub.push(performance.now() - t);
      if (s.diagnostics.executedPoints !== 0) throw new Error('subset executed points');
      rmSync(root, { recursive: true, force: true });
    }
    const med = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!;
    const pts = N * N;
    add({ bench: `run cold, ${N}x${N}, chunks ${N / 10}x${N / 10}, ${label}`, value: fmt(med(cold)), unit: 'ms', note: `${fmt(pts / (med(cold) / 1000))} points/s` });
    add({ bench: `run warm (all cached), ${label}`, value: fmt(med(warm)), unit: 'ms', note: `${fmt(pts / (med(warm) / 1000))} points/s` });
    add({ bench: `run 1% subset (every 10th value per axis), ${label}`, value: fmt(med(sub)), unit: 'ms', note: `${fmt(pts / 100 / (med(sub) / 1000))} points/s` });
  }
}

async function parallelBench(): Promise<void> {
  // Calibrate ~1 ms per point (after warming the JIT up).
  for (let i = 0; i < 200; i++) busyWork(i, i, 20_000);
  const t = performance.now();
  for (let i = 0; i < 100; i++) busyWork(i, i, 20_000);
  const iters = Math.round(20_000 / ((performance.now() - t) / 100));
  const A = quick ? 20 : 40;
  const B = 50;
  const task = defineTask(new URL('./tasks.js', import.meta.url), 'busy');
  const serialFn = (await import('./tasks.js')).busy;
  const serial: number[] = [];
  const par: number[] = [];
  for (let rep = 0; rep < 4; rep++) {
    const root = newRoot();
    const grid = { params: { iters }, axisValues: { a: range(A), b: range(B) }, chunkSpec: { a: 10, b: 10 } };
    let t = performance.now();
    await run(ChunkCache.open({ root, ...grid, cacheVersion: 'serial' }), serialFn);
    serial.push(performance.now() - t);
    t = performance.now();
    const r = await runParallel(ChunkCache.open({ root, ...grid, cacheVersion: 'parallel' }), task, { workers: 2, execChunkSize: 16, returnOutput: false });
    par.push(performance.now() - t);
    if (r.diagnostics.executedPoints !== A * B) throw new Error('parallel run did not execute everything');
  }
  const med = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)]!;
  add({ bench: `CPU-bound (~1 ms/point), ${A * B} points, serial run`, value: fmt(med(serial)), unit: 'ms' });
  const warm = par.slice(1);
  add({
    bench: `CPU-bound, runParallel with 2 worker threads, first call`, value: fmt(par[0]!), unit: 'ms',
    note: `speed-up ${(med(serial) / par[0]!).toFixed(2)}x; includes starting the workers (~0.1 s)`,
  });
  add({
    bench: `CPU-bound, runParallel with 2 worker threads, later calls`, value: fmt(med(warm)), unit: 'ms', target: '>= 1.8x over serial',
    note: `speed-up ${(med(serial) / med(warm)).toFixed(2)}x; the worker pool is reused across calls`,
  });
  const trivial = defineTask(new URL('./tasks.js', import.meta.url), 'trivial');
  for (const size of [1, 256]) {
    const points = size === 1 ? 2_000 : 50_000;
    const root = newRoot();
    const cache = ChunkCache.open({ root, params: { size }, axisValues: { a: range(points / 50), b: range(50) }, chunkSpec: { a: 20 } });
    const t = performance.now();
    await runParallel(cache, trivial, { workers: 2, execChunkSize: size, returnOutput: false });
    const ms = performance.now() - t;
    add({ bench: `dispatch overhead, trivial function, execChunkSize ${size}`, value: fmt((ms * 1000) / points, 2), unit: 'µs/point', note: `${points} points, 2 workers, start-up included` });
  }
}

try {
  await (await import('./scale.js')).scaleBench(add, quick);
  await statusBench();
  await storeBench();
  await apiBench();
  await parallelBench();
  await claimOverhead(rows, add);
  await sharedSweep(add);
  await distributedBench(add, quick);
  for (const r of await gpuBench(quick ? { sizes: [[128, 128]], reps: 2 } : { sizes: [[128, 128], [512, 512]], reps: 3 })) add(r);
  const out = table(rows);
  console.log(`\n${out}`);
  if (!quick) writeSection('core', 'Core benchmarks (`npm run bench`)', `${out}\n\nReproduce: \`npm run bench\` (about two minutes). Medians of ${REPS} repetitions unless noted; each grid is ${N}x${N}.`);
} finally {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
}
