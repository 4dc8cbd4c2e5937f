/**
 * gpu.js kernels as chunk-memo tasks: the public face of ts/gpu.
 *
 * - options.ts   `gpuKernel(fn, options)`: checks the kernel and its options, returns a plain task spec
 * - device.ts    which WebGPU adapter a job asks for (option, job device, `$CHUNK_MEMO_DEVICE`)
 * - webgpu.ts    `navigator.gpu` from Dawn (the `webgpu` package): Vulkan/Metal/D3D12, else OpenGL ES
 * - gpujs.ts     loads gpu.js
 * - kernels.ts   the per-thread cache of gpu.js instances and compiled kernels
 * - run-job.ts   `runGpuJob(job)`: one exec chunk (a product block) on its kernel; dispose
 * - probe.ts     `gpuBackendInfo()`, `probeGpuBackend()`: what runs where
 *
 * See docs/gpu.md for the kernel convention, the backends and devices.
 */
export { GPU_MODES, gpuKernel, normalizeGpuKernelOptions } from './options.js';
export type { GpuKernelOptions, GpuMode, GpuKernelFn, GpuKernelThis } from './options.js';
export { disposeGpuKernels, runGpuJob, runGpuJobReport } from './run-job.js';
export type { GpuBackendUsed } from './run-job.js';
export { gpuBackendInfo, probeGpuBackend } from './probe.js';
export type { GpuBackendInfo } from './probe.js';
export { prepareGpuEnvironment } from './webgpu.js';
export type { WebGpuAdapter } from './webgpu.js';
