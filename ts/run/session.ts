/**
 * One run of a view: the scheduling half of the engine. It opens memo chunks
 * in grid order (reading what is stored), cuts their missing points into
 * product blocks, claims a few blocks at a time, dispatches granted blocks to
 * free executors, stores each chunk when its points are done, and waits for
 * points that other processes hold.
 */
import type { BindingPlan, BindingResolved } from '../binding/native.js';
import type { ChunkCache } from '../cache/cache.js';
import { blockPoints, cutBlock, splitBlocks } from '../cache/blocks.js';
import { describeBlock } from '../describe.js';
import { isAbort, raceAbort } from './abort.js';
import { execFailure } from './exec-failure.js';
import { checkOutputs } from '../task/execute.js';
import type { ExecJob, JobOutput } from '../task/job.js';
import type { Value } from '../value.js';
import { WriteBatcher } from './batch.js';
import { ChunkWork, Finished } from './chunk-work.js';
import { OpenChunks } from './open-chunks.js';
import { ReadAhead } from './read-ahead.js';
import { ClaimSession, type ClaimOutcome } from './claims.js';
import { Block, ClaimFeed, claimWant, type ClaimWant, type Claimed } from './claim-feed.js';
import { newDiagnostics, type Diagnostics } from './diagnostics.js';
import type { ChunkDone, EngineExecutor, EngineSpec } from './spec.js';
import { GEOMETRY_EXEMPLAR, type PlanGeometry } from '../cache/geometry.js';
import { Progress } from './progress.js';
import { isThenable, jobOf } from './job-of.js';
import { Fifo } from './fifo.js';
import { keepShape } from '../shapes.js';

/**
 * Chunks open at once at most (read, queued, claimed or computing; not those
 * waiting for other processes): the run's bookkeeping stays small whatever
 * the chunk count, and tiny chunks leave no objects that outlive a young-
 * generation GC. It also bounds a claim of tiny chunks (a synced commit):
 * 2,048 made 200,000 one-point chunks claim 292 times instead of 585 (cold
 * 6.9 -> 5.0 µs per chunk), for ~10 MB more peak RSS at 1e6 chunks.
 */
const MAX_OPEN_CHUNKS = 2048;

/** Finished chunks handed out together at most (and chunks opened while that many wait). */
export const DONE_BATCH = 64;

export class RunSession {
  readonly done: ChunkDone[] = [];
  readonly inflight = new Set<Promise<void>>();
  failure: unknown = null;
  aborted = false;
  readonly batcher: WriteBatcher;
  readonly progress: Progress;
  /** The run's claims: candidate blocks are claimed from here, the next batch ahead. */
  readonly feed: ClaimFeed;
  private readonly open = new OpenChunks();
  private readonly waiting = new Set<ChunkWork>();
  private readonly granted = new Fifo<Block>((b) => b.points.length);
  /** Per chunk, the request indices a run of given points needs (null: the whole view, no array). */
  private readonly neededOf: Array<Uint32Array | null> | null;
  /** Stored points of the chunks about to be opened (one batched read). */
  private readonly reads: ReadAhead;
  private readonly capacity: number;
  private nextChunk = 0;
  /** Chunks finished with nothing to hand out since the last hand-out (see `finished`). */
  private quietDone = 0;
  private jobIndex = 0;
  private buffered = 0;
  private inflightPoints = 0;
  private largestChunk = 0;
  private toCompute = 0;
  private lastExecMs = 0;
  private firstDispatch = 0;
  private pointsComputed = 0;
  /** The last `openChunks` stopped short of a claim batch at finished chunks to hand out. */
  private cutShort = false;
  /** The run's flat output, for chunks computed in one block (ChunkWork.place). */
  private readonly into: ConstructorParameters<typeof ChunkWork>[5];

  constructor(
    private readonly spec: EngineSpec,
    private readonly plan: BindingPlan,
    private readonly resolved: BindingResolved,
    private readonly G: PlanGeometry,
    private readonly diag: Diagnostics,
  ) {
    const core = spec.view._core;
    this.capacity = spec.executors.reduce((n, e) => n + e.concurrency, 0);
    // Totals for progress, without touching the records.
    let reused = 0;
    let total = 0;
    const neededFn = spec.needed?.(G);
    this.neededOf = neededFn ? [] : null;
    for (let i = 0; i < G.chunkCount; i++) {
      const need = neededFn ? neededFn(i) : null;
      if (neededFn) this.neededOf!.push(need);
      if (need) {
        total += need.length;
        this.toCompute += need.length;
      } else {
        const pts = G.chunkPoints(i);
        total += pts;
        this.toCompute += pts - resolved.available[i]!;
        reused += resolved.available[i]!;
      }
    }
    diag.totalPoints = total;
    diag.totalChunks = G.chunkCount;
    this.feed = new ClaimFeed(new ClaimSession(plan, core.store, core.idBytes, spec.label, spec.claimTimeoutMs, G), diag);
    this.progress = new Progress({
      label: spec.label, cacheId: core.id.slice(0, 8), pointsTotal: this.toCompute, cachedPoints: reused, chunksTotal: G.chunkCount,
      onProgress: spec.onProgress, verbose: core.verbose,
    });
    this.batcher = new WriteBatcher(plan, core.store, core.idBytes, spec.label, this.progress);
    this.reads = new ReadAhead(spec, plan, resolved, G, this.neededOf, diag);
    this.into = spec.sink ?? null;
  }

  private get view(): ChunkCache {
    return this.spec.view;
  }

  /** True when chunks are still to be opened, claimed or dispatched. */
  get hasWork(): boolean {
    return this.granted.length > 0 || this.feed.hasAhead || this.feed.candidates.length > 0 || this.nextChunk < this.G.chunkCount;
  }

  /** Exec calls started so far. */
  get dispatched(): number {
    return this.jobIndex;
  }

  get isWaiting(): boolean {
    return this.waiting.size > 0;
  }

  /**
   * Fills free executors: granted blocks first, then the oldest batch claimed
   * ahead, then claims more. With granted blocks, it claims the next batches
   * ahead on the store's writer thread (up to CLAIMS_AHEAD): they commit
   * while these blocks run, and the executors seldom wait for a claim.
   */
  fill(): void {
    const { spec } = this;
    for (;;) {
      const ex = spec.executors.find((e) => e.busy < e.concurrency);
      if (!ex) return;
      if (this.granted.length === 0) {
        if (this.feed.hasAhead) this.apply(this.feed.takeAhead());
        else {
          const want = this.openChunks();
          // Finished chunks go out first and more are opened: a claim (a synced
          // commit) per few missing chunks between stored ones costs more than their work.
          if (this.feed.candidates.length === 0 || this.cutShort) return;
          this.apply(this.feed.claimNow(want));
        }
        if (this.granted.length === 0) continue;
      }
      while (this.feed.wantsAhead && !this.cutShort && this.feed.claimAhead(this.openChunks()));
      if (!this.room(this.granted.peek()!.points.length)) return;
      this.dispatch(ex, this.granted.shift()!);
      if (spec.yieldEvery) return;
    }
  }

  /** How much to claim next, at the rate measured so far. */
  private claimWant(): ClaimWant {
    const elapsed = performance.now() - this.firstDispatch;
    return claimWant(this.capacity - this.inflight.size, this.capacity, this.pointsComputed > 0 && elapsed > 0 ? this.pointsComputed / elapsed : 0);
  }

  /**
   * Opens chunks until a claim batch is worth a transaction; returns how
   * much to claim. `cutShort`: it stopped at DONE_BATCH finished chunks (stored
   * ones between the missing), to be handed out before more are opened.
   */
  private openChunks(): ClaimWant {
    const want = this.claimWant();
    const c = this.feed.candidates;
    const short = (): boolean => c.length < want.blocks || c.total < want.points;
    while (short() && this.nextChunk < this.G.chunkCount && this.finished < DONE_BATCH && this.open.size - this.waiting.size < MAX_OPEN_CHUNKS) {
      this.openChunk(this.nextChunk++);
    }
    this.cutShort = this.finished >= DONE_BATCH && short() && this.nextChunk < this.G.chunkCount && this.open.size - this.waiting.size < MAX_OPEN_CHUNKS;
    return want;
  }

  /** Reads what is stored of chunk i and queues its missing points as exec blocks. */
  private openChunk(i: number): void {
    const { spec, plan, view } = this;
    const core = view._core;
    const need = this.neededOf?.[i] ?? null;
    if (need && need.length === 0) return;
    const points = this.G.chunkPoints(i);
    if (!need && this.storedWhole(i, points)) return;
    const w = new ChunkWork(i, this.G, points, need, spec.needOutputs, this.into);
    let avail = this.resolved.available[i]!;
    let missing: Uint32Array[][];
    if (!need) {
      if (avail > 0 && spec.needOutputs) {
        const got = this.reads.applyTo(w);
        // A record found damaged as it was read (the resolution left
        // verifying it to the read): its points are computed like missing
        // ones (the read resolved the chunk again for plan.missing).
        if (got < avail) {
          this.toCompute += avail - got;
          this.progress.unstored(avail - got);
          avail = got;
        }
      }
      w.cached = avail;
      // Nothing stored: the whole chunk is one block (no native call needed).
      missing = avail === 0 ? this.G.wholeBlockList(w.dims) : avail < w.points ? plan.missing(core.store, core.idBytes, i).blocks : [];
    } else {
      const present = avail > 0 ? plan.presence(core.store, core.idBytes, i) : null;
      const miss: number[] = [];
      for (const r of need) if (!present || !present[r]) miss.push(r);
      w.cached = need.length - miss.length;
      if (w.cached > 0 && spec.needOutputs) w.readStored(plan, core.store, core.idBytes, this.diag);
      missing = splitBlocks(w.dims, miss);
    }
    w.pending += this.feed.addCandidates(w, missing, spec.execChunkSize);
    if (w.pending === 0) return this.emit(w);
    this.open.add(w);
    this.largestChunk = Math.max(this.largestChunk, w.points);
  }

  /**
   * Finishes chunk `i` (of `points` requested points) at once when all
   * of them are stored and its outputs are not needed, or went straight
   * into the run's output as they were read (see `ReadAhead.placeWhole`): no ChunkWork and no ChunkDone,
   * so a warm run builds no objects per chunk. False leaves the chunk to
   * `openChunk`.
   */
  private storedWhole(i: number, points: number): boolean {
    if (points === 0 || this.resolved.available[i] !== points) return false;
    if (this.spec.needOutputs && (!this.spec.sink || !this.reads.placeWhole(i, points))) return false;
    const { diag } = this;
    diag.cachedPoints += points;
    diag.cachedChunks++;
    if (this.spec.needOutputs && points > diag.maxBufferedPoints) diag.maxBufferedPoints = points;
    this.progress.chunk(i, points, 0);
    this.quietDone++;
    return true;
  }

  /** Chunks finished since the last hand-out: those in `done`, and those with nothing to hand out (`storedWhole`). */
  get finished(): number {
    return this.done.length + this.quietDone;
  }

  /** The finished chunks to hand out (see `finished`); empties `done`. */
  takeDone(): ChunkDone[] {
    this.quietDone = 0;
    return this.done.splice(0, this.done.length);
  }

  /** Queues the granted work of a claimed batch. */
  private apply({ batch, res }: Claimed): void {
    let last: ChunkWork | null = null;
    for (let n = 0; n < batch.length; n++) {
      const b = batch[n]!;
      if (res.whole(n)) this.granted.push(b);
      else {
        b.work.pending--;
        this.absorb(b.work, b.points, res.outcome(n));
      }
      // A chunk's blocks are queued together: settle each chunk once, after its last block.
      if (last !== null && last !== b.work) this.settle(last);
      last = b.work;
    }
    if (last !== null) this.settle(last);
  }

  /** A claim gave part of `points`: held ones wait, stored ones landed, granted ones are queued. */
  private absorb(w: ChunkWork, points: Uint32Array, r: ClaimOutcome): void {
    const granted = new Set(r.granted);
    const stored = new Set(r.stored);
    const held = (w.held ??= new Set<number>());
    for (const p of points) {
      if (granted.has(p) || stored.has(p)) held.delete(p);
      else held.add(p);
    }
    if (r.stored.length) {
      w.landed += r.stored.length;
      this.diag.waitedPoints += r.stored.length;
      this.progress.landed(r.stored.length);
    }
    if (r.granted.length === 0) return;
    const sorted = Array.from(r.granted).sort((x, y) => x - y);
    for (const blk of splitBlocks(w.dims, sorted)) {
      for (const piece of cutBlock(blk, this.spec.execChunkSize)) {
        w.pending++;
        this.granted.push(new Block(w, piece, blockPoints(w.dims, piece)));
      }
    }
  }

  /** Stores what a chunk computed and hands it out, or parks it to wait for others. */
  private settle(w: ChunkWork): void {
    if (!w.idle) return;
    this.writeComputed(w);
    if (w.held && w.held.size > 0) this.waiting.add(w);
    else this.emit(w);
  }

  writeComputed(w: ChunkWork): void {
    const n = w.unwritten;
    const write = w.takeWrite();
    if (!write) return;
    this.batcher.add(write);
    this.diag.streamFlushes++;
    this.buffered -= n;
  }

  private emit(w: ChunkWork): void {
    const { spec, diag, plan } = this;
    const core = this.view._core;
    this.open.delete(w);
    this.waiting.delete(w);
    if (spec.needOutputs && w.landed > 0) w.readStored(plan, core.store, core.idBytes, diag);
    diag.cachedPoints += w.cached;
    diag.executedPoints += w.executed;
    if (w.executed === 0) diag.cachedChunks++;
    else diag.executedChunks++;
    if (w.executed > 0 && w.cached + w.landed > 0) diag.partialChunks++;
    if (spec.needOutputs) diag.maxBufferedPoints = Math.max(diag.maxBufferedPoints, w.points);
    this.progress.chunk(w.i, w.cached, w.executed);
    this.done.push(new Finished(w.i, w.geo, w.output(), w.cached, w.executed, this.G));
  }

  private dispatch(ex: EngineExecutor, b: Block): void {
    const { spec, diag } = this;
    const job = jobOf(this.spec, b.work.geo, b.block, b.points.length, this.jobIndex++);
    const w = b.work;
    w.pending--;
    w.inflight++;
    ex.busy++;
    ex.stats.execChunks++;
    ex.stats.points += job.count;
    diag.execChunks++;
    this.inflightPoints += job.count;
    if (this.firstDispatch === 0) this.firstDispatch = performance.now();
    const te = performance.now();
    if (!spec.boundMemory) this.batcher.beforeExec(this.lastExecMs, te);
    let started: Promise<JobOutput>;
    if (ex.runSync) {
      // The calling thread: a synchronous return completes here, no promise per call.
      let r: JobOutput | Promise<JobOutput>;
      try {
        r = ex.runSync(job);
      } catch (e) {
        return this.complete(ex, b, job, te, undefined, e, true);
      }
      if (!isThenable(r)) return this.complete(ex, b, job, te, r, undefined, false);
      started = raceAbort(Promise.resolve(r), spec.signal);
    } else started = raceAbort(ex.run(job, spec.signal), spec.signal);
    const p = started.then(
      (out) => this.complete(ex, b, job, te, out, undefined, false),
      (e) => this.complete(ex, b, job, te, undefined, e, true),
    );
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  /** An exec call ended (`failed`: with the error `e`): its outputs are placed and its chunk settled. */
  private complete(ex: EngineExecutor, b: Block, job: ExecJob, te: number, out: unknown, e: unknown, failed: boolean): void {
    const { spec, diag } = this;
    const w = b.work;
    try {
      if (failed) throw e;
      const checked = checkOutputs(out, job.count, () => `${spec.label}: chunk ${w.i} at ${describeBlock(job.axes as Record<string, Value[]>)}`);
      if (this.failure === null) {
        w.place(b.points, checked as JobOutput, ex.freshOutputs === true);
        this.pointsComputed += job.count;
        this.buffered += job.count;
        if (this.buffered > diag.maxBufferedPoints) diag.maxBufferedPoints = this.buffered;
      }
    } catch (err) {
      if (this.failure === null && !(this.aborted && isAbort(err, spec.signal))) this.failure = execFailure(spec.label, err, w.i, job);
    } finally {
      this.lastExecMs = performance.now() - te;
      diag.timings.execMs += this.lastExecMs;
      ex.busy--;
      w.inflight--;
      this.inflightPoints -= job.count;
      if (this.failure === null) {
        try {
          this.settle(w);
        } catch (err) {
          this.failure ??= err;
        }
      }
    }
  }

  /** Buffered + in-flight points stay within capacity x execChunkSize + the largest memo chunk (parallel runs). */
  private room(n: number): boolean {
    if (!this.spec.boundMemory || this.inflight.size === 0) return true;
    const limit = this.capacity * Math.min(this.spec.execChunkSize, Math.max(this.toCompute, 1)) + this.largestChunk;
    return this.buffered + this.inflightPoints + n <= limit;
  }

  /** Re-claims the points other processes hold: queues what became free, counts what landed. True on progress. */
  pollWaiting(): boolean {
    const list = [...this.waiting];
    if (list.length === 0) return false;
    const points = list.map((w) => Uint32Array.from([...w.held!].sort((x, y) => x - y)));
    const res = this.feed.claim(list.map((w) => w.i), points);
    let progressed = false;
    list.forEach((w, n) => {
      const r = res.outcome(n);
      if (r.stored.length || r.granted.length) progressed = true;
      this.waiting.delete(w);
      this.absorb(w, points[n]!, r);
      if (r.granted.length === 0) this.settle(w);
    });
    return progressed;
  }

  /** On failure or abort: whatever completed is written (partial records). */
  writeOpenChunks(): void {
    for (const w of this.open.values()) {
      try {
        this.writeComputed(w);
      } catch (e) {
        this.failure ??= e;
      }
    }
  }
}

/**
 * An idle session over no chunks, of placeholders: its queues, claim feed,
 * write batcher and progress are kept for their maps (see ts/shapes.ts).
 */
function sessionExemplar(): RunSession {
  const core = { store: null, idBytes: null, id: '', verbose: 0 };
  const spec = { view: { _core: core }, executors: [], label: '' } as unknown as EngineSpec;
  const resolved = { available: new Uint32Array(0) } as unknown as BindingResolved;
  const s = new RunSession(spec, null as unknown as BindingPlan, resolved, GEOMETRY_EXEMPLAR, newDiagnostics());
  keepShape(s.batcher, ['since', 'writeMs']);
  return keepShape(s, ['lastExecMs', 'firstDispatch']);
}
sessionExemplar();
