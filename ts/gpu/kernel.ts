/**
 * gpu.js kernels as chunk-memo tasks.
 *
 * `gpuKernel(fn, options)` turns a gpu.js-style kernel function into a plain,
 * structured-clonable {@link GpuTaskSpec}; `runGpuJob(job)` computes one exec
 * chunk with it. Kernels and gpu.js `GPU` instances are built lazily, cached
 * per thread and reused across jobs; `disposeGpuKernels()` releases them.
 *
 * See docs/gpu.md for the kernel convention and how gpu.js picks a backend.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';

import type { ExecJob, GpuTaskSpec } from '../parallel/job.js';
import type { Value } from '../value.js';

// ---------------------------------------------------------------------------
// Public types
// ---------------------------------------------------------------------------

/**
 * gpu.js `mode` values usable in Node:
 *
 * - `'async'` (default): gpu.js auto-selection under its Promise contract —
 *   the best synchronously usable backend (`headlessgl` → `webasm` → `cpu`),
 *   upgraded per kernel to `webgpu` on its first call if a WebGPU adapter
 *   answers. chunk-memo provides `navigator.gpu` from the `webgpu` package
 *   when nothing else did (gpu.js itself only looks at `navigator.gpu`).
 * - `'gpu'`: gpu.js' synchronous auto-selection (`headlessgl` → `webasm`);
 *   never WebGPU.
 * - `'webgpu'`: WGSL compute shaders; fails if no WebGPU adapter answers.
 * - `'headlessgl'`: GLSL through the optional `gl` package.
 * - `'webasm'`: WebAssembly (SIMD, plus a worker pool for ≥ 4096 points).
 * - `'cpu'`: kernel transpiled to plain JavaScript.
 *
 * (`'webgl'`/`'webgl2'` are browser-only and `'dev'` does not compile kernels,
 * so they are not accepted.)
 */
export type GpuMode = 'async' | 'gpu' | 'webgpu' | 'headlessgl' | 'webasm' | 'cpu';

/** The gpu.js modes accepted in {@link GpuKernelOptions.mode}. */
export const GPU_MODES: readonly GpuMode[] = ['async', 'gpu', 'webgpu', 'headlessgl', 'webasm', 'cpu'];

/**
 * Options of {@link gpuKernel}. All optional, all plain data (they travel
 * with the job to other threads and processes).
 *
 * There is deliberately no `device` option: gpu.js cannot choose a device.
 * Its WebGPU backend uses one module-wide device from
 * `navigator.gpu.requestAdapter()` (no adapter options) and headless-gl uses
 * the default GL context. Several devices are used by running one thread or
 * process per device — see docs/gpu.md.
 */
export type GpuKernelOptions = {
  /** gpu.js backend selection; default `'async'`. */
  mode?: GpuMode;
  /**
   * Only `'single'` (32-bit float, the default). gpu.js' `'unsigned'`
   * packs values into 8-bit texture channels on GL backends and is lossy.
   */
  precision?: 'single';
  /** Upper bound for loops whose bound is not a constant (gpu.js default 1000). */
  loopMaxIterations?: number;
  /** Seed for `Math.random()` inside the kernel (uint32), for reproducible draws. */
  randomSeed?: number;
  /**
   * Cap on the worker threads of the `webasm` backend's pool (default: one
   * per CPU). Set it low when GPU jobs run next to a worker-thread pool.
   */
  poolSize?: number;
};

/** What {@link gpuBackendInfo} reports. */
export interface GpuBackendInfo {
  /**
   * The gpu.js backend kernels of the requested mode run on: `'webgpu'`,
   * `'headlessgl'`, `'webasm'` or `'cpu'` (`'unsupported'` if the requested
   * mode cannot run here).
   */
  mode: string;
  /** The gpu.js `mode` setting this answer is for. */
  requestedMode: GpuMode;
  /** `true` when `mode` is the backend a kernel of that mode actually ran on. */
  observed: boolean;
  /**
   * WebGPU: `'available'` (an adapter answered), `'no-adapter'`,
   * `'unavailable'` (no `navigator.gpu`; see `webgpuDetail`) or `'unknown'`
   * (not probed yet: call {@link probeGpuBackend} or run a job first).
   */
  webgpu: 'available' | 'no-adapter' | 'unavailable' | 'unknown';
  /** Adapter description, or why WebGPU is unavailable. */
  webgpuDetail?: string;
  /** headless-gl (the optional `gl` package) works here. */
  headlessGL: boolean;
  /** WebAssembly, its SIMD and its threads (shared memory) work here. */
  webAssembly: boolean;
  wasmSimd: boolean;
  wasmThreads: boolean;
  /** Number of compiled kernels currently cached in this thread. */
  cachedKernels: number;
  gpuJsVersion: string;
}

// ---------------------------------------------------------------------------
// gpu.js, typed structurally (only what is used here)
// ---------------------------------------------------------------------------

interface GpuJsKernel {
  readonly constructor: { readonly mode?: string };
  destroy(removeCanvasReferences?: boolean): void;
}

interface GpuJsKernelRun {
  (...args: unknown[]): unknown;
  readonly kernel: GpuJsKernel;
  setOutput(output: number[]): GpuJsKernelRun;
}

interface GpuJsInstance {
  readonly Kernel: { readonly mode?: string; readonly name?: string };
  createKernel(source: string, settings: Record<string, unknown>): GpuJsKernelRun;
  destroy(): Promise<void>;
}

interface GpuJsModule {
  GPU: {
    new (settings: { mode: string }): GpuJsInstance;
    readonly isHeadlessGLSupported: boolean;
    readonly isWebAssemblySupported: boolean;
    readonly isWebGPUSupported: boolean;
    isWebGPUAvailable(): Promise<boolean>;
  };
  WebAssemblyKernel: { readonly isSIMDSupported: boolean; readonly isThreadsSupported: boolean };
  WebGPUContext: { destroy(): Promise<void> };
}

interface WebGpuAdapterLike {
  readonly info?: { readonly vendor?: string; readonly architecture?: string; readonly description?: string; readonly device?: string };
}

interface WebGpuLike {
  requestAdapter(): Promise<WebGpuAdapterLike | null>;
}

const require = createRequire(import.meta.url);
let gpuJsModule: GpuJsModule | undefined;

/** gpu.js is CommonJS; loaded synchronously on first use only. */
function gpuJs(): GpuJsModule {
  gpuJsModule ??= require('gpu.js') as GpuJsModule;
  return gpuJsModule;
}

function gpuJsVersion(): string {
  try {
    return String((require('gpu.js/package.json') as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------------------
// gpuKernel: validation and the task spec
// ---------------------------------------------------------------------------

const OPTION_KEYS = new Set(['mode', 'precision', 'loopMaxIterations', 'randomSeed', 'poolSize']);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object') return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function positiveInteger(name: string, value: unknown, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new TypeError(`gpuKernel: option ${name} must be an integer from 1 to ${max}, got ${describeValue(value)}`);
  }
  return value;
}

/**
 * Validates gpu kernel options and returns a normalized plain copy (only the
 * keys that were given, in a fixed order). Used by {@link gpuKernel} and
 * again by {@link runGpuJob}, whose job may come from another process.
 */
export function normalizeGpuKernelOptions(options: unknown): GpuKernelOptions {
  if (options === undefined || options === null) return {};
  if (!isPlainObject(options)) {
    throw new TypeError(`gpuKernel: options must be a plain object, got ${describeValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (OPTION_KEYS.has(key)) continue;
    if (key === 'device') {
      throw new TypeError(
        'gpuKernel: option "device" is not supported: gpu.js cannot choose a device ' +
        '(its WebGPU backend uses one adapter per thread, the one navigator.gpu.requestAdapter() returns). ' +
        'Run one worker thread or process per device instead; see docs/gpu.md.');
    }
    throw new TypeError(
      `gpuKernel: unknown option "${key}" (known: ${[...OPTION_KEYS].join(', ')})`);
  }
  const out: GpuKernelOptions = {};
  if (options.mode !== undefined) {
    if (typeof options.mode !== 'string' || !(GPU_MODES as readonly string[]).includes(options.mode)) {
      throw new TypeError(
        `gpuKernel: option mode must be one of ${GPU_MODES.map((m) => `'${m}'`).join(', ')}, got ${describeValue(options.mode)}`);
    }
    out.mode = options.mode as GpuMode;
  }
  if (options.precision !== undefined) {
    if (options.precision !== 'single') {
      throw new TypeError(
        `gpuKernel: option precision must be 'single' (gpu.js 'unsigned' is lossy), got ${describeValue(options.precision)}`);
    }
    out.precision = 'single';
  }
  if (options.loopMaxIterations !== undefined) {
    out.loopMaxIterations = positiveInteger('loopMaxIterations', options.loopMaxIterations);
  }
  if (options.randomSeed !== undefined) {
    const seed = options.randomSeed;
    if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
      throw new TypeError(`gpuKernel: option randomSeed must be an integer from 0 to 4294967295, got ${describeValue(seed)}`);
    }
    out.randomSeed = seed;
  }
  if (options.poolSize !== undefined) {
    out.poolSize = positiveInteger('poolSize', options.poolSize, 1024);
  }
  return out;
}

/**
 * Returns the kernel source gpu.js can parse, or throws a TypeError.
 * Object-method shorthand (`{ k(x) { ... } }.k`) is turned into a function
 * expression; functions without source, classes, async and generator
 * functions are rejected.
 */
function kernelSource(kernelFn: unknown): string {
  if (typeof kernelFn !== 'function') {
    throw new TypeError(`gpuKernel: kernelFn must be a function, got ${describeValue(kernelFn)}`);
  }
  const source = Function.prototype.toString.call(kernelFn).trim();
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    throw new TypeError('gpuKernel: kernelFn has no JavaScript source (native or bound function)');
  }
  if (/^class\b/.test(source)) {
    throw new TypeError('gpuKernel: kernelFn must be a function, got a class');
  }
  if (/^async\b/.test(source) || /^function\s*\*/.test(source) || /^\*/.test(source)) {
    throw new TypeError('gpuKernel: kernelFn must be a plain function (not async, not a generator)');
  }
  if (/^function\b/.test(source) || /^\(/.test(source) || /^[A-Za-z_$][\w$]*\s*=>/.test(source)) {
    return source;
  }
  if (/^[A-Za-z_$][\w$]*\s*\(/.test(source)) {
    // method shorthand: "name(a, b) { ... }"
    return `function ${source}`;
  }
  throw new TypeError(`gpuKernel: cannot use this function as a kernel: ${source.slice(0, 60)}`);
}

/**
 * A gpu.js kernel run per exec chunk.
 *
 * Kernel convention (gpu.js style, see https://github.com/gpujs/gpu.js):
 * - one thread per point of the chunk; `this.thread.x` is the point's index
 *   in the chunk (0 … count-1);
 * - the kernel's arguments are the chunk's axis columns, in `axisOrder`
 *   order, each a `Float32Array` of the points' values (zipped: point `i` is
 *   `(a[i], b[i], …)`). Axis values must be numbers (bigints are converted);
 *   anything else is an error naming the axis and the value;
 * - numeric fixed params are `this.constants.<name>` (booleans as 0/1,
 *   bigints as numbers); other params are not passed and are ignored.
 *   Constants are compiled into the kernel, one kernel per distinct set;
 * - it returns one number per point, computed in float32.
 *
 * Use a `function` (or method shorthand), not an arrow function, since the
 * kernel reads `this`; only the function's source travels with the task, so
 * it must not close over variables (gpu.js rejects unknown identifiers).
 *
 * @example
 * ```ts
 * const task = gpuKernel(function (x: Float32Array, y: Float32Array) {
 *   const i = this.thread.x;
 *   return x[i] * this.constants.scale + Math.sin(y[i]);
 * }, { mode: 'async' });
 * // params { scale: 2 }, axes x and y: output[i] = 2 * x[i] + sin(y[i])
 * ```
 *
 * @throws TypeError if `kernelFn` is not a usable function or an option is invalid.
 */
export function gpuKernel(kernelFn: Function, options?: GpuKernelOptions): GpuTaskSpec {
  const source = kernelSource(kernelFn);
  const normalized = normalizeGpuKernelOptions(options);
  return { kind: 'gpu', source, options: { ...normalized } };
}

// ---------------------------------------------------------------------------
// Runtime state (per thread)
// ---------------------------------------------------------------------------

interface KernelEntry {
  readonly key: string;
  readonly mode: GpuMode;
  readonly run: GpuJsKernelRun;
  /** Runs on one kernel are serialized: `setOutput` + call must not interleave. */
  tail: Promise<void>;
}

/** Most compiled kernels kept per thread; least recently used ones are destroyed. */
const MAX_CACHED_KERNELS = 32;
/** With a WebGPU device we opened, release everything after this much idleness. */
const WEBGPU_IDLE_RELEASE_MS = 2000;

const gpuInstances = new Map<GpuMode, GpuJsInstance>();
const kernels = new Map<string, KernelEntry>();
const observedBackend = new Map<GpuMode, string>();

type WebGpuState =
  | { status: 'unknown' }
  | { status: 'available' | 'no-adapter'; detail?: string }
  | { status: 'unavailable'; detail: string };

let webgpuState: WebGpuState = { status: 'unknown' };
/** How `navigator.gpu` was provided by this module, to undo it on dispose. */
let installedNavigator: { kind: 'global' | 'property'; gpu: unknown } | null = null;
let webgpuSetup: Promise<void> | null = null;
let disposing: Promise<void> | null = null;
/** Jobs started and not settled yet. */
const activeJobs = new Set<Promise<Float32Array>>();
let idleTimer: NodeJS.Timeout | null = null;

function globalNavigator(): Record<string, unknown> | undefined {
  return (globalThis as unknown as { navigator?: Record<string, unknown> }).navigator;
}

function usesWebGpu(mode: GpuMode): boolean {
  return mode === 'async' || mode === 'webgpu';
}

/**
 * Makes `navigator.gpu` exist if it can: gpu.js only looks at that global,
 * and Node has none. Uses the `webgpu` package (Dawn) when it loads on this
 * platform. Never throws; the outcome is recorded in `webgpuState`.
 */
function setupWebGpu(): Promise<void> {
  webgpuSetup ??= (async () => {
    let gpu = globalNavigator()?.gpu as WebGpuLike | undefined;
    if (!gpu) {
      try {
        const webgpu = (await import('webgpu')) as unknown as { create: (flags: string[]) => unknown };
        const created = webgpu.create([]);
        const nav = globalNavigator();
        if (nav === undefined) {
          Object.defineProperty(globalThis, 'navigator', {
            value: { gpu: created, hardwareConcurrency: availableParallelism() },
            configurable: true,
            writable: true,
            enumerable: false,
          });
          installedNavigator = { kind: 'global', gpu: created };
        } else {
          Object.defineProperty(nav, 'gpu', { value: created, configurable: true, writable: true });
          installedNavigator = { kind: 'property', gpu: created };
        }
        gpu = created as WebGpuLike;
      } catch (err) {
        const why = err instanceof Error ? err.message.split('\n')[0] : String(err);
        webgpuState = { status: 'unavailable', detail: `the webgpu package could not be loaded: ${why}` };
        return;
      }
    }
    try {
      const adapter = await gpu.requestAdapter();
      if (adapter) {
        const info = adapter.info;
        const detail = [info?.vendor, info?.architecture, info?.device, info?.description]
          .filter((s): s is string => typeof s === 'string' && s !== '')
          .join(' ');
        webgpuState = detail ? { status: 'available', detail } : { status: 'available' };
      } else {
        webgpuState = { status: 'no-adapter', detail: 'navigator.gpu.requestAdapter() returned null' };
      }
    } catch (err) {
      webgpuState = { status: 'no-adapter', detail: err instanceof Error ? err.message : String(err) };
    }
  })();
  return webgpuSetup;
}

function modeUnsupported(mode: GpuMode): string | null {
  const { GPU } = gpuJs();
  switch (mode) {
    case 'headlessgl':
      return GPU.isHeadlessGLSupported ? null : "the optional 'gl' package (headless-gl) is not available";
    case 'webasm':
      return GPU.isWebAssemblySupported ? null : 'WebAssembly is not available';
    case 'webgpu':
      if (webgpuState.status === 'available') return null;
      if (webgpuState.status === 'unknown') return GPU.isWebGPUSupported ? null : 'navigator.gpu is missing';
      return webgpuState.detail ?? 'no WebGPU adapter answered';
    default:
      return null;
  }
}

async function gpuInstance(mode: GpuMode): Promise<GpuJsInstance> {
  // mode 'async' probes for WebGPU when the GPU instance is constructed, so
  // navigator.gpu must be in place first
  if (usesWebGpu(mode)) await setupWebGpu();
  let gpu = gpuInstances.get(mode);
  if (gpu) return gpu;
  const unsupported = modeUnsupported(mode);
  if (unsupported) {
    throw new Error(`gpu.js mode '${mode}' cannot run here: ${unsupported}`);
  }
  gpu = new (gpuJs().GPU)({ mode });
  gpuInstances.set(mode, gpu);
  return gpu;
}

// ---------------------------------------------------------------------------
// runGpuJob
// ---------------------------------------------------------------------------

function describeValue(value: unknown): string {
  if (typeof value === 'string') {
    const s = JSON.stringify(value);
    return s.length > 60 ? `${s.slice(0, 57)}..."` : s;
  }
  if (typeof value === 'bigint') return `${value}n`;
  if (value === null || typeof value !== 'object') {
    return typeof value === 'function' ? 'a function' : String(value);
  }
  if (value instanceof Date) return `Date(${Number.isNaN(value.getTime()) ? 'invalid' : value.toISOString()})`;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${(value as Uint8Array).length ?? value.byteLength})`;
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  return 'an object';
}

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
    throw new TypeError(
      `gpu kernel reads this.constants.${[...missing][0]}, but the params have no numeric value for ${list} ` +
      '(only number, boolean and bigint params are passed to a kernel)');
  }
  return constants;
}

function axisColumns(job: ExecJob): Float32Array[] {
  const columns: Float32Array[] = [];
  for (const axis of job.axisOrder) {
    const values = job.points[axis] as ArrayLike<unknown> | undefined;
    if (!values || typeof values !== 'object' || typeof values.length !== 'number') {
      throw new TypeError(`gpu kernel job: no values for axis "${axis}"`);
    }
    if (values.length < job.count) {
      throw new TypeError(`gpu kernel job: axis "${axis}" has ${values.length} values for ${job.count} points`);
    }
    const column = new Float32Array(job.count);
    for (let i = 0; i < job.count; i++) {
      const v = values[i];
      if (typeof v === 'number') {
        column[i] = v;
      } else if (typeof v === 'bigint') {
        column[i] = Number(v);
      } else {
        throw new TypeError(
          `gpu kernel: axis "${axis}" has the non-numeric value ${describeValue(v)} (point ${i} of the chunk); ` +
          'gpu.js kernels take numeric axes only');
      }
    }
    columns.push(column);
  }
  return columns;
}

function numberKey(n: number): string {
  return Object.is(n, -0) ? '-0' : String(n);
}

function kernelSettings(options: GpuKernelOptions, constants: Record<string, number>, count: number): Record<string, unknown> {
  const settings: Record<string, unknown> = {
    output: [count],
    constants,
    precision: 'single',
    // exec chunks differ in size (the last one is usually shorter)
    dynamicOutput: true,
    dynamicArguments: true,
    // non-blocking readback where the backend has one; threads on webasm
    asyncMode: true,
  };
  if (options.loopMaxIterations !== undefined) settings.loopMaxIterations = options.loopMaxIterations;
  if (options.randomSeed !== undefined) settings.randomSeed = options.randomSeed;
  if (options.poolSize !== undefined) settings.poolSize = options.poolSize;
  return settings;
}

function destroyEntry(entry: KernelEntry): Promise<void> {
  return entry.tail.then(() => {
    try {
      entry.run.kernel.destroy(true);
    } catch {
      // already gone with its GPU instance
    }
  });
}

async function kernelFor(
  source: string,
  options: GpuKernelOptions,
  constants: Record<string, number>,
  axisCount: number,
  count: number,
): Promise<KernelEntry> {
  const mode = options.mode ?? 'async';
  const key = JSON.stringify([
    source,
    options,
    Object.entries(constants).map(([k, v]) => [k, numberKey(v)]),
    axisCount,
  ]);
  const cached = kernels.get(key);
  if (cached) {
    // refresh its LRU position
    kernels.delete(key);
    kernels.set(key, cached);
    return cached;
  }
  const gpu = await gpuInstance(mode);
  const again = kernels.get(key); // built meanwhile by a concurrent job
  if (again) return again;
  let run: GpuJsKernelRun;
  try {
    run = gpu.createKernel(source, kernelSettings(options, constants, count));
  } catch (err) {
    throw new Error(`gpu.js could not create the kernel: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const entry: KernelEntry = { key, mode, run, tail: Promise.resolve() };
  kernels.set(key, entry);
  while (kernels.size > MAX_CACHED_KERNELS) {
    const [oldestKey, oldest] = kernels.entries().next().value as [string, KernelEntry];
    kernels.delete(oldestKey);
    void destroyEntry(oldest);
  }
  return entry;
}

function toOutput(result: unknown, count: number, backend: string): Float32Array {
  const bad = (what: string) =>
    new Error(`gpu kernel returned ${what} on the ${backend} backend; a kernel must return one number per point`);
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

function scheduleIdleRelease(): void {
  if (idleTimer) {
    clearTimeout(idleTimer);
    idleTimer = null;
  }
  if (activeJobs.size > 0 || installedNavigator === null) return;
  // Dawn keeps the process alive while its GPU object is referenced; the
  // timer is unref'd, so it only matters when something else (Dawn included)
  // holds the event loop open
  idleTimer = setTimeout(() => {
    idleTimer = null;
    if (activeJobs.size === 0) void disposeGpuKernels();
  }, WEBGPU_IDLE_RELEASE_MS);
  idleTimer.unref();
}

/**
 * Computes one exec chunk with its gpu.js kernel: one thread per point, the
 * axis columns (in `job.axisOrder`) as `Float32Array` arguments, numeric
 * params as `this.constants`. Resolves to a `Float32Array` of `job.count`
 * outputs. Kernels are compiled once per (source, options, constants, axis
 * count) and reused; see {@link gpuKernel} for the convention.
 */
export async function runGpuJob(job: ExecJob): Promise<Float32Array> {
  if (job.task.kind !== 'gpu') {
    throw new TypeError(`runGpuJob: job ${job.jobIndex} has a '${job.task.kind}' task, not a gpu kernel`);
  }
  const { count } = job;
  if (!Number.isSafeInteger(count) || count < 0) {
    throw new TypeError(`runGpuJob: job count must be a non-negative integer, got ${describeValue(count)}`);
  }
  const source = job.task.source;
  if (typeof source !== 'string' || source.trim() === '') {
    throw new TypeError('runGpuJob: the gpu task has no kernel source');
  }
  const options = normalizeGpuKernelOptions(job.task.options);
  const constants = kernelConstants(job.params, source);
  const columns = axisColumns(job);
  if (count === 0) return new Float32Array(0);

  if (idleTimer) {
    clearTimeout(idleTimer);
    idleTimer = null;
  }
  // a job that starts while disposeGpuKernels() runs waits for it; the ones
  // already running are awaited by it
  const waitFor = disposing;
  const work = (async () => {
    if (waitFor) await waitFor;
    const entry = await kernelFor(source, options, constants, columns.length, count);
    const result = entry.tail.then(() => runOnKernel(entry, columns, count));
    entry.tail = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  })();
  activeJobs.add(work);
  const settle = () => {
    activeJobs.delete(work);
    scheduleIdleRelease();
  };
  work.then(settle, settle);
  return work;
}

async function runOnKernel(entry: KernelEntry, columns: Float32Array[], count: number): Promise<Float32Array> {
  let backend = entry.run.kernel.constructor.mode ?? 'unknown';
  try {
    entry.run.setOutput([count]);
    const result: unknown = await entry.run(...columns);
    // the shortcut's kernel may have been replaced (webgpu upgrade, cpu fallback)
    backend = entry.run.kernel.constructor.mode ?? backend;
    observedBackend.set(entry.mode, backend);
    return toOutput(result, count, backend);
  } catch (err) {
    // a kernel that failed once is not trusted again
    if (kernels.get(entry.key) === entry) {
      kernels.delete(entry.key);
      try {
        entry.run.kernel.destroy(true);
      } catch {
        // already destroyed
      }
    }
    if (err instanceof Error && /^gpu kernel returned /.test(err.message)) throw err;
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`gpu.js kernel failed on the ${backend} backend: ${message}`, { cause: err });
  }
}

// ---------------------------------------------------------------------------
// Teardown and introspection
// ---------------------------------------------------------------------------

/**
 * Destroys every cached kernel and gpu.js `GPU` instance of this thread
 * (terminating the WebAssembly worker pools), releases the WebGPU device and
 * removes the `navigator.gpu` this module installed. Waits for jobs in
 * flight first. Later jobs build everything afresh.
 */
export function disposeGpuKernels(): Promise<void> {
  if (disposing) return disposing;
  if (idleTimer) {
    clearTimeout(idleTimer);
    idleTimer = null;
  }
  const running = [...activeJobs];
  const done = (async () => {
    await Promise.allSettled(running);
    const entries = [...kernels.values()];
    const instances = [...gpuInstances.values()];
    kernels.clear();
    gpuInstances.clear();
    observedBackend.clear();
    await Promise.all(entries.map((entry) => entry.tail));
    await Promise.all(instances.map((gpu) => gpu.destroy().catch(() => undefined)));
    if (gpuJsModule) {
      await gpuJsModule.WebGPUContext.destroy().catch(() => undefined);
    }
    if (installedNavigator) {
      const nav = globalNavigator();
      if (installedNavigator.kind === 'global') {
        if (nav && nav.gpu === installedNavigator.gpu) {
          delete (globalThis as unknown as { navigator?: unknown }).navigator;
        }
      } else if (nav && nav.gpu === installedNavigator.gpu) {
        delete nav.gpu;
      }
      installedNavigator = null;
      webgpuSetup = null;
      webgpuState = { status: 'unknown' };
    }
  })();
  disposing = done.finally(() => {
    disposing = null;
  });
  return disposing;
}

function predictedBackend(mode: GpuMode): string {
  const { GPU } = gpuJs();
  if (modeUnsupported(mode)) return 'unsupported';
  switch (mode) {
    case 'cpu':
    case 'webasm':
    case 'headlessgl':
    case 'webgpu':
      return mode;
    case 'async':
      if (webgpuState.status === 'available') return 'webgpu';
      if (GPU.isHeadlessGLSupported) return 'headlessgl';
      return GPU.isWebAssemblySupported ? 'webasm' : 'cpu';
    case 'gpu':
      if (GPU.isHeadlessGLSupported) return 'headlessgl';
      return GPU.isWebAssemblySupported ? 'webasm' : 'unsupported';
  }
}

/**
 * Which backend gpu.js uses here for kernels of the given options' mode
 * (default `'async'`): the backend a kernel last ran on when one has run in
 * this thread (`observed: true`), otherwise gpu.js' selection predicted from
 * what this platform supports. WebGPU is only known after a job ran or after
 * {@link probeGpuBackend}.
 */
export function gpuBackendInfo(options?: GpuKernelOptions): GpuBackendInfo {
  const requestedMode = normalizeGpuKernelOptions(options).mode ?? 'async';
  const { GPU, WebAssemblyKernel } = gpuJs();
  const seen = observedBackend.get(requestedMode);
  const info: GpuBackendInfo = {
    mode: seen ?? predictedBackend(requestedMode),
    requestedMode,
    observed: seen !== undefined,
    webgpu: webgpuState.status,
    headlessGL: GPU.isHeadlessGLSupported,
    webAssembly: GPU.isWebAssemblySupported,
    wasmSimd: GPU.isWebAssemblySupported && WebAssemblyKernel.isSIMDSupported,
    wasmThreads: GPU.isWebAssemblySupported && WebAssemblyKernel.isThreadsSupported,
    cachedKernels: kernels.size,
    gpuJsVersion: gpuJsVersion(),
  };
  if (webgpuState.status !== 'unknown' && webgpuState.detail) info.webgpuDetail = webgpuState.detail;
  return info;
}

/**
 * Like {@link gpuBackendInfo}, but first looks for WebGPU the way
 * {@link runGpuJob} does (loading the `webgpu` package if needed and asking
 * for an adapter), so `webgpu` and `mode` are settled. Under the default
 * `'async'` mode this may open a WebGPU adapter: call
 * {@link disposeGpuKernels} when done.
 */
export async function probeGpuBackend(options?: GpuKernelOptions): Promise<GpuBackendInfo> {
  const mode = normalizeGpuKernelOptions(options).mode ?? 'async';
  if (usesWebGpu(mode)) {
    await setupWebGpu();
    scheduleIdleRelease();
  }
  return gpuBackendInfo(options);
}
