/**
 * Progress events and the verbose stderr line. A point counts as done when
 * its output is committed to the store (by this run, or by another process
 * whose claimed work this run waited for), never before.
 */

/** A progress report: points done out of those to compute, rate and ETA. */
export interface ProgressEvent {
  /** Points committed so far (computed here or landed from another process). */
  readonly pointsDone: number;
  /** Points this run had to compute when it started (the rest were reused). */
  readonly pointsTotal: number;
  /** Points reused from the store at the start. */
  readonly cachedPoints: number;
  /** Of `pointsDone`: points another process computed while this run waited. */
  readonly waitedPoints: number;
  readonly chunksDone: number;
  readonly chunksTotal: number;
  /** Committed points per second since the start. */
  readonly rate: number;
  /** Estimated milliseconds left (NaN until something has run). */
  readonly etaMs: number;
  readonly elapsedMs: number;
}

export interface ProgressSetup {
  readonly label: string;
  /** Short cache id shown in the verbose line. */
  readonly cacheId: string;
  readonly pointsTotal: number;
  readonly cachedPoints: number;
  readonly chunksTotal: number;
  readonly onProgress: ((e: ProgressEvent) => void) | undefined;
  readonly verbose: number;
}

export class Progress {
  private readonly t0 = performance.now();
  private lastLine = -Infinity;
  private printed = false;
  pointsDone = 0;
  waitedPoints = 0;
  chunksDone = 0;
  private readonly s: { -readonly [K in keyof ProgressSetup]: ProgressSetup[K] };
  constructor(setup: ProgressSetup) {
    this.s = { ...setup };
  }

  /** `points` the run counted as stored turned out damaged when read: they are computed. */
  unstored(points: number): void {
    this.s.pointsTotal += points;
    this.s.cachedPoints -= points;
  }

  event(): ProgressEvent {
    const elapsedMs = performance.now() - this.t0;
    const rate = elapsedMs > 0 ? (this.pointsDone / elapsedMs) * 1000 : 0;
    const left = this.s.pointsTotal - this.pointsDone;
    return {
      pointsDone: this.pointsDone, pointsTotal: this.s.pointsTotal, cachedPoints: this.s.cachedPoints, waitedPoints: this.waitedPoints,
      chunksDone: this.chunksDone, chunksTotal: this.s.chunksTotal, rate,
      etaMs: left <= 0 ? 0 : rate > 0 ? (left / rate) * 1000 : NaN, elapsedMs,
    };
  }

  /** Points committed by this run. */
  committed(points: number): void {
    if (points === 0) return;
    this.pointsDone += points;
    this.report();
  }

  /** Points another process committed while this run waited for them. */
  landed(points: number): void {
    if (points === 0) return;
    this.pointsDone += points;
    this.waitedPoints += points;
    this.report();
  }

  /** A memo chunk is complete (verbose 2 adds a line for it). */
  chunk(index: number, cached: number, executed: number): void {
    this.chunksDone++;
    if (this.s.verbose >= 2) process.stderr.write(`${this.tty ? '\r\x1b[2K' : ''}${this.s.label}: chunk ${index}: ${cached} cached, ${executed} executed\n`);
    this.report();
  }

  /** The run ended: the final verbose line (once). */
  finish(): void {
    if (this.s.verbose >= 1) this.line(true);
  }

  private get tty(): boolean {
    return !!process.stderr.isTTY;
  }

  private report(): void {
    if (this.s.onProgress) this.s.onProgress(this.event());
    if (this.s.verbose < 1) return;
    const now = performance.now() - this.t0;
    // A TTY redraws one line at most 10 times a second; a log gets a line every 5 s.
    if (now - this.lastLine < (this.tty ? 100 : 5000)) return;
    this.line(false);
  }

  private line(final: boolean): void {
    if (final && this.printed && !this.tty && this.pointsDone === 0) return;
    this.lastLine = performance.now() - this.t0;
    this.printed = true;
    const e = this.event();
    const eta = Number.isFinite(e.etaMs) ? `${(e.etaMs / 1000).toFixed(1)}s` : '?';
    const waited = e.waitedPoints ? ` (${e.waitedPoints} by other processes)` : '';
    const text =
      `${this.s.label} ${this.s.cacheId}: ${e.pointsDone}/${e.pointsTotal} points computed${waited}, ${e.cachedPoints} reused, ` +
      `${e.chunksDone}/${e.chunksTotal} chunks, ${e.rate.toFixed(0)} pts/s, ETA ${eta}`;
    if (this.tty) process.stderr.write(`\r\x1b[2K${text}${final ? '\n' : ''}`);
    else process.stderr.write(`${text}\n`);
  }
}
