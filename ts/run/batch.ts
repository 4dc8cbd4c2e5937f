/**
 * Write-behind batching of chunk writes: several memo chunks go into one
 * LMDB transaction (one fsync). Pending writes are committed
 * - `maxDelayMs` after the first one (a timer, when the event loop is free),
 * - before the next exec call once that much time has passed, or at once
 *   when exec calls are slow (then a commit costs little next to them),
 * - when `maxBytes` or `maxChunks` are pending (a transaction's dirty
 *   pages stay allocated in LMDB for reuse, so its size bounds the run's
 *   memory), and always at the end of a run (also on errors and aborts).
 * A process killed in between loses at most the uncommitted chunks; every
 * stored record stays complete.
 */
import type { BindingPlan, BindingStore } from '../binding/native.js';
import { fromNative } from '../errors/index.js';

export interface PendingWrite {
  chunk: number;
  kind: number;
  points: Uint32Array;
  offsets: Uint32Array;
  data: Buffer;
  /** Items: the dictionary the points were packed with. */
  dict: Buffer;
}

export class WriteBatcher {
  private pending: PendingWrite[] = [];
  private bytes = 0;
  private since = 0;
  private timer: NodeJS.Timeout | null = null;
  private timerError: unknown = null;
  commits = 0;
  writeMs = 0;

  constructor(
    private readonly plan: BindingPlan,
    private readonly store: BindingStore,
    private readonly cacheId: Buffer,
    private readonly label: string,
    /** Called after each commit with the points it stored. */
    private readonly onCommit: ((points: number) => void) | undefined = undefined,
    private readonly maxDelayMs = 200,
    private readonly maxBytes = 64 << 20,
    private readonly maxChunks = 4096,
  ) {}

  /** True when writes are waiting for a commit. */
  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  add(w: PendingWrite): void {
    if (this.timerError) throw this.timerError;
    if (this.pending.length === 0) {
      this.since = performance.now();
      this.timer = setTimeout(() => {
        this.timer = null;
        try {
          this.flush();
        } catch (e) {
          this.timerError = e;
        }
      }, this.maxDelayMs);
      this.timer.unref();
    }
    this.pending.push(w);
    this.bytes += w.data.length + w.points.byteLength + w.offsets.byteLength;
    if (this.bytes >= this.maxBytes || this.pending.length >= this.maxChunks || performance.now() - this.since >= this.maxDelayMs) this.flush();
  }

  /**
   * Called before an exec call that may take long: commits what is pending
   * when the last exec call was slow or the pending writes are old enough.
   */
  beforeExec(lastExecMs: number): void {
    if (this.pending.length === 0) return;
    if (lastExecMs >= 50 || performance.now() - this.since >= this.maxDelayMs) this.flush();
  }

  /** Commits everything pending in one transaction. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.timerError) {
      const e = this.timerError;
      this.timerError = null;
      throw e;
    }
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.bytes = 0;
    const t = performance.now();
    try {
      this.commit(batch);
    } catch (e) {
      const err = fromNative(e, `${this.label}: storing ${batch.length} chunks`);
      // A full store: keep as much finished work as still fits, chunk by chunk.
      if (err.code === 'ERR_STORE_FULL' && batch.length > 1) {
        for (const w of batch) {
          try {
            this.commit([w]);
          } catch {
            break;
          }
        }
      }
      throw err;
    } finally {
      this.writeMs += performance.now() - t;
    }
  }

  private commit(batch: PendingWrite[]): void {
    // The transaction also releases every claim on the points it stores.
    this.plan.writeBatch(this.store, this.cacheId, batch);
    this.commits++;
    if (this.onCommit) {
      let n = 0;
      for (const w of batch) n += w.points.length;
      this.onCommit(n);
    }
  }
}
