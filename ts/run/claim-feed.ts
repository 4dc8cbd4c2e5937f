/**
 * The claiming half of a run's scheduling: candidate blocks (the missing
 * points of opened chunks, in grid order) are claimed a batch at a time,
 * and while one batch runs the next CLAIMS_AHEAD are claimed ahead on the
 * store's writer thread (`ClaimSession.claimBehind`), so executors seldom
 * wait for a claim.
 */
import { WORK_EXEMPLAR, type ChunkWork } from './chunk-work.js';
import { keepShape } from '../shapes.js';
import { blockPoints, blockSize, cutBlock } from '../cache/blocks.js';
import type { ClaimResults, ClaimSession, PendingClaim } from './claims.js';
import type { Diagnostics } from './diagnostics.js';
import { Fifo } from './fifo.js';

/**
 * A product block of a memo chunk's points, to claim and compute. A class,
 * not an object literal: V8 may decide to allocate a literal's objects
 * straight in its old generation once it saw them all alive at one young
 * collection (a run opens many chunks at once), and blocks made per chunk
 * would then pile up there as garbage, growing the heap.
 */
export class Block {
  constructor(
    readonly work: ChunkWork,
    readonly block: Uint32Array[],
    readonly points: Uint32Array,
  ) {}
}

/**
 * Claims are taken a little ahead of the executors: about CLAIM_AHEAD_MS of
 * work at the measured rate (at least CLAIM_MIN_POINTS, at most
 * CLAIM_MAX_POINTS), so a claim transaction costs little next to the work it
 * covers while other processes still find most of the sweep unclaimed.
 */
const CLAIM_AHEAD_MS = 250;
const CLAIM_MIN_POINTS = 1024;
const CLAIM_MAX_POINTS = 1 << 20;

/**
 * Batches claimed ahead at most. A claim made ahead commits on the writer
 * thread after the write transaction running there (on a real disk that
 * waits for its fsync, tens of ms for a large batch of typed outputs): with
 * two in flight, each has the time of a whole batch of work to land before
 * it is needed, so a fast function does not wait on its claims.
 */
const CLAIMS_AHEAD = 2;

/** How much to claim next: blocks and points. */
export interface ClaimWant {
  readonly blocks: number;
  readonly points: number;
}

/** Blocks to fill `free` executors of `capacity` and refill them once, and points for CLAIM_AHEAD_MS of work at `rate` points per ms. */
export function claimWant(free: number, capacity: number, rate: number): ClaimWant {
  return {
    blocks: Math.min(Math.max(free, 1) + capacity, 4096),
    points: Math.min(Math.max(rate * CLAIM_AHEAD_MS, CLAIM_MIN_POINTS), CLAIM_MAX_POINTS),
  };
}

/** A claimed batch and the claim's answer, entry by entry. */
export interface Claimed {
  readonly batch: Block[];
  readonly res: ClaimResults;
}

export class ClaimFeed {
  readonly candidates = new Fifo<Block>((b) => b.points.length);
  /** Batches claimed ahead, oldest first. */
  private readonly ahead: { batch: Block[]; claim: PendingClaim }[] = [];

  constructor(
    readonly claims: ClaimSession,
    private readonly diag: Diagnostics,
  ) {}

  /** True while a batch claimed ahead waits to be taken. */
  get hasAhead(): boolean {
    return this.ahead.length > 0;
  }

  /** True while fewer than CLAIMS_AHEAD batches are claimed ahead. */
  get wantsAhead(): boolean {
    return this.ahead.length < CLAIMS_AHEAD;
  }

  /** Queues the missing `blocks` of chunk `w` as candidates, cut to at most `max` points each; returns how many. */
  addCandidates(w: ChunkWork, blocks: readonly Uint32Array[][], max: number): number {
    const dims = w.dims;
    let n = 0;
    for (const b of blocks) {
      // A block within `max` is queued as it is (no list around it per chunk).
      if (blockSize(b) <= max) {
        this.candidates.push(new Block(w, b, blockPoints(dims, b)));
        n++;
        continue;
      }
      for (const block of cutBlock(b, max)) {
        this.candidates.push(new Block(w, block, blockPoints(dims, block)));
        n++;
      }
    }
    return n;
  }

  /** Claims the next candidates now. */
  claimNow(want: ClaimWant): Claimed {
    const batch = this.pick(want);
    const [chunks, points] = entries(batch);
    return { batch, res: this.claim(chunks, points) };
  }

  /** Claims the next candidates on the store's writer thread; false when there are none. */
  claimAhead(want: ClaimWant): boolean {
    if (this.candidates.length === 0) return false;
    const batch = this.pick(want);
    this.ahead.push({ batch, claim: this.timed(() => this.claims.claimBehind(...entries(batch))) });
    this.diag.claimTransactions++;
    return true;
  }

  /** The oldest batch claimed ahead and its answer (waiting for it). */
  takeAhead(): Claimed {
    const { batch, claim } = this.ahead.shift()!;
    return { batch, res: this.answer(() => claim.settle(true)!) };
  }

  /**
   * Ends the claims made ahead unused (a run that stops): each is waited
   * for, also when one fails (its error is thrown once all settled), and
   * their claims are then released with the others.
   */
  dropAhead(): void {
    let failure: unknown = null;
    for (const a of this.ahead.splice(0)) {
      try {
        a.claim.settle(true);
      } catch (e) {
        failure ??= e;
      }
    }
    if (failure !== null) throw failure;
  }

  /** One claim transaction now. */
  claim(chunks: ArrayLike<number>, points: Uint32Array[]): ClaimResults {
    this.diag.claimTransactions++;
    return this.answer(() => this.claims.claim(chunks, points));
  }

  /** A claim's answer, its time and the points it took over counted in the diagnostics. */
  private answer(get: () => ClaimResults): ClaimResults {
    const res = this.timed(get);
    this.diag.takenOverPoints += res.takenOver;
    return res;
  }

  private timed<T>(call: () => T): T {
    const tc = performance.now();
    try {
      return call();
    } finally {
      this.diag.claimMs += performance.now() - tc;
    }
  }

  /** The next candidates to claim: `want` of them, at most CLAIM_MAX_POINTS after the first. */
  private pick(want: ClaimWant): Block[] {
    const batch: Block[] = [];
    let pts = 0;
    while (this.candidates.length && (batch.length < want.blocks || pts < want.points) && (batch.length === 0 || pts < CLAIM_MAX_POINTS)) {
      const c = this.candidates.shift()!;
      batch.push(c);
      pts += c.points.length;
    }
    return batch;
  }
}

/** A batch as claim entries: chunk and points of each block. */
function entries(batch: Block[]): [Uint32Array, Uint32Array[]] {
  const chunks = new Uint32Array(batch.length);
  const points = batch.map((b, n) => {
    chunks[n] = b.work.i;
    return b.points;
  });
  return [chunks, points];
}

keepShape(new Block(WORK_EXEMPLAR, [], new Uint32Array(0)));
