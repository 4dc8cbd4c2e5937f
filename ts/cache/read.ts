/**
 * `read(cache)`: the stored outputs of a cache or view in grid order, without
 * a function; nothing is computed or written.
 */
import type { ChunkCache } from './cache.js';
import { InvalidOptionError } from '../errors/index.js';
import { afterRun } from '../manage/hooks.js';
import { planRun } from '../run/geometry.js';
import { decodeOutputs, KIND_ITEMS, typedCtor } from '../run/payload.js';
import type { TypedArray } from '../value.js';

/**
 * Type of `read`'s output: `read<number>(c)` gives `(number | undefined)[]`,
 * `read<Float64Array>(c)` a `Float64Array`, plain `read(c)` either.
 */
export type ReadOutput<O = unknown> = unknown extends O ? unknown[] | TypedArray : O extends TypedArray ? O : Array<O | undefined>;

/** What `read` returns. */
export interface ReadResult<O = unknown> {
  /**
   * Outputs of the view's points in grid order (first axis slowest).
   * Missing points are `undefined`; in a TypedArray output they are `NaN`
   * (float arrays) or `0` (integer arrays): `present` tells.
   */
  readonly output: ReadOutput<O>;
  /** One byte per point, 1 where the point's output is stored. */
  readonly present: Uint8Array;
  /** Points of the view without a stored output. */
  readonly missingPoints: number;
  /** Records that failed verification (their points count as missing). */
  readonly corruptRecords: string[];
}

const FLOAT_KINDS = new Set(['Float32Array', 'Float64Array']);

/** A typed output becomes an array (`undefined` where missing). */
function toArray(out: TypedArray, present: Uint8Array): unknown[] {
  const arr: unknown[] = new Array(out.length);
  for (let i = 0; i < out.length; i++) arr[i] = present[i] ? out[i] : undefined;
  return arr;
}

/**
 * Reads the stored outputs of a cache or view in grid order, without a
 * function: nothing is computed or written. A TypedArray output comes back
 * typed when every stored chunk of the view holds the same dtype.
 *
 * @example
 * const { output, present, missingPoints } = await read(cache.select({ values: { x: [1, 2] } }));
 */
export async function read<O = unknown>(cache: ChunkCache): Promise<ReadResult<O>> {
  if (!cache || typeof cache !== 'object' || typeof (cache as { _check?: unknown })._check !== 'function') {
    throw new InvalidOptionError('read: expected a cache (from ChunkCache.open, load or autoLoad, or a view of one)');
  }
  const core = cache._check();
  const { plan, resolved, geometry: G } = planRun(cache, 'read');
  try {
    const corrupt = [...resolved.corrupt];
    const total = G.total;
    const present = new Uint8Array(total);
    let output: unknown[] | TypedArray | null = null;
    let kind = -1;
    let stored = 0;
    for (let i = 0; i < G.chunkCount; i++) {
      if (resolved.available[i] === 0) continue;
      const rd = plan.read(core.store, core.idBytes, i);
      if (rd.corrupt.length) corrupt.push(...rd.corrupt);
      let n = 0;
      for (let j = 0; j < rd.present.length; j++) n += rd.present[j]!;
      if (n === 0) continue;
      const vals = decodeOutputs(rd.kind, rd.data, n, rd.dicts, rd.pointDicts, rd.offsets);
      if (output === null) {
        kind = rd.kind;
        if (kind === KIND_ITEMS) output = new Array<unknown>(total).fill(undefined);
        else {
          const C = typedCtor(kind);
          output = new C(total);
          if (FLOAT_KINDS.has(C.name)) (output as Float64Array).fill(NaN);
        }
      } else if (kind !== rd.kind && kind !== KIND_ITEMS) {
        // Chunks of different dtypes (or items and typed): a plain array.
        output = toArray(output as TypedArray, present);
        kind = KIND_ITEMS;
      }
      const idx = G.outIndices(G.chunk(i));
      const dst = output as unknown[];
      let w = 0;
      for (let j = 0; j < idx.length; j++) {
        if (!rd.present[j]) continue;
        const at = idx[j]!;
        dst[at] = vals[w++];
        present[at] = 1;
      }
      stored += n;
    }
    return {
      output: (output ?? new Array<unknown>(total).fill(undefined)) as ReadOutput<O>,
      present,
      missingPoints: total - stored,
      corruptRecords: corrupt,
    };
  } finally {
    afterRun(cache);
  }
}
