/**
 * Runs one exec chunk (a product block) with its gpu.js kernel: the block
 * is expanded to one thread per point, the axis columns become `Float32Array`
 * arguments and numeric params `this.constants`. Also the thread's
 * lifecycle: the WebGPU device a job asks for, idle release, dispose.
 */
import { ExecOutputError, GpuError } from '../errors/index.js';
import type { ExecJob } from '../task/job.js';
import type { Value } from '../value.js';
import { describeValue, firstLine } from '../describe.js';
import { selectDevice, selectorKey, type DeviceSelector } from './device.js';
import { destroyKernels, forgetKernel, kernelFor, recordBackend, usesWebGpu, type KernelEntry } from './kernels.js';
import { normalizeGpuKernelOptions, type GpuMode } from './options.js';
import { ensureWebGpu, releaseWebGpu, webgpuInstalled, webgpuSetupKey, webgpuState, type WebGpuState } from './webgpu.js';

/** The backend one job ran on. */
export interface GpuBackendUsed {
  /** The kernel's gpu.js mode setting. */
  readonly requestedMode: GpuMode;
  /** The gpu.js backend the kernel really ran on: `'webgpu'`, `'headlessgl'`, `'webasm'` or `'cpu'`. */
  readonly mode: string;
  /** WebGPU only: the adapter's name. */
  readonly adapter?: string;
  /** WebGPU only: the Dawn backend (`'vulkan'`, `'opengles'`, …). */
  readonly api?: string;
  /**
   * For an executor label, e.g. `'webgpu (vulkan): NVIDIA H200'`,
   * `'webgpu (opengles, compatibility): llvmpipe (LLVM 15.0.6, 256 bits)'`,
   * `'webasm (async: no WebGPU adapter)'`.
   */
  readonly label: string;
}

/** With a WebGPU device we opened, release everything after this much idleness. */
const WEBGPU_IDLE_RELEASE_MS = 2000;

let disposing: Promise<void> | null = null;
/** Jobs started and not settled yet. */
const activeJobs = new Set<Promise<unknown>>();
let idleTimer: NodeJS.Timeout | null = null;
/** Device switches, one at a time. */
let deviceTurn: Promise<unknown> = Promise.resolve();

// ---------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------

/** Scalar numeric value of a fixed param, or undefined if it is not numeric. */
function numericParam(value: Value): number | undefined {
  if (typeof value === 'number') return value;
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

function kernelConstants(params: ExecJob['params'], source: string): Record<string, number> {
  const constants: Record<string, number> = {};
  for (const name of Object.keys(params).sort()) {
    if (!IDENTIFIER.test(name)) continue;
    const value = numericParam(params[name] as Value);
    if (value !== undefined) constants[name] = value;
  }
  const missing = new Set<string>();
  for (const match of source.matchAll(/\bconstants\s*\.\s*([A-Za-z_$][\w$]*)/g)) {
    const name = match[1] as string;
    if (!(name in constants)) missing.add(name);
  }
  if (missing.size > 0) {
    const list = [...missing].map((n) => `"${n}"`).join(', ');
    throw new GpuError(
      `gpu kernel reads this.constants.${[...missing][0]}, but the params have no numeric value for ${list} ` +
      '(only number, boolean and bigint params are passed to a kernel)');
  }
  return constants;
}

function axisNumbers(axis: string, values: readonly unknown[]): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'number') out[i] = v;
    else if (typeof v === 'bigint') out[i] = Number(v);
    else {
      throw new GpuError(
        `gpu kernel: axis "${axis}" has the non-numeric value ${describeValue(v)} (value ${i} of the block); ` +
        'gpu.js kernels take numeric axes only');
    }
  }
  return out;
}

/**
 * The block's points as one column per axis (in `axisOrder`), one value per
 * point: the cartesian product of `job.axes`, first axis slowest.
 */
export function expandBlock(job: Pick<ExecJob, 'axisOrder' | 'axes' | 'count' | 'jobIndex'>): Float32Array[] {
  const lists = job.axisOrder.map((axis) => {
    const values = job.axes[axis];
    if (!Array.isArray(values)) throw new GpuError(`gpu kernel job ${job.jobIndex}: no values for axis "${axis}"`);
    return axisNumbers(axis, values);
  });
  const points = lists.reduce((n, l) => n * l.length, 1);
  if (points !== job.count) {
    throw new GpuError(
      `gpu kernel job ${job.jobIndex}: the block has ${points} points (${lists.map((l) => l.length).join(' × ') || 'no axes'}) but count is ${job.count}`);
  }
  const columns: Float32Array[] = [];
  let run = points; // points per value of the current axis
  let repeats = 1; // times the current axis' list repeats
  for (const list of lists) {
    const column = new Float32Array(points);
    if (points > 0) {
      run /= list.length;
      let at = 0;
      for (let r = 0; r < repeats; r++) {
        for (let v = 0; v < list.length; v++) {
          column.fill(list[v]!, at, at + run);
          at += run;
        }
      }
      repeats *= list.length;
    }
    columns.push(column);
  }
  return columns;
}

// ---------------------------------------------------------------------------
// Labels
// ---------------------------------------------------------------------------

function whyNotWebGpu(s: WebGpuState): string {
  switch (s.status) {
    case 'unavailable':
      return 'webgpu unavailable';
    case 'no-adapter':
      return 'no WebGPU adapter';
    case 'available':
      return 'gpu.js kept the kernel off WebGPU';
    default:
      return 'WebGPU not probed';
  }
}

/** What a kernel of `requestedMode` that ran on `mode` is called. */
export function describeBackend(requestedMode: GpuMode, mode: string): GpuBackendUsed {
  const s = webgpuState();
  if (mode === 'webgpu' && s.status === 'available') {
    const a = s.adapter;
    const api = a.backend === 'unknown' ? 'application navigator.gpu' : a.backend;
    const how = a.featureLevel === 'compatibility' ? `${api}, compatibility` : api;
    return { requestedMode, mode, adapter: a.name, api: a.backend, label: `webgpu (${how}): ${a.name}` };
  }
  if (requestedMode === 'async' && mode !== 'webgpu') {
    return { requestedMode, mode, label: `${mode} (async: ${whyNotWebGpu(s)})` };
  }
  return { requestedMode, mode, label: mode };
}

// ---------------------------------------------------------------------------
// Device and lifecycle
// ---------------------------------------------------------------------------

/**
 * Sets up `navigator.gpu` for the device `sel` asks for. A thread has one
 * WebGPU device at a time (gpu.js keeps one): a job that asks for another
 * one waits for the running jobs, disposes everything and switches.
 */
export function useDevice(sel: DeviceSelector | null): Promise<WebGpuState> {
  const key = selectorKey(sel);
  const current = webgpuSetupKey();
  if (current === null || current === key) return ensureWebGpu(sel);
  const turn = deviceTurn.then(async () => {
    const now = webgpuSetupKey();
    if (now !== null && now !== key) await disposeGpuKernels();
    return ensureWebGpu(sel);
  });
  deviceTurn = turn.catch(() => undefined);
  return turn;
}

function clearIdleTimer(): void {
  if (idleTimer) {
    clearTimeout(idleTimer);
    idleTimer = null;
  }
}

/**
 * Dawn keeps the process alive while its GPU object is referenced, so with
 * a `navigator.gpu` we installed everything is released after a short idle
 * time (the timer is unref'd: it only matters when Dawn holds the loop).
 */
export function scheduleIdleRelease(): void {
  clearIdleTimer();
  if (activeJobs.size > 0 || !webgpuInstalled()) return;
  idleTimer = setTimeout(() => {
    idleTimer = null;
    if (activeJobs.size === 0) void disposeGpuKernels();
  }, WEBGPU_IDLE_RELEASE_MS);
  idleTimer.unref();
}

/**
 * Destroys every cached kernel and gpu.js `GPU` instance of this thread
 * (terminating the WebAssembly worker pools), releases the WebGPU device and
 * removes the `navigator.gpu` that chunk-memo installed. Waits for jobs in
 * flight first. Later jobs build everything afresh.
 */
export function disposeGpuKernels(): Promise<void> {
  if (disposing) return disposing;
  clearIdleTimer();
  const running = [...activeJobs];
  const done = (async () => {
    await Promise.allSettled(running);
    await destroyKernels();
    releaseWebGpu();
  })();
  disposing = done.finally(() => {
    disposing = null;
  });
  return disposing;
}

// ---------------------------------------------------------------------------
// Running a job
// ---------------------------------------------------------------------------

function toOutput(result: unknown, count: number, backend: string): Float32Array {
  const bad = (what: string) =>
    new ExecOutputError(`gpu kernel returned ${what} on the ${backend} backend; a kernel must return one number per point`);
  if (result === null || typeof result !== 'object' || typeof (result as ArrayLike<unknown>).length !== 'number') {
    throw bad(describeValue(result));
  }
  const values = result as ArrayLike<unknown>;
  if (values.length !== count) throw bad(`${values.length} values for ${count} points`);
  if (count > 0 && typeof values[0] !== 'number') throw bad('a vector per point');
  // always a fresh, unshared array: backends may return views of reused memory
  const out = new Float32Array(count);
  out.set(values as ArrayLike<number>);
  return out;
}

async function runOnKernel(entry: KernelEntry, columns: Float32Array[], count: number): Promise<{ output: Float32Array; backend: string }> {
  let backend = entry.run.kernel.constructor.mode ?? 'unknown';
  try {
    entry.run.setOutput([count]);
    const result: unknown = await entry.run(...columns);
    // under 'async' the kernel may have been replaced (webgpu upgrade, cpu fallback)
    backend = entry.run.kernel.constructor.mode ?? backend;
    recordBackend(entry.mode, backend);
    return { output: toOutput(result, count, backend), backend };
  } catch (err) {
    forgetKernel(entry);
    if (err instanceof ExecOutputError) throw err;
    throw new GpuError(`gpu.js kernel failed on the ${backend} backend: ${firstLine(err)}`, { cause: err });
  }
}

/**
 * Like {@link runGpuJob}, and also says which backend (and adapter) the job
 * ran on, for executor labels and stats.
 */
export async function runGpuJobReport(job: ExecJob): Promise<{ output: Float32Array; backend: GpuBackendUsed }> {
  if (job.task.kind !== 'gpu') {
    throw new GpuError(`runGpuJob: job ${job.jobIndex} has a '${job.task.kind}' task, not a gpu kernel`);
  }
  const { count } = job;
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new GpuError(`runGpuJob: job count must be a non-negative integer, got ${describeValue(count)}`);
  }
  const source = job.task.source;
  if (typeof source !== 'string' || source.trim() === '') throw new GpuError('runGpuJob: the gpu task has no kernel source');
  const options = normalizeGpuKernelOptions(job.task.options, 'runGpuJob');
  const mode = options.mode ?? 'async';
  const constants = kernelConstants(job.params, source);
  const columns = expandBlock(job);
  if (count === 0) return { output: new Float32Array(0), backend: describeBackend(mode, mode) };

  clearIdleTimer();
  // a job that starts while disposeGpuKernels() runs waits for it; the ones
  // already running are awaited by it
  if (disposing) await disposing;
  if (usesWebGpu(mode)) await useDevice(selectDevice(options.device, job.device));
  const work = (async () => {
    const entry = kernelFor(source, options, constants, columns.length, count);
    const result = entry.tail.then(() => runOnKernel(entry, columns, count));
    entry.tail = result.then(() => undefined, () => undefined);
    const { output, backend } = await result;
    return { output, backend: describeBackend(mode, backend) };
  })();
  activeJobs.add(work);
  const settle = () => {
    activeJobs.delete(work);
    scheduleIdleRelease();
  };
  work.then(settle, settle);
  return work;
}

/**
 * Computes one exec chunk with its gpu.js kernel: the product block is
 * expanded to one thread per point, the axis columns (in `job.axisOrder`)
 * are `Float32Array` arguments, numeric params are `this.constants`.
 * Resolves to a `Float32Array` of `job.count` outputs in block order.
 * Kernels are compiled once per (source, options, constants, axis count)
 * and reused; see `gpuKernel` for the convention.
 *
 * @throws GpuError (`ERR_GPU`) when the mode cannot run here or the kernel fails;
 *   ExecOutputError when the kernel does not return one number per point.
 */
export async function runGpuJob(job: ExecJob): Promise<Float32Array> {
  return (await runGpuJobReport(job)).output;
}
