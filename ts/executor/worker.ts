/**
 * The process behind `chunk-memo worker`: a BullMQ Worker that takes
 * chunk-memo jobs from a queue, computes each in a sandbox thread with
 * `executeJob`, writes the outputs to a Redis key with a TTL, and returns
 * only the key, size and hash. It never touches a store.
 *
 * Refusals (a task module outside the allow-list, a malformed payload) fail
 * that job at once, without retries, with a message saying why; the worker
 * goes on serving.
 */
import { AbortedError, ChunkMemoError, InvalidOptionError } from '../errors/index.js';
import { TaskAllowList } from './allow.js';
import { bullConnection, describeConnection, loadBullMQ, newRedisClient, type RedisConnection } from './deps.js';
import { Sandbox, SandboxError } from './sandbox.js';
import { BadJobError, checkJobData, JOB_NAME, resultKeyOf, WIRE_VERSION, type ResultRef } from './wire.js';

/** Options of `startWorker` (the flags of `chunk-memo worker`). */
export interface StartWorkerOptions {
  /** Redis URL or ioredis options. */
  readonly connection: RedisConnection;
  /** @default 'chunk-memo' */
  readonly queue?: string;
  /** BullMQ key prefix. @default 'bull' */
  readonly prefix?: string;
  /** Jobs computed at once (one sandbox thread each). @default 1 */
  readonly concurrency?: number;
  /** Device of this worker: `ctx.device` of its tasks, `CHUNK_MEMO_DEVICE` and `CUDA_VISIBLE_DEVICES` of its threads. */
  readonly device?: string;
  /** Directories and package names tasks may be loaded from. @default [process.cwd()] */
  readonly tasks?: readonly string[];
  /** BullMQ lock duration (ms): a worker silent this long has its job retried elsewhere. @default 30000 */
  readonly lockDurationMs?: number;
  /** BullMQ stalled-job check interval (ms). @default 30000 */
  readonly stalledIntervalMs?: number;
  /** Where status lines go. @default stderr */
  readonly log?: (line: string) => void;
}

/** A running worker. */
export interface RunningWorker {
  /** Stops taking jobs; waits for the running ones (`force`: stops them and returns them to the queue for another worker). */
  close(force?: boolean): Promise<void>;
  /** Jobs completed and failed so far. */
  readonly counts: { completed: number; failed: number };
}

/**
 * Device environment of a worker's threads: CUDA_VISIBLE_DEVICES takes the
 * index of `cuda:1` / `gpu:1` style names, else the name as given.
 */
export function deviceEnv(device: string): Record<string, string> {
  const m = /^[a-z]+:(\d+)$/i.exec(device);
  return { CHUNK_MEMO_DEVICE: device, CUDA_VISIBLE_DEVICES: m ? m[1]! : device };
}

/** Starts a worker; resolves once it is connected and taking jobs. */
export async function startWorker(options: StartWorkerOptions): Promise<RunningWorker> {
  const connection = bullConnection(options.connection, 'chunk-memo worker');
  const queue = options.queue ?? 'chunk-memo';
  const prefix = options.prefix ?? 'bull';
  const concurrency = options.concurrency ?? 1;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new InvalidOptionError(`chunk-memo worker: --concurrency must be a positive integer (got ${concurrency})`);
  const log = options.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const allow = new TaskAllowList(options.tasks ?? []);
  const { Worker, UnrecoverableError, WaitingError } = await loadBullMQ();

  // Threads copy the environment when they start.
  if (options.device !== undefined) Object.assign(process.env, deviceEnv(options.device));
  const sandbox = new Sandbox(concurrency, options.device);
  const redis = await newRedisClient(connection, 'chunk-memo:worker-results');
  redis.on('error', () => undefined);
  const counts = { completed: 0, failed: 0 };
  // Running jobs and their lock tokens, to hand them back on a forced stop.
  const active = new Map<import('bullmq').Job, string | undefined>();
  let returning = false;

  const processor = async (job: import('bullmq').Job, token?: string): Promise<ResultRef> => {
    active.set(job, token);
    try {
      return await processJob(job);
    } catch (e) {
      // Handed back to the queue: not a failure of the job.
      if (returning) throw new WaitingError();
      throw e;
    } finally {
      active.delete(job);
    }
  };

  const processJob = async (job: import('bullmq').Job): Promise<ResultRef> => {
    if (job.name !== JOB_NAME) throw new UnrecoverableError(`not a chunk-memo job (name ${JSON.stringify(job.name)}); use a queue of its own for chunk-memo`);
    let data;
    try {
      data = checkJobData(job.data);
    } catch (e) {
      throw new UnrecoverableError((e as Error).message);
    }
    const where = allow.resolve(data.task.moduleUrl);
    if ('refused' in where) throw new UnrecoverableError(where.refused);
    let r;
    try {
      r = await sandbox.run({ ...data, task: { ...data.task, moduleUrl: where.url } });
    } catch (e) {
      const err = e as SandboxError;
      const text = `${err.name === 'Error' ? '' : `${err.name}: `}${err.message}`;
      if (err.code === new BadJobError('').code) throw new UnrecoverableError(text);
      throw new Error(text);
    }
    const key = resultKeyOf(prefix, queue, job.id!);
    await redis.set(key, Buffer.from(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength), 'EX', Math.max(1, data.ttl));
    return { v: WIRE_VERSION, key, bytes: r.bytes.byteLength, dtype: r.dtype, count: r.count, sha256: r.sha256 };
  };

  const worker = new Worker(queue, processor, {
    connection,
    prefix,
    concurrency,
    autorun: false,
    ...(options.lockDurationMs !== undefined ? { lockDuration: options.lockDurationMs } : {}),
    ...(options.stalledIntervalMs !== undefined ? { stalledInterval: options.stalledIntervalMs } : {}),
  });
  worker.on('completed', () => void counts.completed++);
  worker.on('failed', (job, err) => {
    counts.failed++;
    log(`chunk-memo worker: job ${job?.id ?? '?'} failed: ${err.message}`);
  });
  let lastError = '';
  worker.on('error', (e) => {
    // Connection trouble repeats while Redis is away; say it once per change.
    if (e.message !== lastError) log(`chunk-memo worker: Redis at ${describeConnection(connection)}: ${e.message} (retrying)`);
    lastError = e.message;
  });
  try {
    await worker.waitUntilReady();
  } catch (e) {
    await Promise.allSettled([sandbox.close(), worker.close(true)]);
    redis.disconnect();
    throw new ChunkMemoError('ERR_REDIS_UNAVAILABLE', `chunk-memo worker: cannot reach Redis at ${describeConnection(connection)}: ${(e as Error).message}`, { cause: e });
  }
  const running = worker.run();
  running.catch((e: unknown) => log(`chunk-memo worker: ${(e as Error).message}`));
  log(
    `chunk-memo worker: queue ${queue} on ${describeConnection(connection)}, concurrency ${concurrency}` +
      `${options.device !== undefined ? `, device ${options.device}` : ''}, tasks from ${allow.describe()} (pid ${process.pid})`,
  );

  let closing: Promise<void> | undefined;
  return {
    counts,
    close(force = false) {
      if (force) {
        // Hand running jobs back to the queue at once (another worker takes
        // them now, not when their locks lapse), then stop their threads.
        returning = true;
        closing = Promise.allSettled([...active].map(([job, token]) => job.moveToWait(token)))
          .then(() => sandbox.close())
          .then(() => worker.close(true));
      }
      closing ??= worker.close().then(() => sandbox.close());
      return closing.finally(() => redis.quit().catch(() => redis.disconnect())).then(() => undefined, (e: unknown) => {
        throw e instanceof AbortedError ? e : new ChunkMemoError('ERR_WORKER_CLOSE', `chunk-memo worker: ${(e as Error).message}`, { cause: e });
      });
    },
  };
}
