/**
 * The per-thread kernel cache: gpu.js `GPU` instances (one per mode) and
 * compiled kernels keyed by (source, options, constants, axis count), the
 * 32 most recently used kept. Also records which backend each mode's
 * kernels really ran on.
 */
import { GpuError } from '../errors/index.js';
import { firstLine } from '../describe.js';
import { gpuJs, loadedGpuJs, type GpuJsInstance, type GpuJsKernelRun } from './gpujs.js';
import type { GpuKernelOptions, GpuMode } from './options.js';
import { webgpuState } from './webgpu.js';

export interface KernelEntry {
  readonly key: string;
  readonly mode: GpuMode;
  readonly run: GpuJsKernelRun;
  /** Runs on one kernel are serialized: `setOutput` + call must not interleave. */
  tail: Promise<void>;
}

/** Most compiled kernels kept per thread; least recently used ones are destroyed. */
const MAX_CACHED_KERNELS = 32;

const gpuInstances = new Map<GpuMode, GpuJsInstance>();
const kernels = new Map<string, KernelEntry>();
/** Requested mode → the gpu.js backend its last kernel ran on. */
const observed = new Map<GpuMode, string>();

/** Modes under which chunk-memo provides `navigator.gpu` first. */
export function usesWebGpu(mode: GpuMode): boolean {
  return mode === 'async' || mode === 'webgpu';
}

/** Why a mode cannot run here, or `null` when it can. */
export function modeUnsupported(mode: GpuMode): string | null {
  const { GPU } = gpuJs();
  switch (mode) {
    case 'headlessgl':
      return GPU.isHeadlessGLSupported ? null : "the optional 'gl' package (headless-gl) is not available";
    case 'webasm':
      return GPU.isWebAssemblySupported ? null : 'WebAssembly is not available';
    case 'webgpu': {
      const s = webgpuState();
      if (s.status === 'available') return null;
      if (s.status === 'unknown') return GPU.isWebGPUSupported ? null : 'navigator.gpu is missing';
      return s.detail;
    }
    case 'gpu':
      return GPU.isHeadlessGLSupported || GPU.isWebAssemblySupported ? null : 'neither headless-gl nor WebAssembly is available';
    default:
      return null;
  }
}

function gpuInstance(mode: GpuMode): GpuJsInstance {
  let gpu = gpuInstances.get(mode);
  if (gpu) return gpu;
  const unsupported = modeUnsupported(mode);
  if (unsupported) throw new GpuError(`gpu.js mode '${mode}' cannot run here: ${unsupported}`);
  gpu = new (gpuJs().GPU)({ mode });
  gpuInstances.set(mode, gpu);
  return gpu;
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

function destroyKernel(entry: KernelEntry): void {
  try {
    entry.run.kernel.destroy(true);
  } catch {
    // already gone with its GPU instance
  }
}

/** The compiled kernel for these inputs, built (and cached) if needed. */
export function kernelFor(
  source: string,
  options: GpuKernelOptions,
  constants: Record<string, number>,
  axisCount: number,
  count: number,
): KernelEntry {
  const mode = options.mode ?? 'async';
  const { device: _device, ...shape } = options;
  const key = JSON.stringify([source, shape, Object.entries(constants).map(([k, v]) => [k, numberKey(v)]), axisCount]);
  const cached = kernels.get(key);
  if (cached) {
    // refresh its LRU position
    kernels.delete(key);
    kernels.set(key, cached);
    return cached;
  }
  const gpu = gpuInstance(mode);
  let run: GpuJsKernelRun;
  try {
    run = gpu.createKernel(source, kernelSettings(options, constants, count));
  } catch (err) {
    throw new GpuError(`gpu.js could not create the kernel: ${firstLine(err)}`, { cause: err });
  }
  const entry: KernelEntry = { key, mode, run, tail: Promise.resolve() };
  kernels.set(key, entry);
  while (kernels.size > MAX_CACHED_KERNELS) {
    const [oldestKey, oldest] = kernels.entries().next().value as [string, KernelEntry];
    kernels.delete(oldestKey);
    void oldest.tail.then(() => destroyKernel(oldest));
  }
  return entry;
}

/** Drops a kernel that failed (it is not trusted again). */
export function forgetKernel(entry: KernelEntry): void {
  if (kernels.get(entry.key) !== entry) return;
  kernels.delete(entry.key);
  destroyKernel(entry);
}

/** Records the backend a kernel of `mode` just ran on. */
export function recordBackend(mode: GpuMode, backend: string): void {
  observed.set(mode, backend);
}

/** The backend kernels of `mode` last ran on in this thread, if any ran. */
export function observedBackend(mode: GpuMode): string | undefined {
  return observed.get(mode);
}

export function cachedKernelCount(): number {
  return kernels.size;
}

/**
 * Destroys every cached kernel and `GPU` instance (ending the WebAssembly
 * worker pools) and gpu.js' shared WebGPU device, after the calls queued on
 * each kernel.
 */
export async function destroyKernels(): Promise<void> {
  const entries = [...kernels.values()];
  const instances = [...gpuInstances.values()];
  kernels.clear();
  gpuInstances.clear();
  observed.clear();
  await Promise.all(entries.map((entry) => entry.tail.then(() => destroyKernel(entry))));
  await Promise.all(instances.map((gpu) => gpu.destroy().catch(() => undefined)));
  await loadedGpuJs()?.WebGPUContext.destroy().catch(() => undefined);
}
