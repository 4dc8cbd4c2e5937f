/**
 * Type-level tests (checked by `tsc -p tsconfig.json --noEmit`, never run):
 * the public types of reading, invalidating, finding and managing caches.
 * A wrong type is a compile error here.
 */
import { expectTypeOf } from 'expect-type';
import {
  ChunkCache, autoLoad, gc, parseDuration, read, stats,
  type CacheInfo, type CompatibleInfo, type GcOptions, type GcResult, type InvalidateResult,
  type ReadOutput, type ReadResult, type TypedArray,
} from '../ts/index.js';

/** Never called: the body only has to type-check. */
export async function typeChecks(cache: ChunkCache): Promise<void> {
  // read: the output type follows the type argument.
  expectTypeOf(await read(cache)).toEqualTypeOf<ReadResult<unknown>>();
  expectTypeOf((await read(cache)).output).toEqualTypeOf<unknown[] | TypedArray>();
  expectTypeOf((await read<number>(cache)).output).toEqualTypeOf<Array<number | undefined>>();
  expectTypeOf((await read<{ loss: number }>(cache)).output).toEqualTypeOf<Array<{ loss: number } | undefined>>();
  expectTypeOf((await read<Float64Array>(cache)).output).toEqualTypeOf<Float64Array>();
  expectTypeOf((await read(cache)).present).toEqualTypeOf<Uint8Array>();
  expectTypeOf((await read(cache)).missingPoints).toEqualTypeOf<number>();
  expectTypeOf<ReadOutput<bigint>>().toEqualTypeOf<Array<bigint | undefined>>();
  expectTypeOf(read).parameter(0).toEqualTypeOf<ChunkCache>();

  // invalidate: { points } and the record counts.
  expectTypeOf(cache.invalidate()).toEqualTypeOf<InvalidateResult>();
  expectTypeOf(cache.invalidate().points).toEqualTypeOf<number>();
  expectTypeOf(cache.select({ values: { x: [1, 2] } }).invalidate()).toExtend<{ points: number }>();

  // The root is optional wherever $CHUNK_MEMO_ROOT may supply it.
  expectTypeOf(ChunkCache.open({ axisValues: { x: [1, 2] } })).toEqualTypeOf<ChunkCache>();
  expectTypeOf(ChunkCache.discover()).toEqualTypeOf<CacheInfo[]>();
  expectTypeOf(ChunkCache.discover('.chunk_memo')).toEqualTypeOf<CacheInfo[]>();
  expectTypeOf(ChunkCache.findCompatible({ params: { a: 1 } })).toEqualTypeOf<CompatibleInfo[]>();
  expectTypeOf(ChunkCache.findCompatible('.chunk_memo', { params: { a: 1 } })).toEqualTypeOf<CompatibleInfo[]>();
  expectTypeOf(ChunkCache.findOverlapping({ axisValues: { x: [1] } })).items.toExtend<CacheInfo>();
  expectTypeOf(ChunkCache.load('0123abcd')).toEqualTypeOf<ChunkCache>();
  expectTypeOf(ChunkCache.load('.chunk_memo', '0123abcd', { verbose: 1 })).toEqualTypeOf<ChunkCache>();
  expectTypeOf(autoLoad({ params: { a: 1 } })).toEqualTypeOf<ChunkCache>();
  expectTypeOf(stats).parameters.toEqualTypeOf<[root?: string, where?: string]>();

  // gc: a budget, an age limit or both.
  expectTypeOf<GcOptions>().toExtend<{ maxBytes?: number; maxAge?: number | string; dryRun?: boolean }>();
  expectTypeOf(gc('.chunk_memo', { maxAge: '30d' })).toEqualTypeOf<GcResult>();
  expectTypeOf<GcResult['maxAge']>().toEqualTypeOf<number | null>();
  expectTypeOf<GcResult['maxBytes']>().toEqualTypeOf<number | null>();
  expectTypeOf(parseDuration('12h')).toEqualTypeOf<number>();

  // Wrong uses do not compile.
  // @ts-expect-error a cache is required
  await read();
  // @ts-expect-error invalidate takes no arguments
  cache.invalidate({ all: true });
  // @ts-expect-error maxAge is a number of ms or a duration string
  gc('.chunk_memo', { maxAge: true });
}
