/**
 * The run engine shared by every runner (`run`, `runStreaming`, `iterate`,
 * `runParallel` on threads, processes, `mapFn` or an executor).
 *
 * Path of a run: plan the view → resolve it against the store → per memo
 * chunk, read what is stored and cut the missing points into product blocks
 * of at most `execChunkSize` points → claim a few blocks at a time → compute
 * the granted ones on the executors → when a chunk has all its points, store
 * what this run computed (one transaction that also releases the claims) →
 * wait for points other processes hold, and read them when they land.
 */
import { createHash } from 'node:crypto';
import type { ChunkCache } from '../cache/cache.js';
import { blockPoints, cutBlock, splitBlocks } from '../cache/blocks.js';
import { AbortedError, ChunkMemoError, ExecError } from '../errors/index.js';
import { describeValue } from '../describe.js';
import type { ExecJob, JobOutput, TaskSpec } from '../task/job.js';
import { checkOutputs } from '../task/execute.js';
import type { TypedArray, Value } from '../value.js';
import { WriteBatcher } from './batch.js';
import { ClaimSession } from './claims.js';
import { newDiagnostics, type Diagnostics } from './diagnostics.js';
import { planRun, type ChunkGeo, type PlanGeometry } from './geometry.js';
import { decodeOutputs, encodeOutputs, kindOf, KIND_ITEMS, typedCtor } from './payload.js';
import { Progress, type ProgressEvent } from './progress.js';
import { afterRun } from '../manage/hooks.js';

/** Work done by one executor (the calling thread, a pool, a device, a queue). */
export interface ExecutorStats {
  readonly label: string;
  execChunks: number;
  points: number;
}

/** An executor as the engine drives it. */
export interface EngineExecutor {
  readonly concurrency: number;
  readonly stats: ExecutorStats;
  busy: number;
  run(job: ExecJob, signal?: AbortSignal): Promise<JobOutput>;
}

/** A memo chunk whose requested points are all available. */
export interface ChunkDone {
  readonly index: number;
  readonly geo: ChunkGeo;
  /** Outputs in request order (null when outputs are not needed). */
  readonly output: unknown[] | TypedArray | null;
  readonly cachedPoints: number;
  readonly executedPoints: number;
  /** Position of each requested point in the view's flat grid-ordered output. */
  outIndex(): Uint32Array;
}

export interface EngineSpec {
  readonly view: ChunkCache;
  readonly label: string;
  readonly task: TaskSpec;
  readonly executors: EngineExecutor[];
  /** Points per exec block at most (Infinity: the planner's blocks as they are). */
  readonly execChunkSize: number;
  /** Keep and return outputs (read stored ones, keep computed ones). */
  readonly needOutputs: boolean;
  /** Commit a chunk before handing it out (iterate). */
  readonly durable: boolean;
  /** Given the plan's geometry: only these request indices of chunk i (sorted, unique); undefined: all. */
  readonly needed?: (G: PlanGeometry) => (i: number) => Uint32Array | null;
  /** Fill `ExecJob.key` (executors that need deterministic job ids). */
  readonly jobKeys: boolean;
  /** Bound buffered + in-flight points (parallel runs). */
  readonly boundMemory: boolean;
  /** Yield to the event loop between exec calls (serial runs of sync functions). */
  readonly yieldEvery: boolean;
  readonly device?: string;
  readonly signal?: AbortSignal | undefined;
  readonly onProgress?: ((e: ProgressEvent) => void) | undefined;
  readonly claimTimeoutMs?: number | undefined;
  readonly diag?: Diagnostics;
}

interface ChunkState {
  readonly i: number;
  readonly geo: ChunkGeo;
  readonly dims: number[];
  readonly needed: Uint32Array | null;
  out: unknown[] | TypedArray | null;
  kind: number;
  cached: number;
  inflight: number;
  compR: number[];
  compV: unknown[];
  /** Computed outputs of the whole chunk as one typed array (fast path). */
  whole: TypedArray | null;
  executed: number;
  readonly held: Set<number>;
  landed: number;
}

interface Block {
  readonly state: ChunkState;
  readonly block: Uint32Array[];
  readonly points: Uint32Array;
}

/** Describes a block's values for error messages. */
export function coords(axes: Record<string, Value[]>): string {
  const parts = Object.entries(axes).map(([a, v]) => `${a}=[${v.slice(0, 6).map(describeValue).join(', ')}${v.length > 6 ? `, ... ${v.length} values` : ''}]`);
  return parts.join(' ') || 'the singleton point';
}

const YIELD_MS = 20;

/** Rejects with `ERR_ABORTED` as soon as `signal` fires, whatever `p` does. */
function raceAbort<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  // Aborted already (e.g. by the exec call itself): its result is kept.
  if (!signal || signal.aborted) return p;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AbortedError('aborted', { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
const CLAIM_BATCH_POINTS = 8192;

/**
 * Runs a view and yields each memo chunk once all its requested points are
 * available (stored, computed here, or computed by another process).
 */
export async function* runEngine(spec: EngineSpec): AsyncGenerator<ChunkDone, Diagnostics> {
  const { view, label } = spec;
  const core = view._check();
  const diag = spec.diag ?? newDiagnostics();
  const t0 = performance.now();
  const { plan, resolved, geometry: G } = planRun(view, label);
  try {
    diag.corruptRecords.push(...resolved.corrupt);
    diag.totalChunks = G.chunkCount;
    const visible = view.axisOrder;
    const params = view.params;
    const pinned = view._pinned;
    const store = core.store;
    const idBytes = core.idBytes;

    // Totals for progress, without touching the records.
    let toCompute = 0;
    let reused = 0;
    let totalPoints = 0;
    const neededOf: Array<Uint32Array | null> = [];
    const neededFn = spec.needed?.(G);
    for (let i = 0; i < G.chunkCount; i++) {
      const need = neededFn ? neededFn(i) : null;
      neededOf.push(need);
      if (need) {
        totalPoints += need.length;
        toCompute += need.length;
      } else {
        const pts = G.chunkPoints(i);
        totalPoints += pts;
        toCompute += pts - resolved.available[i]!;
        reused += resolved.available[i]!;
      }
    }
    diag.totalPoints = totalPoints;
    const session = new ClaimSession(plan, store, idBytes, label, spec.claimTimeoutMs);
    diag.timings.planMs += performance.now() - t0;

    const progress = new Progress({
      label, cacheId: core.id.slice(0, 8), pointsTotal: toCompute, cachedPoints: reused, chunksTotal: G.chunkCount,
      onProgress: spec.onProgress, verbose: core.verbose,
    });
    const batcher = new WriteBatcher(plan, store, idBytes, label, session.id, (n) => progress.committed(n));

    const done: ChunkDone[] = [];
    const open = new Map<number, ChunkState>();
    const waiting = new Set<ChunkState>();
    const candidates: Block[] = [];
    let nextChunk = 0;
    let jobIndex = 0;
    let buffered = 0;
    let inflightPoints = 0;
    let largestChunk = 0;
    let failure: unknown = null;
    let aborted = false;
    const inflight = new Set<Promise<void>>();
    const capacity = spec.executors.reduce((n, e) => n + e.concurrency, 0);
    let lastYield = performance.now();

    const emit = (s: ChunkState): void => {
      open.delete(s.i);
      waiting.delete(s);
      let output: unknown[] | TypedArray | null = null;
      if (spec.needOutputs) {
        if (s.landed > 0) fillFromStore(s);
        output = s.whole ?? s.out;
        if (output && !ArrayBuffer.isView(output) && s.kind > KIND_ITEMS) {
          const ta = new (typedCtor(s.kind))(s.geo.points);
          const src = output as unknown[];
          for (let j = 0; j < src.length; j++) if (src[j] !== undefined) (ta as unknown as unknown[])[j] = src[j];
          output = ta;
        }
      }
      diag.cachedPoints += s.cached;
      diag.executedPoints += s.executed;
      if (s.executed === 0) diag.cachedChunks++;
      else diag.executedChunks++;
      if (s.executed > 0 && s.cached + s.landed > 0) diag.partialChunks++;
      diag.maxBufferedPoints = Math.max(diag.maxBufferedPoints, spec.needOutputs ? s.geo.points : 0);
      progress.chunk(s.i, s.cached, s.executed);
      const geo = s.geo;
      done.push({ index: s.i, geo, output, cachedPoints: s.cached, executedPoints: s.executed, outIndex: () => G.outIndices(geo) });
    };

    /** Reads the stored points of a chunk into its output buffer. */
    const readInto = (s: ChunkState): void => {
      const tr = performance.now();
      const rd = plan.read(store, idBytes, s.i);
      if (rd.corrupt.length) diag.corruptRecords.push(...rd.corrupt);
      let present = 0;
      for (let j = 0; j < rd.present.length; j++) present += rd.present[j]!;
      if (present > 0) {
        const vals = decodeOutputs(rd.kind, rd.data, present, rd.dicts, rd.pointDicts, rd.offsets);
        s.kind = s.kind === -1 || s.kind === rd.kind ? rd.kind : KIND_ITEMS;
        if (present === s.geo.points && s.out === null) s.out = vals as unknown[] | TypedArray;
        else {
          const arr = toArray(s);
          let w = 0;
          for (let j = 0; j < rd.present.length; j++) if (rd.present[j]) {
            const v = vals[w++];
            if (arr[j] === undefined) arr[j] = v;
          }
        }
      }
      diag.timings.readMs += performance.now() - tr;
    };
    const toArray = (s: ChunkState): unknown[] => {
      if (s.whole) {
        s.out = Array.from(s.whole as ArrayLike<unknown>);
        s.whole = null;
      } else if (s.out === null) s.out = new Array(s.geo.points);
      else if (!Array.isArray(s.out)) s.out = Array.from(s.out as ArrayLike<unknown>);
      return s.out as unknown[];
    };
    const fillFromStore = (s: ChunkState): void => readInto(s);

    /** Opens the next chunk with work: reads what is stored, queues its blocks. */
    const openChunk = (i: number): void => {
      const need = neededOf[i] ?? null;
      if (need && need.length === 0) return;
      const geo = G.chunk(i);
      const dims = geo.sel.map((s) => s.length);
      const avail = resolved.available[i]!;
      const s: ChunkState = {
        i, geo, dims, needed: need, out: null, kind: -1, cached: 0, inflight: 0, compR: [], compV: [],
        whole: null, executed: 0, held: new Set(), landed: 0,
      };
      let missing: Uint32Array[][];
      if (!need) {
        s.cached = avail;
        if (avail > 0 && spec.needOutputs) readInto(s);
        missing = avail < geo.points ? plan.missing(store, idBytes, i).blocks : [];
      } else {
        const present = avail > 0 ? plan.presence(store, idBytes, i) : null;
        const miss: number[] = [];
        for (const r of need) if (!present || !present[r]) miss.push(r);
        s.cached = need.length - miss.length;
        if (s.cached > 0 && spec.needOutputs) readInto(s);
        missing = splitBlocks(dims, miss);
      }
      let blocks = 0;
      for (const b of missing) for (const block of cutBlock(b, spec.execChunkSize)) {
        candidates.push({ state: s, block, points: blockPoints(dims, block) });
        blocks++;
      }
      if (blocks === 0) {
        emit(s);
        return;
      }
      open.set(i, s);
      pendingBlocks.set(s, blocks);
      largestChunk = Math.max(largestChunk, s.geo.points);
    };
    /** Per open chunk: blocks not yet claimed or not yet dispatched. */
    const pendingBlocks = new Map<ChunkState, number>();

    /** Stores what a chunk computed and hands it out, or parks it to wait for others. */
    const settle = (s: ChunkState): void => {
      if ((pendingBlocks.get(s) ?? 0) > 0 || s.inflight > 0) return;
      pendingBlocks.delete(s);
      writeComputed(s);
      if (s.held.size > 0) waiting.add(s);
      else emit(s);
    };
    const writeComputed = (s: ChunkState): void => {
      if (s.compR.length === 0) return;
      const kind = s.kind === -1 ? KIND_ITEMS : s.kind;
      let vals: ArrayLike<unknown>;
      if (s.whole && s.compR.length === s.whole.length) vals = s.whole;
      else if (kind !== KIND_ITEMS) vals = (typedCtor(kind) as unknown as { from(v: unknown[]): TypedArray }).from(s.compV);
      else vals = s.compV;
      const enc = encodeOutputs(vals, kind);
      batcher.add({ chunk: s.i, kind, points: Uint32Array.from(s.compR), offsets: enc.offsets, data: enc.data, dict: enc.dict });
      diag.streamFlushes++;
      buffered -= s.compR.length;
      s.compR = [];
      s.compV = [];
    };

    const jobFor = (b: Block): ExecJob => {
      const geo = b.state.geo;
      const axes: Record<string, Value[]> = {};
      core.axisOrder.forEach((a, k) => {
        if (pinned.has(a)) return;
        const all = core.axisValues[a]!;
        const sel = geo.sel[k]!;
        const start = geo.start[k]!;
        const pos = b.block[k]!;
        const vals = new Array<Value>(pos.length);
        for (let j = 0; j < pos.length; j++) vals[j] = all[start + sel[pos[j]!]!]!;
        axes[a] = vals;
      });
      let key = '';
      if (spec.jobKeys) {
        const h = createHash('sha256');
        h.update(idBytes);
        core.axisOrder.forEach((a, k) => {
          h.update(`\0${a}\0`);
          const sel = geo.sel[k]!;
          const start = geo.start[k]!;
          const pos = b.block[k]!;
          const g = new Uint32Array(pos.length);
          for (let j = 0; j < pos.length; j++) g[j] = start + sel[pos[j]!]!;
          h.update(g);
        });
        key = h.digest('hex').slice(0, 40);
      }
      return { task: spec.task, params, axisOrder: visible, axes, count: b.points.length, jobIndex: jobIndex++, key, ...(spec.device !== undefined ? { device: spec.device } : {}) };
    };

    const accept = (b: Block, out: JobOutput): void => {
      const s = b.state;
      const kind = kindOf(out);
      s.kind = s.kind === -1 || s.kind === kind ? kind : KIND_ITEMS;
      const n = b.points.length;
      if (n === s.geo.points && s.out === null && kind !== KIND_ITEMS && s.compR.length === 0) {
        // The whole chunk in one typed block, in request order.
        s.whole = out as TypedArray;
        for (let j = 0; j < n; j++) s.compR.push(j);
      } else {
        if (s.whole) toArray(s);
        for (let j = 0; j < n; j++) {
          s.compR.push(b.points[j]!);
          s.compV.push((out as ArrayLike<unknown>)[j]);
        }
        if (spec.needOutputs) {
          const arr = toArray(s);
          for (let j = 0; j < n; j++) arr[b.points[j]!] = (out as ArrayLike<unknown>)[j];
        }
      }
      s.executed += n;
      buffered += n;
      diag.maxBufferedPoints = Math.max(diag.maxBufferedPoints, buffered);
    };

    const dispatch = (ex: EngineExecutor, b: Block): void => {
      const job = jobFor(b);
      const s = b.state;
      pendingBlocks.set(s, pendingBlocks.get(s)! - 1);
      s.inflight++;
      ex.busy++;
      ex.stats.execChunks++;
      ex.stats.points += job.count;
      diag.execChunks++;
      inflightPoints += job.count;
      if (spec.durable || !spec.boundMemory) batcher.beforeExec(lastExecMs);
      const te = performance.now();
      const p = (async () => {
        try {
          const out = checkOutputs(await raceAbort(ex.run(job, spec.signal), spec.signal), job.count, `${label}: chunk ${s.i} at ${coords(job.axes as Record<string, Value[]>)}`);
          if (failure === null) accept(b, out);
        } catch (e) {
          if (failure === null && !(aborted && isAbort(e))) failure = wrapExecError(e, s.i, job);
        } finally {
          lastExecMs = performance.now() - te;
          diag.timings.execMs += lastExecMs;
          ex.busy--;
          s.inflight--;
          inflightPoints -= job.count;
          if (failure === null) {
            try {
              settle(s);
            } catch (e) {
              failure ??= e;
            }
          }
        }
      })();
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    };
    let lastExecMs = 0;

    const wrapExecError = (e: unknown, i: number, job: ExecJob): unknown => {
      if (e instanceof ChunkMemoError && (e.code === 'ERR_ABORTED' || e.code === 'ERR_EXEC_OUTPUT')) return e;
      return new ExecError(
        `${label}: exec function failed on chunk ${i} at ${coords(job.axes as Record<string, Value[]>)} (exec chunk ${job.jobIndex}, ${job.count} points): ${(e as Error)?.message ?? describeValue(e)}; ` +
          'finished chunks are stored, a re-run computes only the rest',
        { cause: e },
      );
    };
    const isAbort = (e: unknown): boolean =>
      (e instanceof ChunkMemoError && e.code === 'ERR_ABORTED') || (e as Error)?.name === 'AbortError' || spec.signal?.aborted === true;

    const claimWant = (free: number): number => Math.min(Math.max(free, 1) + capacity, 4096);
    /** Claims the next candidates (a small batch) and dispatches granted work. */
    const claimAndDispatch = (free: number): void => {
      // Claim a little ahead of the executors: enough blocks to keep them busy
      // (at least 1,024 points), never the whole sweep, so processes share it.
      const batch: Block[] = [];
      let pts = 0;
      const want = claimWant(free);
      while (candidates.length && (batch.length < want || pts < 1024) && (batch.length === 0 || pts < CLAIM_BATCH_POINTS)) {
        const c = candidates.shift()!;
        batch.push(c);
        pts += c.points.length;
      }
      if (batch.length === 0) return;
      const tc = performance.now();
      const res = session.claim(batch.map((b) => b.state.i), batch.map((b) => b.points));
      diag.claimMs += performance.now() - tc;
      const ready: Block[] = [];
      batch.forEach((b, n) => {
        const r = res[n]!;
        const s = b.state;
        pendingBlocks.set(s, pendingBlocks.get(s)! - 1);
        diag.takenOverPoints += r.takenOver;
        if (r.granted.length === b.points.length) ready.push(b);
        else {
          const granted = new Set(r.granted);
          const stored = new Set(r.stored);
          for (const p of b.points) if (!granted.has(p) && !stored.has(p)) s.held.add(p);
          if (r.stored.length) {
            s.landed += r.stored.length;
            diag.waitedPoints += r.stored.length;
            progress.landed(r.stored.length);
          }
          if (r.granted.length) for (const blk of splitBlocks(s.dims, Array.from(r.granted).sort((x, y) => x - y))) {
            for (const piece of cutBlock(blk, spec.execChunkSize)) ready.push({ state: s, block: piece, points: blockPoints(s.dims, piece) });
          }
        }
      });
      for (const b of ready) {
        pendingBlocks.set(b.state, (pendingBlocks.get(b.state) ?? 0) + 1);
      }
      // Blocks wait for a free executor in `granted`.
      for (const b of ready) granted.push(b);
      for (const s of new Set(batch.map((b) => b.state))) settle(s);
    };
    const granted: Block[] = [];

    /** Re-claims the points other processes hold: computes what became free, counts what landed. */
    const pollWaiting = (): boolean => {
      let progressed = false;
      const list = [...waiting];
      if (list.length === 0) return false;
      const res = session.claim(list.map((s) => s.i), list.map((s) => Uint32Array.from([...s.held].sort((x, y) => x - y))));
      list.forEach((s, n) => {
        const r = res[n]!;
        diag.takenOverPoints += r.takenOver;
        for (const p of r.stored) s.held.delete(p);
        for (const p of r.granted) s.held.delete(p);
        if (r.stored.length) {
          progressed = true;
          s.landed += r.stored.length;
          diag.waitedPoints += r.stored.length;
          progress.landed(r.stored.length);
        }
        waiting.delete(s);
        if (r.granted.length) {
          progressed = true;
          for (const blk of splitBlocks(s.dims, Array.from(r.granted).sort((x, y) => x - y))) {
            for (const piece of cutBlock(blk, spec.execChunkSize)) {
              pendingBlocks.set(s, (pendingBlocks.get(s) ?? 0) + 1);
              granted.push({ state: s, block: piece, points: blockPoints(s.dims, piece) });
            }
          }
        } else if (s.held.size === 0) emit(s);
        else waiting.add(s);
      });
      return progressed;
    };

    const room = (n: number): boolean => !spec.boundMemory || inflight.size === 0 || buffered + inflightPoints + n <= capacity * Math.min(spec.execChunkSize, Math.max(toCompute, 1)) + largestChunk;

    let backoff = 2;
    try {
      for (;;) {
        // Hand out finished chunks first: a consumer that stops early stops the run.
        if (done.length) {
          const d = done.shift()!;
          if (spec.durable && d.executedPoints > 0) batcher.flush();
          yield d;
          continue;
        }
        if (spec.signal?.aborted) aborted = true;
        if (failure === null && !aborted) {
          // Fill free executors: granted blocks first, then claim more.
          for (;;) {
            const ex = spec.executors.find((e) => e.busy < e.concurrency);
            if (!ex) break;
            if (granted.length === 0) {
              // Open chunks until a claim batch is worth a transaction.
              const want = claimWant(capacity - inflight.size);
              let pts = 0;
              for (const c of candidates) pts += c.points.length;
              while ((candidates.length < want || pts < 1024) && nextChunk < G.chunkCount && done.length < 64) {
                const before = candidates.length;
                openChunk(nextChunk++);
                for (let j = before; j < candidates.length; j++) pts += candidates[j]!.points.length;
              }
              if (candidates.length === 0) break;
              claimAndDispatch(capacity - inflight.size);
              if (granted.length === 0) continue;
            }
            if (!room(granted[0]!.points.length)) break;
            dispatch(ex, granted.shift()!);
            if (spec.yieldEvery) break;
          }
        }
        if (inflight.size > 0) {
          await Promise.race(inflight);
          if (spec.yieldEvery && performance.now() - lastYield >= YIELD_MS) {
            // Let timers (an abort), signals and I/O run between exec calls.
            await new Promise((r) => setTimeout(r, 0));
            lastYield = performance.now();
          }
          continue;
        }
        if (failure !== null || aborted) break;
        if (done.length || granted.length || candidates.length || nextChunk < G.chunkCount) continue;
        if (waiting.size === 0) break;
        // Everything left is held by other processes: flush ours, then poll.
        batcher.flush();
        if (pollWaiting()) backoff = 2;
        else {
          await new Promise((r) => setTimeout(r, backoff));
          backoff = Math.min(backoff * 2, 250);
        }
      }
      // Outputs of chunks whose claims another process still held at an error are read as they are.
      if (failure !== null) throw failure;
      if (aborted || spec.signal?.aborted) {
        throw new AbortedError(`${label} aborted; ${diag.executedPoints} computed points are stored, a re-run computes only the rest`, { cause: spec.signal?.reason });
      }
      batcher.flush();
    } finally {
      // Whatever completed is stored, also on failure or abort.
      if (inflight.size) await Promise.allSettled([...inflight]);
      for (const s of open.values()) {
        try {
          writeComputed(s);
        } catch (e) {
          failure ??= e;
        }
      }
      try {
        batcher.flush();
      } catch (e) {
        if (failure === null) {
          session.release();
          throw e;
        }
      }
      session.release();
      diag.timings.writeMs = batcher.writeMs;
      diag.timings.totalMs = performance.now() - t0;
      if (failure === null || aborted) progress.finish();
    }
    return diag;
  } finally {
    afterRun(view);
  }
}
