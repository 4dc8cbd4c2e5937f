/**
 * The WebGPU path: kernels on the adapter Dawn finds here (Mesa's llvmpipe
 * through Dawn's OpenGL ES backend on a machine without a GPU) give the
 * outputs of gpu.js' cpu mode; devices are selected; a missing `webgpu`
 * package or adapter is reported with its reason.
 *
 * Where no WebGPU adapter answers (no EGL/Mesa), the comparisons print one
 * line and pass; with CHUNK_MEMO_REQUIRE_WEBGPU=1 (CI) they fail instead.
 */
import test, { type ExecutionContext } from 'ava';

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { GpuError } from '../ts/errors/index.js';
import { ChunkCache, closeWorkerPools, read, runParallel } from '../ts/index.js';
import {
  disposeGpuKernels,
  gpuBackendInfo,
  gpuKernel,
  probeGpuBackend,
  runGpuJob,
  runGpuJobReport,
  type GpuBackendInfo,
  type GpuKernelOptions,
  type GpuKernelFn,
} from '../ts/gpu/kernel.js';
import type { Value } from '../ts/value.js';
import { assertClose, expand, gpuJob, kernelModuleUrl, runChild, spread, type KernelThis } from './gpu-helpers.js';

const REQUIRED = process.env.CHUNK_MEMO_REQUIRE_WEBGPU === '1';
let probe: GpuBackendInfo;

test.before(async () => {
  probe = await probeGpuBackend({ mode: 'webgpu' });
  if (probe.webgpu !== 'available') {
    console.log(`gpu-webgpu: no WebGPU adapter here, WebGPU comparisons pass without running: ${probe.webgpuDetail ?? probe.webgpu}`);
  }
});

test.after.always(async () => {
  delete process.env.CHUNK_MEMO_DEVICE;
  await closeWorkerPools();
  await disposeGpuKernels();
});

/** True when WebGPU runs here; otherwise passes (or fails under CHUNK_MEMO_REQUIRE_WEBGPU=1). */
function webgpuHere(t: ExecutionContext): boolean {
  if (probe.webgpu === 'available') return true;
  if (REQUIRED) t.fail(`CHUNK_MEMO_REQUIRE_WEBGPU=1 but WebGPU is ${probe.webgpu}: ${probe.webgpuDetail ?? ''}`);
  else t.pass();
  return false;
}

interface Case {
  title: string;
  kernel: GpuKernelFn;
  params: Record<string, Value>;
  axes: Record<string, number[]>;
  reference: (p: Record<string, number>) => number;
}

const cases: Case[] = [
  {
    title: '1 axis, polynomial and sqrt',
    kernel: function (this: KernelThis, x: Float32Array) {
      const v = x[this.thread.x]!;
      return v * v * this.constants.a! - Math.sqrt(Math.abs(v)) + 0.5;
    },
    params: { a: 0.75 },
    axes: { x: spread(1000, -20, 20) },
    reference: ({ x }) => x! * x! * 0.75 - Math.sqrt(Math.abs(x!)) + 0.5,
  },
  {
    title: '2 axes, exp and cos',
    kernel: function (this: KernelThis, x: Float32Array, y: Float32Array) {
      const i = this.thread.x;
      return Math.exp(-x[i]! * x[i]!) * Math.cos(y[i]!) * this.constants.s!;
    },
    params: { s: -3.5, unused: 'text' },
    axes: { x: spread(64, -2, 2), y: spread(50, -3, 3) },
    reference: ({ x, y }) => Math.exp(-x! * x!) * Math.cos(y!) * -3.5,
  },
  {
    title: '3 axes, a loop',
    kernel: function (this: KernelThis, a: Float32Array, b: Float32Array, c: Float32Array) {
      const i = this.thread.x;
      let acc = 0;
      for (let k = 0; k < 16; k++) {
        acc += Math.sin(a[i]! * k + b[i]!) / (1 + c[i]! * c[i]!);
      }
      return acc;
    },
    params: {},
    axes: { a: spread(10, 0, 0.5), b: spread(12, -1, 1), c: spread(9, -2, 2) },
    reference: ({ a, b, c }) => {
      let acc = 0;
      for (let k = 0; k < 16; k++) acc += Math.sin(a! * k + b!) / (1 + c! * c!);
      return acc;
    },
  },
];

function referenceOf(c: Case): number[] {
  const cols = expand(c.axes);
  const order = Object.keys(c.axes);
  const n = cols[order[0]!]!.length;
  return Array.from({ length: n }, (_, i) => c.reference(Object.fromEntries(order.map((a) => [a, cols[a]![i]!]))));
}

for (const c of cases) {
  test.serial(`webgpu gives the cpu outputs: ${c.title}`, async (t) => {
    if (!webgpuHere(t)) return;
    const run = async (mode: GpuKernelOptions['mode']) => runGpuJobReport(gpuJob(gpuKernel(c.kernel, { mode }), c.params, c.axes));
    const gpu = await run('webgpu');
    const cpu = await run('cpu');
    t.is(gpu.backend.mode, 'webgpu');
    t.is(cpu.backend.mode, 'cpu');
    t.is(gpu.output.length, referenceOf(c).length);
    assertClose(t, gpu.output, cpu.output, 2e-4);
    assertClose(t, gpu.output, referenceOf(c), 2e-4);
  });
}

test.serial('several blocks of one grid on webgpu, concurrently, give the cpu outputs', async (t) => {
  if (!webgpuHere(t)) return;
  const c = cases[1]!;
  // the grid x × y cut into blocks of x-slices, as runParallel's exec chunks
  const blocks = [0, 16, 32, 48].map((start) => ({ x: c.axes.x!.slice(start, start + 16), y: c.axes.y! }));
  const task = (mode: GpuKernelOptions['mode']) => gpuKernel(c.kernel, { mode });
  const gpu = await Promise.all(blocks.map((axes, k) => runGpuJob(gpuJob(task('webgpu'), c.params, axes, { jobIndex: k }))));
  const cpu = await Promise.all(blocks.map((axes, k) => runGpuJob(gpuJob(task('cpu'), c.params, axes, { jobIndex: k }))));
  const joined = (parts: Float32Array[]) => Float32Array.from(parts.flatMap((p) => Array.from(p)));
  assertClose(t, joined(gpu), joined(cpu), 2e-4);
  assertClose(t, joined(gpu), referenceOf(c), 2e-4);
});

test.serial('a kernel over 8 axes builds on webgpu (the shim asks for the adapter\'s storage-buffer limit)', async (t) => {
  if (!webgpuHere(t)) return;
  const kernel = function (this: KernelThis, a: Float32Array, b: Float32Array, c: Float32Array, d: Float32Array,
    e: Float32Array, f: Float32Array, g: Float32Array, h: Float32Array) {
    const i = this.thread.x;
    return a[i]! + 2 * b[i]! + 3 * c[i]! + 4 * d[i]! + 5 * e[i]! + 6 * f[i]! + 7 * g[i]! + 8 * h[i]!;
  };
  const axes = Object.fromEntries('abcdefgh'.split('').map((n) => [n, [0, 1]]));
  const gpu = await runGpuJobReport(gpuJob(gpuKernel(kernel, { mode: 'webgpu' }), {}, axes));
  const cpu = await runGpuJob(gpuJob(gpuKernel(kernel, { mode: 'cpu' }), {}, axes));
  t.is(gpu.backend.mode, 'webgpu');
  assertClose(t, gpu.output, cpu);
  t.is(gpu.output[255], 36);
});

test.serial('probe and gpuBackendInfo report webgpu with the adapter', async (t) => {
  if (!webgpuHere(t)) return;
  t.is(probe.mode, 'webgpu');
  t.truthy(probe.adapter);
  const name = probe.adapter!.name;
  t.true(probe.label.startsWith('webgpu (') && probe.label.endsWith(`): ${name}`), probe.label);
  t.true(probe.webgpuAttempts.some((a) => a.includes(name)));
  await runGpuJob(gpuJob(gpuKernel(cases[0]!.kernel, { mode: 'webgpu' }), cases[0]!.params, { x: [1, 2] }));
  const info = gpuBackendInfo({ mode: 'webgpu' });
  t.true(info.observed);
  t.is(info.mode, 'webgpu');
  t.is(info.adapter?.name, name);
  t.log(`webgpu: ${info.webgpuDetail}; tried: ${info.webgpuAttempts.join(' | ')}`);
});

test.serial("'async' runs on webgpu where an adapter answers, and says so", async (t) => {
  if (!webgpuHere(t)) return;
  const { output, backend } = await runGpuJobReport(gpuJob(gpuKernel(cases[0]!.kernel), cases[0]!.params, { x: [1, 4] }));
  assertClose(t, output, [1 * 0.75 - 1 + 0.5, 16 * 0.75 - 2 + 0.5]);
  t.is(backend.requestedMode, 'async');
  t.is(backend.mode, 'webgpu');
  t.is(backend.adapter, probe.adapter!.name);
  t.is(gpuBackendInfo().label, backend.label);
});

const one = () => gpuJob(gpuKernel(cases[0]!.kernel, { mode: 'webgpu' }), cases[0]!.params, { x: [2] });
const oneExpected = [4 * 0.75 - Math.SQRT2 + 0.5];

test.serial('a device by index, by name substring, from the job and from CHUNK_MEMO_DEVICE', async (t) => {
  if (!webgpuHere(t)) return;
  const name = probe.adapter!.name;
  const backend = probe.adapter!.backend;
  const requests: [string, () => ReturnType<typeof one>][] = [
    ['option index 0', () => ({ ...one(), task: gpuKernel(cases[0]!.kernel, { mode: 'webgpu', device: 0 }) })],
    ['option name', () => ({ ...one(), task: gpuKernel(cases[0]!.kernel, { mode: 'webgpu', device: name.slice(0, 5) }) })],
    ['option backend:index', () => ({ ...one(), task: gpuKernel(cases[0]!.kernel, { mode: 'webgpu', device: `${backend}:0` }) })],
    ['job device', () => ({ ...one(), device: name })],
  ];
  for (const [what, job] of requests) {
    const { output, backend: used } = await runGpuJobReport(job());
    assertClose(t, output, oneExpected);
    t.is(used.adapter, name, what);
    const info = gpuBackendInfo({ mode: 'webgpu' });
    t.is(info.device?.pinned, true, what);
  }
  process.env.CHUNK_MEMO_DEVICE = '0';
  try {
    assertClose(t, await runGpuJob(one()), oneExpected);
    t.is(gpuBackendInfo({ mode: 'webgpu' }).device?.from, 'env');
  } finally {
    delete process.env.CHUNK_MEMO_DEVICE;
  }
});

test.serial('a device that matches no adapter: webgpu fails with the reason, async falls back and says so', async (t) => {
  if (!webgpuHere(t)) return;
  const err = await t.throwsAsync(runGpuJob({ ...one(), device: 'no-such-gpu-xyz' }), { instanceOf: GpuError, code: 'ERR_GPU' });
  t.regex(err!.message, /no WebGPU adapter matches device "no-such-gpu-xyz"/);
  t.true(err!.message.includes(probe.adapter!.name), err!.message); // Dawn lists what it has
  const outOfRange = await t.throwsAsync(runGpuJob({ ...one(), device: '7' }), { instanceOf: GpuError });
  t.regex(outOfRange!.message, /no adapter 7 \(found 1: 0: /);
  const asyncJob = { ...one(), task: gpuKernel(cases[0]!.kernel), device: 'no-such-gpu-xyz' };
  const { output, backend } = await runGpuJobReport(asyncJob);
  assertClose(t, output, oneExpected);
  t.not(backend.mode, 'webgpu');
  t.regex(backend.label, /\(async: no WebGPU adapter\)$/);
  const info = gpuBackendInfo();
  t.is(info.webgpu, 'no-adapter');
  t.is(info.label, backend.label);
  t.regex(info.webgpuDetail ?? '', /no-such-gpu-xyz/);
  // and back to the default adapter
  const again = await runGpuJobReport(one());
  t.is(again.backend.adapter, probe.adapter!.name);
});

test('without the webgpu package: a clear reason, webgpu mode fails, async falls back', async (t) => {
  const hooks = `
    export async function resolve(specifier, context, next) {
      if (specifier === 'webgpu') {
        const err = new Error("Cannot find package 'webgpu'");
        err.code = 'ERR_MODULE_NOT_FOUND';
        throw err;
      }
      return next(specifier, context);
    }
  `;
  const register = `import { register } from 'node:module'; register('./hooks.mjs', import.meta.url);`;
  const script = `
    import { gpuKernel, runGpuJob, runGpuJobReport, probeGpuBackend, disposeGpuKernels } from ${JSON.stringify(kernelModuleUrl)};
    const info = await probeGpuBackend({ mode: 'webgpu' });
    const job = (mode) => ({ task: gpuKernel(function (x) { return x[this.thread.x] + 1; }, { mode }), params: {}, axisOrder: ['x'], axes: { x: [1, 2] }, count: 2, jobIndex: 0, key: 'k' });
    let failure = null;
    try { await runGpuJob(job('webgpu')); } catch (e) { failure = { name: e.name, code: e.code, message: e.message }; }
    const fallback = await runGpuJobReport(job('async'));
    console.log(JSON.stringify({ webgpu: info.webgpu, detail: info.webgpuDetail, failure, out: Array.from(fallback.output), label: fallback.backend.label }));
    await disposeGpuKernels();
  `;
  const { code, output, timedOut } = await runChild(script, { files: { 'hooks.mjs': hooks, 'register.mjs': register }, imports: ['register.mjs'] });
  t.false(timedOut, output);
  t.is(code, 0, output);
  const line = output.split('\n').find((l) => l.startsWith('{'));
  t.truthy(line, output);
  const r = JSON.parse(line!) as { webgpu: string; detail: string; failure: { name: string; code: string; message: string } | null; out: number[]; label: string };
  t.is(r.webgpu, 'unavailable');
  t.regex(r.detail, /optional peer dependency 'webgpu' is not installed/);
  t.is(r.failure?.code, 'ERR_GPU');
  t.is(r.failure?.name, 'GpuError');
  t.regex(r.failure?.message ?? '', /mode 'webgpu' cannot run here: .*not installed/);
  t.deepEqual(r.out, [2, 3]);
  t.regex(r.label, /\(async: webgpu unavailable\)$/);
});

test.serial('runParallel: webgpu and cpu devices pull one queue; outputs stored and read back match the reference', async (t) => {
  if (!webgpuHere(t)) return;
  const c = cases[1]!;
  const root = mkdtempSync(join(tmpdir(), 'cm-gpu-'));
  const cache = ChunkCache.open({ root, axisValues: c.axes, params: c.params, chunkSpec: { x: 16, y: 25 } });
  try {
    const result = await runParallel(cache, gpuKernel(c.kernel, { mode: 'webgpu' }), {
      devices: [{ mode: 'webgpu' }, { mode: 'cpu', threads: 1 }],
      execChunkSize: 100,
    });
    const expected = referenceOf(c);
    assertClose(t, result.output as Float32Array, expected, 2e-4);
    t.is(result.diagnostics.executedPoints, expected.length);
    t.is(result.executors.reduce((n, e) => n + e.points, 0), expected.length);
    const back = await read(cache);
    t.is(back.missingPoints, 0);
    assertClose(t, back.output as Float32Array, expected, 2e-4);
    t.log(result.executors.map((e) => `${e.label}: ${e.points} points`).join(', '));
  } finally {
    cache.close();
    rmSync(root, { recursive: true, force: true });
  }
});
