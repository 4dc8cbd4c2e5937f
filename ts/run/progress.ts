/** Progress events and the verbose stderr line. */

/** A progress report: points done out of those to compute, rate and ETA. */
export interface ProgressEvent {
  readonly pointsDone: number;
  readonly pointsTotal: number;
  readonly chunksDone: number;
  readonly chunksTotal: number;
  /** Executed points per second since the start. */
  readonly rate: number;
  /** Estimated milliseconds left (NaN until something has run). */
  readonly etaMs: number;
  readonly elapsedMs: number;
}

export class Progress {
  private readonly t0 = performance.now();
  private lastLine = 0;
  pointsDone = 0;
  chunksDone = 0;
  constructor(
    private readonly pointsTotal: number,
    private readonly chunksTotal: number,
    private readonly onProgress: ((e: ProgressEvent) => void) | undefined,
    private readonly verbose: number,
    private readonly label: string,
  ) {}

  event(): ProgressEvent {
    const elapsedMs = performance.now() - this.t0;
    const rate = elapsedMs > 0 ? (this.pointsDone / elapsedMs) * 1000 : 0;
    const left = this.pointsTotal - this.pointsDone;
    return {
      pointsDone: this.pointsDone, pointsTotal: this.pointsTotal, chunksDone: this.chunksDone,
      chunksTotal: this.chunksTotal, rate, etaMs: rate > 0 ? (left / rate) * 1000 : left === 0 ? 0 : NaN, elapsedMs,
    };
  }

  /** verbose 2: one line per finished chunk. */
  chunk(index: number, cached: number, executed: number): void {
    if (this.verbose < 2) return;
    process.stderr.write(`${process.stderr.isTTY ? '\r\x1b[2K' : ''}${this.label}: chunk ${index}: ${cached} cached, ${executed} executed\n`);
  }

  update(points: number, chunks: number): void {
    this.pointsDone += points;
    this.chunksDone += chunks;
    if (!this.onProgress && this.verbose < 1) return;
    const e = this.event();
    this.onProgress?.(e);
    if (this.verbose >= 1) {
      const now = e.elapsedMs;
      const done = e.pointsDone >= e.pointsTotal;
      // TTY: redraw one line at most 10 times a second; else a line a second.
      const every = process.stderr.isTTY ? 100 : 1000;
      if (!done && now - this.lastLine < every) return;
      this.lastLine = now;
      const eta = Number.isFinite(e.etaMs) ? `${(e.etaMs / 1000).toFixed(1)}s` : '?';
      const line = `${this.label}: ${e.pointsDone}/${e.pointsTotal} points, ${e.chunksDone}/${e.chunksTotal} chunks, ${e.rate.toFixed(0)} pts/s, ETA ${eta}`;
      if (process.stderr.isTTY) process.stderr.write(`\r\x1b[2K${line}${done ? '\n' : ''}`);
      else process.stderr.write(`${line}\n`);
    }
  }
}
