/** Helpers of the gpu tests: jobs as product blocks, float32 comparison, child processes. */
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import type { ExecJob, GpuTaskSpec } from '../ts/task/job.js';
import type { Params, Value } from '../ts/value.js';

/** What gpu.js gives a kernel as `this` (only the parts used here). */
export interface KernelThis {
  thread: { x: number };
  constants: Record<string, number>;
}

/** An exec job over the product block `axes` (axis order: the keys' order). */
export function gpuJob(task: GpuTaskSpec, params: Params, axes: Record<string, Value[]>, extra: Partial<ExecJob> = {}): ExecJob {
  const axisOrder = Object.keys(axes);
  const count = axisOrder.reduce((n, a) => n * axes[a]!.length, 1);
  return { task, params, axisOrder, axes, count, jobIndex: 0, key: 'test', ...extra };
}

/** The block's points as zipped number columns, first axis slowest (the plain-loop reference). */
export function expand(axes: Record<string, Value[]>): Record<string, number[]> {
  const order = Object.keys(axes);
  const out: Record<string, number[]> = Object.fromEntries(order.map((a) => [a, [] as number[]]));
  const walk = (k: number, point: number[]): void => {
    if (k === order.length) {
      order.forEach((a, i) => out[a]!.push(point[i]!));
      return;
    }
    for (const v of axes[order[k]!]!) walk(k + 1, [...point, Number(v)]);
  };
  walk(0, []);
  return out;
}

/** `n` evenly spread values from `lo` to `hi`. */
export function spread(n: number, lo: number, hi: number): number[] {
  return Array.from({ length: n }, (_, i) => (n === 1 ? lo : lo + ((hi - lo) * i) / (n - 1)));
}

/** Fails unless `actual` matches `expected` within float32 tolerance (relative `tol`, absolute near 0). */
export function assertClose(
  t: { fail(message: string): void; pass(): void },
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol = 1e-4,
): void {
  if (actual.length !== expected.length) {
    t.fail(`length ${actual.length}, expected ${expected.length}`);
    return;
  }
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const a = actual[i]!;
    if (!(Math.abs(a - e) <= tol * Math.max(1, Math.abs(e)))) {
      t.fail(`point ${i}: got ${a}, expected ${e}`);
      return;
    }
  }
  t.pass();
}

export const repoRoot = fileURLToPath(new URL('..', import.meta.url));
export const kernelModuleUrl = pathToFileURL(fileURLToPath(new URL('../ts/gpu/kernel.ts', import.meta.url))).href;

export interface ChildResult {
  code: number | null;
  output: string;
  timedOut: boolean;
}

/**
 * Runs `script` as an ES module file under tsx (a file, not `node -e`:
 * under `--input-type=module` gpu.js' webasm worker pool, whose workers are
 * evaluated from source, inherits the flag and breaks). `files` are written
 * beside it.
 */
export async function runChild(
  script: string,
  options: { env?: Record<string, string | undefined>; imports?: string[]; files?: Record<string, string>; timeoutMs?: number } = {},
): Promise<ChildResult> {
  const dir = await mkdtemp(join(tmpdir(), 'chunk-memo-gpu-'));
  const file = join(dir, 'child.mjs');
  await writeFile(file, script);
  for (const [name, text] of Object.entries(options.files ?? {})) await writeFile(join(dir, name), text);
  try {
    const args = ['--import', 'tsx', ...(options.imports ?? []).flatMap((f) => ['--import', pathToFileURL(join(dir, f)).href]), file];
    return await spawnNode(args, { ...process.env, ...options.env }, options.timeoutMs ?? 20_000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function spawnNode(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, timedOut });
    });
  });
}
