/**
 * `runParallel`: missing points are grouped into exec chunks of
 * `execChunkSize` points (independent of memo chunks), dispatched to a
 * worker-thread pool, a gpu.js kernel or any `mapFn`, and each memo chunk is
 * written the moment all its points are done.
 */
import { availableParallelism } from 'node:os';
import { ChunkCache } from '../cache/cache.js';
import { describeValue } from '../cache/options.js';
import { hashOne } from '../cache/grid.js';
import { AbortedError, ChunkMemoError, ExecError, ExecOutputError, InvalidOptionError, SelectionError } from '../errors/index.js';
import { afterRun } from '../manage/hooks.js';
import { planRun, type PlanGeometry } from '../run/geometry.js';
import { decodeOutputs, encodeOutputs, kindOf, KIND_ITEMS, typedCtor } from '../run/payload.js';
import { Progress, type ProgressEvent } from '../run/progress.js';
import { WriteBatcher } from '../run/batch.js';
import { GPU_MODES, type GpuMode } from '../gpu/kernel.js';
import { newDiagnostics, type Diagnostics } from '../run/run.js';
import type { TypedArray, Value } from '../value.js';
import { executeJob, localTask, releaseLocalTask, type PointsFn } from './execute.js';
import type { ExecJob, TaskSpec } from './job.js';
import { sharedPool, WorkerPool } from './pool.js';

/** Results of a map function: in job order. */
export type MapResults = Iterable<unknown> | AsyncIterable<unknown>;

/**
 * A user executor: computes `fn(job)` for every job (anywhere: a process
 * pool, a queue, a cluster) and returns the results in job order.
 */
export type MapFn = (fn: (job: ExecJob) => Promise<readonly unknown[] | TypedArray>, jobs: ExecJob[]) => MapResults | Promise<MapResults>;

/** An item of `items`: `{ axis: value }`, a tuple in axis order, or a scalar (one axis). */
export type Item = Record<string, Value> | readonly Value[] | Value;

/** Options of `runParallel`. */
export interface ParallelOptions {
  /** Worker threads. @default os.availableParallelism() (1 for gpu kernels, which have their own parallelism) */
  readonly workers?: number;
  /**
   * gpu kernels only: several devices pulling exec chunks from one queue
   * (listed first = preferred when several are free). See {@link Device}.
   */
  readonly devices?: readonly Device[];
  /** Points per exec chunk. @default 64 for worker threads, 65536 for gpu kernels, every missing point of a memo chunk for mapFn */
  readonly execChunkSize?: number;
  /** A custom executor instead of the worker pool. */
  readonly mapFn?: MapFn;
  /** Compute only these points (outputs in item order). */
  readonly items?: readonly Item[];
  /** With `items`: add item values missing from the axes instead of failing. @default false */
  readonly extendCache?: boolean;
  /** Write each memo chunk as soon as it is complete. @default true */
  readonly flushOnChunk?: boolean;
  /** Return the outputs (grid order, or item order). @default true */
  readonly returnOutput?: boolean;
  readonly signal?: AbortSignal;
  readonly onProgress?: (e: ProgressEvent) => void;
}

/**
 * One device of a multi-device gpu run. A device computes exec chunks with
 * the kernel in its own gpu.js mode, on the calling thread or on its own
 * worker threads; all devices pull from one queue, so faster devices simply
 * take more chunks.
 *
 * @example
 * // The GPU (WebGPU where a device answers) plus two CPU threads:
 * runParallel(cache, gpuKernel(k), { devices: [{ mode: 'async' }, { mode: 'cpu', threads: 2 }] })
 */
export interface Device {
  /** gpu.js mode of this device. @default the kernel's own mode */
  readonly mode?: GpuMode;
  /** Run on this many dedicated worker threads (each with its own gpu.js). @default 0: the calling thread */
  readonly threads?: number;
  /** Exec chunks computed at once on the calling thread (threads: 0). @default 1 */
  readonly concurrency?: number;
  /** Name in diagnostics. @default `${mode}` or `${mode} x${threads} threads` */
  readonly label?: string;
}

/** Work done by one executor (the worker pool, the calling thread, a device). */
export interface ExecutorStats {
  readonly label: string;
  execChunks: number;
  points: number;
}

/** Result of `runParallel`. */
export interface ParallelResult {
  /** Outputs, or `undefined` with `returnOutput: false`. */
  output: unknown[] | TypedArray | undefined;
  diagnostics: Diagnostics;
  /** Exec chunks and points computed by each executor (device). */
  executors: ExecutorStats[];
  /** The cache used (extended when `extendCache` added values). */
  cache: ChunkCache;
}

interface ChunkWork {
  geo: ReturnType<PlanGeometry['chunk']>;
  /** Missing request indices still to compute. */
  pending: number;
  /** request index -> output */
  outs: Map<number, unknown>;
  /** request indices computed (in arrival order) */
  points: number[];
  /** Output position of each requested point (grid mode with outputs). */
  outIdx: Uint32Array | null;
  /** Record kind of the outputs so far: a dtype while every part agrees, else items. */
  kind?: number;
}

function positiveInt(where: string, name: string, v: unknown): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new InvalidOptionError(`${where}: options.${name} must be a positive integer (got ${describeValue(v)})`);
  return v;
}

/** Resolves `items` to per-axis global indices; may extend the cache. */
function itemPoints(cache: ChunkCache, items: readonly Item[], extend: boolean): { cache: ChunkCache; points: number[][] } {
  const axes = cache.axisOrder;
  const asPoint = (it: Item, n: number): Record<string, Value> => {
    if (Array.isArray(it)) {
      if (it.length !== axes.length) throw new SelectionError(`runParallel: items[${n}] has ${it.length} values for ${axes.length} axes (${axes.join(', ')})`);
      return Object.fromEntries(axes.map((a, i) => [a, it[i] as Value]));
    }
    if (it !== null && typeof it === 'object' && Object.getPrototypeOf(it) === Object.prototype && axes.every((a) => a in (it as object))) {
      return it as Record<string, Value>;
    }
    if (axes.length === 1) return { [axes[0]!]: it as Value };
    throw new SelectionError(`runParallel: items[${n}] must map every axis (${axes.join(', ')}) to a value (got ${describeValue(it)})`);
  };
  const pts = items.map(asPoint);
  let c = cache;
  if (extend) {
    const add: Record<string, Value[]> = {};
    for (const a of axes) {
      const k = c._core.axisOrder.indexOf(a);
      const seen = new Set<bigint>();
      for (const p of pts) {
        const h = hashOne(p[a]!, `items.${a}`);
        if (!c._core.index[k]!.has(h) && !seen.has(h)) {
          seen.add(h);
          (add[a] ??= []).push(p[a]!);
        }
      }
    }
    if (Object.keys(add).length) {
      if (cache.isView) throw new InvalidOptionError('runParallel: extendCache needs the whole cache, not a view');
      c = cache.extendAxisValues(add);
    }
  }
  const core = c._core;
  const points = pts.map((p, n) =>
    core.axisOrder.map((a, k) => {
      if (c._pinned.has(a)) return c._sel[k]![0]!;
      const g = core.index[k]!.get(hashOne(p[a]!, `items[${n}].${a}`));
      if (g === undefined) throw new SelectionError(`runParallel: items[${n}].${a} = ${describeValue(p[a])} is not a value of axis ${a}; pass extendCache: true to add it`);
      const sel = c._sel[k];
      if (sel && !sel.includes(g)) throw new SelectionError(`runParallel: items[${n}].${a} = ${describeValue(p[a])} is outside this view`);
      return g;
    }),
  );
  return { cache: c, points };
}

/**
 * Computes the missing points of a cache (or view, or `items`) in parallel.
 *
 * @example
 * const task = defineTask(new URL('./tasks.js', import.meta.url), 'simulate');
 * const { output, diagnostics } = await runParallel(cache, task, { workers: 8, execChunkSize: 32 });
 */
export async function runParallel(cache: ChunkCache, task: TaskSpec | PointsFn, options: ParallelOptions = {}): Promise<ParallelResult> {
  const where = 'runParallel';
  if (!(cache instanceof ChunkCache)) throw new InvalidOptionError(`${where}: the first argument must be a ChunkCache`);
  const o = options ?? {};
  const isGpu = typeof task === 'object' && task !== null && task.kind === 'gpu';
  let workers = positiveInt(where, 'workers', o.workers) ?? (isGpu ? 1 : availableParallelism());
  const execSize = positiveInt(where, 'execChunkSize', o.execChunkSize);
  if (o.mapFn !== undefined && typeof o.mapFn !== 'function') throw new InvalidOptionError(`${where}: options.mapFn must be a function`);
  if (o.items !== undefined && !Array.isArray(o.items)) throw new InvalidOptionError(`${where}: options.items must be an array`);
  const returnOutput = o.returnOutput ?? true;
  const flushOnChunk = o.flushOnChunk ?? true;

  let spec: TaskSpec;
  let local = false;
  if (typeof task === 'function') {
    spec = localTask(task);
    local = true;
  } else if (task && typeof task === 'object' && ['module', 'gpu', 'local'].includes((task as TaskSpec).kind)) {
    spec = task as TaskSpec;
  } else {
    throw new InvalidOptionError(`${where}: task must come from defineTask() or gpuKernel(), or be a function (got ${describeValue(task)})`);
  }
  if (spec.kind === 'local') workers = Math.min(workers, 1);
  const devices = checkDevices(where, o.devices, spec);
  if (devices) workers = devices.reduce((n, d) => n + (d.threads || d.concurrency || 1), 0);

  let theCache = cache;
  let itemPts: number[][] | null = null;
  if (o.items) {
    const r = itemPoints(cache, o.items, !!o.extendCache);
    theCache = r.cache;
    itemPts = r.points;
  }
  const core = theCache._check();
  const diag = newDiagnostics();
  const t0 = performance.now();

  // Plan: the view, or the product of the items' values.
  let view = theCache;
  if (itemPts) {
    const perAxis = core.axisOrder.map((_, k) => [...new Set(itemPts!.map((p) => p[k]!))].sort((x, y) => x - y));
    view = new ChunkCache(core, perAxis, theCache._pinned);
  }
  const { plan, resolved, geometry: G } = planRun(view, where);
  diag.corruptRecords.push(...resolved.corrupt);

  // Targets: (chunk, request index, output position).
  const targets: Array<{ chunk: number; r: number; out: number }>[] = itemPts ? Array.from({ length: G.chunkCount }, () => []) : [];
  let total: number;
  if (itemPts) {
    // Locate each item in the product plan.
    const selIndex = core.axisOrder.map((_, k) => new Map((view._sel[k] as number[]).map((g, pos) => [g, pos])));
    const binOf: Array<Map<number, number>> = G.axes.map((ax) => {
      const m = new Map<number, number>();
      ax.selPos.forEach((p, b) => {
        for (let j = 0; j < ax.selCount[b]!; j++) m.set(p + j, b);
      });
      return m;
    });
    itemPts.forEach((p, n) => {
      let chunk = 0;
      let r = 0;
      for (let k = 0; k < p.length; k++) {
        const pos = selIndex[k]!.get(p[k]!)!;
        const b = binOf[k]!.get(pos)!;
        chunk = chunk * G.axes[k]!.bin.length + b;
        r = r * G.axes[k]!.selCount[b]! + (pos - G.axes[k]!.selPos[b]!);
      }
      targets[chunk]!.push({ chunk, r, out: n });
    });
    total = itemPts.length;
  } else {
    total = G.total;
  }
  diag.totalChunks = G.chunkCount;
  diag.totalPoints = total;

  let output: unknown[] | TypedArray | undefined;
  const put = (pos: number, v: unknown, kind: number): void => {
    if (!returnOutput) return;
    if (output === undefined) output = kind !== KIND_ITEMS ? new (typedCtor(kind))(total) : new Array(total);
    else if (!Array.isArray(output) && kind !== kindOf(output)) output = Array.from(output as ArrayLike<unknown>);
    (output as unknown[])[pos] = v;
  };

  // Read what is stored; collect missing points per chunk.
  const work = new Map<number, ChunkWork>();
  const tr = performance.now();
  let missingTotal = 0;
  for (let i = 0; i < G.chunkCount; i++) {
    const geo = G.chunk(i);
    const avail = resolved.available[i]!;
    // Output positions are needed only when outputs are returned in grid order.
    const outIdx = returnOutput && !itemPts ? G.outIndices(geo) : null;
    const tlist = itemPts ? targets[i]! : null;
    if (itemPts && tlist!.length === 0) continue;
    const nTargets = tlist ? tlist.length : geo.points;
    let present: Buffer | null = null;
    if (avail > 0) {
      const needData = returnOutput;
      if (needData) {
        const rd = plan.read(core.store, core.idBytes, i);
        diag.corruptRecords.push(...rd.corrupt);
        present = rd.present;
        let cnt = 0;
        for (let j = 0; j < present.length; j++) cnt += present[j]!;
        const vals = decodeOutputs(rd.kind, rd.data, cnt, rd.dicts, rd.pointDicts, rd.offsets);
        let w = 0;
        const byR = new Map<number, unknown>();
        for (let j = 0; j < present.length; j++) if (present[j]) byR.set(j, vals[w++]);
        if (tlist) for (const t of tlist) { if (byR.has(t.r)) put(t.out, byR.get(t.r), rd.kind); }
        else for (const [r, v] of byR) put(outIdx![r]!, v, rd.kind);
      } else if (avail < geo.points) {
        present = plan.presence(core.store, core.idBytes, i);
      }
    }
    const missing: number[] = [];
    let missingTargets = 0;
    if (avail < geo.points) {
      if (tlist) {
        // A point requested by several items is computed once.
        const seen = new Set<number>();
        for (const t of tlist) {
          if (present && present[t.r]) continue;
          missingTargets++;
          if (!seen.has(t.r)) {
            seen.add(t.r);
            missing.push(t.r);
          }
        }
      } else for (let r = 0; r < geo.points; r++) if (!present || !present[r]) missing.push(r);
      if (!tlist) missingTargets = missing.length;
    }
    const cachedHere = nTargets - missingTargets;
    diag.cachedPoints += cachedHere;
    if (missing.length === 0) diag.cachedChunks++;
    else {
      diag.executedChunks++;
      if (cachedHere > 0 || avail > 0) diag.partialChunks++;
      work.set(i, { geo, pending: missing.length, outs: new Map(), points: missing, outIdx });
      missingTotal += missing.length;
    }
  }
  diag.timings.readMs += performance.now() - tr;
  diag.timings.planMs += performance.now() - t0 - diag.timings.readMs;
  const progress = new Progress(missingTotal, work.size, o.onProgress, core.verbose, where);

  // Exec chunks, in memo chunk order.
  const size = execSize ?? (o.mapFn ? Number.MAX_SAFE_INTEGER : isGpu ? 65536 : 64);
  const params = view.params;
  const visible = view.axisOrder;
  const itemOut = new Map<string, number[]>();
  if (itemPts) for (const list of targets) for (const t of list) {
    const key = `${t.chunk}:${t.r}`;
    const l = itemOut.get(key);
    if (l) l.push(t.out); else itemOut.set(key, [t.out]);
  }
  function* jobs(): Generator<{ job: ExecJob; refs: Array<[number, number]> }> {
    let jobIndex = 0;
    let refs: Array<[number, number]> = [];
    let cols: Record<string, Value[]> = Object.fromEntries(visible.map((a) => [a, []]));
    const flush = () => {
      const job: ExecJob = { task: spec, params, axisOrder: visible, points: cols, count: refs.length, jobIndex: jobIndex++ };
      const r = { job, refs };
      refs = [];
      cols = Object.fromEntries(visible.map((a) => [a, []]));
      return r;
    };
    for (const [i, w] of work) {
      const dims = w.geo.sel.map((s) => s.length);
      for (const r of w.points) {
        let x = r;
        for (let k = dims.length - 1; k >= 0; k--) {
          const a = core.axisOrder[k]!;
          const j = x % dims[k]!;
          x = Math.floor(x / dims[k]!);
          if (!view._pinned.has(a)) cols[a]!.push(core.axisValues[a]![w.geo.start[k]! + w.geo.sel[k]![j]!]!);
        }
        refs.push([i, r]);
        if (refs.length >= size) yield flush();
        // A mapFn job by default covers the missing points of one memo chunk.
        else if (o.mapFn && execSize === undefined && r === w.points[w.points.length - 1]) yield flush();
      }
      if (o.mapFn && execSize === undefined && refs.length) yield flush();
    }
    if (refs.length) yield flush();
  }

  let buffered = 0;
  const batcher = new WriteBatcher(plan, core.store, core.idBytes, where);
  /** Writes the computed points `rs` of memo chunk `i` (all of them, or a partial record). */
  const writeChunk = (i: number, rs: number[]): void => {
    const w = work.get(i)!;
    const vals = rs.map((r) => w.outs.get(r));
    const kind = w.kind ?? KIND_ITEMS;
    const enc = kind !== KIND_ITEMS ? encodeOutputs((typedCtor(kind) as unknown as { from(v: unknown[]): unknown[] }).from(vals), kind) : encodeOutputs(vals, KIND_ITEMS);
    batcher.add({ chunk: i, kind, points: Uint32Array.from(rs), offsets: enc.offsets, data: enc.data, dict: enc.dict });
    diag.streamFlushes++;
    buffered -= rs.length;
  };
  const flushChunk = (i: number): void => {
    const w = work.get(i)!;
    writeChunk(i, w.points);
    work.delete(i);
    progress.update(0, 1);
  };
  const ready: number[] = [];
  const accept = (refs: Array<[number, number]>, out: ArrayLike<unknown>, jobIndex: number): void => {
    const kind = kindOf(out);
    if (out.length !== refs.length) throw new ExecOutputError(`exec chunk ${jobIndex}: ${out.length} outputs for ${refs.length} points`);
    for (let j = 0; j < refs.length; j++) {
      const [i, r] = refs[j]!;
      const w = work.get(i)!;
      if (w.kind === undefined) w.kind = kind;
      else if (w.kind !== kind) w.kind = KIND_ITEMS;
      const v = out[j];
      w.outs.set(r, v);
      if (returnOutput) {
        if (itemPts) for (const p of itemOut.get(`${i}:${r}`) ?? []) put(p, v, kind);
        else put(w.outIdx![r]!, v, kind);
      }
      if (--w.pending === 0) ready.push(i);
    }
    buffered += refs.length;
    diag.maxBufferedPoints = Math.max(diag.maxBufferedPoints, buffered);
    diag.executedPoints += refs.length;
    progress.update(refs.length, 0);
    if (flushOnChunk) while (ready.length) flushChunk(ready.shift()!);
  };
  const describeJob = (job: ExecJob): string => {
    const pts = Array.from({ length: Math.min(job.count, 4) }, (_, j) => `{${visible.map((a) => `${a}: ${describeValue(job.points[a]![j])}`).join(', ')}}`);
    return `exec chunk ${job.jobIndex} (${job.count} points: ${pts.join(', ')}${job.count > 4 ? ', ...' : ''})`;
  };

  let failure: unknown = null;
  const stats: ExecutorStats[] = [];
  const te = performance.now();
  try {
    if (o.mapFn) {
      const list = [...jobs()];
      diag.execChunks = list.length;
      stats.push({ label: 'mapFn', execChunks: list.length, points: list.reduce((n, x) => n + x.job.count, 0) });
      if (list.length) {
        const results = await o.mapFn(executeJob, list.map((x) => x.job));
        let n = 0;
        const handle = (out: unknown): void => {
          const x = list[n++];
          if (!x) throw new ExecOutputError(`${where}: mapFn returned more results than the ${list.length} jobs`);
          if (!(Array.isArray(out) || ArrayBuffer.isView(out))) throw new ExecOutputError(`${where}: mapFn result ${n - 1} is ${describeValue(out)}, expected one output per point of ${describeJob(x.job)}`);
          accept(x.refs, out as ArrayLike<unknown>, x.job.jobIndex);
        };
        try {
          if (results && typeof (results as AsyncIterable<unknown>)[Symbol.asyncIterator] === 'function') {
            for await (const out of results as AsyncIterable<unknown>) {
              handle(out);
              if (o.signal?.aborted) break;
            }
          } else {
            for (const item of results as Iterable<unknown>) {
              handle(await item);
              if (o.signal?.aborted) break;
            }
          }
        } catch (e) {
          if (e instanceof ChunkMemoError) throw e;
          const x = list[n];
          throw new ExecError(`${where}: ${x ? describeJob(x.job) : 'a job'} failed in mapFn; finished memo chunks are stored`, { cause: e });
        }
        if (!o.signal?.aborted && n !== list.length) throw new ExecOutputError(`${where}: mapFn returned ${n} results for ${list.length} jobs`);
      }
    } else {
      const executors = makeExecutors(spec, workers, devices);
      stats.push(...executors.map((e) => e.stats));
      try {
        const it = jobs();
        const inflight = new Map<number, Promise<void>>();
        let inflightPoints = 0;
        let next: IteratorResult<{ job: ExecJob; refs: Array<[number, number]> }> = it.next();
        // Memory bound: outputs waiting for their memo chunk plus points in
        // flight stay within workers x execChunkSize + the largest memo
        // chunk; below it every worker is kept busy.
        let largestChunk = 0;
        for (const w of work.values()) largestChunk = Math.max(largestChunk, w.points.length);
        const limit = workers * Math.min(size, missingTotal) + largestChunk;
        const room = (n: number): boolean => inflight.size === 0 || buffered + inflightPoints + n <= limit;
        while (!next.done || inflight.size > 0) {
          let ex: Executor | undefined;
          while (!next.done && failure === null && !o.signal?.aborted && (ex = executors.find((e) => e.busy < e.capacity)) && room(next.value.job.count)) {
            const { job, refs } = next.value;
            const exec = ex;
            inflightPoints += job.count;
            exec.busy++;
            exec.stats.execChunks++;
            exec.stats.points += job.count;
            diag.execChunks++;
            const p = exec.run(job).then(
              (out) => {
                // An error here (storing a chunk, onProgress) fails the run; it must not be swallowed.
                if (failure === null) {
                  try {
                    accept(refs, out as ArrayLike<unknown>, job.jobIndex);
                  } catch (e) {
                    failure ??= e;
                  }
                }
              },
              (e) => {
                if (failure === null) failure = new ExecError(`${where}: ${describeJob(job)} failed: ${(e as Error)?.message ?? e}; finished memo chunks are stored, a re-run computes only the rest`, { cause: e });
              },
            ).finally(() => {
              inflight.delete(job.jobIndex);
              inflightPoints -= job.count;
              exec.busy--;
            });
            inflight.set(job.jobIndex, p);
            next = it.next();
          }
          if (inflight.size === 0) break;
          await Promise.race(inflight.values()).catch(() => undefined);
        }
      } finally {
        // The shared pool stays for later calls (see closeWorkerPools);
        // device pools are this run's own.
        await Promise.all(executors.map((e) => e.close?.()));
      }
    }
  } catch (e) {
    failure ??= e;
  } finally {
    if (local) releaseLocalTask(spec as never);
    diag.timings.execMs += performance.now() - te;
    // Whatever completed is stored, also on failure or abort: complete memo
    // chunks, then the computed points of incomplete ones as partial records.
    while (ready.length) {
      try {
        flushChunk(ready.shift()!);
      } catch (e) {
        failure ??= e;
      }
    }
    for (const [i, w] of [...work]) {
      if (w.outs.size === 0) continue;
      try {
        writeChunk(i, w.points.filter((r) => w.outs.has(r)));
      } catch (e) {
        failure ??= e;
      }
    }
    try {
      batcher.flush();
    } catch (e) {
      failure ??= e;
    }
    diag.timings.writeMs = batcher.writeMs;
    afterRun(view);
  }
  if (failure) throw failure;
  if (o.signal?.aborted) throw new AbortedError(`${where} aborted; ${diag.executedPoints} computed points are stored, a re-run computes only the rest`, { cause: o.signal.reason });
  if (!flushOnChunk) while (ready.length) flushChunk(ready.shift()!);
  batcher.flush();
  diag.timings.totalMs = performance.now() - t0;
  return { output: returnOutput ? (output ?? []) : undefined, diagnostics: diag, cache: theCache, executors: stats };
}

interface Executor {
  capacity: number;
  busy: number;
  stats: ExecutorStats;
  run(job: ExecJob): Promise<unknown>;
  close?(): Promise<void>;
}

function checkDevices(where: string, devices: unknown, spec: TaskSpec): Device[] | null {
  if (devices === undefined) return null;
  if (spec.kind !== 'gpu') throw new InvalidOptionError(`${where}: options.devices is for gpuKernel() tasks; use options.workers for defineTask() tasks`);
  if (!Array.isArray(devices) || devices.length === 0) throw new InvalidOptionError(`${where}: options.devices must be a non-empty array of { mode?, threads?, concurrency?, label? }`);
  return devices.map((d: unknown, i) => {
    const dev = (d ?? {}) as Device;
    if (typeof d !== 'object' || d === null) throw new InvalidOptionError(`${where}: options.devices[${i}] must be an object (got ${describeValue(d)})`);
    if (dev.mode !== undefined && !GPU_MODES.includes(dev.mode)) throw new InvalidOptionError(`${where}: options.devices[${i}].mode must be one of ${GPU_MODES.join(', ')} (got ${describeValue(dev.mode)})`);
    for (const k of ['threads', 'concurrency'] as const) {
      const v = dev[k];
      if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 0)) throw new InvalidOptionError(`${where}: options.devices[${i}].${k} must be a non-negative integer (got ${describeValue(v)})`);
    }
    return dev;
  });
}

/** Where jobs run: the shared worker pool, the calling thread, or devices. */
function makeExecutors(spec: TaskSpec, workers: number, devices: Device[] | null): Executor[] {
  const mk = (label: string, capacity: number, run: (job: ExecJob) => Promise<unknown>, close?: () => Promise<void>): Executor => ({
    capacity, busy: 0, stats: { label, execChunks: 0, points: 0 }, run, ...(close ? { close } : {}),
  });
  if (spec.kind === 'module') {
    const pool = sharedPool(workers);
    return [mk(`${workers} worker threads`, workers, (job) => pool.run(job))];
  }
  if (!devices) return [mk('calling thread', workers, executeJob)];
  return devices.map((d) => {
    const withMode = (job: ExecJob): ExecJob =>
      d.mode && spec.kind === 'gpu' ? { ...job, task: { ...spec, options: { ...spec.options, mode: d.mode } } } : job;
    const mode = d.mode ?? (spec.kind === 'gpu' ? String(spec.options.mode ?? 'async') : 'default');
    if (d.threads) {
      const pool = new WorkerPool(d.threads);
      return mk(d.label ?? `${mode} x${d.threads} threads`, d.threads, (job) => pool.run(withMode(job)), () => pool.close());
    }
    return mk(d.label ?? mode, d.concurrency || 1, (job) => executeJob(withMode(job)));
  });
}
