/**
 * `navigator.gpu` for gpu.js' WebGPU backend, from Dawn (the `webgpu` npm
 * package, 0.6.x, an optional peer dependency loaded on first use).
 *
 * gpu.js only looks at `globalThis.navigator.gpu` and calls
 * `requestAdapter()` without options, so this module picks the adapter
 * itself and installs a small shim whose `requestAdapter` returns it:
 *
 * 1. the platform's native API (Vulkan on Linux, Metal on macOS, D3D12 then
 *    Vulkan on Windows) where a GPU answers;
 * 2. else (Linux) Dawn's OpenGL ES backend at the `'compatibility'` feature
 *    level, with `EGL_PLATFORM=surfaceless` so it needs no display (Mesa's
 *    llvmpipe on a machine without a GPU).
 *
 * A device request (see ./device.ts) restricts the backend and picks the
 * adapter through Dawn's `adapter=` flag (a substring of the adapter name).
 * Everything tried is recorded, so `gpuBackendInfo()` can say why WebGPU is
 * not used. A `navigator.gpu` that the application installed itself is used
 * as it is.
 */
import { isMainThread } from 'node:worker_threads';

import type { DawnBackend, DeviceSelector } from './device.js';
import { selectorKey } from './device.js';
import { firstLine } from '../describe.js';
import { packageVersion } from './gpujs.js';

// ---------------------------------------------------------------------------
// Dawn, typed structurally
// ---------------------------------------------------------------------------

interface DawnAdapterInfo {
  readonly vendor?: string;
  readonly architecture?: string;
  readonly device?: string;
  readonly description?: string;
}

interface DawnAdapter {
  readonly info?: DawnAdapterInfo;
  requestDevice(descriptor?: object): Promise<{ destroy(): void }>;
}

interface DawnGpu {
  requestAdapter(options?: object): Promise<DawnAdapter | null>;
  getPreferredCanvasFormat?(): string;
  readonly wgslLanguageFeatures?: unknown;
}

interface DawnModule {
  create(flags: string[]): DawnGpu;
}

// ---------------------------------------------------------------------------
// State
// ---------------------------------------------------------------------------

/** The adapter WebGPU kernels run on. */
export interface WebGpuAdapter {
  /** The adapter's name (what Dawn's `adapter=` flag matches), e.g. `'NVIDIA H200'`. */
  readonly name: string;
  /** The driver's description, e.g. `'OpenGL version OpenGL ES 3.2 Mesa 22.3.6'`. */
  readonly description: string;
  readonly vendor: string;
  readonly architecture: string;
  /** The Dawn backend (`'unknown'` for a `navigator.gpu` the application installed). */
  readonly backend: DawnBackend | 'unknown';
  /** `'compatibility'` on OpenGL ES / D3D11, `'core'` elsewhere. */
  readonly featureLevel: 'core' | 'compatibility';
}

export type WebGpuState =
  | { readonly status: 'unknown' }
  | {
    readonly status: 'available';
    readonly adapter: WebGpuAdapter;
    /** Who provided `navigator.gpu`: chunk-memo (from Dawn) or the application. */
    readonly provider: 'chunk-memo' | 'application';
    readonly device: DeviceSelector | null;
    /** `false` when the requested device could not be told apart from another one (same name). */
    readonly pinned: boolean;
    /** What was tried and what was set up on the way, in order. */
    readonly attempts: readonly string[];
  }
  | {
    readonly status: 'no-adapter' | 'unavailable';
    /** Why WebGPU is not used. */
    readonly detail: string;
    readonly device: DeviceSelector | null;
    readonly attempts: readonly string[];
  };

let state: WebGpuState = { status: 'unknown' };
let setup: { key: string; done: Promise<WebGpuState> } | null = null;
/** The `navigator.gpu` this module installed, to remove it again. */
let installed: { kind: 'global' | 'property'; gpu: unknown } | null = null;

/** What is known about WebGPU in this thread now. */
export function webgpuState(): WebGpuState {
  return state;
}

/** The device request the current setup was made for (`null`: none yet). */
export function webgpuSetupKey(): string | null {
  return setup ? setup.key : null;
}

/** True when `navigator.gpu` is chunk-memo's (so releasing it is ours to do). */
export function webgpuInstalled(): boolean {
  return installed !== null;
}

function globalNavigator(): Record<string, unknown> | undefined {
  return (globalThis as unknown as { navigator?: Record<string, unknown> }).navigator;
}

/**
 * Sets up the process environment for Dawn's OpenGL ES fallback: on Linux,
 * `EGL_PLATFORM=surfaceless` unless it is set (no display needed). Call it
 * in the main thread before starting worker threads that run WebGPU kernels:
 * a worker thread cannot change the environment native code reads.
 */
export function prepareGpuEnvironment(): void {
  if (process.platform === 'linux' && isMainThread && !process.env.EGL_PLATFORM) {
    process.env.EGL_PLATFORM = 'surfaceless';
  }
}

// ---------------------------------------------------------------------------
// Choosing an adapter
// ---------------------------------------------------------------------------

const COMPAT_BACKENDS: readonly DawnBackend[] = ['opengles', 'opengl', 'd3d11'];

function candidateBackends(sel: DeviceSelector | null): DawnBackend[] {
  if (sel?.backend) return [sel.backend];
  switch (process.platform) {
    case 'darwin':
      return ['metal'];
    case 'win32':
      return ['d3d12', 'vulkan'];
    default:
      return ['vulkan', 'opengles'];
  }
}

function adapterOptions(backend: DawnBackend): object {
  return COMPAT_BACKENDS.includes(backend) ? { featureLevel: 'compatibility' } : {};
}

/** Dawn's adapter names for a backend (it only lists them when asked for a name that matches none). */
async function adapterNames(dawn: DawnModule, backend: DawnBackend): Promise<string[]> {
  const probe = dawn.create([`backend=${backend}`, 'adapter=\u0001chunk-memo: list adapters']);
  try {
    await probe.requestAdapter(adapterOptions(backend));
    return [];
  } catch (listing) {
    return listedAdapters(listing instanceof Error ? listing.message : String(listing));
  }
}

/**
 * Dawn has no call that enumerates adapters: its documented listing (the
 * `webgpu` package's README, "To get a list of adapters pass in a
 * non-existent adapter name") is the text of the rejection, one line per
 * adapter: ` * backend: 'vulkan', name: 'NVIDIA H200'`. This reads those
 * lines as a listing (the library's own errors are never read this way).
 */
function listedAdapters(listing: string): string[] {
  const head = " * backend: '";
  const mid = "', name: '";
  const names: string[] = [];
  for (const line of listing.split('\n')) {
    if (!line.startsWith(head) || !line.endsWith("'")) continue;
    const at = line.indexOf(mid, head.length);
    if (at >= 0) names.push(line.slice(at + mid.length, -1));
  }
  return names;
}

type Attempt =
  | { ok: true; gpu: DawnGpu; options: object; adapter: WebGpuAdapter; pinned: boolean; note?: string }
  | { ok: false; reason: string };

function eglNote(): string | undefined {
  if (process.platform !== 'linux' || process.env.EGL_PLATFORM) return undefined;
  if (isMainThread) {
    process.env.EGL_PLATFORM = 'surfaceless';
    return 'set EGL_PLATFORM=surfaceless';
  }
  return 'EGL_PLATFORM is not set and a worker thread cannot set it for the process (call prepareGpuEnvironment() in the main thread, or set EGL_PLATFORM=surfaceless)';
}

async function tryBackend(dawn: DawnModule, backend: DawnBackend, sel: DeviceSelector | null, notes: string[]): Promise<Attempt> {
  const options = adapterOptions(backend);
  const compat = COMPAT_BACKENDS.includes(backend);
  const label = compat ? `${backend} (compatibility)` : backend;
  if (backend === 'opengles' || backend === 'opengl') {
    const note = eglNote();
    if (note) notes.push(note);
  }
  let listed: string[] | undefined;
  const names = async () => (listed ??= await adapterNames(dawn, backend));
  const quoted = (list: string[]) => list.map((n, i) => `${i}: "${n}"`).join(', ');
  let name = sel?.name;
  let pinned = true;
  let note: string | undefined;
  if (sel?.index !== undefined) {
    const all = await names();
    if (sel.index >= all.length) {
      return { ok: false, reason: `${label}: no adapter ${sel.index} (${all.length === 0 ? 'none found' : `found ${all.length}: ${quoted(all)}`})` };
    }
    name = all[sel.index]!;
    const first = all.indexOf(name);
    if (first !== sel.index) {
      pinned = false;
      note = `adapters ${first} and ${sel.index} are both named "${name}" and Dawn selects by name, so this is adapter ${first}; ` +
        'to pin identical cards, run one process per card with the driver-level selection (docs/gpu.md)';
    }
  }
  const flags = [`backend=${backend}`];
  if (name) flags.push(`adapter=${name}`);
  const gpu = dawn.create(flags);
  let adapter: DawnAdapter | null;
  try {
    adapter = await gpu.requestAdapter(options);
  } catch (err) {
    if (name === undefined) return { ok: false, reason: `${label}: ${firstLine(err)}` };
    const all = await names();
    return { ok: false, reason: `${label}: no adapter whose name contains "${name}" (${all.length === 0 ? 'none found' : `found ${all.length}: ${quoted(all)}`})` };
  }
  if (!adapter) {
    const egl = process.env.EGL_PLATFORM;
    const hint = compat
      ? `needs EGL with an OpenGL ES 3.1 driver, e.g. Mesa: libegl1 libgles2 libegl-mesa0 libgl1-mesa-dri${egl && egl !== 'surfaceless' ? `; EGL_PLATFORM is "${egl}"` : ''}`
      : backend === 'vulkan' ? 'needs libvulkan1 and a Vulkan driver for the GPU that Dawn accepts' : `no ${backend} driver answered`;
    return { ok: false, reason: `${label}: no adapter (${hint})` };
  }
  try {
    (await adapter.requestDevice()).destroy();
  } catch (err) {
    return { ok: false, reason: `${label}: the adapter could not open a device: ${firstLine(err)}` };
  }
  // the name Dawn matches `adapter=` against (the JS adapter.info.device is a
  // sanitised form of it): the first listed one that the request matches
  const nameOf = name;
  const dawnName = nameOf === undefined ? (await names())[0] : (await names()).find((n) => n.includes(nameOf));
  const info = adapter.info ?? {};
  const result: Attempt = {
    ok: true, gpu, options, pinned,
    adapter: {
      name: dawnName || info.device || info.description || '(unnamed adapter)',
      description: info.description ?? '',
      vendor: info.vendor ?? '',
      architecture: info.architecture ?? '',
      backend,
      featureLevel: compat ? 'compatibility' : 'core',
    },
  };
  if (note) result.note = note;
  return result;
}

/** Limits a compute kernel may need beyond the WebGPU defaults (gpu.js asks only for the two buffer sizes). */
const COMPUTE_LIMITS = [
  'maxStorageBuffersPerShaderStage', 'maxStorageBufferBindingSize', 'maxBufferSize', 'maxBindingsPerBindGroup',
  'maxComputeWorkgroupStorageSize', 'maxComputeInvocationsPerWorkgroup', 'maxComputeWorkgroupSizeX',
  'maxComputeWorkgroupSizeY', 'maxComputeWorkgroupSizeZ', 'maxComputeWorkgroupsPerDimension',
] as const;

/**
 * gpu.js binds one storage buffer per kernel argument plus the output, but
 * requests its device with the default `maxStorageBuffersPerShaderStage`
 * (8, and 4 on the compatibility feature level), so kernels over many axes
 * fail to build. The adapter's `requestDevice` is made to ask for what the
 * adapter supports of the compute limits.
 */
function withComputeLimits(adapter: DawnAdapter | null): DawnAdapter | null {
  if (!adapter) return adapter;
  const request = adapter.requestDevice.bind(adapter);
  const limits = (adapter as { limits?: Record<string, unknown> }).limits ?? {};
  const required: Record<string, number> = {};
  for (const name of COMPUTE_LIMITS) {
    const value = limits[name];
    if (typeof value === 'number') required[name] = value;
  }
  const requestDevice = (descriptor?: { requiredLimits?: Record<string, number> }) =>
    request({ ...(descriptor ?? {}), requiredLimits: { ...required, ...(descriptor?.requiredLimits ?? {}) } });
  Object.defineProperty(adapter, 'requestDevice', { value: requestDevice, configurable: true, writable: true });
  return adapter;
}

function install(gpu: DawnGpu, options: object): void {
  // gpu.js asks for an adapter without options: ours carries the backend's
  // (feature level) and the instance carries the backend and adapter flags
  const shim = {
    requestAdapter: async (more?: object) => withComputeLimits(await gpu.requestAdapter({ ...options, ...(more ?? {}) })),
    getPreferredCanvasFormat: () => gpu.getPreferredCanvasFormat?.() ?? 'bgra8unorm',
    get wgslLanguageFeatures() {
      return gpu.wgslLanguageFeatures;
    },
  };
  const nav = globalNavigator();
  if (nav === undefined) {
    Object.defineProperty(globalThis, 'navigator', { value: { gpu: shim }, configurable: true, writable: true, enumerable: false });
    installed = { kind: 'global', gpu: shim };
  } else {
    Object.defineProperty(nav, 'gpu', { value: shim, configurable: true, writable: true });
    installed = { kind: 'property', gpu: shim };
  }
}

/** The `webgpu` versions this module is written for (Dawn with compatibility mode and `adapter=`). */
const WEBGPU_RANGE = '^0.6';

async function loadDawn(): Promise<DawnModule | string> {
  const version = packageVersion('webgpu');
  const [major, minor] = version.split('.').map(Number);
  if (major === 0 && minor !== undefined && minor < 6) {
    // gpu.js depends on webgpu 0.2.9, which npm may hoist where ours is missing
    return `webgpu ${version} is installed (gpu.js' own dependency, whose Dawn lacks what chunk-memo uses); ` +
      `chunk-memo needs webgpu ${WEBGPU_RANGE} (npm install webgpu@${WEBGPU_RANGE})`;
  }
  try {
    return (await import('webgpu')) as unknown as DawnModule;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      return `the optional peer dependency 'webgpu' is not installed (npm install webgpu@${WEBGPU_RANGE})`;
    }
    return `the webgpu package could not be loaded: ${firstLine(err)}`;
  }
}

async function describeApplicationGpu(gpu: DawnGpu, sel: DeviceSelector | null): Promise<WebGpuState> {
  const attempts = ['navigator.gpu was installed by the application: used as it is'];
  if (sel) attempts.push(`device ${JSON.stringify(sel.text)} is not applied to it`);
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return { status: 'no-adapter', detail: 'navigator.gpu.requestAdapter() returned null', device: sel, attempts };
    const info = adapter.info ?? {};
    return {
      status: 'available', provider: 'application', device: sel, pinned: sel === null, attempts,
      adapter: {
        name: info.device || info.description || '(unnamed adapter)',
        description: info.description ?? '', vendor: info.vendor ?? '', architecture: info.architecture ?? '',
        backend: 'unknown', featureLevel: 'core',
      },
    };
  } catch (err) {
    return { status: 'no-adapter', detail: firstLine(err), device: sel, attempts };
  }
}

async function setUp(sel: DeviceSelector | null): Promise<WebGpuState> {
  const existing = globalNavigator()?.gpu as DawnGpu | undefined;
  if (existing) return describeApplicationGpu(existing, sel);
  const dawn = await loadDawn();
  if (typeof dawn === 'string') return { status: 'unavailable', detail: dawn, device: sel, attempts: [dawn] };
  const attempts: string[] = [];
  for (const backend of candidateBackends(sel)) {
    let attempt: Attempt;
    try {
      attempt = await tryBackend(dawn, backend, sel, attempts);
    } catch (err) {
      attempt = { ok: false, reason: `${backend}: ${firstLine(err)}` };
    }
    if (!attempt.ok) {
      attempts.push(attempt.reason);
      continue;
    }
    attempts.push(`${backend}: adapter "${attempt.adapter.name}"`);
    if (attempt.note) attempts.push(attempt.note);
    install(attempt.gpu, attempt.options);
    return { status: 'available', provider: 'chunk-memo', adapter: attempt.adapter, device: sel, pinned: attempt.pinned, attempts };
  }
  const what = sel ? `no WebGPU adapter matches device ${JSON.stringify(sel.text)}` : 'no WebGPU adapter answered';
  return { status: 'no-adapter', detail: `${what}: ${attempts.join('; ')}`, device: sel, attempts };
}

/**
 * Makes `navigator.gpu` answer with the adapter `sel` asks for, if it can.
 * Never throws: the outcome is the returned state (also {@link webgpuState}).
 * Idempotent per device request; a different request needs
 * {@link releaseWebGpu} first (the caller drains gpu.js' device).
 */
export function ensureWebGpu(sel: DeviceSelector | null): Promise<WebGpuState> {
  const key = selectorKey(sel);
  if (setup && setup.key === key) return setup.done;
  if (setup) releaseWebGpu();
  const done = setUp(sel).then((s) => (state = s));
  setup = { key, done };
  return done;
}

/** Removes the `navigator.gpu` this module installed and forgets the adapter. */
export function releaseWebGpu(): void {
  if (installed) {
    const nav = globalNavigator();
    if (nav && nav.gpu === installed.gpu) {
      if (installed.kind === 'global') delete (globalThis as unknown as { navigator?: unknown }).navigator;
      else delete nav.gpu;
    }
    installed = null;
  }
  setup = null;
  state = { status: 'unknown' };
}
