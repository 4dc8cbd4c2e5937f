/**
 * Distributed execution: 2 local `chunk-memo worker` processes behind a
 * BullMQ queue on a throwaway redis-server, against 2 worker threads, for
 * object and Float64Array outputs. Per-job overhead and points/s, through
 * `runParallel` (so storing is included) and through the executor alone.
 *
 *   npx tsx bench/distributed.ts [--quick] [--write]
 *
 * --write also replaces the "distributed" section of BENCHMARKS.md. `npm run bench`
 * calls distributedBench(add).
 * Needs redis-server on PATH (or $REDIS_SERVER).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChunkCache, defineTask, runParallel } from '../ts/index.js';
import { bullmqExecutor } from '../ts/executor/bullmq.js';
import type { ExecJob } from '../ts/task/job.js';
import { reapWithParent, redisServerBinary, startRedis } from '../native-tests/fixtures/redis.js';
import { fmt, machine, table, writeSection, type Row } from './lib.js';

const fromSource = import.meta.url.endsWith('.ts');
const HERE = dirname(fileURLToPath(import.meta.url));
const TASKS = new URL(fromSource ? './tasks.ts' : './tasks.js', import.meta.url);
const CLI = fileURLToPath(new URL(fromSource ? '../ts/cli/main.ts' : '../ts/cli/main.js', import.meta.url));
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

function startWorker(url: string, queue: string): Promise<ChildProcess> {
  const args = [...(fromSource ? ['--import', 'tsx'] : []), CLI, 'worker', '--redis', url, '--queue', queue, '--tasks', HERE];
  const p = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  reapWithParent(p);
  let err = '';
  return new Promise((resolve, reject) => {
    p.stderr!.on('data', (d) => {
      err += d.toString();
      if (/chunk-memo worker: queue /.test(err)) resolve(p);
    });
    p.once('exit', () => reject(new Error(`chunk-memo worker exited: ${err}`)));
  });
}

/**
 * Adds the distributed rows (part of `npm run bench`); says so and adds
 * nothing when redis-server is not installed.
 */
export async function distributedBench(add: (r: Row) => void, quick = false): Promise<void> {
  const bin = redisServerBinary();
  if (!bin) {
    console.log('bench/distributed: redis-server is not installed (apt-get install redis-server, or set REDIS_SERVER); nothing measured');
    return;
  }
  const redis = await startRedis(bin);
  const queue = 'bench';
  const workers = await Promise.all([startWorker(redis.url, queue), startWorker(redis.url, queue)]);
  const root = mkdtempSync(join(tmpdir(), 'chunk-memo-bench-dist-'));
  let run = 0;
  try {
    // 1. The executor alone: jobs of one point, one in flight (latency) and many (throughput).
    const ex = bullmqExecutor({ connection: redis.url, queue, concurrency: 64 });
    const task = defineTask(TASKS, 'objects');
    const job = (i: number): ExecJob => ({ task, params: { run: `lat-${i}` }, axisOrder: ['a', 'b'], axes: { a: [i], b: [0] }, count: 1, jobIndex: i, key: `bench${Date.now().toString(16)}x${i.toString(16)}` });
    for (let i = 0; i < 20; i++) await ex.run(job(1e6 + i)); // warm-up: workers load the task module
    const seq = quick ? 100 : 400;
    let t0 = performance.now();
    for (let i = 0; i < seq; i++) await ex.run(job(i));
    const latency = (performance.now() - t0) / seq;
    add({ bench: 'bullmq executor, 1-point jobs, 1 in flight', value: fmt(latency, 2), unit: 'ms/job', note: `${seq} jobs, 2 workers` });
    const par = quick ? 500 : 2000;
    t0 = performance.now();
    const all: Promise<unknown>[] = [];
    for (let i = 0; i < par; i++) all.push(ex.run(job(2e6 + i)));
    await Promise.all(all);
    const perSec = par / ((performance.now() - t0) / 1000);
    add({ bench: 'bullmq executor, 1-point jobs, 64 in flight', value: fmt(perSec, 0), unit: 'jobs/s', note: `${fmt(1000 / perSec, 2)} ms/job amortised` });

    // 2. runParallel end to end (claims, transfer, checks, stores): small jobs and large jobs.
    // Warm-up: thread pool started, task modules loaded in every thread and worker.
    for (const kind of ['objects', 'floats'] as const) {
      for (const opts of [{ executor: ex }, { workers: 2 }]) {
        const cache = ChunkCache.open({ root, params: { run: run++ }, axisValues: { a: range(8), b: range(4) }, chunkSpec: { a: 1, b: 4 } });
        await runParallel(cache, defineTask(TASKS, kind), { ...opts, execChunkSize: 4, returnOutput: false });
        cache.close();
      }
    }
    const shapes = [
      { name: 'small jobs', a: quick ? 100 : 400, b: 10, chunk: 10 },
      { name: 'large jobs', a: quick ? 40 : 100, b: 2000, chunk: quick ? 10 : 20 },
    ];
    for (const kind of ['objects', 'floats'] as const) {
      const t = defineTask(TASKS, kind);
      for (const s of shapes) {
        const points = s.a * s.b;
        const jobs = s.a / s.chunk;
        const execChunkSize = s.chunk * s.b;
        const results: Record<string, number> = {};
        for (const target of ['bullmq', 'threads'] as const) {
          const cache = ChunkCache.open({ root, params: { run: run++ }, axisValues: { a: range(s.a), b: range(s.b) }, chunkSpec: { a: s.chunk, b: s.b } });
          const t1 = performance.now();
          await runParallel(cache, t, target === 'bullmq' ? { executor: ex, execChunkSize, returnOutput: false } : { workers: 2, execChunkSize, returnOutput: false });
          const ms = performance.now() - t1;
          cache.close();
          results[target] = ms;
          const label = target === 'bullmq' ? '2 chunk-memo workers (BullMQ)' : '2 worker threads';
          add({
            bench: `runParallel ${kind}, ${s.name} (${jobs} x ${execChunkSize} points), ${label}`,
            value: fmt(points / (ms / 1000), 0), unit: 'points/s',
            note: `${fmt(ms / jobs, 2)} ms/job`,
          });
        }
        console.log(`  -> BullMQ / threads time: ${fmt(results.bullmq! / results.threads!, 2)}x`);
      }
    }
    await ex.close!();
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map((w) => (w.exitCode !== null ? undefined : new Promise((r) => w.once('exit', r)))));
    await redis.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === realpathSync(process.argv[1]);
if (isMain) {
  const rows: Row[] = [];
  await distributedBench((r) => {
    rows.push(r);
    console.log(`${r.bench}: ${r.value} ${r.unit}${r.note ? ` (${r.note})` : ''}`);
  }, process.argv.includes('--quick'));
  if (rows.length > 0) {
    const body = `${table(rows)}\n\nredis-server on loopback, workers and coordinator on the same host; tasks of ~0 cost, so the figures are the transport's.`;
    console.log(`\n${body}\n\n${machine()}`);
    if (process.argv.includes('--write')) writeSection('distributed', 'Distributed execution (BullMQ)', body);
  }
}
