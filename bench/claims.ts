/**
 * Work-claim benchmarks (part of `npm run bench`): the cost of a claim per
 * exec chunk, and how a sweep shared by 1, 2 and 3 processes on one root
 * splits (executed / needed points: 1.00 means no point computed twice).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChunkCache, executeJob, runParallel, type Executor } from '../ts/index.js';
import { localTaskFor } from './tasks.js';
import { fmt, type Row } from './lib.js';

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

/** Claim transaction time per exec chunk of a cold run on the calling thread. */
export async function claimOverhead(rows: Row[], add: (r: Row) => void): Promise<void> {
  void rows;
  for (const size of [1, 64]) {
    const root = mkdtempSync(join(tmpdir(), 'chunk-memo-bench-'));
    try {
      const points = size === 1 ? 5_000 : 100_000;
      const cache = ChunkCache.open({ root, params: { bench: 'claim', size }, axisValues: { a: range(points / 100), b: range(100) }, chunkSpec: { a: 10 } });
      const inline: Executor = { label: 'inline', concurrency: 4, run: (job) => executeJob(job) };
      const t = performance.now();
      const r = await runParallel(cache, localTaskFor('trivialChunk'), { executor: inline, execChunkSize: size, returnOutput: false });
      const ms = performance.now() - t;
      const d = r.diagnostics;
      add({
        bench: `claim overhead per exec chunk, execChunkSize ${size}`, value: fmt((d.claimMs * 1000) / d.execChunks, 2), unit: 'µs',
        note: `${d.execChunks} exec chunks; claims ${fmt((100 * d.claimMs) / ms)}% of the run (${fmt(ms)} ms, ${fmt((ms * 1000) / points, 2)} µs/point)`,
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
}

/** N processes start the same 10,000-point sweep at once on one root. */
export async function sharedSweep(add: (r: Row) => void): Promise<void> {
  const worker = fileURLToPath(new URL('./claims-worker.js', import.meta.url));
  for (const n of [1, 2, 3]) {
    const root = mkdtempSync(join(tmpdir(), 'chunk-memo-bench-'));
    try {
      const t = performance.now();
      const outs = await Promise.all(
        range(n).map(
          () =>
            new Promise<{ executed: number; waited: number }>((resolve, reject) => {
              const c = spawn(process.execPath, [worker, root, '100'], { stdio: ['ignore', 'pipe', 'inherit'] });
              let s = '';
              c.stdout.on('data', (d: Buffer) => (s += d.toString()));
              c.on('error', reject);
              c.on('close', (code) => (code === 0 ? resolve(JSON.parse(s)) : reject(new Error(`claims worker exited with ${code}`))));
            }),
        ),
      );
      const ms = performance.now() - t;
      const executed = outs.reduce((a, o) => a + o.executed, 0);
      add({
        bench: `shared sweep, ${n} process${n > 1 ? 'es' : ''} on one root, 10,000 points (~0.1 ms each)`, value: (executed / 10_000).toFixed(2), unit: 'executed / needed',
        target: '1.00', note: `wall ${fmt(ms)} ms; executed per process ${outs.map((o) => o.executed).join(' / ')}, waited ${outs.map((o) => o.waited).join(' / ')}`,
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
}
