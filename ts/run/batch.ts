/**
 * Write-behind batching of chunk writes: several memo chunks go into one
 * LMDB transaction (one fsync), which commits on the store's writer thread
 * while the run computes its next chunks (`writeFlatBehind`; at most
 * MAX_BEHIND batches queued, in order). Pending writes are queued
 * - `maxDelayMs` after the first one (a timer, when the event loop is free),
 * - before the next exec call once that much time has passed,
 * - when `maxBytes` or `maxChunks` are pending (a transaction's dirty
 *   pages stay allocated in LMDB for reuse, so its size bounds the run's
 *   memory);
 * and committed and waited for (`flush`) before an exec call when exec
 * calls are slow (a commit then costs little next to them, and progress
 * counts their points at once), when a consumer needs its chunks stored,
 * and always at the end of a run (also on errors and aborts). Progress
 * counts a point once its commit landed. A process killed in between
 * loses at most the uncommitted chunks; every stored record stays complete.
 */
import type { BindingPendingWrite, BindingPlan, BindingStore } from '../binding/native.js';
import { fromNative } from '../errors/index.js';
import { ByteSink, encodeInto, KIND_ITEMS } from './payload.js';

/** What a chunk computed and has not stored yet: its points (request indices) and their outputs. */
export interface PendingWrite {
  chunk: number;
  kind: number;
  points: Uint32Array;
  vals: ArrayLike<unknown>;
  /** `points` are every requested point of the chunk in request order (not copied into the batch). */
  whole?: boolean;
}

const EMPTY = Buffer.alloc(0);

/** Typed outputs of at least this many bytes are passed as they are, not copied into a batch. */
const OWN_PART_BYTES = 4096;

/** `writeFlat`'s arguments before the chunk range. */
type FlatArgs = Parameters<BindingPlan['writeFlat']> extends [...infer A, number, number] ? A : never;

/**
 * A growing typed array (a batch's column), kept from batch to batch: a
 * batch's columns as plain arrays were new memory per batch, which lived
 * until the batch was queued: long enough to be promoted to V8's old space,
 * whose garbage grows the heap.
 */
class Column<A extends Uint8Array | Uint32Array> {
  n = 0;
  constructor(
    public a: A,
    private readonly make: (length: number) => A,
  ) {}

  reserve(k: number): void {
    if (this.n + k <= this.a.length) return;
    const g = this.make(Math.max(this.a.length * 2, this.n + k));
    g.set(this.a.subarray(0, this.n));
    this.a = g;
  }

  push(x: number): void {
    if (this.n === this.a.length) this.reserve(1);
    this.a[this.n++] = x;
  }

  view(): A {
    return this.a.subarray(0, this.n) as A;
  }
}

const u32s = (): Column<Uint32Array> => new Column(new Uint32Array(1024), (n) => new Uint32Array(n));
const u8s = (): Column<Uint8Array> => new Column(new Uint8Array(1024), (n) => new Uint8Array(n));

/**
 * The pending writes of a batch, encoded as they come into flat arrays:
 * one native call stores them all (no object or buffer per chunk crosses
 * N-API). Chunk k's points are points[pointEnds[k-1]..pointEnds[k]] (none
 * listed when whole[k] is 1: every requested point in request order), its
 * bytes lie in part partOf[k] (the batch's sink, or for a large typed output
 * the output's own bytes, not copied: consecutive ones share a part) from
 * the previous chunk's end in that part up to dataEnds[k]; items chunks add their n+1
 * offsets (relative to their bytes) to `offsets`, in chunk order; dictOf[k]
 * is 0 or 1 + the index of its dictionary in `dicts`.
 */
class FlatWrites {
  private readonly chunks = u32s();
  private readonly kinds = u8s();
  private readonly pointEnds = u32s();
  private readonly whole = u8s();
  /** Points given up to and including chunk k (listed or whole). */
  private readonly givenEnds = u32s();
  private readonly partOf = u32s();
  private readonly dataEnds = u32s();
  /** Typed outputs of their own (part k + 1; part 0 is the sink), and their bytes. */
  private parts: Buffer[] = [];
  private partBytes = 0;
  private readonly dictOf = u32s();
  dicts: Buffer[] = [];
  private readonly dictIndex = new Map<string, number>();
  readonly points = u32s();
  readonly offsets = u32s();
  sink = new ByteSink(1 << 16);
  get length(): number {
    return this.chunks.n;
  }

  get bytes(): number {
    return this.sink.at + this.partBytes + 4 * (this.points.n + this.offsets.n);
  }

  add(w: PendingWrite): void {
    const n = w.points.length;
    // Encode first: a value that fails to encode leaves the batch as it was.
    const at = this.sink.at;
    let dict: Buffer = EMPTY;
    if (w.kind !== KIND_ITEMS && (w.vals as unknown as ArrayBufferView).byteLength >= OWN_PART_BYTES) {
      // A large typed output goes as it is (no copy into the sink); one
      // that follows the previous part in its buffer (the rows of a run's
      // output, chunk after chunk) widens that part instead of adding one.
      const v = w.vals as unknown as ArrayBufferView;
      const last = this.parts.length - 1;
      const prev = last >= 0 ? this.parts[last]! : null;
      if (prev !== null && prev.buffer === v.buffer && prev.byteOffset + prev.byteLength === v.byteOffset) {
        const widened = Buffer.from(v.buffer, prev.byteOffset, prev.byteLength + v.byteLength);
        this.parts[last] = widened;
        this.partOf.push(last + 1);
        this.dataEnds.push(widened.byteLength);
      } else {
        this.parts.push(Buffer.from(v.buffer, v.byteOffset, v.byteLength));
        this.partOf.push(this.parts.length);
        this.dataEnds.push(v.byteLength);
      }
      this.partBytes += v.byteLength;
    } else {
      try {
        if (w.kind === KIND_ITEMS) {
          this.offsets.reserve(n + 1);
          dict = encodeInto(w.vals, w.kind, this.sink, this.offsets.a, this.offsets.n, w.chunk);
        } else dict = encodeInto(w.vals, w.kind, this.sink, this.offsets.a);
      } catch (e) {
        this.sink.at = at;
        throw e;
      }
      if (w.kind === KIND_ITEMS) this.offsets.n += n + 1;
      this.partOf.push(0);
      this.dataEnds.push(this.sink.at);
    }
    this.chunks.push(w.chunk);
    this.kinds.push(w.kind);
    if (w.whole) this.whole.push(1);
    else {
      this.whole.push(0);
      this.points.reserve(n);
      this.points.a.set(w.points, this.points.n);
      this.points.n += n;
    }
    this.pointEnds.push(this.points.n);
    this.givenEnds.push((this.givenEnds.n > 0 ? this.givenEnds.a[this.givenEnds.n - 1]! : 0) + n);
    if (dict.length === 0) this.dictOf.push(0);
    else {
      const key = dict.toString('latin1');
      let d = this.dictIndex.get(key);
      if (d === undefined) {
        d = this.dicts.push(dict) - 1;
        this.dictIndex.set(key, d);
      }
      this.dictOf.push(d + 1);
    }
  }

  /**
   * The batch as `writeFlat` takes it, chunk range aside: made once per
   * commit, also when a full store commits it chunk by chunk. Views of the
   * batch's columns: it is not reused until its write settled.
   */
  flat(store: BindingStore, cacheId: Buffer): FlatArgs {
    return [
      store, cacheId, this.chunks.view(), this.kinds.view(), this.pointEnds.view(), this.whole.view(), this.points.view(),
      this.offsets.view(), this.partOf.view(), this.dataEnds.view(), [this.sink.bytes(), ...this.parts], this.dictOf.view(), this.dicts,
    ];
  }

  /** Points of chunks [from, to). */
  pointsOf(from: number, to: number): number {
    return (to > 0 ? this.givenEnds.a[to - 1]! : 0) - (from > 0 ? this.givenEnds.a[from - 1]! : 0);
  }

  /** Empties the batch, keeping its buffers unless they grew large. */
  clear(): void {
    this.chunks.n = 0;
    this.kinds.n = 0;
    this.pointEnds.n = 0;
    this.whole.n = 0;
    this.givenEnds.n = 0;
    this.partOf.n = 0;
    this.dataEnds.n = 0;
    this.parts = [];
    this.partBytes = 0;
    this.dictOf.n = 0;
    this.dicts = [];
    this.dictIndex.clear();
    this.points.n = 0;
    this.offsets.n = 0;
    if (this.sink.data.length > 8 << 20) this.sink = new ByteSink(1 << 16);
    else this.sink.at = 0;
  }
}

/** A batch queued on the store's writer thread, not yet settled. */
interface Behind {
  readonly write: BindingPendingWrite;
  readonly batch: FlatWrites;
  readonly args: FlatArgs;
}

/** Batches queued behind at once at most: the older one is waited for before another is queued (bounds the memory they hold). */
const MAX_BEHIND = 2;

export class WriteBatcher {
  private pending = new FlatWrites();
  /** A settled batch, emptied for reuse. */
  private spare: FlatWrites | null = null;
  private readonly behind: Behind[] = [];
  private since = 0;
  private timer: NodeJS.Timeout | null = null;
  /** The timer is to queue the pending writes when it fires. */
  private armed = false;
  private timerError: unknown = null;
  commits = 0;
  /** Time the run spent writing or waiting for its writes (ms). */
  writeMs = 0;

  constructor(
    private readonly plan: BindingPlan,
    private readonly store: BindingStore,
    private readonly cacheId: Buffer,
    private readonly label: string,
    /**
     * Told after each commit the points it stored: an object, not a
     * closure, so optimized code calling it does not depend on one run's
     * function (see ts/shapes.ts).
     */
    private readonly onCommit: { committed(points: number): void } | undefined = undefined,
    private readonly maxDelayMs = 200,
    private readonly maxBytes = 8 << 20,
    private readonly maxChunks = 4096,
  ) {}

  /** True when writes are waiting for a commit. */
  private get hasPending(): boolean {
    return this.pending.length > 0 || this.behind.length > 0;
  }

  add(w: PendingWrite): void {
    if (this.timerError) throw this.timerError;
    if (this.pending.length === 0) {
      this.since = performance.now();
      this.arm();
    }
    this.pending.add(w);
    if (this.pending.bytes >= this.maxBytes || this.pending.length >= this.maxChunks || performance.now() - this.since >= this.maxDelayMs) this.queue();
  }

  /**
   * Queues the pending writes maxDelayMs from now. One timer serves the
   * whole run, re-armed with `refresh`: a `setTimeout` per batch made the
   * optimized code adding writes depend on timer objects that died with
   * each run, so every run recompiled it (see ts/shapes.ts).
   */
  private arm(): void {
    this.armed = true;
    if (this.timer) this.timer.refresh();
    else {
      this.timer = setTimeout(() => this.fire(), this.maxDelayMs);
      this.timer.unref();
    }
  }

  private fire(): void {
    if (!this.armed) return;
    this.armed = false;
    try {
      this.queue();
    } catch (e) {
      this.timerError = e;
    }
  }

  /**
   * Called before an exec call that may take long: commits what is pending
   * (and waits) when the last exec call was slow (a commit then costs little
   * next to it, and progress counts the points at once); queues it behind
   * when the pending writes are old enough.
   */
  beforeExec(lastExecMs: number, now = performance.now()): void {
    if (lastExecMs >= 50 && this.hasPending) this.flush();
    else if (this.pending.length > 0 && now - this.since >= this.maxDelayMs) this.queue();
  }

  /**
   * Commits everything pending and waits for every write queued behind,
   * also when one fails (then throws its error once all settled): nothing
   * is still in flight when this returns or throws.
   */
  flush(): void {
    let failure: unknown = null;
    try {
      this.queue();
    } catch (e) {
      failure = e;
    }
    try {
      this.settle(this.behind.length);
    } catch (e) {
      failure ??= e;
    }
    // Nothing pending: the timer goes (a run ends with a flush).
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (failure !== null) throw failure;
  }

  /**
   * Queues the pending writes on the store's writer thread as one
   * transaction (after waiting for the oldest queued batch when
   * MAX_BEHIND are queued).
   */
  private queue(): void {
    this.armed = false;
    if (this.timerError) {
      const e = this.timerError;
      this.timerError = null;
      throw e;
    }
    const batch = this.pending;
    if (batch.length === 0) return;
    // Writes that committed meanwhile are counted now (progress), not per
    // chunk added; the oldest is waited for when MAX_BEHIND are in flight.
    this.settle(this.behind.length, false);
    if (this.behind.length >= MAX_BEHIND) this.settle(this.behind.length - MAX_BEHIND + 1);
    const t = performance.now();
    const args = batch.flat(this.store, this.cacheId);
    let write: BindingPendingWrite;
    try {
      write = this.plan.writeFlatBehind(...args, 0, batch.length);
    } catch (e) {
      batch.clear();
      throw fromNative(e, `${this.label}: storing ${args[2].length} chunks`);
    } finally {
      this.writeMs += performance.now() - t;
    }
    this.behind.push({ write, batch, args });
    this.pending = this.spare ?? new FlatWrites();
    this.spare = null;
  }

  /**
   * Settles the `count` oldest queued writes (without `wait`, stops at the
   * first still running): counts their commits and reports their points.
   * A failed write throws once every write up to `count` settled; a full
   * store first keeps as much of its batch as still fits, chunk by chunk
   * (a chunk too large to fit does not stop the smaller ones after it).
   */
  private settle(count: number, wait = true): void {
    let failure: unknown = null;
    const t = performance.now();
    try {
      for (let k = 0; k < count && this.behind.length; k++) {
        const b = this.behind[0]!;
        const n = b.batch.length;
        try {
          if (!b.write.settle(wait)) break;
          this.commits++;
          this.onCommit?.committed(b.batch.pointsOf(0, n));
        } catch (e) {
          const err = fromNative(e, `${this.label}: storing ${n} chunks`);
          if (err.code === 'ERR_STORE_FULL' && n > 1) {
            for (let c = 0; c < n; c++) {
              try {
                this.commit(b.args, c, c + 1, b.batch);
              } catch {
                // This chunk's points stay missing: a later run computes them.
              }
            }
          }
          failure ??= err;
        }
        this.behind.shift();
        b.batch.clear();
        this.spare = b.batch;
      }
    } finally {
      this.writeMs += performance.now() - t;
    }
    if (failure !== null) throw failure;
  }

  private commit(args: FlatArgs, from: number, to: number, batch: FlatWrites): void {
    // The transaction also releases every claim on the points it stores.
    this.plan.writeFlat(...args, from, to);
    this.commits++;
    this.onCommit?.committed(batch.pointsOf(from, to));
  }
}
