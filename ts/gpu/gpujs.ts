/**
 * gpu.js, loaded on first use and typed structurally (only what chunk-memo
 * calls). gpu.js is CommonJS, so it is required synchronously.
 */
import { createRequire } from 'node:module';

export interface GpuJsKernel {
  readonly constructor: { readonly mode?: string };
  destroy(removeCanvasReferences?: boolean): void;
}

export interface GpuJsKernelRun {
  (...args: unknown[]): unknown;
  readonly kernel: GpuJsKernel;
  setOutput(output: number[]): GpuJsKernelRun;
}

export interface GpuJsInstance {
  readonly Kernel: { readonly mode?: string; readonly name?: string };
  createKernel(source: string, settings: Record<string, unknown>): GpuJsKernelRun;
  destroy(): Promise<void>;
}

export interface GpuJsModule {
  GPU: {
    new (settings: { mode: string }): GpuJsInstance;
    readonly isHeadlessGLSupported: boolean;
    readonly isWebAssemblySupported: boolean;
    readonly isWebGPUSupported: boolean;
  };
  WebAssemblyKernel: { readonly isSIMDSupported: boolean; readonly isThreadsSupported: boolean };
  WebGPUContext: { destroy(): Promise<void> };
}

import { GpuError } from '../errors/index.js';

const require = createRequire(import.meta.url);
let gpuJsModule: GpuJsModule | undefined;

/** The gpu.js module (loaded now if it was not). */
export function gpuJs(): GpuJsModule {
  if (gpuJsModule) return gpuJsModule;
  try {
    gpuJsModule = require('gpu.js') as GpuJsModule;
  } catch (e) {
    throw new GpuError(
      `gpu kernels need the optional peer dependency gpu.js, which could not be loaded (${(e as Error)?.message?.split('\n')[0] ?? e}); run \`npm install gpu.js\` (and \`npm install webgpu@^0.6\` for WebGPU)`,
      { cause: e },
    );
  }
  return gpuJsModule;
}

/** The gpu.js module if something loaded it already. */
export function loadedGpuJs(): GpuJsModule | undefined {
  return gpuJsModule;
}

/** Version of an installed package, or `'not installed'`. */
export function packageVersion(name: string): string {
  try {
    return String((require(`${name}/package.json`) as { version?: unknown }).version ?? 'unknown');
  } catch {
    return 'not installed';
  }
}
