/**
 * The chunk assembler every runner shares: one memo chunk's outputs in
 * request order, gathered from the store (read and decoded), from exec
 * blocks computed here (placed), and from points other processes stored
 * (read when they land); and the encoding of what this run computed, for
 * the write that stores it.
 */
import type { BindingPlan, BindingStore } from '../binding/native.js';
import type { ChunkGeo } from '../cache/geometry.js';
import type { Diagnostics } from './diagnostics.js';
import type { PendingWrite } from './batch.js';
import { decodeOutputs, encodeOutputs, kindOf, KIND_ITEMS, typedCtor, unstorable } from './payload.js';
import { ExecOutputError } from '../errors/index.js';
import type { JobOutput } from '../task/job.js';
import type { TypedArray } from '../value.js';

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
  /** Points other processes hold claims on. */
  readonly held = new Set<number>();
  /** Computed blocks not yet written: request indices (block order) and outputs. */
  private parts: Array<{ points: Uint32Array; out: JobOutput }> = [];
  private partPoints = 0;

  constructor(
    readonly i: number,
    readonly geo: ChunkGeo,
    /** Only these request indices (sorted, unique); null: all. */
    readonly needed: Uint32Array | null,
    private readonly keepOutputs: boolean,
  ) {}

  /** Selected positions per axis (the chunk's request shape). */
  get dims(): number[] {
    return this.geo.sel.map((s) => s.length);
  }

  /** True when nothing is queued or running for this chunk. */
  get idle(): boolean {
    return this.pending === 0 && this.inflight === 0;
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
    if (present > 0) {
      const vals = decodeOutputs(rd.kind, rd.data, present, rd.dicts, rd.pointDicts, rd.offsets);
      this.kind = this.kind === -1 || this.kind === rd.kind ? rd.kind : KIND_ITEMS;
      if (present === this.geo.points && this.out === null && this.single === null) this.single = vals as unknown[] | TypedArray;
      else if (this.keepOutputs) {
        const arr = this.merged();
        let w = 0;
        for (let j = 0; j < rd.present.length; j++) {
          if (!rd.present[j]) continue;
          const v = vals[w++];
          if (arr[j] === undefined) arr[j] = v;
        }
      }
    }
    diag.timings.readMs += performance.now() - tr;
  }

  /** Takes the outputs of an exec block whose points are `points` (request indices, block order). */
  place(points: Uint32Array, out: JobOutput): void {
    const kind = kindOf(out);
    if (kind === KIND_ITEMS) {
      for (let j = 0; j < points.length; j++) {
        const bad = unstorable((out as ArrayLike<unknown>)[j], `output ${j}`);
        if (bad) {
          throw new ExecOutputError(
            `chunk ${this.i}: ${bad}; return values that round-trip (plain objects, arrays, numbers, strings, booleans, null, bigint, Date, Map, Set, typed arrays)`,
          );
        }
      }
    }
    this.kind = this.kind === -1 || this.kind === kind ? kind : KIND_ITEMS;
    const n = points.length;
    this.parts.push({ points, out });
    this.partPoints += n;
    this.executed += n;
    if (!this.keepOutputs) return;
    // One block with every point, in request order: its outputs are the chunk's.
    if (n === this.geo.points && this.out === null && this.single === null && isIdentity(points)) {
      this.single = out as unknown[] | TypedArray;
      return;
    }
    const arr = this.merged();
    for (let j = 0; j < n; j++) arr[points[j]!] = (out as ArrayLike<unknown>)[j];
  }

  /** The write of what this run computed and has not written yet (null: nothing). */
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
    const enc = encodeOutputs(vals, kind);
    this.parts = [];
    this.partPoints = 0;
    return { chunk: this.i, kind, points, offsets: enc.offsets, data: enc.data, dict: enc.dict };
  }

  /** The chunk's outputs in request order: typed when every part has one dtype. */
  output(): unknown[] | TypedArray | null {
    if (!this.keepOutputs) return null;
    const out = this.out ?? this.single;
    if (out && !ArrayBuffer.isView(out) && this.kind > KIND_ITEMS) {
      const ta = new (typedCtor(this.kind))(this.geo.points);
      for (let j = 0; j < out.length; j++) if (out[j] !== undefined) (ta as unknown as unknown[])[j] = out[j];
      return ta;
    }
    return out;
  }

  /** The outputs as a plain array in request order, merging what `single` held. */
  private merged(): unknown[] {
    if (this.out === null) {
      this.out = this.single ? Array.from(this.single as ArrayLike<unknown>) : new Array(this.geo.points);
      this.single = null;
    } else if (!Array.isArray(this.out)) this.out = Array.from(this.out as ArrayLike<unknown>);
    return this.out as unknown[];
  }
}

function isIdentity(points: Uint32Array): boolean {
  for (let j = 0; j < points.length; j++) if (points[j] !== j) return false;
  return true;
}
