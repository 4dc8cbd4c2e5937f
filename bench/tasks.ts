/** Point functions shared by the benchmarks (worker threads load this module). */
import { defineTask, pointwise, type Params, type Value } from '../ts/index.js';

/** About 1 ms of floating-point arithmetic (calibrated by BUSY_ITERS). */
export function busyWork(a: number, b: number, iters: number): number {
  let x = a + b * 1e-3;
  for (let i = 0; i < iters; i++) x = Math.sin(x) * 0.5 + 1e-7 * i;
  return x;
}

export const busy = pointwise((p: Params, pt: Record<string, Value>) => busyWork(pt.a as number, pt.b as number, p.iters as number));

export const trivial = pointwise((_p: Params, pt: Record<string, Value>) => (pt.a as number) + (pt.b as number));

/** The peers' workload: a small object per point. */
export function objects(_p: Params, axes: Record<string, Value[]>): unknown[] {
  const a = axes.a as number[];
  const b = axes.b as number[];
  const out = new Array(a.length * b.length);
  let k = 0;
  for (const i of a) for (const j of b) out[k++] = { a: i, b: j, v: i * 0.5 + j };
  return out;
}

/** The typed variant: one float per point. */
export function floats(_p: Params, axes: Record<string, Value[]>): Float64Array {
  const a = axes.a as number[];
  const b = axes.b as number[];
  const out = new Float64Array(a.length * b.length);
  let k = 0;
  for (const i of a) for (const j of b) out[k++] = i * 0.5 + j;
  return out;
}

/** A trivial chunk function over axes a, b. */
export function trivialChunk(_p: Params, axes: Record<string, Value[]>): Float64Array {
  const a = axes.a as number[];
  const b = axes.b as number[];
  const out = new Float64Array(a.length * b.length);
  let k = 0;
  for (const i of a) for (const j of b) out[k++] = i + j;
  return out;
}

/** A task of this module by export name. */
export function localTaskFor(name: string) {
  return defineTask(new URL('./tasks.js', import.meta.url), name);
}
