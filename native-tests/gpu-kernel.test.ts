import test from 'ava';

import { ChunkMemoError, ExecOutputError, GpuError, InvalidOptionError } from '../ts/errors/index.js';
import {
  disposeGpuKernels,
  gpuBackendInfo,
  gpuKernel,
  probeGpuBackend,
  runGpuJob,
  runGpuJobReport,
} from '../ts/gpu/kernel.js';
import { parseDevice, selectDevice } from '../ts/gpu/device.js';
import { expandBlock } from '../ts/gpu/run-job.js';
import type { GpuTaskSpec } from '../ts/task/job.js';
import { assertClose, expand, gpuJob, kernelModuleUrl, runChild, spread, type KernelThis } from './gpu-helpers.js';

const scaledSin = gpuKernel(function (this: KernelThis, x: Float32Array, y: Float32Array) {
  const i = this.thread.x;
  return x[i]! * this.constants.scale! + Math.sin(y[i]!);
});

/** A block of about `n` points over axes x and y. */
function block(n: number): { x: number[]; y: number[] } {
  const nx = Math.max(1, Math.round(Math.sqrt(n)));
  const ny = Math.max(1, Math.round(n / nx));
  return { x: spread(nx, -9, 18), y: spread(ny, -2, 2) };
}

function reference(axes: { x: number[]; y: number[] }, scale: number): number[] {
  const { x, y } = expand(axes);
  return x!.map((xi, i) => xi * scale + Math.sin(y![i]!));
}

test.after.always(async () => {
  await disposeGpuKernels();
});

test('gpuKernel returns a plain gpu task spec', (t) => {
  t.is(scaledSin.kind, 'gpu');
  t.true(scaledSin.source.includes('this.thread.x'));
  t.deepEqual(scaledSin.options, {});
  const spec = gpuKernel(function (this: KernelThis) {
    return this.thread.x;
  }, { mode: 'cpu', loopMaxIterations: 10, device: 'vulkan:1' });
  t.deepEqual(spec.options, { mode: 'cpu', loopMaxIterations: 10, device: 'vulkan:1' });
  t.deepEqual(structuredClone(spec), spec);
});

test('gpuKernel rejects non-functions and bad options with InvalidOptionError', (t) => {
  const invalid = { instanceOf: InvalidOptionError, code: 'ERR_INVALID_OPTION' };
  t.throws(() => gpuKernel('function () { return 1; }' as unknown as () => number), { ...invalid, message: /kernelFn must be a function/ });
  t.throws(() => gpuKernel(class {} as never), { ...invalid, message: /class/ });
  t.throws(() => gpuKernel(Math.sin), { ...invalid, message: /no JavaScript source/ });
  const k = function (this: KernelThis) {
    return this.thread.x;
  };
  t.throws(() => gpuKernel(k, { mode: 'opencl' } as never), { ...invalid, message: /option mode is invalid/ });
  t.throws(() => gpuKernel(k, { precision: 'unsigned' } as never), { ...invalid, message: /precision.*lossy/ });
  t.throws(() => gpuKernel(k, { device: -1 } as never), { ...invalid, message: /option device/ });
  t.throws(() => gpuKernel(k, { poolsize: 2 } as never), { ...invalid, message: /unknown option "poolsize" \(valid: .*poolSize/ });
  t.throws(() => gpuKernel(k, 'cpu' as never), { ...invalid, message: /plain object/ });
  const err = t.throws(() => gpuKernel(k, { loopMaxIterations: 0 }));
  t.true(err instanceof ChunkMemoError);
});

test('device requests: index, name, backend prefix, cuda:/gpu:, precedence', (t) => {
  t.deepEqual(parseDevice('1', 'job'), { text: '1', from: 'job', index: 1 });
  t.deepEqual(parseDevice(2, 'option'), { text: '2', from: 'option', index: 2 });
  t.deepEqual(parseDevice('H200', 'env'), { text: 'H200', from: 'env', name: 'H200' });
  t.deepEqual(parseDevice('vk:0', 'job'), { text: 'vk:0', from: 'job', backend: 'vulkan', index: 0 });
  t.deepEqual(parseDevice('opengles:llvmpipe', 'job'), { text: 'opengles:llvmpipe', from: 'job', backend: 'opengles', name: 'llvmpipe' });
  t.deepEqual(parseDevice('gles', 'job'), { text: 'gles', from: 'job', backend: 'opengles' });
  t.deepEqual(parseDevice('cuda:3', 'job'), { text: 'cuda:3', from: 'job', index: 3 });
  t.deepEqual(parseDevice('gpu:A100', 'job'), { text: 'gpu:A100', from: 'job', name: 'A100' });
  t.deepEqual(parseDevice('weird:name', 'job'), { text: 'weird:name', from: 'job', name: 'weird:name' });
  const saved = process.env.CHUNK_MEMO_DEVICE;
  process.env.CHUNK_MEMO_DEVICE = '5';
  try {
    t.is(selectDevice('H200', '1')?.from, 'option');
    t.is(selectDevice(undefined, '1')?.from, 'job');
    t.is(selectDevice(undefined, undefined)?.index, 5);
    t.is(selectDevice('  ', '')?.from, 'env');
  } finally {
    if (saved === undefined) delete process.env.CHUNK_MEMO_DEVICE;
    else process.env.CHUNK_MEMO_DEVICE = saved;
  }
});

test('expandBlock: one column per axis, first axis slowest', (t) => {
  const cols = expandBlock({ axisOrder: ['a', 'b', 'c'], axes: { a: [1, 2], b: [10, 20, 30], c: [5n] }, count: 6, jobIndex: 0 });
  t.deepEqual(cols.map((c) => Array.from(c)), [
    [1, 1, 1, 2, 2, 2],
    [10, 20, 30, 10, 20, 30],
    [5, 5, 5, 5, 5, 5],
  ]);
  t.deepEqual(expandBlock({ axisOrder: [], axes: {}, count: 1, jobIndex: 0 }), []);
  t.deepEqual(expandBlock({ axisOrder: ['a'], axes: { a: [] }, count: 0, jobIndex: 0 }).map((c) => c.length), [0]);
  t.throws(() => expandBlock({ axisOrder: ['a', 'b'], axes: { a: [1, 2], b: [1, 2] }, count: 3, jobIndex: 4 }), {
    instanceOf: GpuError, code: 'ERR_GPU', message: /job 4: the block has 4 points \(2 × 2\) but count is 3/,
  });
});

test('a product block matches a JS reference within float32 tolerance', async (t) => {
  const axes = block(300);
  const out = await runGpuJob(gpuJob(scaledSin, { scale: 2.5, label: 'ignored', nested: { a: 1 } }, axes));
  t.true(out instanceof Float32Array);
  assertClose(t, out, reference(axes, 2.5));
});

test('count 1 works', async (t) => {
  const out = await runGpuJob(gpuJob(scaledSin, { scale: 3 }, { x: [2], y: [0.5] }));
  t.is(out.length, 1);
  assertClose(t, out, [2 * 3 + Math.sin(0.5)]);
});

test('an empty block gives no outputs', async (t) => {
  const out = await runGpuJob(gpuJob(scaledSin, { scale: 3 }, { x: [], y: [0.5] }));
  t.is(out.length, 0);
});

// serial tests run before the concurrent ones, so the kernel count is stable here
test.serial('10,000 points, and blocks of different sizes reuse one kernel', async (t) => {
  const axes = block(10_000);
  const out = await runGpuJob(gpuJob(scaledSin, { scale: -1.25 }, axes));
  assertClose(t, out, reference(axes, -1.25));
  const kernelsAfterFirst = gpuBackendInfo().cachedKernels;
  t.true(kernelsAfterFirst >= 1);
  // same kernel, smaller block (dynamic output)
  const small = { x: axes.x.slice(0, 7), y: axes.y.slice(0, 1) };
  assertClose(t, await runGpuJob(gpuJob(scaledSin, { scale: -1.25 }, small)), reference(small, -1.25));
  t.is(gpuBackendInfo().cachedKernels, kernelsAfterFirst);
});

test.serial('disposeGpuKernels releases the kernels; later jobs rebuild them', async (t) => {
  await runGpuJob(gpuJob(scaledSin, { scale: 2 }, { x: [1, 2], y: [0] }));
  t.true(gpuBackendInfo().cachedKernels > 0);
  await disposeGpuKernels();
  t.is(gpuBackendInfo().cachedKernels, 0);
  t.false(gpuBackendInfo().observed);
  assertClose(t, await runGpuJob(gpuJob(scaledSin, { scale: 2 }, { x: [1, 2], y: [0] })), [2, 4]);
  // disposing while jobs run: running jobs finish first, later ones wait for it
  const big = block(8192);
  const running = runGpuJob(gpuJob(scaledSin, { scale: 2 }, big));
  const disposed = disposeGpuKernels();
  const small = { x: big.x.slice(0, 9), y: big.y.slice(0, 2) };
  const after = runGpuJob(gpuJob(scaledSin, { scale: 2 }, small));
  assertClose(t, await running, reference(big, 2));
  await disposed;
  assertClose(t, await after, reference(small, 2));
});

test('concurrent jobs on one kernel stay separate', async (t) => {
  const sizes = [5, 300, 1, 4096, 17];
  const results = await Promise.all(sizes.map((n, k) => runGpuJob(gpuJob(scaledSin, { scale: 0.5 }, block(n), { jobIndex: k }))));
  results.forEach((out, k) => assertClose(t, out, reference(block(sizes[k]!), 0.5)));
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
    axes: { a: [1, 2, 3], b: [10n, 20] },
    count: 6,
    jobIndex: 0,
    key: 'k',
  });
  // first argument is axis "b" (slowest), second is axis "a"
  const expected = [10, 20].flatMap((b) => [1, 2, 3].map((a) => b - 10 * a + 1 + 5));
  assertClose(t, out, expected);
});

test('a non-numeric axis value is a GpuError naming the axis and value', async (t) => {
  const err = await t.throwsAsync(runGpuJob(gpuJob(scaledSin, { scale: 1 }, { x: [1, 2, 3], y: [0, 'abc', 1] })), {
    instanceOf: GpuError, code: 'ERR_GPU',
  });
  t.regex(err!.message, /axis "y"/);
  t.regex(err!.message, /"abc"/);
  t.regex(err!.message, /numeric/);
});

test('a constant missing from the params is a GpuError', async (t) => {
  const err = await t.throwsAsync(runGpuJob(gpuJob(scaledSin, { scale: 'big' }, { x: [1], y: [1] })), { instanceOf: GpuError });
  t.regex(err!.message, /this\.constants\.scale/);
});

test('a kernel that does not compile fails with the gpu.js reason', async (t) => {
  const broken: GpuTaskSpec = { kind: 'gpu', source: 'function (x) { return x[this.thread.x] + undefinedThing; }', options: { mode: 'cpu' } };
  const err = await t.throwsAsync(runGpuJob(gpuJob(broken, {}, { x: [1, 2] })), { instanceOf: GpuError, code: 'ERR_GPU' });
  t.regex(err!.message, /gpu\.js/);
});

test('a kernel that returns a vector is an ExecOutputError', async (t) => {
  const vector: GpuTaskSpec = { kind: 'gpu', source: 'function (x) { return [x[this.thread.x], 1]; }', options: { mode: 'cpu' } };
  await t.throwsAsync(runGpuJob(gpuJob(vector, {}, { x: [1, 2] })), { instanceOf: ExecOutputError, code: 'ERR_EXEC_OUTPUT' });
});

test('a job of another task kind and bad job options are ChunkMemoErrors', async (t) => {
  const job = gpuJob(scaledSin, { scale: 1 }, { x: [1], y: [1] });
  await t.throwsAsync(runGpuJob({ ...job, task: { kind: 'local', id: 1 } }), { instanceOf: GpuError });
  await t.throwsAsync(runGpuJob({ ...job, task: { ...scaledSin, options: { mode: 'opencl' } } }), {
    instanceOf: InvalidOptionError, message: /runGpuJob: option mode/,
  });
});

test('explicit cpu and webasm modes work and report themselves', async (t) => {
  for (const mode of ['cpu', 'webasm'] as const) {
    const task = gpuKernel(function (this: KernelThis, x: Float32Array, y: Float32Array) {
      const i = this.thread.x;
      return x[i]! * this.constants.scale! + Math.sin(y[i]!);
    }, { mode });
    const axes = block(250);
    const { output, backend } = await runGpuJobReport(gpuJob(task, { scale: 4 }, axes));
    assertClose(t, output, reference(axes, 4));
    t.is(backend.mode, mode);
    t.is(backend.label, mode);
    const info = gpuBackendInfo({ mode });
    t.is(info.mode, mode);
    t.true(info.observed);
  }
});

test('gpuBackendInfo reports the backend the default mode really used', async (t) => {
  const { backend } = await runGpuJobReport(gpuJob(scaledSin, { scale: 1 }, { x: [1], y: [1] }));
  const info = gpuBackendInfo();
  t.is(info.requestedMode, 'async');
  t.true(info.observed);
  t.is(info.mode, backend.mode);
  t.is(info.label, backend.label);
  t.not(info.webgpu, 'unknown');
  if (backend.mode === 'webgpu') {
    t.is(info.webgpu, 'available');
    t.truthy(info.adapter?.name);
    t.true(info.label.includes(info.adapter!.name));
  } else {
    // async fell back: the label says so, and why
    t.regex(info.label, /\(async: /);
  }
  t.log(`gpu.js ${info.gpuJsVersion}, webgpu ${info.webgpuVersion}: 'async' kernels run on ${info.label}`);
  const probed = await probeGpuBackend();
  t.not(probed.webgpu, 'unknown');
});

for (const dispose of [false, true]) {
  for (const mode of ['async', 'webasm']) {
    test(`a process that ran ${mode} jobs exits on its own${dispose ? ' after disposeGpuKernels()' : ' without dispose'}`, async (t) => {
      const script = `
        import { gpuKernel, runGpuJob, disposeGpuKernels } from ${JSON.stringify(kernelModuleUrl)};
        const task = gpuKernel(function (x) { return x[this.thread.x] * 2; }, { mode: ${JSON.stringify(mode)} });
        const n = 5000;
        const x = Array.from({ length: n }, (_, i) => i);
        const out = await runGpuJob({ task, params: {}, axisOrder: ['x'], axes: { x }, count: n, jobIndex: 0, key: 'k' });
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
}
