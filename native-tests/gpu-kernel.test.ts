import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

import test from 'ava';

import {
  disposeGpuKernels,
  gpuBackendInfo,
  gpuKernel,
  probeGpuBackend,
  runGpuJob,
} from '../ts/gpu/kernel.js';
import type { ExecJob, GpuTaskSpec } from '../ts/parallel/job.js';
import type { Params, Value } from '../ts/value.js';

/** What gpu.js gives a kernel as `this` (only the parts used here). */
interface KernelThis {
  thread: { x: number };
  constants: Record<string, number>;
}

const scaledSin = gpuKernel(function (this: KernelThis, x: Float32Array, y: Float32Array) {
  const i = this.thread.x;
  return x[i]! * this.constants.scale! + Math.sin(y[i]!);
});

function job(task: GpuTaskSpec, params: Params, points: Record<string, Value[]>, jobIndex = 0): ExecJob {
  const axisOrder = Object.keys(points);
  const count = axisOrder.length > 0 ? points[axisOrder[0]!]!.length : 0;
  return { task, params, axisOrder, points, count, jobIndex };
}

function zipped(n: number): { x: number[]; y: number[] } {
  const x: number[] = [];
  const y: number[] = [];
  for (let i = 0; i < n; i++) {
    x.push((i % 37) * 0.75 - 9);
    y.push(i * 0.013 - 2);
  }
  return { x, y };
}

function assertClose(t: { fail(message: string): void; pass(): void }, actual: Float32Array, expected: number[]): void {
  if (actual.length !== expected.length) {
    t.fail(`length ${actual.length}, expected ${expected.length}`);
    return;
  }
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    const a = actual[i]!;
    if (!(Math.abs(a - e) <= 1e-4 * Math.max(1, Math.abs(e)))) {
      t.fail(`point ${i}: got ${a}, expected ${e}`);
      return;
    }
  }
  t.pass();
}

const reference = (x: number[], y: number[], scale: number) => x.map((xi, i) => xi * scale + Math.sin(y[i]!));

test.after.always(async () => {
  await disposeGpuKernels();
});

test('gpuKernel returns a plain gpu task spec', (t) => {
  t.is(scaledSin.kind, 'gpu');
  t.true(scaledSin.source.includes('this.thread.x'));
  t.deepEqual(scaledSin.options, {});
  const spec = gpuKernel(function (this: KernelThis) {
    return this.thread.x;
  }, { mode: 'cpu', loopMaxIterations: 10 });
  t.deepEqual(spec.options, { mode: 'cpu', loopMaxIterations: 10 });
  t.deepEqual(structuredClone(spec), spec);
});

test('gpuKernel rejects non-functions and bad options with TypeError', (t) => {
  t.throws(() => gpuKernel('function () { return 1; }' as unknown as () => number), {
    instanceOf: TypeError,
    message: /kernelFn must be a function/,
  });
  t.throws(() => gpuKernel(class {}), { instanceOf: TypeError, message: /class/ });
  t.throws(() => gpuKernel(Math.sin), { instanceOf: TypeError, message: /no JavaScript source/ });
  const k = function (this: KernelThis) {
    return this.thread.x;
  };
  t.throws(() => gpuKernel(k, { mode: 'opencl' } as never), { instanceOf: TypeError, message: /mode must be one of/ });
  t.throws(() => gpuKernel(k, { device: 1 } as never), { instanceOf: TypeError, message: /"device" is not supported/ });
  t.throws(() => gpuKernel(k, { precision: 'unsigned' } as never), { instanceOf: TypeError, message: /precision/ });
});

test('zipped points match a JS reference within float32 tolerance', async (t) => {
  const { x, y } = zipped(300);
  const out = await runGpuJob(job(scaledSin, { scale: 2.5, label: 'ignored', nested: { a: 1 } }, { x, y }));
  t.true(out instanceof Float32Array);
  assertClose(t, out, reference(x, y, 2.5));
});

test('count 1 works', async (t) => {
  const out = await runGpuJob(job(scaledSin, { scale: 3 }, { x: [2], y: [0.5] }));
  t.is(out.length, 1);
  assertClose(t, out, [2 * 3 + Math.sin(0.5)]);
});

// serial tests run before the concurrent ones, so the kernel count is stable here
test.serial('10,000 points, and chunks of different sizes reuse one kernel', async (t) => {
  const { x, y } = zipped(10_000);
  const out = await runGpuJob(job(scaledSin, { scale: -1.25 }, { x, y }));
  assertClose(t, out, reference(x, y, -1.25));
  const kernelsAfterFirst = gpuBackendInfo().cachedKernels;
  t.true(kernelsAfterFirst >= 1);
  // same kernel, shorter chunk (dynamic output)
  const short = await runGpuJob(job(scaledSin, { scale: -1.25 }, { x: x.slice(0, 7), y: y.slice(0, 7) }, 1));
  assertClose(t, short, reference(x.slice(0, 7), y.slice(0, 7), -1.25));
  t.is(gpuBackendInfo().cachedKernels, kernelsAfterFirst);
});

test.serial('disposeGpuKernels releases the kernels; later jobs rebuild them', async (t) => {
  await runGpuJob(job(scaledSin, { scale: 2 }, { x: [1, 2], y: [0, 0] }));
  t.true(gpuBackendInfo().cachedKernels > 0);
  await disposeGpuKernels();
  t.is(gpuBackendInfo().cachedKernels, 0);
  t.false(gpuBackendInfo().observed);
  const out = await runGpuJob(job(scaledSin, { scale: 2 }, { x: [1, 2], y: [0, 0] }));
  assertClose(t, out, [2, 4]);
  // disposing while jobs run: running jobs finish first, later ones wait for it
  const { x, y } = zipped(8192);
  const running = runGpuJob(job(scaledSin, { scale: 2 }, { x, y }));
  const disposed = disposeGpuKernels();
  const after = runGpuJob(job(scaledSin, { scale: 2 }, { x: x.slice(0, 9), y: y.slice(0, 9) }));
  assertClose(t, await running, reference(x, y, 2));
  await disposed;
  assertClose(t, await after, reference(x.slice(0, 9), y.slice(0, 9), 2));
});

test('concurrent jobs on one kernel stay separate', async (t) => {
  const sizes = [5, 300, 1, 4096, 17];
  const results = await Promise.all(sizes.map((n, k) => {
    const { x, y } = zipped(n);
    return runGpuJob(job(scaledSin, { scale: 0.5 }, { x, y }, k));
  }));
  results.forEach((out, k) => {
    const { x, y } = zipped(sizes[k]!);
    assertClose(t, out, reference(x, y, 0.5));
  });
});

test('booleans and bigints are numeric, axis order is respected', async (t) => {
  const task = gpuKernel(function (this: KernelThis, a: Float32Array, b: Float32Array) {
    const i = this.thread.x;
    return a[i]! - 10 * b[i]! + this.constants.on! + this.constants.big!;
  });
  const out = await runGpuJob({
    task,
    params: { on: true, big: 5n, text: 'not passed' },
    axisOrder: ['b', 'a'],
    points: { a: [1, 2, 3], b: [10n, 20, 30] },
    count: 3,
    jobIndex: 0,
  });
  // first argument is axis "b", second is axis "a"
  assertClose(t, out, [10 - 10 * 1 + 1 + 5, 20 - 10 * 2 + 1 + 5, 30 - 10 * 3 + 1 + 5]);
});

test('a non-numeric axis value is a clear error', async (t) => {
  const err = await t.throwsAsync(runGpuJob(job(scaledSin, { scale: 1 }, { x: [1, 2, 3], y: [0, 'abc', 1] })));
  t.regex(err!.message, /axis "y"/);
  t.regex(err!.message, /"abc"/);
  t.regex(err!.message, /numeric/);
});

test('a constant missing from the params is a clear error', async (t) => {
  const err = await t.throwsAsync(runGpuJob(job(scaledSin, { scale: 'big' }, { x: [1], y: [1] })));
  t.regex(err!.message, /this\.constants\.scale/);
});

test('a kernel that does not compile fails with the gpu.js reason', async (t) => {
  const broken: GpuTaskSpec = { kind: 'gpu', source: 'function (x) { return x[this.thread.x] + undefinedThing; }', options: {} };
  const err = await t.throwsAsync(runGpuJob(job(broken, {}, { x: [1, 2] })));
  t.regex(err!.message, /gpu\.js/);
});

test('explicit cpu mode works', async (t) => {
  const task = gpuKernel(function (this: KernelThis, x: Float32Array, y: Float32Array) {
    const i = this.thread.x;
    return x[i]! * this.constants.scale! + Math.sin(y[i]!);
  }, { mode: 'cpu' });
  const { x, y } = zipped(250);
  const out = await runGpuJob(job(task, { scale: 4 }, { x, y }));
  assertClose(t, out, reference(x, y, 4));
  const info = gpuBackendInfo({ mode: 'cpu' });
  t.is(info.mode, 'cpu');
  t.true(info.observed);
});

test('gpuBackendInfo reports the selected mode', async (t) => {
  await runGpuJob(job(scaledSin, { scale: 1 }, { x: [1], y: [1] }));
  const info = gpuBackendInfo();
  t.is(typeof info.mode, 'string');
  t.not(info.mode, '');
  t.not(info.mode, 'unsupported');
  t.is(info.requestedMode, 'async');
  t.true(info.observed);
  t.log(`gpu.js ${info.gpuJsVersion} runs kernels on: ${info.mode} (webgpu: ${info.webgpu}${info.webgpuDetail ? `, ${info.webgpuDetail}` : ''})`);
  const probed = await probeGpuBackend();
  t.not(probed.webgpu, 'unknown');
});

const kernelModule = fileURLToPath(new URL('../ts/gpu/kernel.ts', import.meta.url));
const repoRoot = fileURLToPath(new URL('..', import.meta.url));

// A script file, not `node -e`: under `--input-type=module` gpu.js' webasm
// worker pool (workers evaluated from source) inherits the flag and breaks.
async function runChild(script: string): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  const dir = await mkdtemp(join(tmpdir(), 'chunk-memo-gpu-'));
  const file = join(dir, 'child.mjs');
  await writeFile(file, script);
  try {
    return await spawnNode(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function spawnNode(file: string): Promise<{ code: number | null; output: string; timedOut: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, 15_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output, timedOut });
    });
  });
}

for (const dispose of [false, true]) {
  test(`a process that ran gpu jobs exits on its own${dispose ? ' after disposeGpuKernels()' : ' without dispose'}`, async (t) => {
    const script = `
      import { gpuKernel, runGpuJob, disposeGpuKernels } from ${JSON.stringify(pathToFileURL(kernelModule).href)};
      const task = gpuKernel(function (x) { return x[this.thread.x] * 2; });
      const n = 5000;
      const x = Array.from({ length: n }, (_, i) => i);
      const out = await runGpuJob({ task, params: {}, axisOrder: ['x'], points: { x }, count: n, jobIndex: 0 });
      if (out[n - 1] !== 2 * (n - 1)) throw new Error('wrong result ' + out[n - 1]);
      ${dispose ? 'await disposeGpuKernels();' : ''}
      console.log('ok');
    `;
    const { code, output, timedOut } = await runChild(script);
    t.false(timedOut, `process did not exit:\n${output}`);
    t.is(code, 0, output);
    t.regex(output, /ok/);
  });
}
