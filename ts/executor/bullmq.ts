/**
 * `bullmqExecutor`: exec chunks as BullMQ jobs on Redis, computed by
 * `chunk-memo worker` processes on any host (SPEC §6).
 *
 * The coordinator (`runParallel`) owns the store: it claims the missing
 * work, calls `run(job)` and stores what comes back. This executor only
 * moves jobs and results: it adds each job under a deterministic id (so a
 * restarted coordinator attaches to the jobs of its sweep that are waiting,
 * active or completed instead of adding them again), waits for it, fetches
 * the binary result key the worker wrote, checks its size and SHA-256,
 * decodes it, and removes the job and the key.
 */
import { randomUUID } from 'node:crypto';
import * as t from 'typanion';
import { check } from '../cache/options.js';
import { AbortedError, ChunkMemoError, ClosedError, ExecError } from '../errors/index.js';
import type { Executor } from '../task/executor.js';
import type { ExecJob, JobOutput } from '../task/job.js';
import { bullConnection, describeConnection, loadBullMQ, newRedisClient, type RedisClient, type RedisConnection } from './deps.js';
import { checkResultRef, decodeOutput, encodeJob, jobIdOf, JOB_NAME, type JobData } from './wire.js';

/** BullMQ job options a sweep may set (ids and removal are the executor's). */
export interface BullMQJobOptions {
  /** Tries per job when the task throws (a job whose worker died is retried regardless). @default 1 */
  readonly attempts?: number;
  /** Delay between tries (BullMQ backoff). */
  readonly backoff?: number | { readonly type: 'fixed' | 'exponential'; readonly delay?: number };
  /** BullMQ priority (1 is highest). */
  readonly priority?: number;
  /** Take jobs newest first. */
  readonly lifo?: boolean;
}

/** Options of `bullmqExecutor`. */
export interface BullMQExecutorOptions {
  /** Redis: a `redis://` / `rediss://` URL or ioredis options (`{ host, port, password, username, tls, db }`), passed through. */
  readonly connection: RedisConnection;
  /** Queue name; workers must use the same (`chunk-memo worker --queue`). @default 'chunk-memo' */
  readonly queue?: string;
  /** BullMQ key prefix; workers must use the same (`--prefix`). @default 'bull' */
  readonly prefix?: string;
  /** Lifetime of a job's result key in Redis, in seconds: results not fetched by then are computed again. @default 86400 */
  readonly resultTtlSeconds?: number;
  /** Jobs kept in flight (queued or running) at once. @default 64 */
  readonly concurrency?: number;
  /** Options of every job. */
  readonly jobOptions?: BullMQJobOptions;
  /** Seconds to wait for Redis to answer before failing. @default 20 */
  readonly connectTimeoutSeconds?: number;
  /** Name in `result.executors`. @default 'bullmq:<queue>' */
  readonly label?: string;
}

const isPosInt = t.cascade(t.isNumber(), [t.isInteger(), t.isAtLeast(1)]);
const isOptions = t.isObject({
  connection: t.isUnknown(),
  queue: t.isOptional(t.cascade(t.isString(), [t.matchesRegExp(/^[^:\s]+$/)])),
  prefix: t.isOptional(t.cascade(t.isString(), [t.matchesRegExp(/^[^\s]+$/)])),
  resultTtlSeconds: t.isOptional(isPosInt),
  concurrency: t.isOptional(isPosInt),
  jobOptions: t.isOptional(t.isObject({
    attempts: t.isOptional(isPosInt),
    backoff: t.isOptional(t.isUnknown()),
    priority: t.isOptional(t.cascade(t.isNumber(), [t.isInteger(), t.isInInclusiveRange(0, 2_097_152)])),
    lifo: t.isOptional(t.isBoolean()),
  })),
  connectTimeoutSeconds: t.isOptional(t.cascade(t.isNumber(), [t.isAtLeast(0)])),
  label: t.isOptional(t.isString()),
});

/** Re-adds of one job (it vanished, its result expired or was corrupt) before the job fails. */
const MAX_READDS = 3;
/** A job silent this long is looked up (events are the fast path; this is the safety net). */
const POLL_MS = 2000;
/** How long `close` waits for a graceful goodbye before dropping the connections. */
const CLOSE_MS = 5000;

/** True when `p` settles within `ms`. */
function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  return Promise.race([p.then(() => true, () => true), late]).finally(() => clearTimeout(timer));
}

interface Waiter {
  readonly id: string;
  readonly job: ExecJob;
  readonly data: JobData;
  resolve(out: JobOutput): void;
  reject(e: Error): void;
  settled: boolean;
  /** A state check or a result fetch is under way. */
  busy: boolean;
  readds: number;
  since: number;
  /** An event came while busy: look again afterwards. */
  again: boolean;
  /** Being added (or re-added): its state says nothing yet. */
  adding: boolean;
}

interface Session {
  readonly queue: import('bullmq').Queue;
  readonly events: import('bullmq').QueueEvents;
  readonly redis: RedisClient;
}

class BullMQExecutor implements Executor {
  readonly label: string;
  readonly concurrency: number;
  private readonly connection: Record<string, unknown>;
  private readonly queueName: string;
  private readonly prefix: string;
  private readonly ttl: number;
  private readonly jobOptions: BullMQJobOptions;
  private readonly connectTimeoutMs: number;
  private readonly session = randomUUID();
  private started: Promise<Session> | undefined;
  private readonly waiters = new Map<string, Waiter>();
  private toAdd: Waiter[] = [];
  private flushQueued = false;
  private poller: NodeJS.Timeout | undefined;
  private polling = false;
  private readonly cleanups = new Set<Promise<unknown>>();

  constructor(o: BullMQExecutorOptions) {
    this.connection = bullConnection(o.connection, 'bullmqExecutor');
    this.queueName = o.queue ?? 'chunk-memo';
    this.prefix = o.prefix ?? 'bull';
    this.ttl = o.resultTtlSeconds ?? 86_400;
    this.concurrency = o.concurrency ?? 64;
    this.jobOptions = { attempts: 1, ...o.jobOptions };
    this.connectTimeoutMs = (o.connectTimeoutSeconds ?? 20) * 1000;
    this.label = o.label ?? `bullmq:${this.queueName}`;
  }

  run(job: ExecJob, signal?: AbortSignal): Promise<JobOutput> {
    if (signal?.aborted) return Promise.reject(new AbortedError(`exec chunk ${job.jobIndex}: aborted before it was queued`));
    let id: string;
    let data: JobData;
    try {
      id = jobIdOf(job);
      data = encodeJob(job, this.ttl, this.session);
    } catch (e) {
      return Promise.reject(e);
    }
    return new Promise<JobOutput>((resolve, reject) => {
      const onAbort = (): void => {
        if (w.settled) return;
        this.settle(w, new AbortedError(`exec chunk ${job.jobIndex}: aborted`));
        // A waiting job is taken back; a running one finishes and its result
        // waits (until its TTL) for a later run to attach to it.
        void this.started?.then((s) => s.queue.remove(id)).catch(() => undefined);
      };
      const w: Waiter = {
        id, job, data, settled: false, busy: false, readds: 0, since: Date.now(), again: false, adding: false,
        resolve: (out) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(out);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const other = this.waiters.get(id);
      if (other && !other.settled) {
        this.settle(w, new ChunkMemoError('ERR_DUPLICATE_JOB', `exec chunk ${job.jobIndex}: job ${id} is already in flight in this run (two jobs with one key)`));
        return;
      }
      this.waiters.set(id, w);
      this.enqueue(w);
    });
  }

  async close(): Promise<void> {
    const started = this.started;
    this.started = undefined;
    if (this.poller) clearInterval(this.poller);
    this.poller = undefined;
    const pending = [...this.waiters.keys()];
    for (const w of this.waiters.values()) this.settle(w, new ClosedError(`exec chunk ${w.job.jobIndex}: the executor was closed`));
    this.waiters.clear();
    this.toAdd = [];
    if (!started) return;
    const s = await started.catch(() => undefined);
    await Promise.allSettled([...this.cleanups]);
    if (!s) return;
    // A run that ends early (failure, abort) takes back its jobs that did not
    // start; running ones finish, and their results wait for a later run.
    // A Redis that went away would make a graceful close wait forever.
    const graceful = await settlesWithin(
      Promise.allSettled(pending.map((id) => s.queue.remove(id))).then(() => Promise.allSettled([s.events.close(), s.queue.close(), s.redis.quit()])),
      CLOSE_MS,
    );
    if (!graceful) {
      s.redis.disconnect();
      await Promise.allSettled([s.events.disconnect(), s.queue.disconnect()]);
    }
  }

  // ---- connection --------------------------------------------------------

  private start(): Promise<Session> {
    this.started ??= this.open().catch((e: unknown) => {
      this.started = undefined;
      throw e;
    });
    return this.started;
  }

  private async open(): Promise<Session> {
    const { Queue, QueueEvents } = await loadBullMQ();
    const redis = await newRedisClient(this.connection, 'chunk-memo:coordinator');
    redis.on('error', () => undefined); // reconnects by itself; failed calls reject
    const where = describeConnection(this.connection);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new ChunkMemoError('ERR_REDIS_UNAVAILABLE', `bullmqExecutor: Redis at ${where} did not answer within ${this.connectTimeoutMs / 1000} s; is it running and reachable (host, port, password, TLS)?`)), this.connectTimeoutMs);
    });
    let queue: Session['queue'] | undefined;
    let events: Session['events'] | undefined;
    try {
      // Events are read from the stream's current end, so none that happens
      // after a job is added can be missed.
      const last = (await Promise.race([redis.xrevrange(`${this.prefix}:${this.queueName}:events`, '+', '-', 'COUNT', 1), timeout])) as [string, string[]][];
      const lastEventId = last[0]?.[0] ?? '0-0';
      queue = new Queue(this.queueName, { connection: this.connection, prefix: this.prefix });
      events = new QueueEvents(this.queueName, { connection: this.connection, prefix: this.prefix, lastEventId });
      queue.on('error', () => undefined);
      events.on('error', () => undefined);
      events.on('completed', ({ jobId, returnvalue }) => {
        const w = this.waiters.get(jobId);
        if (!w || w.settled) return;
        if (w.busy) w.again = true;
        else void this.finish(w, returnvalue);
      });
      events.on('duplicated', ({ jobId }) => this.recheck(jobId));
      events.on('failed', ({ jobId }) => this.recheck(jobId));
      events.on('removed', ({ jobId }) => this.recheck(jobId));
      await Promise.race([Promise.all([queue.waitUntilReady(), events.waitUntilReady()]), timeout]);
      this.poller = setInterval(() => void this.poll(), POLL_MS);
      this.poller.unref();
      queue.getWorkersCount().then((n) => {
        if (n === 0) process.emitWarning(`no chunk-memo worker is connected to queue ${this.queueName} on ${where}; its jobs wait until one starts (chunk-memo worker --redis URL --queue ${this.queueName})`, { code: 'CHUNK_MEMO_NO_WORKERS' });
      }, () => undefined);
      return { queue, events, redis };
    } catch (e) {
      redis.disconnect();
      await Promise.allSettled([queue?.disconnect(), events?.disconnect()]);
      throw e instanceof ChunkMemoError ? e : new ChunkMemoError('ERR_REDIS_UNAVAILABLE', `bullmqExecutor: cannot use Redis at ${where}: ${(e as Error).message}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  // ---- adding ------------------------------------------------------------

  private enqueue(w: Waiter): void {
    w.since = Date.now();
    if (this.toAdd.includes(w)) return;
    w.adding = true;
    this.toAdd.push(w);
    if (this.flushQueued) return;
    this.flushQueued = true;
    // All jobs handed over in one tick go in one addBulk.
    setImmediate(() => {
      this.flushQueued = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    const batch = this.toAdd.filter((w) => !w.settled);
    this.toAdd = [];
    if (batch.length === 0) return;
    let s: Session;
    try {
      s = await this.start();
      // Jobs of an abandoned sweep do not outlive their results.
      const keep = { age: this.ttl };
      await s.queue.addBulk(batch.map((w) => ({ name: JOB_NAME, data: w.data, opts: { ...this.jobOptions, removeOnComplete: keep, removeOnFail: keep, jobId: w.id } })));
    } catch (e) {
      for (const w of batch) this.settle(w, e instanceof ChunkMemoError ? e : new ChunkMemoError('ERR_REDIS', `bullmqExecutor: could not add exec chunk ${w.job.jobIndex} to queue ${this.queueName}: ${(e as Error).message}`, { cause: e }));
      return;
    } finally {
      for (const w of batch) w.adding = false;
    }
    // A job id that already existed (a restarted coordinator) comes back as
    // a 'duplicated' event: that job may be finished already, so it is
    // looked up then. New jobs cost no further round trip.
    for (const w of batch) if (w.again && !w.settled) void this.check(s, w);
  }

  /** Looks a job up and acts on its state. */
  private async check(s: Session, w: Waiter): Promise<void> {
    if (w.settled || w.busy) return;
    if (w.adding) {
      // Looked at once the add has answered.
      w.again = true;
      return;
    }
    w.busy = true;
    // An event arriving while the state is read sets it again: look once more.
    w.again = false;
    let state: string;
    try {
      state = await s.queue.getJobState(w.id);
    } catch {
      state = 'retry-later';
    } finally {
      w.busy = false;
    }
    if (w.settled || w.busy || w.adding) return;
    w.since = Date.now();
    if (state === 'completed') await this.finish(w, undefined);
    else if (state === 'failed') await this.failed(s, w);
    else if (state === 'unknown') await this.readd(s, w, 'disappeared from the queue');
    else if (w.again) await this.check(s, w);
  }

  private recheck(jobId: string): void {
    const w = this.waiters.get(jobId);
    if (!w || w.settled) return;
    if (w.busy || w.adding) {
      w.again = true;
      return;
    }
    void this.start().then((s) => this.check(s, w), () => undefined);
  }

  private async poll(): Promise<void> {
    if (this.polling || !this.started) return;
    this.polling = true;
    try {
      const s = await this.start();
      const now = Date.now();
      const due = [...this.waiters.values()].filter((w) => !w.settled && !w.busy && !w.adding && now - w.since >= POLL_MS);
      await Promise.all(due.map((w) => this.check(s, w)));
    } catch {
      // next tick
    } finally {
      this.polling = false;
    }
  }

  private async readd(s: Session, w: Waiter, why: string): Promise<void> {
    if (++w.readds > MAX_READDS) {
      this.settle(w, new ChunkMemoError('ERR_REMOTE_JOB', `exec chunk ${w.job.jobIndex}: job ${w.id} ${why} ${MAX_READDS} times; giving up`));
      return;
    }
    // Marked first, so the 'removed' event of this removal triggers nothing.
    w.adding = true;
    await s.queue.remove(w.id).catch(() => undefined);
    if (!w.settled) this.enqueue(w);
    else w.adding = false;
  }

  // ---- outcomes ----------------------------------------------------------

  private async failed(s: Session, w: Waiter): Promise<void> {
    w.busy = true;
    try {
      const job = await s.queue.getJob(w.id);
      if (!job) return await this.readd(s, w, 'disappeared from the queue');
      // A failure left by an earlier run (e.g. before a fix of the task) is
      // tried again; a failure of this run fails the exec chunk.
      if ((job.data as Partial<JobData> | undefined)?.session !== this.session) {
        w.busy = false;
        return await this.readd(s, w, 'failed in an earlier run');
      }
      const reason = job.failedReason || 'no reason given';
      this.track(s.queue.remove(w.id));
      this.settle(w, new ExecError(`exec chunk ${w.job.jobIndex} failed on a chunk-memo worker (job ${w.id}): ${reason}`));
    } catch (e) {
      this.settle(w, new ChunkMemoError('ERR_REDIS', `exec chunk ${w.job.jobIndex}: could not read failed job ${w.id}: ${(e as Error).message}`, { cause: e }));
    } finally {
      w.busy = false;
    }
  }

  private async finish(w: Waiter, returnvalue: unknown): Promise<void> {
    if (w.settled || w.busy) return;
    w.busy = true;
    let s: Session | undefined;
    try {
      s = await this.start();
      let rv = returnvalue;
      if (rv === undefined || rv === null) {
        const job = await s.queue.getJob(w.id);
        if (!job) {
          w.busy = false;
          return await this.readd(s, w, 'disappeared from the queue');
        }
        rv = job.returnvalue;
      }
      const ref = checkResultRef(rv, w.job.count);
      const bytes = await s.redis.getBuffer(ref.key);
      let out: JobOutput;
      try {
        out = decodeOutput(ref, bytes);
      } catch (e) {
        // Expired or damaged result: compute the job again.
        w.busy = false;
        return await this.readd(s, w, `returned an unusable result (${(e as Error).message})`);
      }
      this.track(Promise.all([s.redis.del(ref.key), s.queue.remove(w.id)]));
      this.settle(w, out);
    } catch (e) {
      this.settle(w, e instanceof ChunkMemoError ? e : new ChunkMemoError('ERR_REDIS', `exec chunk ${w.job.jobIndex}: could not fetch the result of job ${w.id}: ${(e as Error).message}`, { cause: e }));
    } finally {
      w.busy = false;
    }
  }

  private settle(w: Waiter, outcome: JobOutput | Error): void {
    if (w.settled) return;
    w.settled = true;
    if (this.waiters.get(w.id) === w) this.waiters.delete(w.id);
    if (outcome instanceof Error) w.reject(outcome);
    else w.resolve(outcome);
  }

  private track(p: Promise<unknown>): void {
    const q = p.catch(() => undefined).finally(() => this.cleanups.delete(q));
    this.cleanups.add(q);
  }
}

/**
 * An executor that runs exec chunks as BullMQ jobs on Redis, computed by
 * `chunk-memo worker` processes on any number of hosts. Tasks must be module
 * tasks (`defineTask`) that the workers can import. Needs the optional peer
 * dependencies `bullmq` and `ioredis`.
 *
 * @example
 * const executor = bullmqExecutor({ connection: 'redis://:secret@10.0.0.5:6379' });
 * await runParallel(cache, defineTask(new URL('./tasks.js', import.meta.url), 'simulate'), { executor });
 * // on each host: chunk-memo worker --redis redis://:secret@10.0.0.5:6379 --tasks /srv/sweep
 */
export function bullmqExecutor(options: BullMQExecutorOptions): Executor {
  check('bullmqExecutor', isOptions, options);
  return new BullMQExecutor(options);
}
