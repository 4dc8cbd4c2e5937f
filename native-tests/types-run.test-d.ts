/**
 * Type-level tests of the runners (checked by `tsc -p tsconfig.json
 * --noEmit` in `npm test`, never run): outputs are typed by the function.
 */
import { expectTypeOf } from 'expect-type';
import {
  defineTask, gpuKernel, iterate, memoize, pointwise, run, runParallel,
  type ChunkCache, type ChunkFn, type OutputOf, type TypedArray,
} from '../ts/index.js';

/** Never called: the body only has to type-check. */
export async function runnerTypes(cache: ChunkCache): Promise<void> {
  // pointwise keeps the point function's output type.
  expectTypeOf((await run(cache, pointwise(() => 1))).output).toEqualTypeOf<number[]>();
  expectTypeOf((await run(cache, pointwise((_p, { x }) => ({ x: x as number, ok: true })))).output).toEqualTypeOf<Array<{ x: number; ok: boolean }>>();
  // A typed point shape is accepted.
  expectTypeOf(pointwise((_p, pt: { x: number }) => pt.x * 2)).toExtend<ChunkFn<number[]>>();
  // A chunk function returning a TypedArray gives that TypedArray.
  const halves = (_p: unknown, axes: Record<string, unknown[]>) => new Float64Array(axes.x!.length);
  expectTypeOf((await run(cache, halves)).output).toEqualTypeOf<Float64Array<ArrayBuffer>>();
  // An untyped ChunkFn gives the general type; collate decides the result.
  const any: ChunkFn = () => [];
  expectTypeOf((await run(cache, any)).output).toEqualTypeOf<unknown[] | TypedArray>();
  expectTypeOf((await run(cache, pointwise(() => 2), { collate: (o) => o.length })).output).toEqualTypeOf<number>();
  // A function that only throws (a read-back) still has the general type.
  expectTypeOf((await run(cache, () => { throw new Error('x'); })).output).toEqualTypeOf<unknown[] | TypedArray>();
  expectTypeOf<OutputOf<ChunkFn<string[]>>>().toEqualTypeOf<string[]>();

  // iterate and memoize follow the same function type.
  for await (const c of iterate(cache, pointwise(() => 'a'))) expectTypeOf(c.output).toEqualTypeOf<string[]>();
  const m = memoize(cache, pointwise(() => 3n));
  expectTypeOf((await m({ x: 1 })).output).toEqualTypeOf<bigint[]>();

  // runParallel: a function, defineTask<typeof fn>, a gpu kernel.
  expectTypeOf((await runParallel(cache, pointwise(() => 1))).output).toEqualTypeOf<number[] | undefined>();
  const task = defineTask<typeof halves>(new URL('file:///tasks.js'), 'halves');
  expectTypeOf((await runParallel(cache, task, { workers: 2 })).output).toEqualTypeOf<Float64Array<ArrayBuffer> | undefined>();
  expectTypeOf((await runParallel(cache, defineTask('/abs/tasks.js', 'f'))).output).toEqualTypeOf<unknown[] | TypedArray | undefined>();
  expectTypeOf((await runParallel(cache, gpuKernel(function (this: { thread: { x: number } }) { return this.thread.x; }))).output).toEqualTypeOf<Float32Array | undefined>();
  // A kernel's `this` is typed from the context: the thread index and the constants.
  gpuKernel<{ scale: number }>(function (x: Float32Array) {
    expectTypeOf(this.thread.x).toEqualTypeOf<number>();
    expectTypeOf(this.constants.scale).toEqualTypeOf<number>();
    return x[this.thread.x]! * this.constants.scale;
  });
  // @ts-expect-error a kernel returns one number per point
  gpuKernel(function () { return 'x'; });
  expectTypeOf((await runParallel(cache, task, { collate: (o) => o.length })).output).toEqualTypeOf<number | undefined>();

  // Wrong uses do not compile.
  // @ts-expect-error an unknown option
  await run(cache, any, { colate: () => 1 });
  // @ts-expect-error processes takes a count or devices
  await runParallel(cache, task, { processes: 'two' });
}
