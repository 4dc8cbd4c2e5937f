/**
 * GPU kernel throughput: one gpu.js kernel on exec chunks (product blocks)
 * of a few sizes, in gpu.js' cpu, webasm and webgpu modes, beside the same
 * arithmetic as a plain JavaScript loop. Each figure is the median of
 * several `runGpuJob` calls after a warm-up (so it includes expanding the
 * block, the transfers and the readback, as a run pays them).
 *
 * Run alone: `npx tsx bench/gpu.ts [--sizes 128x128,512x512] [--reps 5] [--write]`
 * (`--write` records the table in BENCHMARKS.md). `gpuBench()` returns the rows
 * for `npm run bench`.
 */
import { pathToFileURL } from 'node:url';

import { disposeGpuKernels, gpuKernel, probeGpuBackend, runGpuJob, runGpuJobReport, type GpuMode } from '../ts/gpu/kernel.js';
import type { ExecJob } from '../ts/task/job.js';
import { fmt, table, timeMedian, writeSection, type Row } from './lib.js';

/** Iterations of the kernel's inner loop: enough arithmetic per point for a GPU to matter. */
const LOOP = 32;

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

/** The same arithmetic as a plain loop over the block (the baseline). */
function plainLoop(xs: number[], ys: number[], scale: number): Float32Array {
  const out = new Float32Array(xs.length * ys.length);
  let p = 0;
  for (const x of xs) {
    for (const y of ys) {
      let acc = 0;
      for (let k = 0; k < LOOP; k++) acc += Math.sin(x * k + y) * Math.cos(y * k - x);
      out[p++] = acc * scale;
    }
  }
  return out;
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

function parseArgs(argv: string[]): GpuBenchOptions & { write: boolean } {
  const out: GpuBenchOptions & { write: boolean } = { write: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--write') out.write = true;
    else if (arg === '--reps') out.reps = Number(argv[++i]);
    else if (arg === '--sizes') {
      out.sizes = String(argv[++i]).split(',').map((s) => s.split('x').map(Number) as [number, number]);
    } else throw new Error(`bench/gpu.ts: unknown argument ${arg} (--sizes 128x128,512x512 --reps 5 --write)`);
  }
  return out;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const args = parseArgs(process.argv.slice(2));
  const rows = await gpuBench({ ...args, log: (line) => process.stderr.write(`${line}\n`) });
  const text = table(rows);
  console.log(text);
  if (args.write) writeSection('gpu', 'GPU kernels (bench/gpu.ts)', text);
}
