/**
 * GPU kernel throughput: one gpu.js kernel on exec chunks (product blocks)
 * of a few sizes, in gpu.js' cpu, webasm and webgpu modes, beside the same
 * arithmetic as a plain JavaScript loop. Each figure is the median of
 * several `runGpuJob` calls after a warm-up (so it includes expanding the
 * block, the transfers and the readback, as a run pays them).
 *
 * Then whole `runParallel` runs (`gpuRunBench`): worker threads running the
 * same arithmetic in JS, the kernel on webgpu and on webasm, and a
 * two-device `processes` run.
 *
 * Run alone: `npx tsx bench/gpu.ts [--sizes 128x128,512x512] [--reps 5]
 * [--devices 0,1] [--no-runs] [--write]` (`--write` records the table in
 * BENCHMARKS.md). `gpuBench()` and `gpuRunBench()` return the rows for
 * `npm run bench`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { disposeGpuKernels, gpuKernel, probeGpuBackend, runGpuJob, runGpuJobReport, type GpuMode } from '../ts/gpu/kernel.js';
import { ChunkCache, closeWorkerPools, defineTask, runParallel, type ParallelOptions } from '../ts/index.js';
import type { ExecJob, TaskSpec } from '../ts/task/job.js';
import { plainLoop } from './gpu-task.js';
import { fmt, table, timeMedian, writeSection, type Row } from './lib.js';

interface KernelThis {
  thread: { x: number };
  constants: { scale: number };
}

/** The benchmarked kernel (gpu.js convention: one thread per point). */
function kernel(this: KernelThis, x: Float32Array, y: Float32Array): number {
  const i = this.thread.x;
  let acc = 0;
  for (let k = 0; k < 32; k++) {
    acc += Math.sin(x[i]! * k + y[i]!) * Math.cos(y[i]! * k - x[i]!);
  }
  return acc * this.constants.scale;
}

function spread(n: number, lo: number, hi: number): number[] {
  return Array.from({ length: n }, (_, i) => lo + ((hi - lo) * i) / Math.max(1, n - 1));
}

function blockJob(mode: GpuMode, nx: number, ny: number): ExecJob {
  const axes = { x: spread(nx, -1, 1), y: spread(ny, -2, 2) };
  return { task: gpuKernel(kernel, { mode }), params: { scale: 0.5 }, axisOrder: ['x', 'y'], axes, count: nx * ny, jobIndex: 0, key: 'bench' };
}

export interface GpuBenchOptions {
  /** Block shapes, `[nx, ny]`. */
  sizes?: [number, number][];
  /** Timed calls per figure (median). */
  reps?: number;
  /** Progress lines on stderr. */
  log?: (line: string) => void;
}

/** Measures the kernel in every mode and size; returns the table rows. */
export async function gpuBench(options: GpuBenchOptions = {}): Promise<Row[]> {
  const sizes = options.sizes ?? [[128, 128], [256, 256], [512, 512]];
  const reps = options.reps ?? 5;
  const log = options.log ?? (() => undefined);
  const rows: Row[] = [];
  const probe = await probeGpuBackend({ mode: 'webgpu' });
  const modes: GpuMode[] = ['cpu', 'webasm'];
  if (probe.webgpu === 'available') modes.push('webgpu');
  else log(`webgpu skipped: ${probe.webgpuDetail ?? probe.webgpu}`);
  for (const [nx, ny] of sizes) {
    const points = nx * ny;
    const shape = `${nx}×${ny}`;
    const xs = spread(nx, -1, 1);
    const ys = spread(ny, -2, 2);
    const js = await timeMedian(reps, () => plainLoop(xs, ys, 0.5));
    const reference = plainLoop(xs, ys, 0.5);
    rows.push({ bench: `gpu kernel ${shape}: plain JS loop`, value: fmt(points / (js.median / 1000), 0), unit: 'points/s', note: `${fmt(js.median)} ms per block` });
    for (const mode of modes) {
      const job = blockJob(mode, nx, ny);
      const warm = await runGpuJobReport(job); // compiles the kernel
      let worst = 0;
      for (let i = 0; i < points; i++) worst = Math.max(worst, Math.abs(warm.output[i]! - reference[i]!));
      const timing = await timeMedian(reps, () => runGpuJob(job));
      const vsJs = js.median / timing.median;
      rows.push({
        bench: `gpu kernel ${shape}: ${mode}`,
        value: fmt(points / (timing.median / 1000), 0),
        unit: 'points/s',
        note: `${fmt(timing.median)} ms per block, ${fmt(vsJs, 2)}× the JS loop; ran on ${warm.backend.label}; max |Δ| vs JS ${worst.toExponential(1)}`,
      });
      log(`${shape} ${mode}: ${fmt(timing.median)} ms`);
    }
  }
  await disposeGpuKernels();
  return rows;
}

/**
 * Whole runs through `runParallel` over a fresh cache of nx × ny points
 * (compute and store): plain JS on worker threads, the kernel on webgpu and
 * on webasm in the calling thread, and the kernel in one child process per
 * device (`processes: { devices }`, each pinned with its device).
 */
export async function gpuRunBench(options: { size?: [number, number]; devices?: string[]; log?: (line: string) => void } = {}): Promise<Row[]> {
  const [nx, ny] = options.size ?? [512, 512];
  const devices = options.devices ?? ['0', '1'];
  const log = options.log ?? (() => undefined);
  const points = nx * ny;
  const axisValues = { x: spread(nx, -1, 1), y: spread(ny, -2, 2) };
  const threads = availableParallelism();
  const taskModule = new URL(import.meta.url.endsWith('.ts') ? './gpu-task.ts' : './gpu-task.js', import.meta.url);
  const runs: [string, TaskSpec, ParallelOptions][] = [
    [`worker threads x${threads}, plain JS`, defineTask(taskModule, 'jsBlock'), { workers: threads, execChunkSize: 4096 }],
    ['webgpu, calling thread', gpuKernel(kernel, { mode: 'webgpu' }), { devices: [{ mode: 'webgpu' }] }],
    ['webasm, calling thread', gpuKernel(kernel, { mode: 'webasm' }), { devices: [{ mode: 'webasm' }] }],
    [`processes, devices ${devices.join(' and ')}, async`, gpuKernel(kernel), { processes: { devices }, execChunkSize: 16384 }],
  ];
  const rows: Row[] = [];
  for (const [name, task, parallel] of runs) {
    const root = mkdtempSync(join(tmpdir(), 'cm-gpu-bench-'));
    const cache = ChunkCache.open({ root, axisValues, params: { scale: 0.5 }, chunkSpec: { x: Math.max(1, Math.floor(nx / 8)), y: ny } });
    try {
      const t0 = performance.now();
      const result = await runParallel(cache, task, { ...parallel, returnOutput: false });
      const ms = performance.now() - t0;
      const by = result.executors.map((e) => `${e.label}: ${e.points}`).join(', ');
      rows.push({ bench: `gpu run ${nx}×${ny}: ${name}`, value: fmt(points / (ms / 1000), 0), unit: 'points/s', note: `${fmt(ms)} ms incl. store; ${by}` });
      log(`run ${name}: ${fmt(ms)} ms`);
    } catch (err) {
      rows.push({ bench: `gpu run ${nx}×${ny}: ${name}`, value: 'failed', unit: '', note: err instanceof Error ? err.message.split('\n')[0]! : String(err) });
    } finally {
      cache.close();
      rmSync(root, { recursive: true, force: true });
    }
  }
  await closeWorkerPools();
  await disposeGpuKernels();
  return rows;
}

function parseArgs(argv: string[]): GpuBenchOptions & { write: boolean; runs: boolean; devices?: string[] } {
  const out: GpuBenchOptions & { write: boolean; runs: boolean; devices?: string[] } = { write: false, runs: true };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--write') out.write = true;
    else if (arg === '--no-runs') out.runs = false;
    else if (arg === '--devices') out.devices = String(argv[++i]).split(',');
    else if (arg === '--reps') out.reps = Number(argv[++i]);
    else if (arg === '--sizes') {
      out.sizes = String(argv[++i]).split(',').map((s) => s.split('x').map(Number) as [number, number]);
    } else throw new Error(`bench/gpu.ts: unknown argument ${arg} (--sizes 128x128,512x512 --reps 5 --devices 0,1 --no-runs --write)`);
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = parseArgs(process.argv.slice(2));
  const log = (line: string) => process.stderr.write(`${line}\n`);
  const rows = await gpuBench({ ...args, log });
  if (args.runs) rows.push(...(await gpuRunBench({ ...(args.devices ? { devices: args.devices } : {}), log })));
  const text = table(rows);
  console.log(text);
  if (args.write) writeSection('gpu', 'GPU kernels (bench/gpu.ts)', text);
}
