/** The kernel of bench/gpu.ts as plain JavaScript, as a task worker threads can load (`defineTask`). */
import type { Params, Value } from '../ts/value.js';

/** Iterations of the kernel's inner loop. */
export const LOOP = 32;

/** The kernel's arithmetic over a product block x × y (x slowest), in float32 like the kernel's output. */
export function plainLoop(xs: readonly number[], ys: readonly number[], scale: number): Float32Array {
  const out = new Float32Array(xs.length * ys.length);
  let p = 0;
  for (const x of xs) {
    for (const y of ys) {
      let acc = 0;
      for (let k = 0; k < LOOP; k++) acc += Math.sin(x * k + y) * Math.cos(y * k - x);
      out[p++] = acc * scale;
    }
  }
  return out;
}

/** A chunk function (params, axes of a product block) for `defineTask`. */
export function jsBlock(params: Params, axes: Record<string, Value[]>): Float32Array {
  return plainLoop(axes.x as number[], axes.y as number[], Number(params.scale));
}
