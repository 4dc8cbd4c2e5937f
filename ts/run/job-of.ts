/** The exec job of one product block of a memo chunk (what an executor is sent), and what its call returns. */
import { createHash } from 'node:crypto';
import type { ChunkGeo } from '../cache/geometry.js';
import type { ExecJob, JobOutput } from '../task/job.js';
import type { Value } from '../value.js';
import type { EngineSpec } from './spec.js';

/**
 * The job computing the block `block` (per axis, positions in the chunk's
 * selection) of the chunk `geo`: the points' axis values, and with
 * `spec.jobKeys` a key that the same cache and points give in every run.
 */
export function jobOf(spec: EngineSpec, geo: ChunkGeo, block: readonly ArrayLike<number>[], count: number, jobIndex: number): ExecJob {
  const view = spec.view;
  const core = view._core;
  const axes: Record<string, Value[]> = {};
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
    const vals = new Array<Value>(n);
    for (let k = 0; k < n; k++) vals[k] = all[start + sel[pos[k]!]!]!;
    axes[a] = vals;
  }
  let key = '';
  if (spec.jobKeys) {
    const h = createHash('sha256');
    h.update(core.idBytes);
    order.forEach((a, k) => h.update(`\0${a}\0`).update(globals![k]!));
    key = h.digest('hex').slice(0, 40);
  }
  return {
    task: spec.task, params: view.params, axisOrder: view.axisOrder, axes, count, jobIndex, key,
    ...(spec.device !== undefined ? { device: spec.device } : {}),
  };
}

/** Whether an exec call's result is a promise (or any thenable) rather than its outputs. */
export const isThenable = (x: unknown): x is Promise<JobOutput> => typeof (x as { then?: unknown } | null)?.then === 'function';
