/**
 * Batched reads of stored chunks for a run: when a chunk with stored points
 * is opened, it and the next chunks with stored points are read in one
 * native call (`plan.readMany`), straight into the run's typed output where
 * it has one, and handed to their `ChunkWork`s as they are opened.
 */
import type { BindingPlan, BindingResolved } from '../binding/native.js';
import type { PlanGeometry } from '../cache/geometry.js';
import { fromNative } from '../errors/index.js';
import { type ChunkWork, ReadBatch } from './chunk-work.js';
import type { Diagnostics } from './diagnostics.js';
import { KIND_ITEMS } from './payload.js';
import type { EngineSpec } from './spec.js';

/** Chunks read ahead in one native call: at most this many chunks, and about this many points. */
const READ_BATCH_CHUNKS = 1024;
const READ_BATCH_POINTS = 1 << 16;
/**
 * Points and chunks of a batch gathered straight into the run's typed
 * output (no batch memory): fewer, larger calls, whose records the binding
 * looks up in one walk in key order (a cursor step per chunk when they lie
 * close together) and copies on every core.
 */
const GATHER_BATCH_POINTS = 1 << 20;
const GATHER_BATCH_CHUNKS = 1 << 14;
/**
 * The scratch that items batches are read into: its first size, and the
 * most it grows to (a larger batch gets memory of its own).
 */
const SCRATCH_BYTES = 1 << 20;
const SCRATCH_MAX_BYTES = 64 << 20;

export class ReadAhead {
  private batch: ReadBatch | null = null;
  /**
   * Memory the bytes of items batches are read into, reused batch after
   * batch: new memory for every batch would cost a page fault per 4 KiB.
   * A batch is decoded before the next one is read, and decoded values keep
   * no view of it (payload.ts unpacks binary data as copies).
   */
  private scratch: Buffer | null = null;

  constructor(
    private readonly spec: EngineSpec,
    private readonly plan: BindingPlan,
    private readonly resolved: BindingResolved,
    private readonly G: PlanGeometry,
    /** Per chunk, the request indices a run of given points needs (those chunks are read on their own). */
    private readonly neededOf: Array<Uint32Array | null> | null,
    private readonly diag: Diagnostics,
  ) {}

  /**
   * Gives `w` its stored points from a batched read: chunk `w.i` and the next
   * chunks with stored points (up to READ_BATCH_CHUNKS chunks and
   * READ_BATCH_POINTS points) are read in one native call. Returns the
   * number of points read: fewer than the resolution counted when a record
   * turned out damaged (reported in the diagnostics).
   */
  applyTo(w: ChunkWork): number {
    return this.batchOf(w.i).applyTo(w);
  }

  /**
   * Whether chunk `i`, all of whose `points` are stored, went straight into
   * the run's output as it was read (see `ReadBatch.placeWhole`); false
   * leaves it to `applyTo`.
   */
  placeWhole(i: number, points: number): boolean {
    // Copied into the output by the resolution (see `beginRun`'s gatherInto).
    if (this.resolved.gathered[i]) return true;
    return this.batchOf(i).placeWhole(i, points);
  }

  /** The batch whose next chunk is `i`, read now when the current one does not hold it. */
  private batchOf(i: number): ReadBatch {
    if (!this.batch?.has(i)) {
      const tr = performance.now();
      const { G, resolved, spec } = this;
      const list: number[] = [];
      let pts = 0;
      const sink = spec.sink;
      const gather = sink?.typed() ?? null;
      const most = gather ? GATHER_BATCH_POINTS : READ_BATCH_POINTS;
      const mostChunks = gather ? GATHER_BATCH_CHUNKS : READ_BATCH_CHUNKS;
      for (let j = i; j < G.chunkCount && list.length < mostChunks && (list.length === 0 || pts < most); j++) {
        if (resolved.available[j]! === 0 || resolved.gathered[j] || this.neededOf?.[j]) continue;
        list.push(j);
        pts += G.chunkPoints(j);
      }
      const core = spec.view._core;
      const chunks = Uint32Array.from(list);
      const scratch = gather ? null : (this.scratch ??= Buffer.allocUnsafeSlow(SCRATCH_BYTES));
      let rd;
      try {
        rd = this.plan.readMany(core.store, core.idBytes, chunks, gather?.kind, gather?.bytes, scratch ?? undefined);
      } catch (e) {
        throw fromNative(e, `${spec.label}: reading stored chunks`);
      }
      const bytes = rd.starts[list.length]!;
      if (scratch && !rd.inScratch && bytes > scratch.length && bytes <= SCRATCH_MAX_BYTES) this.scratch = Buffer.allocUnsafeSlow(Math.min(SCRATCH_MAX_BYTES, bytes + (bytes >> 2)));
      // The first typed chunks decide the output's dtype: later batches go straight into it.
      if (sink && !gather) {
        for (let k = 0; k < list.length; k++) {
          if (rd.kinds[k]! !== KIND_ITEMS && rd.counts[k]! > 0) {
            sink.expect(rd.kinds[k]!);
            break;
          }
        }
      }
      const items = sink?.items() ?? null;
      const data = rd.inScratch ? scratch!.subarray(0, bytes) : rd.data;
      this.batch = new ReadBatch(chunks, rd, data, G, items);
      if (this.batch.corrupt.length) this.diag.corruptRecords.push(...this.batch.corrupt);
      this.batch.has(i);
      this.diag.timings.readMs += performance.now() - tr;
    }
    return this.batch!;
  }
}
