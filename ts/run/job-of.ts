/** The exec job of one product block of a memo chunk (what an executor is sent), and what its call returns. */
import { createHash } from 'node:crypto';
import type { ChunkGeo } from '../cache/geometry.js';
import type { ExecJob, JobOutput } from '../task/job.js';
import type { Value } from '../value.js';
import type { EngineSpec } from './spec.js';
import { keepShape, PlainRecord } from '../shapes.js';

const NO_VALUES: Value[] = [];

/**
 * The job computing the block `block` (per axis, positions in the chunk's
 * selection) of the chunk `geo`: the points' axis values, and with
 * `spec.jobKeys` a key that the same cache and points give in every run.
 */
export function jobOf(spec: EngineSpec, geo: ChunkGeo, block: readonly ArrayLike<number>[], count: number, jobIndex: number): ExecJob {
  const view = spec.view;
  const core = view._core;
  const axes: Record<string, Value[]> = new PlainRecord();
  // Global value index of each block position per axis (kept for the job key).
  const globals: Uint32Array[] | null = spec.jobKeys ? [] : null;
  const order = core.axisOrder;
  for (let k = 0; k < order.length; k++) {
    const a = order[k]!;
    const sel = geo.sel[k]!;
    const start = geo.start[k]!;
    const pos = block[k]!;
    if (globals) {
      const g = new Uint32Array(pos.length);
      for (let j = 0; j < pos.length; j++) g[j] = start + sel[pos[j]!]!;
      globals.push(g);
    }
    if (view._pinned.has(a)) continue;
    const all = core.axisValues[a]!;
    const n = pos.length;
    const s0 = sel[pos[0]!]!;
    let j = 1;
    while (j < n && sel[pos[j]!] === s0 + j) j++;
    if (j === n) {
      // Consecutive values of the axis: one copy.
      axes[a] = all.slice(start + s0, start + s0 + n);
      continue;
    }
    // Copied from a shared empty list, not made with `new Array(n)` (see `PlainRecord`).
    const vals = NO_VALUES.slice();
    for (let k = 0; k < n; k++) vals.push(all[start + sel[pos[k]!]!]!);
    axes[a] = vals;
  }
  let key = '';
  if (spec.jobKeys) {
    const h = createHash('sha256');
    h.update(core.idBytes);
    order.forEach((a, k) => h.update(`\0${a}\0`).update(globals![k]!));
    key = h.digest('hex').slice(0, 40);
  }
  return new JobRecord(spec.task, view.params, view.axisOrder, axes, count, jobIndex, key, spec.device);
}

/**
 * Axes records of the axis names of recent runs, kept: their maps (which
 * depend on the names) would die with each run otherwise, and with them the
 * optimized code of functions reading a job's axes (see ts/shapes.ts).
 */
const axesShapes = new Map<string, object>();

/** Keeps an axes record of the axis names `spec`'s jobs carry (once per run). */
export function keepAxesShape(spec: EngineSpec): void {
  const names = spec.view._core.axisOrder.filter((a) => !spec.view._pinned.has(a));
  const key = names.join('\0');
  if (axesShapes.has(key)) return;
  const axes: Record<string, unknown> = new PlainRecord();
  for (const a of names) axes[a] = [];
  if (axesShapes.size >= 64) axesShapes.delete(axesShapes.keys().next().value!);
  axesShapes.set(key, axes);
}

/**
 * An ExecJob built with `new` (see `PlainRecord` in ts/shapes.ts), a plain
 * object all the same: its prototype is Object.prototype, and it has
 * `device` only when one is set.
 */
const JobRecord = function JobRecord(
  this: Record<string, unknown>,
  task: ExecJob['task'], params: ExecJob['params'], axisOrder: ExecJob['axisOrder'], axes: ExecJob['axes'], count: number, jobIndex: number, key: string, device: string | undefined,
) {
  this.task = task;
  this.params = params;
  this.axisOrder = axisOrder;
  this.axes = axes;
  this.count = count;
  this.jobIndex = jobIndex;
  this.key = key;
  if (device !== undefined) this.device = device;
} as unknown as new (
  task: ExecJob['task'], params: ExecJob['params'], axisOrder: ExecJob['axisOrder'], axes: ExecJob['axes'], count: number, jobIndex: number, key: string, device: string | undefined,
) => ExecJob;
JobRecord.prototype = Object.prototype;

/** Whether an exec call's result is a promise (or any thenable) rather than its outputs. */
export const isThenable = (x: unknown): x is Promise<JobOutput> => typeof (x as { then?: unknown } | null)?.then === 'function';
keepShape(new JobRecord({ kind: 'local', id: 0 }, {}, [], new PlainRecord(), 0, 0, '', undefined));
