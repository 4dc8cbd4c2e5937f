/**
 * Scale rows (issue 15): the engine's per-chunk overhead with a trivial
 * function at 1e5 one-point chunks (cold and warm), `status()` of a 1e6-chunk
 * grid, and the peak RSS of a 1e6-chunk `runStreaming` (in a child process,
 * so the figure is that run's alone). Each row carries its goal.
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

/** `status()` of a side x side grid of one-point chunks, nothing stored: best of `reps` (ms) and RSS growth over them. */
function statusOf(side: number, reps: number): { ms: number; grew: number } {
  const root = newRoot();
  try {
    const cache = ChunkCache.open({ root, axisValues: { a: range(side), b: range(side) }, chunkSpec: { a: 1, b: 1 } });
    let best = Infinity;
    cache.status();
    const before = rssMb();
    for (let i = 0; i < reps; i++) {
      const t = performance.now();
      const s = cache.status();
      if (s.totalChunks !== side * side || s.cachedPoints !== 0) throw new Error('status: wrong counts');
      best = Math.min(best, performance.now() - t);
    }
    return { ms: best, grew: rssMb() - before };
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

/** Child process: a cold `runStreaming` of n one-point chunks; prints its peak RSS (MB) and time. */
async function streamChild(n: number): Promise<void> {
  const root = newRoot();
  try {
    const cache = ChunkCache.open({ root, axisValues: { a: range(n) }, chunkSpec: { a: 1 } });
    const t = performance.now();
    await runStreaming(cache, trivial);
    const ms = performance.now() - t;
    console.log(JSON.stringify({ peakMb: process.resourceUsage().maxRSS / 1024, ms }));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

function streamRss(n: number): { peakMb: number; ms: number } {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, [...process.execArgv, self, '--stream-child', String(n)], { encoding: 'utf8', maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`runStreaming child failed: ${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').pop()!) as { peakMb: number; ms: number };
}

export async function scaleBench(add: (r: Row) => void, quick: boolean): Promise<void> {
  const n = quick ? 10_000 : 100_000;
  const p = await perChunk(n);
  add({ bench: `per-chunk overhead, ${n.toLocaleString('en-US')} one-point chunks, cold`, value: fmt(p.cold), unit: 'µs/chunk', target: '≤ 10 µs', note: 'run, trivial function' });
  add({ bench: `per-chunk overhead, ${n.toLocaleString('en-US')} one-point chunks, warm`, value: fmt(p.warm), unit: 'µs/chunk', target: '≤ 5 µs', note: `RSS after both ${fmt(p.rss, 0)} MB` });
  const side = quick ? 300 : 1000;
  const s = statusOf(side, quick ? 2 : 5);
  add({ bench: `status(), ${(side * side).toLocaleString('en-US')}-chunk grid, nothing stored`, value: fmt(s.ms), unit: 'ms', target: '≤ 200 ms', note: `RSS grew ${fmt(s.grew, 0)} MB over the repeats` });
  const m = quick ? 100_000 : 1_000_000;
  const r = streamRss(m);
  add({ bench: `runStreaming peak RSS, ${m.toLocaleString('en-US')} one-point chunks, cold`, value: fmt(r.peakMb, 0), unit: 'MB', target: '< 300 MB', note: `${fmt((r.ms * 1000) / m)} µs/chunk` });
}

const argv = process.argv;
if (argv[1] && fileURLToPath(import.meta.url) === argv[1]) {
  const i = argv.indexOf('--stream-child');
  if (i >= 0) await streamChild(Number(argv[i + 1]));
  else await scaleBench((r) => console.log(`${r.bench}: ${r.value} ${r.unit}${r.target ? ` (goal ${r.target})` : ''}${r.note ? ` — ${r.note}` : ''}`), argv.includes('--quick'));
}
