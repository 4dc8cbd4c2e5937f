/**
 * `gpuKernel`: the kernel's source and its options, checked and turned into
 * a plain, structured-clonable {@link GpuTaskSpec}. Nothing here loads
 * gpu.js or WebGPU, so runners can import it cheaply.
 */
import * as t from 'typanion';

import { InvalidOptionError } from '../errors/index.js';
import type { GpuTaskSpec } from '../task/job.js';
import { describeValue, isPlainObject } from '../describe.js';
import { prepareGpuEnvironment } from './webgpu.js';

/**
 * gpu.js `mode` values usable in Node:
 *
 * - `'async'` (default): WebGPU where an adapter answers (chunk-memo provides
 *   `navigator.gpu` from the `webgpu` package, see docs/gpu.md), else gpu.js'
 *   synchronous choice (`headlessgl` → `webasm` → `cpu`). The backend really
 *   used is reported by {@link gpuBackendInfo} and in `result.executors`.
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
  /**
   * The WebGPU adapter to use: an index (`1`, `'1'`) or a substring of the
   * adapter's name (`'H200'`, `'llvmpipe'`), optionally after a Dawn backend
   * (`'vulkan:0'`, `'opengles:llvmpipe'`). Default: the job's device
   * (`processes: { devices }`, `chunk-memo worker --device`), else
   * `$CHUNK_MEMO_DEVICE`, else the first adapter that answers. Only WebGPU
   * modes (`'async'`, `'webgpu'`) can choose an adapter; see docs/gpu.md.
   */
  device?: string | number;
};

const isInt = (min: number, max: number) => t.cascade(t.isNumber(), [t.isInteger(), t.isInInclusiveRange(min, max)]);

/** One typanion check per option, so a failure names its option. */
const CHECKS: { readonly [K in keyof Required<GpuKernelOptions>]: t.StrictValidator<unknown, GpuKernelOptions[K]> } = {
  mode: t.isEnum(GPU_MODES),
  precision: t.isLiteral('single'),
  loopMaxIterations: isInt(1, Number.MAX_SAFE_INTEGER),
  randomSeed: isInt(0, 0xffffffff),
  poolSize: isInt(1, 1024),
  device: t.isOneOf([t.isString(), isInt(0, 1 << 20)]),
};
const HINTS: Partial<Record<keyof GpuKernelOptions, string>> = {
  precision: " (gpu.js 'unsigned' is lossy)",
  device: ' (an adapter index or a substring of its name, e.g. 0, "H200", "vulkan:1")',
};
const OPTION_KEYS = Object.keys(CHECKS) as (keyof GpuKernelOptions)[];

/**
 * Validates gpu kernel options and returns a normalized plain copy (only the
 * keys that were given, in a fixed order). Used by {@link gpuKernel} and
 * again when a job runs, since the job may come from another process.
 *
 * @throws InvalidOptionError (`ERR_INVALID_OPTION`) naming the option.
 */
export function normalizeGpuKernelOptions(options: unknown, where = 'gpuKernel'): GpuKernelOptions {
  if (options === undefined || options === null) return {};
  if (!isPlainObject(options)) {
    throw new InvalidOptionError(`${where}: options must be a plain object, got ${describeValue(options)}`);
  }
  for (const key of Object.keys(options)) {
    if (!(OPTION_KEYS as string[]).includes(key)) {
      throw new InvalidOptionError(`${where}: unknown option "${key}" (valid: ${OPTION_KEYS.join(', ')})`);
    }
  }
  const out: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) {
    const value = options[key];
    if (value === undefined) continue;
    const errors: string[] = [];
    if (!CHECKS[key](value, { errors })) {
      throw new InvalidOptionError(`${where}: option ${key} is invalid: ${errors.join('; ')}${HINTS[key] ?? ''}`);
    }
    out[key] = value;
  }
  if (typeof out.device === 'string' && out.device.trim() === '') delete out.device;
  return out as GpuKernelOptions;
}

/**
 * Returns the kernel source gpu.js can parse. Object-method shorthand
 * (`{ k(x) { ... } }.k`) is turned into a function expression; functions
 * without source, classes, async and generator functions are rejected.
 */
function kernelSource(kernelFn: unknown): string {
  const bad = (why: string) => new InvalidOptionError(`gpuKernel: ${why}`);
  if (typeof kernelFn !== 'function') throw bad(`kernelFn must be a function, got ${describeValue(kernelFn)}`);
  const source = Function.prototype.toString.call(kernelFn).trim();
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) throw bad('kernelFn has no JavaScript source (native or bound function)');
  if (/^class\b/.test(source)) throw bad('kernelFn must be a function, got a class');
  if (/^async\b/.test(source) || /^function\s*\*/.test(source) || /^\*/.test(source)) {
    throw bad('kernelFn must be a plain function (not async, not a generator)');
  }
  if (/^function\b/.test(source) || /^\(/.test(source) || /^[A-Za-z_$][\w$]*\s*=>/.test(source)) return source;
  // method shorthand: "name(a, b) { ... }"
  if (/^[A-Za-z_$][\w$]*\s*\(/.test(source)) return `function ${source}`;
  throw bad(`cannot use this function as a kernel: ${source.slice(0, 60)}`);
}

/**
 * What `this` is inside a gpu kernel: the point's thread index (one thread
 * per point of the exec chunk, `x`) and the numeric params as constants.
 */
export interface GpuKernelThis<C extends Record<string, number> = Record<string, number>> {
  readonly thread: { readonly x: number; readonly y: number; readonly z: number };
  readonly constants: C;
}

/**
 * A gpu kernel: a plain `function` (its source travels) over one column per
 * axis (float32 values, indexed by `this.thread.x`) that returns one number.
 * @example gpuKernel(function (this: GpuKernelThis<{ scale: number }>, x: Float32Array) { return x[this.thread.x]! * this.constants.scale; })
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type GpuKernelFn<C extends Record<string, number> = Record<string, number>> = (this: GpuKernelThis<C>, ...columns: any[]) => number;

/**
 * A gpu.js kernel run per exec chunk.
 *
 * Kernel convention (gpu.js style, see https://github.com/gpujs/gpu.js):
 * - one thread per point of the exec chunk; `this.thread.x` is the point's
 *   index in the chunk (0 … count-1, the block's points in grid order);
 * - the kernel's arguments are the chunk's axis columns, in `axisOrder`
 *   order, each a `Float32Array` with one value per point (the product
 *   block is expanded, so point `i` is `(a[i], b[i], …)`). Axis values must
 *   be numbers (bigints are converted); anything else is an error naming the
 *   axis and the value;
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
 * // params { scale: 2 }, axes x and y: output = 2 * x + sin(y) at each point
 * ```
 *
 * For the WebGPU modes on Linux this sets `EGL_PLATFORM=surfaceless` in the
 * process environment when it is unset (see `prepareGpuEnvironment`).
 *
 * @throws InvalidOptionError if `kernelFn` is not a usable function or an option is invalid.
 */
export function gpuKernel<C extends Record<string, number> = Record<string, number>>(kernelFn: GpuKernelFn<C>, options?: GpuKernelOptions): GpuTaskSpec {
  const source = kernelSource(kernelFn);
  const normalized = normalizeGpuKernelOptions(options);
  // worker threads that run the task later cannot set EGL_PLATFORM for the
  // OpenGL ES fallback themselves; this is usually the main thread
  if ((normalized.mode ?? 'async') === 'async' || normalized.mode === 'webgpu') prepareGpuEnvironment();
  return { kind: 'gpu', source, options: { ...normalized } };
}
