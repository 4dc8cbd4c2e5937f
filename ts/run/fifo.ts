/**
 * A first-in first-out queue with O(1) `shift` (an array's `shift` moves
 * every remaining item, which made queues of thousands of exec blocks
 * quadratic), and the total size of its items kept as they come and go.
 */
export class Fifo<T> {
  private items: T[] = [];
  private head = 0;
  /** Sum of `sizeOf` over the queued items. */
  total = 0;

  constructor(private readonly sizeOf: (x: T) => number) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** The next item (undefined when empty). */
  peek(): T | undefined {
    return this.items[this.head];
  }

  push(x: T): void {
    this.items.push(x);
    this.total += this.sizeOf(x);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const x = this.items[this.head]!;
    this.items[this.head++] = undefined as T;
    this.total -= this.sizeOf(x);
    // Drop the consumed prefix once it is most of the array.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      // The old array is emptied: one that reached V8's old generation
      // would otherwise keep the items still queued (and all they hold)
      // alive through young collections after they were taken.
      const old = this.items;
      this.items = old.slice(this.head);
      old.length = 0;
      this.head = 0;
    } else if (this.head === this.items.length) {
      this.items.length = 0;
      this.head = 0;
    }
    return x;
  }
}
