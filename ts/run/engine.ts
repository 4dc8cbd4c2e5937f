/**
 * The run engine shared by every runner (`run`, `runStreaming`, `iterate`,
 * `runParallel` on threads, processes, `mapFn` or an executor).
 *
 * Path of a run: plan the view → resolve it against the store → per memo
 * chunk, read what is stored and cut the missing points into product blocks
 * of at most `execChunkSize` points → claim a few blocks at a time → compute
 * the granted ones on the executors → when a chunk has all its points, store
 * what this run computed (the transaction also releases the claims) → wait
 * for points other processes hold, and read them when they land.
 * `RunSession` (session.ts) does the scheduling; `ChunkWork` (chunk-work.ts)
 * assembles each chunk.
 */
import { AbortedError } from '../errors/index.js';
import { newDiagnostics, type Diagnostics } from './diagnostics.js';
import { DONE_BATCH, RunSession } from './session.js';
import { keepAxesShape } from './job-of.js';
import type { ChunkDone, EngineSpec } from './spec.js';
import { beginRun, type GatherInto } from './lifecycle.js';
import { checkCodeChange } from '../cache/code-record.js';

export type { ChunkDone, EngineExecutor, EngineSpec, ExecutorStats } from './spec.js';

/**
 * Awaits `p` with the process held alive: a pool may unref a worker that is
 * starting or idle, and a job in flight must not let Node exit under it.
 */
async function held<T>(p: Promise<T>): Promise<T> {
  const hold = setInterval(() => undefined, 1 << 30);
  try {
    return await p;
  } finally {
    clearInterval(hold);
  }
}

/** Serial runs let timers, signals and I/O in at least this often (ms). */
const YIELD_MS = 20;

/**
 * Runs a view and yields each memo chunk once all its requested points are
 * available (stored, computed here, or computed by another process).
 */
export async function* runEngine(spec: EngineSpec): AsyncGenerator<ChunkDone, Diagnostics> {
  const it = runEngineBatches(spec);
  try {
    for (;;) {
      const r = await it.next();
      if (r.done) return r.value;
      for (const d of r.value) yield d;
    }
  } finally {
    // A consumer that stops early (break in iterate) ends the run here: its
    // writes are committed and its claims and in-use marks released.
    await it.return(undefined as never);
  }
}

/**
 * `runEngine` handing out the memo chunks that are ready together, in grid
 * order (one step of the generator per batch, not per chunk: what a consumer
 * of every chunk, such as `run`, wants).
 */
export async function* runEngineBatches(spec: EngineSpec): AsyncGenerator<ChunkDone[], Diagnostics> {
  const diag = spec.diag ?? newDiagnostics();
  const t0 = performance.now();
  // A run that reads every stored chunk of the whole view verifies records
  // as it reads them (openChunk); one with a flat output makes it before
  // the resolution when the cache holds typed outputs, and the resolution
  // copies whole chunks into it as it finds them (no second lookup).
  const readsAll = spec.needOutputs && !spec.needed;
  const sink = readsAll ? spec.sink : undefined;
  const gatherInto: GatherInto | undefined = sink && ((kind, total) => {
    diag.totalPoints = total;
    sink.expect(kind);
    return sink.typed()?.bytes ?? null;
  });
  const run = beginRun(spec.view, spec.label, readsAll, gatherInto);
  const { plan, resolved, geometry } = run;
  try {
    if (spec.fn) checkCodeChange(spec.view, spec.fn, spec.label);
    diag.corruptRecords.push(...resolved.corrupt);
    const s = new RunSession(spec, plan, resolved, geometry, diag);
    keepAxesShape(spec);
    // Whole stored chunks of one kind: the output is made (a typed one's
    // pages mapped in the background) before the first read, which gathers
    // or decodes into it.
    if (spec.sink && resolved.wholeKind !== undefined) spec.sink.expect(resolved.wholeKind);
    diag.timings.planMs += performance.now() - t0;
    try {
      yield* loop(spec, s);
      if (s.failure !== null) throw s.failure;
      if (s.aborted || spec.signal?.aborted) {
        throw new AbortedError(`${spec.label} aborted; ${diag.executedPoints} computed points are stored, a re-run computes only the rest`, { cause: spec.signal?.reason });
      }
      s.batcher.flush();
    } finally {
      await finish(s, diag);
      diag.timings.totalMs = performance.now() - t0;
    }
    return diag;
  } finally {
    run.end();
  }
}

async function* loop(spec: EngineSpec, s: RunSession): AsyncGenerator<ChunkDone[]> {
  let backoff = 2;
  let lastYield = performance.now();
  // Serial runs let timers, signals and I/O in every YIELD_MS (checked
  // without awaiting: a synchronous exec call costs no promise).
  const pauseDue = (): boolean => spec.yieldEvery && performance.now() - lastYield >= YIELD_MS;
  const pause = async (): Promise<void> => {
    await new Promise((r) => setTimeout(r, 0));
    lastYield = performance.now();
  };
  for (;;) {
    // Every path through the loop comes back here (a run of stored chunks
    // or of synchronous exec calls awaits nothing else).
    if (pauseDue()) await pause();
    // Hand out finished chunks first: a consumer that stops early stops the
    // run. Chunks done synchronously go out DONE_BATCH at a time.
    if (s.finished && (spec.durable || s.finished >= DONE_BATCH)) {
      yield* handOut(spec, s);
      continue;
    }
    if (spec.signal?.aborted) s.aborted = true;
    const before = s.dispatched;
    if (s.failure === null && !s.aborted) s.fill();
    if (s.inflight.size === 0 && s.dispatched > before && s.failure === null) {
      // Exec calls that returned synchronously: go on without a promise.
      continue;
    }
    if (s.finished) {
      yield* handOut(spec, s);
      continue;
    }
    if (s.inflight.size > 0) {
      await held(Promise.race(s.inflight));
      continue;
    }
    if (s.failure !== null || s.aborted) return;
    if (s.hasWork) continue;
    if (!s.isWaiting) return;
    // Everything left is held by other processes: commit ours, then poll.
    s.batcher.flush();
    if (s.pollWaiting()) backoff = 2;
    else {
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 250);
    }
  }
}

/** Yields the finished chunks as one batch (committed first when the consumer needs them durable). */
function* handOut(spec: EngineSpec, s: RunSession): Generator<ChunkDone[]> {
  const batch = s.takeDone();
  if (batch.length === 0) return;
  if (spec.durable && batch.some((d) => d.executedPoints > 0)) s.batcher.flush();
  yield batch;
}

/** Whatever completed is stored, also on failure or abort; the run's claims are released. */
async function finish(s: RunSession, diag: Diagnostics): Promise<void> {
  if (s.inflight.size) await held(Promise.allSettled([...s.inflight]));
  try {
    // A claim still committing would outlive the release below.
    s.feed.dropAhead();
  } catch (e) {
    s.failure ??= e;
  }
  s.writeOpenChunks();
  try {
    s.batcher.flush();
  } catch (e) {
    s.failure ??= e;
    if (s.failure === e) {
      s.feed.claims.release();
      throw e;
    }
  }
  s.feed.claims.release();
  diag.timings.writeMs = s.batcher.writeMs;
  if (s.failure === null || s.aborted) s.progress.finish();
}
