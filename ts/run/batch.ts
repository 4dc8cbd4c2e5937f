/**
 * Write-behind batching of chunk writes: several memo chunks go into one
 * LMDB transaction (one fsync), committed at most `maxDelayMs` after the
 * first pending write, when `maxBytes` are pending, and always at the end of
 * a run (also on errors and aborts). A process killed in between loses at
 * most the uncommitted chunks; every stored record stays complete.
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
  commits = 0;
  writeMs = 0;

  constructor(
    private readonly plan: BindingPlan,
    private readonly store: BindingStore,
    private readonly cacheId: Buffer,
    private readonly label: string,
    private readonly maxDelayMs = 200,
    private readonly maxBytes = 64 << 20,
  ) {}

  add(w: PendingWrite): void {
    if (this.pending.length === 0) this.since = performance.now();
    this.pending.push(w);
    this.bytes += w.data.length + w.points.byteLength + w.offsets.byteLength;
    if (this.bytes >= this.maxBytes || performance.now() - this.since >= this.maxDelayMs) this.flush();
  }

  /** Commits everything pending in one transaction. */
  flush(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    this.bytes = 0;
    const t = performance.now();
    try {
      this.plan.writeBatch(this.store, this.cacheId, batch);
    } catch (e) {
      throw fromNative(e, `${this.label}: storing ${batch.length} chunks`);
    } finally {
      this.writeMs += performance.now() - t;
    }
    this.commits++;
  }
}
