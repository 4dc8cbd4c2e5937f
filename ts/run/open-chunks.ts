/** The chunks a run has open (see RunSession). */
import type { ChunkWork } from './chunk-work.js';

/**
 * The chunks a run has open, in a list threaded through them. A Map keyed
 * by chunk replaced its hash table as chunks came and went, and a table
 * dropped once it had reached V8's old generation still pointed at chunks
 * long finished: the young collections kept them, and everything they
 * held, alive until the next full one, growing the heap.
 */
export class OpenChunks {
  size = 0;
  private head: ChunkWork | null = null;

  add(w: ChunkWork): void {
    w.nextOpen = this.head;
    if (this.head) this.head.prevOpen = w;
    this.head = w;
    this.size++;
  }

  /** Takes `w` out of the list (nothing when it is not in it); it keeps no link to the others. */
  delete(w: ChunkWork): void {
    if (w.prevOpen) w.prevOpen.nextOpen = w.nextOpen;
    else if (this.head === w) this.head = w.nextOpen;
    else return;
    if (w.nextOpen) w.nextOpen.prevOpen = w.prevOpen;
    w.prevOpen = null;
    w.nextOpen = null;
    this.size--;
  }

  /** The open chunks (none may be added or taken out meanwhile). */
  *values(): Generator<ChunkWork> {
    for (let w = this.head; w !== null; w = w.nextOpen) yield w;
  }
}
