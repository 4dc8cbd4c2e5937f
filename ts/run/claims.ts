/**
 * Work claims of one run (SPEC §4.3): before computing, the run claims its
 * exec blocks in the store, in one short write transaction that re-checks
 * what is stored; other processes (and other runs of this process) skip
 * claimed work and wait for it. A run's claims are released by the
 * transaction that stores their outputs, and all at once when it ends.
 */
import type { BindingPlan, BindingStore } from '../binding/native.js';
import { isAllOf } from '../cache/blocks.js';
import { fromNative } from '../errors/index.js';

/** What a claim call gives for one requested set of points of a chunk. */
export interface ClaimOutcome {
  /** Request indices this run now owns and must compute. */
  readonly granted: Uint32Array;
  /** Request indices found stored (landed since planning). */
  readonly stored: Uint32Array;
  /** Of `granted`: points taken over from a dead owner or an expired lease. */
  readonly takenOver: number;
}

const NONE = new Uint32Array(0);

/** The answer of one claim call, entry by entry (in the order of the request). */
export interface ClaimResults {
  readonly length: number;
  /** Points taken over from dead owners or expired leases, over all entries. */
  readonly takenOver: number;
  /** True when entry k got every point it asked for (the common case, no outcome object needed). */
  whole(k: number): boolean;
  outcome(k: number): ClaimOutcome;
}

/** `claimFlat`'s arguments after the cache id and session. */
type FlatRequest = [chunks: Uint32Array, ends: Uint32Array, points: Uint32Array, leaseMs: number | null, whole: Uint8Array];
type ClaimBatch = ReturnType<BindingPlan['claimFlat']>;

/** Requested points per chunk (`PlanGeometry`). */
export interface ChunkSizes {
  chunkPoints(chunk: number): number;
}

/**
 * The flat arrays of a claim: an entry for every point of its chunk is
 * claimed whole, with no list of its points.
 */
function flatRequest(order: ArrayLike<number>, merged: Uint32Array[], leaseMs: number | null, chunks: ChunkSizes): FlatRequest {
  const n = merged.length;
  const ends = new Uint32Array(n);
  const asWhole = new Uint8Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    const pts = merged[k]!;
    if (isAllOf(pts, chunks.chunkPoints(order[k]!))) asWhole[k] = 1;
    else total += pts.length;
    ends[k] = total;
  }
  const flat = new Uint32Array(total);
  for (let k = 0, at = 0; k < n; k++) {
    if (asWhole[k]) continue;
    flat.set(merged[k]!, at);
    at += merged[k]!.length;
  }
  return [Uint32Array.from(order), ends, flat, leaseMs, asWhole];
}

/**
 * The answer of a claim transaction, entry by entry: an entry granted
 * whole costs no array or object; the outcome of any other is built when
 * asked for.
 */
function resultsOfBatch(r: ClaimBatch, merged: Uint32Array[]): ClaimResults {
  const n = merged.length;
  let takenOver = 0;
  // Where each entry not granted whole starts in r.state.
  const stateAt = new Uint32Array(n);
  for (let k = 0, at = 0; k < n; k++) {
    takenOver += r.takenOver[k]!;
    stateAt[k] = at;
    if (!r.whole[k]) at += merged[k]!.length;
  }
  return {
    length: n,
    takenOver,
    whole: (k) => r.whole[k] === 1,
    outcome: (k) => {
      const pts = merged[k]!;
      if (r.whole[k]) return { granted: pts, stored: NONE, takenOver: r.takenOver[k]! };
      const at = stateAt[k]!;
      const st = r.state.subarray(at, at + pts.length);
      return { granted: pts.filter((_, j) => st[j] === 0), stored: pts.filter((_, j) => st[j] === 1), takenOver: r.takenOver[k]! };
    },
  };
}

/** A claim queued behind the store's earlier writes and claims (`ClaimSession.claimBehind`). */
export interface PendingClaim {
  /** The answer once the claim committed (with `wait`, waits for it); null while it runs. Throws a failed claim's error. */
  settle(wait: boolean): ClaimResults | null;
}

/** True when each chunk is above the one before (one entry per chunk, in grid order). */
function increasing(chunks: ArrayLike<number>): boolean {
  for (let k = 1; k < chunks.length; k++) if (chunks[k]! <= chunks[k - 1]!) return false;
  return true;
}

/** Claim results from outcomes built in JS. */
function resultsOf(out: ClaimOutcome[], points: Uint32Array[]): ClaimResults {
  let takenOver = 0;
  for (const o of out) takenOver += o.takenOver;
  return { length: out.length, takenOver, whole: (k) => out[k]!.granted.length === points[k]!.length, outcome: (k) => out[k]! };
}

let nextSession = 1;
const processBits = Math.floor(Math.random() * 2 ** 20) * 2 ** 32;

export class ClaimSession {
  /** Unique per run in this process (the owner id tells processes apart). */
  readonly id = processBits + nextSession++;
  private released = false;
  private claimed = false;

  constructor(
    private readonly plan: BindingPlan,
    private readonly store: BindingStore,
    private readonly cacheId: Buffer,
    private readonly label: string,
    private readonly leaseMs: number | undefined,
    /** Requested points of each chunk (an entry asking for all of them is claimed whole): the plan's geometry, an object rather than a closure of the run (see ts/shapes.ts). */
    private readonly chunks: ChunkSizes,
  ) {}

  /**
   * Claims the points of several (chunk, points) entries in one transaction.
   * Entries of one chunk are merged into one request (the store then reads
   * and rewrites that chunk's claims once) and the answer is split back.
   */
  claim(chunks: ArrayLike<number>, points: Uint32Array[]): ClaimResults {
    this.claimed = true;
    // One entry per chunk (a sweep claiming in grid order): as asked.
    if (increasing(chunks)) return this.flat(chunks, points);
    const order: number[] = [];
    const byChunk = new Map<number, number[]>();
    for (let n = 0; n < chunks.length; n++) {
      const c = chunks[n]!;
      const list = byChunk.get(c);
      if (list) list.push(n);
      else {
        byChunk.set(c, [n]);
        order.push(c);
      }
    }
    const merged = order.map((c) => {
      const entries = byChunk.get(c)!;
      if (entries.length === 1) return points[entries[0]!]!;
      let size = 0;
      for (const n of entries) size += points[n]!.length;
      const all = new Uint32Array(size);
      let w = 0;
      for (const n of entries) {
        all.set(points[n]!, w);
        w += points[n]!.length;
      }
      return all.sort();
    });
    const res = this.flat(order, merged);
    const out = new Array<ClaimOutcome>(chunks.length);
    order.forEach((c, k) => {
      const entries = byChunk.get(c)!;
      const r = res.outcome(k);
      if (entries.length === 1) {
        out[entries[0]!] = r;
        return;
      }
      const granted = new Set(r.granted);
      const stored = new Set(r.stored);
      entries.forEach((n, j) => {
        const p = points[n]!;
        out[n] = {
          granted: p.filter((x) => granted.has(x)),
          stored: p.filter((x) => stored.has(x)),
          // Taken-over points are counted once, on the chunk's first entry.
          takenOver: j === 0 ? r.takenOver : 0,
        };
      });
    });
    return resultsOf(out, points);
  }

  /**
   * Claims entries of distinct chunks in grid order (as `claim` does) on
   * the store's writer thread, before the writes queued there: returns at
   * once, so the run computes while the claim commits.
   */
  claimBehind(chunks: ArrayLike<number>, points: Uint32Array[]): PendingClaim {
    if (!increasing(chunks)) {
      // Several entries of a chunk: merged by `claim`, here and now.
      const now = this.claim(chunks, points);
      return { settle: () => now };
    }
    this.claimed = true;
    const pending = this.native(() => this.plan.claimFlatBehind(this.store, this.cacheId, this.id, ...this.request(chunks, points)));
    return {
      settle: (wait) => {
        const r = this.native(() => pending.settle(wait));
        return r ? resultsOfBatch(r, points) : null;
      },
    };
  }

  private flat(order: ArrayLike<number>, merged: Uint32Array[]): ClaimResults {
    const r = this.native(() => this.plan.claimFlat(this.store, this.cacheId, this.id, ...this.request(order, merged)));
    return resultsOfBatch(r, merged);
  }

  private request(order: ArrayLike<number>, merged: Uint32Array[]): FlatRequest {
    return flatRequest(order, merged, this.leaseMs ?? null, this.chunks);
  }

  /** A binding call, its error named after the run. */
  private native<T>(call: () => T): T {
    try {
      return call();
    } catch (e) {
      throw fromNative(e, `${this.label}: claiming work`);
    }
  }

  /** Releases every claim of this run still held (also after failures). */
  release(): void {
    if (this.released) return;
    this.released = true;
    // A run that never claimed (everything was stored) holds nothing: no transaction.
    if (!this.claimed) return;
    try {
      this.store.releaseSession(this.id);
    } catch {
      // Claims of a live owner that are left behind are released when it exits.
    }
  }
}
