/**
 * `executeJob`: computes one exec chunk by itself. Worker threads use it, and
 * so can an executor in another process or host that received a job.
 */
import { pathToFileURL } from 'node:url';
import { isAbsolute } from 'node:path';
import { ExecOutputError, InvalidOptionError } from '../errors/index.js';
import type { Params, TypedArray, Value } from '../value.js';
import type { ExecJob, LocalTaskSpec, ModuleTaskSpec } from './job.js';

/**
 * A task function: receives the fixed params and *zipped* point columns
 * (point `i` is `{ [axis]: points[axis][i] }`) and returns one output per
 * point. A function made by `pointwise` also works (called per point).
 */
export type PointsFn = (params: Params, points: Record<string, Value[]>, ctx: { axisOrder: readonly string[]; zipped: true }) =>
  readonly unknown[] | TypedArray | Promise<readonly unknown[] | TypedArray>;

type Loadable = PointsFn & { pointFn?: (params: Params, point: Record<string, Value>) => unknown };

const modules = new Map<string, Promise<Record<string, unknown>>>();
const locals = new Map<number, Loadable>();
let nextLocal = 1;

/**
 * A task that worker threads (and other processes) can load: the module at
 * `moduleUrl` (a file URL or absolute path) and its export `exportName`.
 *
 * @example
 * // tasks.ts: export const simulate = pointwise((p, { x }) => heavy(x, p));
 * const task = defineTask(new URL('./tasks.js', import.meta.url), 'simulate');
 * await runParallel(cache, task, { workers: 4 });
 */
export function defineTask(moduleUrl: string | URL, exportName: string): ModuleTaskSpec {
  let url: string;
  if (moduleUrl instanceof URL) url = moduleUrl.href;
  else if (typeof moduleUrl === 'string' && isAbsolute(moduleUrl)) url = pathToFileURL(moduleUrl).href;
  else if (typeof moduleUrl === 'string' && /^[a-z]+:/i.test(moduleUrl)) url = moduleUrl;
  else throw new InvalidOptionError(`defineTask: moduleUrl must be a URL or an absolute path (got ${JSON.stringify(moduleUrl)}); use new URL('./tasks.js', import.meta.url)`);
  if (typeof exportName !== 'string' || exportName === '') throw new InvalidOptionError('defineTask: exportName must be a non-empty string');
  return { kind: 'module', moduleUrl: url, exportName };
}

/** @internal Registers an in-process function as a task. */
export function localTask(fn: PointsFn): LocalTaskSpec {
  const id = nextLocal++;
  locals.set(id, fn as Loadable);
  return { kind: 'local', id };
}

/** @internal */
export function releaseLocalTask(t: LocalTaskSpec): void {
  locals.delete(t.id);
}

async function loadModuleTask(t: ModuleTaskSpec): Promise<Loadable> {
  let m = modules.get(t.moduleUrl);
  if (!m) {
    m = import(t.moduleUrl) as Promise<Record<string, unknown>>;
    modules.set(t.moduleUrl, m);
  }
  const mod = await m;
  const fn = mod[t.exportName];
  if (typeof fn !== 'function') {
    throw new InvalidOptionError(`task ${t.exportName} of ${t.moduleUrl} is ${fn === undefined ? 'not exported' : 'not a function'}`);
  }
  return fn as Loadable;
}

async function callPoints(fn: Loadable, job: ExecJob): Promise<readonly unknown[] | TypedArray> {
  if (typeof fn.pointFn === 'function') {
    const out: unknown[] = new Array(job.count);
    let anyPromise = false;
    for (let i = 0; i < job.count; i++) {
      const point: Record<string, Value> = {};
      for (const a of job.axisOrder) point[a] = job.points[a]![i]!;
      const r = fn.pointFn(job.params, point);
      if (r instanceof Promise) anyPromise = true;
      out[i] = r;
    }
    return anyPromise ? Promise.all(out) : out;
  }
  return fn(job.params, job.points as Record<string, Value[]>, { axisOrder: job.axisOrder, zipped: true });
}

/** Computes one exec chunk; returns one output per point in job order. */
export async function executeJob(job: ExecJob): Promise<readonly unknown[] | TypedArray> {
  let out: readonly unknown[] | TypedArray;
  switch (job.task.kind) {
    case 'module':
      out = await callPoints(await loadModuleTask(job.task), job);
      break;
    case 'local': {
      const fn = locals.get(job.task.id);
      if (!fn) throw new InvalidOptionError('this job names an in-process task of another process; use defineTask for tasks that travel');
      out = await callPoints(fn, job);
      break;
    }
    case 'gpu': {
      const { runGpuJob } = await import('../gpu/kernel.js');
      out = await runGpuJob(job);
      break;
    }
    default:
      throw new InvalidOptionError(`unknown task kind ${JSON.stringify((job.task as { kind: unknown }).kind)}`);
  }
  const ok = Array.isArray(out) || (ArrayBuffer.isView(out) && !(out instanceof DataView));
  if (!ok || (out as ArrayLike<unknown>).length !== job.count) {
    throw new ExecOutputError(`exec chunk ${job.jobIndex}: the task returned ${ok ? (out as ArrayLike<unknown>).length : typeof out} outputs for ${job.count} points`);
  }
  return out;
}
