/**
 * `read(cache)`: the stored outputs of a cache or view in grid order, without
 * a function; nothing is computed or written.
 */
import type { ChunkCache } from '../cache/cache.js';
import { InvalidOptionError } from '../errors/index.js';
import { beginRun } from '../run/lifecycle.js';
import { ReadBatch } from '../run/chunk-work.js';
import { KIND_ITEMS, typedCtor } from '../run/payload.js';
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

/** @internal One chunk's stored points, as `storedChunks` yields them. */
export interface StoredChunk {
  /** Per axis of the view (grid order): the chunk's requested values. */
  readonly axisValues: Record<string, unknown[]>;
  /** Axis names of `axisValues`, grid order. */
  readonly axisOrder: readonly string[];
  /** Per requested point of the chunk (grid order inside the chunk): 1 when stored. */
  readonly present: Uint8Array;
  /** Record kind (0 items, else a dtype). */
  readonly kind: number;
  /** Outputs of the present points, in order. */
  readonly values: ArrayLike<unknown>;
  readonly stored: number;
  /** Positions of the chunk's points in the view's flat output. */
  readonly outIndex: Uint32Array;
}

/** Chunks, and their points, read in one native call at most. */
const READ_CHUNKS = 1024;
const READ_POINTS = 1 << 16;

/** The plan geometry of a view (what `beginRun` gives). */
type PlanGeometry = ReturnType<typeof beginRun>['geometry'];

/**
 * The chunks of a view that hold stored points, read a batch at a time (one
 * native call each): `batches` yields each batch with its chunks
 * (ascending), to be taken in order (`ReadBatch.has`, `ReadBatch.take`).
 * Iterate it to the end or return it: the plan's run hooks end with it.
 */
function storedBatches(cache: ChunkCache, where: string, corrupt: string[]): { G: PlanGeometry; batches: Generator<{ list: number[]; batch: ReadBatch }, void> } {
  const core = cache._check();
  const run = beginRun(cache, where);
  const { plan, resolved, geometry: G } = run;
  corrupt.push(...resolved.corrupt);
  function* batches(): Generator<{ list: number[]; batch: ReadBatch }, void> {
    try {
      for (let i = 0; i < G.chunkCount; ) {
        const list: number[] = [];
        for (let pts = 0; i < G.chunkCount && list.length < READ_CHUNKS && pts < READ_POINTS; i++) {
          if (resolved.available[i] === 0) continue;
          list.push(i);
          pts += G.chunkPoints(i);
        }
        if (list.length === 0) continue;
        const ids = Uint32Array.from(list);
        const rd = plan.readMany(core.store, core.idBytes, ids);
        const batch = new ReadBatch(ids, rd, rd.data, G);
        if (batch.corrupt.length) corrupt.push(...batch.corrupt);
        yield { list, batch };
      }
    } finally {
      run.end();
    }
  }
  return { G, batches: batches() };
}

/**
 * @internal The stored points of each chunk of a view that holds any (chunk
 * order; inside a chunk, grid order), read a batch of chunks at a time (one
 * native call each). Iterate `chunks` (the plan's run hooks end with the
 * iteration).
 */
export function storedChunks(cache: ChunkCache, where: string, corrupt: string[] = []): { total: number; chunks: Generator<StoredChunk, void> } {
  const core = cache._check();
  const visible = core.axisOrder.map((a) => !cache._pinned.has(a));
  const order = core.axisOrder.filter((_, k) => visible[k]);
  const { G, batches } = storedBatches(cache, where, corrupt);
  const stored = (i: number, kind: number, present: Uint8Array | null, n: number, values: ArrayLike<unknown>): StoredChunk => {
    let axisValues: Record<string, unknown[]> | undefined;
    return {
      get axisValues() {
        if (!axisValues) {
          const geo = G.chunk(i);
          const av: Record<string, unknown[]> = {};
          core.axisOrder.forEach((a, k) => {
            if (!visible[k]) return;
            const all = core.axisValues[a]!;
            av[a] = Array.from(geo.sel[k]!, (s) => all[geo.start[k]! + s]);
          });
          axisValues = av;
        }
        return axisValues;
      },
      axisOrder: order,
      present: present ?? new Uint8Array(G.chunkPoints(i)).fill(1),
      kind,
      values,
      stored: n,
      get outIndex() {
        return G.outIndices(G.chunk(i));
      },
    };
  };
  function* chunks(): Generator<StoredChunk, void> {
    try {
      for (const { list, batch } of batches) {
        for (const j of list) {
          batch.has(j);
          let c: StoredChunk | null = null;
          batch.take((kind, present, n, values) => (c = stored(j, kind, present, n, values)));
          if (c) yield c;
        }
      }
    } finally {
      batches.return();
    }
  }
  return { total: G.total, chunks: chunks() };
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
  const corrupt: string[] = [];
  const { G, batches } = storedBatches(cache, 'read', corrupt);
  const total = G.total;
  const present = new Uint8Array(total);
  let output: unknown[] | TypedArray | null = null;
  let kind = -1;
  let stored = 0;
  let i = 0;
  // Places chunk i's stored points (no object per chunk).
  const place = (k: number, has: Uint8Array | null, n: number, values: ArrayLike<unknown>): void => {
    if (output === null) {
      kind = k;
      if (kind === KIND_ITEMS) output = new Array<unknown>(total).fill(undefined);
      else {
        const C = typedCtor(kind);
        output = new C(total);
        if (FLOAT_KINDS.has(C.name)) (output as Float64Array).fill(NaN);
      }
    } else if (kind !== k && kind !== KIND_ITEMS) {
      // Chunks of different dtypes (or items and typed): a plain array.
      const typed = output as TypedArray;
      const arr = new Array<unknown>(total);
      for (let q = 0; q < total; q++) arr[q] = present[q] ? typed[q] : undefined;
      output = arr;
      kind = KIND_ITEMS;
    }
    const dst = output as unknown[];
    const points = G.chunkPoints(i);
    const at = G.contiguousStart(i);
    // The chunk's points lie together in the output (no index list), or where its index list says.
    const idx = at >= 0 ? null : G.outIndices(G.chunk(i));
    let w = 0;
    for (let j = 0; j < points; j++) {
      if (has && !has[j]) continue;
      const to = idx ? idx[j]! : at + j;
      dst[to] = values[w++];
      present[to] = 1;
    }
    stored += n;
  };
  for (const { list, batch } of batches) {
    for (const j of list) {
      batch.has(j);
      i = j;
      batch.take(place);
    }
  }
  return {
    output: (output ?? new Array<unknown>(total).fill(undefined)) as ReadOutput<O>,
    present,
    missingPoints: total - stored,
    corruptRecords: corrupt,
  };
}
