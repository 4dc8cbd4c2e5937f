/**
 * What runs where: `gpuBackendInfo()` (what is known now, without loading
 * WebGPU) and `probeGpuBackend()` (looks for a WebGPU adapter first).
 */
import { selectDevice } from './device.js';
import { gpuJs, packageVersion } from './gpujs.js';
import { cachedKernelCount, modeUnsupported, observedBackend, usesWebGpu } from './kernels.js';
import { normalizeGpuKernelOptions, type GpuKernelOptions, type GpuMode } from './options.js';
import { describeBackend, scheduleIdleRelease, useDevice } from './run-job.js';
import { webgpuState, type WebGpuAdapter } from './webgpu.js';

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
  /** `true` when `mode` is the backend a kernel of that mode actually ran on in this thread. */
  observed: boolean;
  /** `mode` with the adapter (WebGPU) or why WebGPU is not used (`'async'`), as executor labels show it. */
  label: string;
  /**
   * WebGPU: `'available'` (an adapter answered), `'no-adapter'`,
   * `'unavailable'` (the `webgpu` package is missing or does not load; see
   * `webgpuDetail`) or `'unknown'` (not probed yet: call
   * {@link probeGpuBackend} or run a job first).
   */
  webgpu: 'available' | 'no-adapter' | 'unavailable' | 'unknown';
  /** Adapter name and backend, or why WebGPU is unavailable. */
  webgpuDetail?: string;
  /** The WebGPU adapter kernels use, once one answered. */
  adapter?: WebGpuAdapter;
  /** The device requested (kernel option, job device or `$CHUNK_MEMO_DEVICE`), if any. */
  device?: {
    text: string;
    from: 'option' | 'job' | 'env';
    /** `false` when the adapter could not be told apart from another of the same name. */
    pinned: boolean;
  };
  /** Every backend tried while looking for an adapter, with the outcome. */
  webgpuAttempts: string[];
  /** headless-gl (the optional `gl` package) works here. */
  headlessGL: boolean;
  /** WebAssembly, its SIMD and its threads (shared memory) work here. */
  webAssembly: boolean;
  wasmSimd: boolean;
  wasmThreads: boolean;
  /** Number of compiled kernels currently cached in this thread. */
  cachedKernels: number;
  gpuJsVersion: string;
  /** Version of the `webgpu` package (Dawn), or `'not installed'`. */
  webgpuVersion: string;
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
      if (webgpuState().status === 'available') return 'webgpu';
      if (GPU.isHeadlessGLSupported) return 'headlessgl';
      return GPU.isWebAssemblySupported ? 'webasm' : 'cpu';
    case 'gpu':
      return GPU.isHeadlessGLSupported ? 'headlessgl' : 'webasm';
  }
}

/**
 * Which backend gpu.js uses here for kernels of the given options' mode
 * (default `'async'`): the backend a kernel last ran on when one has run in
 * this thread (`observed: true`), otherwise the choice predicted from what
 * this platform supports. WebGPU is only known after a job ran or after
 * {@link probeGpuBackend}.
 */
export function gpuBackendInfo(options?: GpuKernelOptions): GpuBackendInfo {
  const requestedMode = normalizeGpuKernelOptions(options, 'gpuBackendInfo').mode ?? 'async';
  const { GPU, WebAssemblyKernel } = gpuJs();
  const seen = observedBackend(requestedMode);
  const mode = seen ?? predictedBackend(requestedMode);
  const s = webgpuState();
  const info: GpuBackendInfo = {
    mode,
    requestedMode,
    observed: seen !== undefined,
    label: mode === 'unsupported' ? `unsupported (${modeUnsupported(requestedMode) ?? ''})` : describeBackend(requestedMode, mode).label,
    webgpu: s.status,
    webgpuAttempts: s.status === 'unknown' ? [] : [...s.attempts],
    headlessGL: GPU.isHeadlessGLSupported,
    webAssembly: GPU.isWebAssemblySupported,
    wasmSimd: GPU.isWebAssemblySupported && WebAssemblyKernel.isSIMDSupported,
    wasmThreads: GPU.isWebAssemblySupported && WebAssemblyKernel.isThreadsSupported,
    cachedKernels: cachedKernelCount(),
    gpuJsVersion: packageVersion('gpu.js'),
    webgpuVersion: packageVersion('webgpu'),
  };
  if (s.status === 'available') {
    info.adapter = s.adapter;
    info.webgpuDetail = `${s.adapter.name} (${s.adapter.backend}${s.adapter.featureLevel === 'compatibility' ? ', compatibility' : ''}` +
      `${s.adapter.description ? `; ${s.adapter.description}` : ''})`;
    if (s.device) info.device = { text: s.device.text, from: s.device.from, pinned: s.pinned };
  } else if (s.status !== 'unknown') {
    info.webgpuDetail = s.detail;
    if (s.device) info.device = { text: s.device.text, from: s.device.from, pinned: false };
  }
  return info;
}

/**
 * Like {@link gpuBackendInfo}, but first looks for WebGPU the way a job
 * does (loading the `webgpu` package if needed and asking for the adapter
 * of the options' `device`, else `$CHUNK_MEMO_DEVICE`), so `webgpu` and
 * `mode` are settled. For the WebGPU modes this may open an adapter: call
 * `disposeGpuKernels()` when done (an idle one is released after 2 s).
 */
export async function probeGpuBackend(options?: GpuKernelOptions): Promise<GpuBackendInfo> {
  const normalized = normalizeGpuKernelOptions(options, 'probeGpuBackend');
  const mode = normalized.mode ?? 'async';
  if (usesWebGpu(mode)) {
    await useDevice(selectDevice(normalized.device, undefined));
    scheduleIdleRelease();
  }
  return gpuBackendInfo(normalized);
}
