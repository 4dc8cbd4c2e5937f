/**
 * Tasks and `executeJob`: one exec-function contract for every runner.
 *
 * A `ChunkFn` receives, per axis, the values of a product block (points =
 * cartesian product, first axis slowest) and returns one output per point in
 * that order. `run` calls it directly; worker threads, child processes,
 * `mapFn` executors and remote workers receive an `ExecJob` and call
 * `executeJob`, which calls the same function the same way.
 */
import { pathToFileURL } from 'node:url';
import { isAbsolute } from 'node:path';
import { ExecOutputError, InvalidOptionError } from '../errors/index.js';
import type { Params, TypedArray, Value } from '../value.js';
import { describeValue } from '../describe.js';
import type { ExecJob, JobOutput, LocalTaskSpec, ModuleTaskSpec } from './job.js';
import { PlainRecord } from '../shapes.js';

/** What a chunk function returns: one output per point, or a numeric TypedArray. */
export type ChunkOutput = readonly unknown[] | TypedArray;

/** Context passed as the third argument of a chunk function. */
export interface ChunkContext {
  /** Axis names of `axes`, in grid order (first slowest). */
  readonly axisOrder: readonly string[];
  /** Fires when the run is aborted. */
  readonly signal?: AbortSignal;
  /** The device this call runs on (`processes.devices`, `chunk-memo worker --device`). */
  readonly device?: string;
}

/**
 * A chunk-level exec function: receives the fixed params and, per axis, the
 * values of a product block of points; returns one output per point of the
 * block in grid order (first axis slowest). May be async.
 *
 * @example
 * const fn: ChunkFn<number[]> = (p, { x, y }) => (x as number[]).flatMap((a) => (y as number[]).map((b) => a * b + (p.k as number)));
 */
export type ChunkFn<Out extends ChunkOutput = ChunkOutput> = (params: Params, axes: Record<string, Value[]>, ctx: ChunkContext) => Out | Promise<Out>;

/**
 * The flat output type of a run of `F`: the TypedArray it returns, or an
 * array of its output type.
 * @example OutputOf<PointwiseChunkFn<number>> is number[]; OutputOf<ChunkFn<Float64Array>> is Float64Array
 */
export type OutputOf<F> = F extends ChunkFn<infer Out>
  ? [Out] extends [never]
    ? unknown[] | TypedArray
    : Out extends TypedArray
      ? Out
      : Out extends readonly (infer O)[]
        ? O[]
        : never
  : unknown[] | TypedArray;

/** A point-level function. */
export type PointFn<O = unknown, P extends Record<string, Value> = Record<string, Value>> = (params: Params, point: P) => O | Promise<O>;

/** A ChunkFn made by `pointwise`; it keeps the point function. */
export type PointwiseChunkFn<O = unknown> = ChunkFn<O[]> & { readonly pointFn: PointFn<O> };

/** Points of a product block: the product of its list lengths. */
export function blockCount(axisOrder: readonly string[], axes: Readonly<Record<string, readonly unknown[]>>): number {
  let n = 1;
  for (const a of axisOrder) n *= axes[a]!.length;
  return n;
}

/** An empty list that pointwise outputs are copied from (never added to). */
const NO_POINTS: unknown[] = [];

/**
 * Lifts a point function to a chunk function: it is called once per point
 * of each block, in block order.
 * @example run(cache, pointwise((p, { x, y }) => ({ sum: (x as number) + (y as number) })))
 */
export function pointwise<O, P extends Record<string, Value> = Record<string, Value>>(fn: PointFn<O, P>): PointwiseChunkFn<O> {
  if (typeof fn !== 'function') throw new InvalidOptionError(`pointwise: expected a function (got ${describeValue(fn)})`);
  const chunkFn = (params: Params, axes: Record<string, Value[]>, ctx: ChunkContext): O[] | Promise<O[]> => {
    const order = ctx?.axisOrder ?? Object.keys(axes);
    const lists = order.map((a) => axes[a]!);
    const n = blockCount(order, axes);
    // Made without literals, per call and point (see `PlainRecord`).
    const out = (NO_POINTS as Array<O | Promise<O>>).slice();
    const idx = new Uint32Array(order.length);
    let anyPromise = false;
    for (let i = 0; i < n; i++) {
      const point: Record<string, Value> = new PlainRecord();
      for (let a = 0; a < order.length; a++) point[order[a]!] = lists[a]![idx[a]!]!;
      const r = fn(params, point as P);
      if (r instanceof Promise) anyPromise = true;
      out.push(r);
      for (let a = order.length - 1; a >= 0; a--) {
        if (++idx[a]! < lists[a]!.length) break;
        idx[a] = 0;
      }
    }
    return anyPromise ? Promise.all(out) : (out as O[]);
  };
  Object.defineProperty(chunkFn, 'pointFn', { value: fn });
  Object.defineProperty(chunkFn, 'source', { value: fn });
  return chunkFn as unknown as PointwiseChunkFn<O>;
}

/**
 * Checks that `out` holds one output per point (an array or a numeric
 * TypedArray) and returns it; `where` names the chunk or job in the error.
 */
export function checkOutputs(out: unknown, count: number, where: string | (() => string)): JobOutput {
  const ok = Array.isArray(out) || (ArrayBuffer.isView(out) && !(out instanceof DataView));
  const len = ok ? (out as ArrayLike<unknown>).length : -1;
  if (!ok || len !== count) {
    throw new ExecOutputError(
      `${typeof where === 'function' ? where() : where}: the exec function returned ${ok ? `${len} outputs` : describeValue(out)} for ${count} points; ` +
        'return one output per point of the block, in grid order (first axis slowest), as an array or a numeric TypedArray',
    );
  }
  return out as JobOutput;
}

const modules = new Map<string, Promise<Record<string, unknown>>>();
const locals = new Map<number, ChunkFn>();
/** Any chunk function, whatever its output type (for parameters that accept all). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyChunkFn = ChunkFn<any>;
let nextLocal = 1;

/**
 * A task that worker threads, child processes and remote workers can load:
 * the module at `moduleUrl` (a file URL or absolute path) and its export
 * `exportName`, a `ChunkFn` (e.g. made with `pointwise`).
 *
 * Worker threads and child processes load the module themselves: a `.ts`
 * module works when the parent runs under tsx (its loader is passed on),
 * else compile it to `.js` first.
 *
 * @example
 * // tasks.js: export const simulate = pointwise((p, { x }) => heavy(x, p));
 * const task = defineTask(new URL('./tasks.js', import.meta.url), 'simulate');
 * await runParallel(cache, task, { workers: 4 });
 */
export function defineTask<F extends AnyChunkFn = ChunkFn>(moduleUrl: string | URL, exportName: string): ModuleTaskSpec<OutputOf<F>> {
  let url: string;
  if (moduleUrl instanceof URL) url = moduleUrl.href;
  else if (typeof moduleUrl === 'string' && isAbsolute(moduleUrl)) url = pathToFileURL(moduleUrl).href;
  else if (typeof moduleUrl === 'string' && /^[a-z][a-z0-9+.-]+:/i.test(moduleUrl)) url = moduleUrl;
  else throw new InvalidOptionError(`defineTask: moduleUrl must be a URL or an absolute path (got ${describeValue(moduleUrl)}); use new URL('./tasks.js', import.meta.url)`);
  if (typeof exportName !== 'string' || exportName === '') throw new InvalidOptionError(`defineTask: exportName must be a non-empty string (got ${describeValue(exportName)})`);
  if (/\.(c|m)?ts$/.test(url) && !typeScriptLoaderActive()) {
    throw new InvalidOptionError(
      `defineTask: ${url} is a TypeScript module, and this process has no TypeScript loader to pass on to worker threads and processes; ` +
        'compile the task module to .js first (tsc), or run the script under tsx (node --import tsx script.ts)',
    );
  }
  return { kind: 'module', moduleUrl: url, exportName };
}

/** True when this process runs with a TypeScript loader (tsx) that workers can inherit. */
export function typeScriptLoaderActive(): boolean {
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return args.some((a) => /\btsx\b|ts-node|--experimental-strip-types|--experimental-transform-types/.test(a)) || import.meta.url.endsWith('.ts');
}

/** @internal Registers an in-process function as a task. */
export function localTask(fn: AnyChunkFn): LocalTaskSpec {
  const id = nextLocal++;
  locals.set(id, fn);
  return { kind: 'local', id };
}

/** @internal */
export function releaseLocalTask(t: LocalTaskSpec): void {
  locals.delete(t.id);
}

async function loadModuleTask(t: ModuleTaskSpec): Promise<ChunkFn> {
  let m = modules.get(t.moduleUrl);
  if (!m) {
    m = import(t.moduleUrl) as Promise<Record<string, unknown>>;
    modules.set(t.moduleUrl, m);
    m.catch(() => modules.delete(t.moduleUrl));
  }
  let mod: Record<string, unknown>;
  try {
    mod = await m;
  } catch (e) {
    const ts = /\.(c|m)?ts$/.test(t.moduleUrl);
    throw new InvalidOptionError(
      `task module ${t.moduleUrl} could not be loaded: ${(e as Error)?.message ?? e}` +
        (ts ? '; a .ts task module needs the parent to run under tsx, or compile it to .js first' : ''),
      { cause: e },
    );
  }
  const fn = mod[t.exportName];
  if (typeof fn !== 'function') {
    throw new InvalidOptionError(`task ${t.exportName} of ${t.moduleUrl} is ${fn === undefined ? 'not exported' : `not a function (${describeValue(fn)})`}`);
  }
  return fn as ChunkFn;
}

/** Calls a chunk function on a job's block and checks its outputs. */
export async function callChunkFn(fn: ChunkFn, job: ExecJob, signal?: AbortSignal): Promise<JobOutput> {
  const ctx: ChunkContext = { axisOrder: job.axisOrder, ...(signal ? { signal } : {}), ...(job.device !== undefined ? { device: job.device } : {}) };
  const out = await fn(job.params, job.axes as Record<string, Value[]>, ctx);
  return checkOutputs(out, job.count, `exec chunk ${job.jobIndex}`);
}

/**
 * Computes one exec chunk by itself and returns one output per point of its
 * block. Worker threads and child processes use it; so can an executor in
 * another process or host that received a job.
 *
 * @example
 * const out = await executeJob(job); // job: an ExecJob received from a queue
 */
export async function executeJob(job: ExecJob, signal?: AbortSignal): Promise<JobOutput> {
  if (job === null || typeof job !== 'object' || job.task === null || typeof job.task !== 'object') {
    throw new InvalidOptionError(`executeJob: expected an ExecJob (got ${describeValue(job)})`);
  }
  if (!Array.isArray(job.axisOrder) || job.axes === null || typeof job.axes !== 'object' || job.axisOrder.some((a) => !Array.isArray(job.axes[a]))) {
    throw new InvalidOptionError('executeJob: the job has no product block (axisOrder and axes: one value list per axis)');
  }
  const count = blockCount(job.axisOrder, job.axes);
  if (count !== job.count) throw new InvalidOptionError(`executeJob: job ${job.jobIndex} says ${job.count} points but its block has ${count}`);
  switch (job.task.kind) {
    case 'module':
      return callChunkFn(await loadModuleTask(job.task), job, signal);
    case 'local': {
      const fn = locals.get(job.task.id);
      if (!fn) throw new InvalidOptionError('this job names an in-process task of another process; use defineTask for tasks that travel');
      return callChunkFn(fn, job, signal);
    }
    case 'gpu': {
      const { runGpuJob } = await import('../gpu/kernel.js');
      return checkOutputs(await runGpuJob(job), job.count, `exec chunk ${job.jobIndex}`);
    }
    default:
      throw new InvalidOptionError(`executeJob: unknown task kind ${describeValue((job.task as { kind: unknown }).kind)}`);
  }
}
