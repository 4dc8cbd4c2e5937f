/**
 * The chunk assembler every runner shares: one memo chunk's outputs in
 * request order, gathered from the store (read and decoded), from exec
 * blocks computed here (placed), and from points other processes stored
 * (read when they land); and the encoding of what this run computed, for
 * the write that stores it.
 */
import type { BindingPlan, BindingStore } from '../binding/native.js';
import { GEO_EXEMPLAR, GEOMETRY_EXEMPLAR, type ChunkGeo, type PlanGeometry } from '../cache/geometry.js';
import { isAllOf } from '../cache/blocks.js';
import type { Diagnostics } from './diagnostics.js';
import type { PendingWrite } from './batch.js';
import type { ChunkDone, OutputSink } from './spec.js';
import { copyOutputs, decodeItemsInto, decodeOutputs, kindOf, KIND_ITEMS, typedCtor, typedView } from './payload.js';
import type { JobOutput } from '../task/job.js';
import type { TypedArray } from '../value.js';
import { keepShape } from '../shapes.js';

/** Computed outputs of some of a chunk's points (request indices, block order). Objects made per chunk are made with `new` (see `PlainRecord` in ts/shapes.ts). */
class Part {
  constructor(
    readonly points: Uint32Array,
    readonly out: JobOutput,
  ) {}
}

/** What a chunk computed, for its write (see `PendingWrite`). */
class Write implements PendingWrite {
  constructor(
    readonly chunk: number,
    readonly kind: number,
    readonly points: Uint32Array,
    readonly vals: ArrayLike<unknown>,
    readonly whole: boolean,
  ) {}
}

/** A finished chunk as the engine hands it out. */
export class Finished implements ChunkDone {
  constructor(
    readonly index: number,
    readonly geo: ChunkGeo,
    readonly output: unknown[] | TypedArray | null,
    readonly cachedPoints: number,
    readonly executedPoints: number,
    private readonly G: PlanGeometry,
  ) {}

  outIndex(): Uint32Array {
    return this.G.outIndices(this.geo);
  }

  outRows(): { starts: Uint32Array; len: number } {
    return this.G.outRows(this.geo);
  }
}

/** No computed blocks yet (shared, never added to): a chunk's own list is made with its first block, not with the chunk. */
const NO_PARTS: Part[] = [];
const ONE_ROW = Uint32Array.of(0);

export class ChunkWork {
  /** Outputs in request order, once more than one part is known (else `single`). */
  private out: unknown[] | TypedArray | null = null;
  /** The chunk's outputs when one read or one computed block gave all of them, in request order. */
  private single: unknown[] | TypedArray | null = null;
  /** Record kind so far: a dtype while every part agrees, else items; -1 none yet. */
  kind = -1;
  /** Points stored when the run planned this chunk. */
  cached = 0;
  /** Points computed by this run. */
  executed = 0;
  /** Points other processes stored while this run held no claim on them. */
  landed = 0;
  /** Exec blocks queued for a claim or an executor. */
  pending = 0;
  /** Exec blocks running. */
  inflight = 0;
  /** Points other processes hold claims on (made when a claim finds some). */
  held: Set<number> | null = null;
  /** Neighbours in the run's list of open chunks (see OpenChunks). */
  prevOpen: ChunkWork | null = null;
  nextOpen: ChunkWork | null = null;
  /** Computed blocks not yet written: request indices (block order) and outputs. */
  private parts: Part[] = NO_PARTS;
  private partPoints = 0;

  constructor(
    readonly i: number,
    /** The plan's geometry (this chunk's is built from it when first needed). */
    private readonly G: PlanGeometry,
    /** Requested points of the chunk (all of them, also with `needed`). */
    readonly points: number,
    /** Only these request indices (sorted, unique); null: all. */
    readonly needed: Uint32Array | null,
    private readonly keepOutputs: boolean,
    /** The run's flat output and a chunk's rows in it: a chunk computed in one block is placed there at once. */
    private readonly into: OutputSink | null = null,
  ) {}

  /**
   * The chunk's geometry, built when first needed (to compute, place or
   * hand out the chunk): a chunk waits for its claim without it, so the
   * objects of the chunks open at once stay few and short-lived.
   */
  get geo(): ChunkGeo {
    return (this.geometry ??= this.G.chunk(this.i));
  }

  private geometry: ChunkGeo | null = null;

  /** Selected positions per axis (the chunk's request shape; shared, read only). */
  get dims(): readonly number[] {
    return this.G.chunkDims(this.i);
  }

  /** True when nothing is queued or running for this chunk. */
  get idle(): boolean {
    return this.pending === 0 && this.inflight === 0;
  }

  /** True when the exec block being placed is the chunk's last one (its write is encoded right after). */
  private get idleAfter(): boolean {
    return this.pending === 0 && this.inflight <= 1;
  }

  /** Points computed and not yet written. */
  get unwritten(): number {
    return this.partPoints;
  }

  /** Reads the stored requested points into the outputs (keeping what is already there). */
  readStored(plan: BindingPlan, store: BindingStore, cacheId: Buffer, diag: Diagnostics): void {
    const tr = performance.now();
    const rd = plan.read(store, cacheId, this.i);
    if (rd.corrupt.length) diag.corruptRecords.push(...rd.corrupt);
    let present = 0;
    for (let j = 0; j < rd.present.length; j++) present += rd.present[j]!;
    if (present > 0) this.applyRead(rd.kind, rd.present, present, decodeOutputs(rd.kind, rd.data, present, rd.dicts, rd.pointDicts, rd.offsets));
    diag.timings.readMs += performance.now() - tr;
  }

  /** All points were stored and their outputs went straight into the run's flat output (a gathered read). */
  private placed = false;

  /** Takes every point from a read that wrote them straight into the run's output (see OutputSink). */
  applyGathered(kind: number): void {
    this.kind = kind;
    this.placed = true;
  }

  /** Takes `count` stored points (`present`: one byte per requested point; null when every one was read) with their outputs `vals`. */
  applyRead(kind: number, present: Uint8Array | null, count: number, vals: ArrayLike<unknown>): void {
    if (count === 0) return;
    this.kind = this.kind === -1 || this.kind === kind ? kind : KIND_ITEMS;
    if (count === this.points && this.out === null && this.single === null) this.single = vals as unknown[] | TypedArray;
    else if (this.keepOutputs) {
      const arr = this.merged();
      let w = 0;
      const n = present ? present.length : count;
      for (let j = 0; j < n; j++) {
        if (present && !present[j]) continue;
        const v = vals[w++];
        if (arr[j] === undefined) arr[j] = v;
      }
    }
  }

  /**
   * Takes the outputs of an exec block whose points are `points` (request
   * indices, block order). Unless `fresh` (new memory nobody else holds),
   * typed outputs and arrays are not kept as they are: a function may reuse
   * its output buffer on its next call, so they go to the run's flat output
   * at once or are copied.
   */
  place(points: Uint32Array, out: JobOutput, fresh = false): void {
    // Whether the outputs round-trip is checked as the chunk's write encodes them (see encodeInto).
    const kind = kindOf(out);
    const n = points.length;
    const whole = this.out === null && this.single === null && !this.placed && this.parts.length === 0 && isAllOf(points, this.points);
    // A chunk computed in one block goes straight to the run's flat output;
    // its write keeps what the output hands back (no copy of typed rows that lie together).
    const own = whole && this.keepOutputs && this.into ? this.into.placeChunk(out as ArrayLike<unknown>, this.G.outRows(this.geo)) : null;
    if (own) {
      this.placed = true;
      out = own as JobOutput;
    } else if (!fresh && (kind !== KIND_ITEMS || this.keepOutputs || !this.idleAfter)) {
      // Kept past this exec call (typed parts are written at the batch's commit): a copy.
      out = copyOutputs(out as unknown[] | TypedArray) as JobOutput;
    }
    this.kind = this.kind === -1 || this.kind === kind ? kind : KIND_ITEMS;
    if (this.parts === NO_PARTS) this.parts = NO_PARTS.slice();
    this.parts.push(new Part(points, out));
    this.partPoints += n;
    this.executed += n;
    if (!this.keepOutputs || own) return;
    // One block with every point, in request order: its outputs are the chunk's.
    if (whole) {
      this.single = out as unknown[] | TypedArray;
      return;
    }
    const arr = this.merged();
    for (let j = 0; j < n; j++) arr[points[j]!] = (out as ArrayLike<unknown>)[j];
  }

  /** What this run computed and has not written yet (null: nothing); the batcher encodes it. */
  takeWrite(): PendingWrite | null {
    if (this.parts.length === 0) return null;
    const kind = this.kind === -1 ? KIND_ITEMS : this.kind;
    let points: Uint32Array;
    let vals: ArrayLike<unknown>;
    if (this.parts.length === 1 && (kind === KIND_ITEMS || kindOf(this.parts[0]!.out) === kind)) {
      points = this.parts[0]!.points;
      vals = this.parts[0]!.out as ArrayLike<unknown>;
    } else {
      points = new Uint32Array(this.partPoints);
      const all: unknown[] = new Array(this.partPoints);
      let w = 0;
      for (const p of this.parts) {
        points.set(p.points, w);
        for (let j = 0; j < p.points.length; j++) all[w + j] = (p.out as ArrayLike<unknown>)[j];
        w += p.points.length;
      }
      vals = kind !== KIND_ITEMS ? (typedCtor(kind) as unknown as { from(v: unknown[]): TypedArray }).from(all) : all;
    }
    this.parts = NO_PARTS;
    this.partPoints = 0;
    return new Write(this.i, kind, points, vals, isAllOf(points, this.points));
  }

  /** The chunk's outputs in request order: typed when every part has one dtype. */
  output(): unknown[] | TypedArray | null {
    if (!this.keepOutputs || this.placed) return null;
    const out = this.out ?? this.single;
    if (out && !ArrayBuffer.isView(out) && this.kind > KIND_ITEMS) {
      const ta = new (typedCtor(this.kind))(this.points);
      for (let j = 0; j < out.length; j++) if (out[j] !== undefined) (ta as unknown as unknown[])[j] = out[j];
      return ta;
    }
    return out;
  }

  /** The outputs as a plain array in request order, merging what `single` held. */
  private merged(): unknown[] {
    if (this.out === null) {
      this.out = this.single ? Array.from(this.single as ArrayLike<unknown>) : new Array(this.points);
      this.single = null;
    } else if (!Array.isArray(this.out)) this.out = Array.from(this.out as ArrayLike<unknown>);
    return this.out as unknown[];
  }
}

type ChunkBatch = ReturnType<BindingPlan['readMany']>;

/** Chunks of fewer points than this on average are decoded a batch at a time. */
const SMALL_CHUNK_POINTS = 1024;

/**
 * Stored points of several chunks read in one native call (`plan.readMany`)
 * and decoded at once where they share a kind and a dictionary; chunks are
 * taken in the order they were read.
 */
export class ReadBatch {
  private next = 0;
  /** Per chunk: index of its first requested point in `present` (only chunks with points missing have bytes there). */
  private readonly presentAt: Uint32Array;
  /** Per chunk: index of its first value in `vals` (when decoded at once). */
  private readonly valAt: Uint32Array;
  /** Outputs of every chunk together, when one decode served the batch. */
  private readonly vals: ArrayLike<unknown> | null;
  readonly corrupt: string[];
  /** Items points and items chunks before the next chunk (for its offsets). */
  private itemsAt = 0;
  private itemsChunks = 0;

  constructor(
    readonly chunks: Uint32Array,
    private readonly rd: ChunkBatch,
    /** The chunks' bytes (`rd.data`, or the scratch they were read into). */
    private readonly data: Buffer,
    /** The plan's geometry: chunks' sizes, and their places in the run's output. */
    private readonly G: PlanGeometry,
    /** The run's flat output while it is a plain array: complete items chunks are decoded straight there. */
    private readonly into: unknown[] | null = null,
  ) {
    const n = chunks.length;
    this.corrupt = rd.corrupt;
    this.presentAt = new Uint32Array(n + 1);
    this.valAt = new Uint32Array(n + 1);
    let kind = -1;
    for (let k = 0; k < n; k++) {
      const p = G.chunkPoints(chunks[k]!);
      this.presentAt[k + 1] = this.presentAt[k]! + (rd.gathered[k] || rd.counts[k] === p ? 0 : p);
      this.valAt[k + 1] = this.valAt[k]! + rd.counts[k]!;
      if (rd.counts[k]! > 0) kind = kind === -1 || kind === rd.kinds[k] ? rd.kinds[k]! : -2;
    }
    // Items only, with at most one dictionary, in small chunks: one decode
    // for the whole batch (large chunks are decoded one by one, with no
    // batch-wide array to slice). Typed chunks are viewed in place (applyTo).
    const small = this.valAt[n]! < n * SMALL_CHUNK_POINTS;
    this.vals = kind === KIND_ITEMS && rd.dicts.length <= 1 && small ? decodeOutputs(kind, data, this.valAt[n]!, rd.dicts) : null;
  }

  /** True when chunk `i` is the next one of this batch. */
  has(i: number): boolean {
    while (this.next < this.chunks.length && this.chunks[this.next]! < i) this.skip();
    return this.next < this.chunks.length && this.chunks[this.next] === i;
  }

  private skip(): void {
    const k = this.next++;
    const count = this.rd.counts[k]!;
    if (count > 0 && this.rd.kinds[k] === KIND_ITEMS) {
      this.itemsAt += count;
      this.itemsChunks++;
    }
  }

  /**
   * Whether the next chunk (after `has(i)`), all of whose `points` are
   * stored, went or goes now straight into the run's output, with no
   * ChunkWork: the read gathered it there, or it is items decoded into the
   * output at its place. False (a record found damaged, a chunk of another
   * dtype than the output, items with no output to go to) leaves the chunk
   * to `applyTo`.
   */
  placeWhole(i: number, points: number): boolean {
    const k = this.next;
    const { rd, into } = this;
    if (rd.counts[k]! !== points) return false;
    if (rd.gathered[k]) {
      this.next++;
      return true;
    }
    if (into === null || rd.kinds[k] !== KIND_ITEMS) return false;
    if (this.vals) {
      // Decoded with the whole batch: copied over when the chunk's points lie together in the output.
      const at = this.G.contiguousStart(i);
      if (at < 0) return false;
      const from = this.valAt[k]!;
      const vals = this.vals as unknown[];
      for (let j = 0; j < points; j++) into[at + j] = vals[from + j];
      this.next++;
      return true;
    }
    this.decodeInto(k, into, this.G.chunk(i), points);
    this.next++;
    return true;
  }

  /** Decodes items chunk k (complete, decoded one by one) straight into `out` at `geo`'s rows. */
  private decodeInto(k: number, out: unknown[], geo: ChunkGeo, count: number): void {
    const { rd } = this;
    const data = this.data.subarray(rd.starts[k]!, rd.starts[k + 1]!);
    const at = this.itemsAt + this.itemsChunks;
    const pd = this.itemsAt;
    this.itemsAt += count;
    this.itemsChunks++;
    decodeItemsInto(out, this.G.outRows(geo), data, count, rd.dicts, rd.pointDicts.subarray(pd, pd + count), rd.offsets.subarray(at, at + count + 1));
  }

  /** Gives the next chunk's stored points to `w` (after `has(w.i)`); returns their number. */
  applyTo(w: ChunkWork): number {
    const k = this.next++;
    const { rd } = this;
    const count = rd.counts[k]!;
    if (count === 0) return 0;
    if (rd.gathered[k]) {
      w.applyGathered(rd.kinds[k]!);
      return count;
    }
    if (rd.kinds[k] === KIND_ITEMS && !this.vals && this.into && count === w.points) {
      this.decodeInto(k, this.into, w.geo, count);
      w.applyGathered(KIND_ITEMS);
      return count;
    }
    w.applyRead(rd.kinds[k]!, this.presentOf(k), count, this.valuesOf(k, count));
    return count;
  }

  /**
   * The next chunk's stored points (after `has(i)`), for a reader with no
   * ChunkWork (`read`): `put` gets their kind, presence bytes (null: every
   * requested point) and values. Returns their number. Not for a batch
   * read with a gather output.
   */
  take(put: (kind: number, present: Uint8Array | null, count: number, vals: ArrayLike<unknown>) => void): number {
    const k = this.next++;
    const count = this.rd.counts[k]!;
    if (count > 0) put(this.rd.kinds[k]!, this.presentOf(k), count, this.valuesOf(k, count));
    return count;
  }

  /** Presence bytes of chunk k; null when every requested point was read. */
  private presentOf(k: number): Uint8Array | null {
    const [from, to] = [this.presentAt[k]!, this.presentAt[k + 1]!];
    return from === to ? null : this.rd.present.subarray(from, to);
  }

  /** The values of chunk k's `count` stored points: typed ones viewed in place, items decoded. */
  private valuesOf(k: number, count: number): ArrayLike<unknown> {
    const { rd } = this;
    if (rd.kinds[k] !== KIND_ITEMS) return typedView(rd.kinds[k]!, this.data, rd.starts[k]!, count);
    if (this.vals) {
      const a = this.valAt[k]!;
      return (this.vals as unknown[]).slice(a, a + count);
    }
    // This chunk's offsets and dictionaries in the batch's flat arrays.
    const data = this.data.subarray(rd.starts[k]!, rd.starts[k + 1]!);
    const at = this.itemsAt + this.itemsChunks;
    const pd = this.itemsAt;
    this.itemsAt += count;
    this.itemsChunks++;
    return decodeOutputs(KIND_ITEMS, data, count, rd.dicts, rd.pointDicts.subarray(pd, pd + count), rd.offsets.subarray(at, at + count + 1));
  }
}

// See ts/shapes.ts.
/** A chunk assembler of placeholders, kept for its maps (see ts/shapes.ts). */
export const WORK_EXEMPLAR = keepShape(new ChunkWork(0, GEOMETRY_EXEMPLAR, 0, null, false, null));
// Outputs are arrays or typed arrays: an exemplar of each, so the kept maps have fields of any object (see ts/shapes.ts).
for (const out of [[], new Float64Array(1)]) {
  keepShape(new Part(ONE_ROW, out));
  keepShape(new Write(0, KIND_ITEMS, ONE_ROW, out, true));
  keepShape(new Finished(0, GEO_EXEMPLAR, out, 0, 0, GEOMETRY_EXEMPLAR));
}
