/**
 * Which WebGPU adapter a job asks for: the kernel's `device` option, else the
 * job's device (`processes: { devices }`, `chunk-memo worker --device`), else
 * `$CHUNK_MEMO_DEVICE`. A device is an adapter index or a substring of the
 * adapter's name, optionally after a Dawn backend name (`'vulkan:1'`).
 */
import { InvalidOptionError } from '../errors/index.js';

/** Dawn backends, by the names `dawn.node`'s `backend=` flag takes. */
export type DawnBackend = 'vulkan' | 'opengles' | 'opengl' | 'metal' | 'd3d12' | 'd3d11';

const BACKEND_NAMES: Readonly<Record<string, DawnBackend>> = {
  vulkan: 'vulkan', vk: 'vulkan',
  opengles: 'opengles', gles: 'opengles',
  opengl: 'opengl', gl: 'opengl',
  metal: 'metal',
  d3d12: 'd3d12', d3d: 'd3d12',
  d3d11: 'd3d11',
};

/** Prefixes that name no backend: `'cuda:1'` and `'gpu:1'` mean adapter 1. */
const GENERIC_PREFIXES: readonly string[] = ['cuda', 'gpu'];

/** A parsed device request. */
export interface DeviceSelector {
  /** The text it came from. */
  readonly text: string;
  /** Where it came from. */
  readonly from: 'option' | 'job' | 'env';
  /** Only this Dawn backend. */
  readonly backend?: DawnBackend;
  /** The index-th adapter of the backend, in Dawn's enumeration order. */
  readonly index?: number;
  /** The first adapter whose name contains this text. */
  readonly name?: string;
}

/**
 * Parses `[backend:]index` or `[backend:]name-substring` (`cuda:` and `gpu:`
 * are accepted as prefixes that name no backend). An empty request (or a
 * bare backend) selects no particular adapter.
 *
 * @example parseDevice('1', 'job')          // { index: 1 }
 * @example parseDevice('vulkan:H200', 'env') // { backend: 'vulkan', name: 'H200' }
 * @example parseDevice('cuda:1', 'job')     // { index: 1 }
 */
export function parseDevice(device: string | number, from: DeviceSelector['from']): DeviceSelector {
  const text = String(device).trim();
  if (typeof device === 'number') {
    if (!Number.isSafeInteger(device) || device < 0) {
      throw new InvalidOptionError(`gpu device must be a non-negative integer or a string, got ${device}`);
    }
    return { text, from, index: device };
  }
  let rest = text;
  let backend: DawnBackend | undefined;
  const colon = text.indexOf(':');
  if (colon >= 0) {
    const head = text.slice(0, colon).toLowerCase();
    const known = BACKEND_NAMES[head];
    if (known) {
      backend = known;
      rest = text.slice(colon + 1).trim();
    } else if (GENERIC_PREFIXES.includes(head)) {
      // 'cuda:1', 'gpu:1': the usual spelling of "GPU number 1", any backend
      rest = text.slice(colon + 1).trim();
    }
  } else if (BACKEND_NAMES[text.toLowerCase()]) {
    backend = BACKEND_NAMES[text.toLowerCase()];
    rest = '';
  }
  const sel: { -readonly [K in keyof DeviceSelector]: DeviceSelector[K] } = { text, from };
  if (backend) sel.backend = backend;
  if (/^\d+$/.test(rest)) sel.index = Number(rest);
  else if (rest !== '') sel.name = rest;
  return sel;
}

/**
 * The device a job should use, by precedence: the kernel option, the job's
 * device, `$CHUNK_MEMO_DEVICE`; `null` when none names one.
 */
export function selectDevice(option: string | number | undefined, jobDevice: string | undefined): DeviceSelector | null {
  if (option !== undefined && String(option).trim() !== '') return parseDevice(option, 'option');
  if (typeof jobDevice === 'string' && jobDevice.trim() !== '') return parseDevice(jobDevice, 'job');
  const env = process.env.CHUNK_MEMO_DEVICE;
  if (env !== undefined && env.trim() !== '') return parseDevice(env, 'env');
  return null;
}

/** A stable key of a selector: the same key means the same adapter request. */
export function selectorKey(sel: DeviceSelector | null): string {
  if (!sel) return '';
  return JSON.stringify([sel.backend ?? '', sel.index ?? null, sel.name ?? '']);
}
