/**
 * `chunk-memo worker --redis URL [--queue NAME] [--concurrency N] [--device D] [--tasks DIR|PACKAGE ...]`:
 * computes the exec chunks a `bullmqExecutor` coordinator puts on a queue.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'clipanion';
import { ChunkMemoError } from '../errors/index.js';
import type { RedisConnection } from '../executor/deps.js';
import { startWorker } from '../executor/worker.js';

const oneLine = (text: string): string => text.replace(/\s*\n\s*/g, ' ').trim();

/** A positive integer flag value, or an error naming the flag. */
function positive(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < 1) throw new Error(`worker: ${flag} must be a positive integer (got ${JSON.stringify(v)})`);
  return n;
}

export class WorkerCommand extends Command {
  static paths = [['worker']];
  /** Usage line and value names for the CLI's help and error texts (see cli/usage.ts). */
  static synopsis = 'worker --redis URL [--queue NAME] [--concurrency N] [--device D] [--tasks DIR|PACKAGE ...] [--prefix P] [--tls-ca FILE] [--lock-duration MS] [--stalled-interval MS]';
  static placeholders = {
    '--redis': 'URL', '--queue': 'NAME', '--prefix': 'P', '--concurrency': 'N', '--device': 'D', '--tasks': 'DIR|PACKAGE',
    '--tls-ca': 'FILE', '--lock-duration': 'MS', '--stalled-interval': 'MS',
  };
  static usage = Command.Usage({
    description: 'Compute exec chunks from a BullMQ queue on Redis (multi-host sweeps)',
    details: `
      Takes the jobs that runParallel(cache, task, { executor: bullmqExecutor(...) }) puts on the queue, computes each in a worker thread with executeJob, and hands the outputs back through Redis. The coordinator stores them; a worker needs no cache root.

      Tasks are imported only from the directories and installed packages named by --tasks (repeatable; default: the current directory). A module inside node_modules/PKG of the coordinator is found in this host's copy of PKG when --tasks PKG is given.

      --redis defaults to $CHUNK_MEMO_REDIS_URL, which keeps a password off the process list. SIGTERM or SIGINT: stop taking jobs, finish the running ones, exit 0; a second signal stops them and returns them to the queue, for another worker to take at once.

      See docs/distributed.md.
    `,
    examples: [
      ['Serve the default queue with 4 threads', '$0 worker --redis redis://:secret@10.0.0.5:6379 --concurrency 4 --tasks /srv/sweep'],
      ['One worker per GPU', '$0 worker --redis redis://10.0.0.5 --device cuda:1 --tasks my-sweep-tasks'],
    ],
  });

  redis = Option.String('--redis', { required: false, description: 'redis:// or rediss:// URL (default $CHUNK_MEMO_REDIS_URL)' });
  queue = Option.String('--queue', 'chunk-memo', { description: 'Queue name (as bullmqExecutor({ queue }))' });
  prefix = Option.String('--prefix', 'bull', { description: 'BullMQ key prefix (as bullmqExecutor({ prefix }))' });
  concurrency = Option.String('--concurrency', '1', { description: 'Jobs computed at once, one worker thread each' });
  device = Option.String('--device', { description: 'Device of this worker: ctx.device, CHUNK_MEMO_DEVICE, CUDA_VISIBLE_DEVICES' });
  tasks = Option.Array('--tasks', [], { description: 'Directory or package name tasks may be loaded from (repeatable; default: cwd)' });
  tlsCa = Option.String('--tls-ca', { description: 'PEM file of the CA that signed the Redis server certificate (rediss://)' });
  lockDuration = Option.String('--lock-duration', { description: 'Milliseconds without lock renewal after which a job is retried elsewhere (default 30000)' });
  stalledInterval = Option.String('--stalled-interval', { description: 'Milliseconds between checks for stalled jobs (default 30000)' });

  async execute(): Promise<number> {
    const fail = (e: unknown): number => {
      const msg = e instanceof ChunkMemoError || e instanceof Error ? e.message : String(e);
      this.context.stderr.write(`chunk-memo: ${oneLine(msg)}\n`);
      return 1;
    };
    const url = this.redis ?? process.env.CHUNK_MEMO_REDIS_URL;
    if (!url) return fail(new Error('worker: --redis URL is required (or set CHUNK_MEMO_REDIS_URL)'));
    let connection: RedisConnection = url;
    if (this.tlsCa !== undefined) {
      try {
        connection = { url, tls: { ca: readFileSync(this.tlsCa) } };
      } catch (e) {
        return fail(new Error(`worker: --tls-ca ${this.tlsCa}: ${(e as Error).message}`));
      }
    }
    let worker;
    try {
      const lockDurationMs = positive('--lock-duration', this.lockDuration);
      const stalledIntervalMs = positive('--stalled-interval', this.stalledInterval);
      worker = await startWorker({
        connection,
        queue: this.queue,
        prefix: this.prefix,
        concurrency: positive('--concurrency', this.concurrency)!,
        tasks: this.tasks,
        ...(this.device !== undefined ? { device: this.device } : {}),
        ...(lockDurationMs !== undefined ? { lockDurationMs } : {}),
        ...(stalledIntervalMs !== undefined ? { stalledIntervalMs } : {}),
        log: (line) => this.context.stderr.write(`${line}\n`),
      });
    } catch (e) {
      return fail(e);
    }
    const w = worker;
    return new Promise<number>((resolve) => {
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals): void => {
        signals++;
        const force = signals > 1;
        this.context.stderr.write(`chunk-memo worker: ${sig}: ${force ? 'returning running jobs to the queue' : 'finishing running jobs, then exiting (signal again to return them to the queue)'}\n`);
        w.close(force).then(
          () => {
            process.off('SIGTERM', onSignal);
            process.off('SIGINT', onSignal);
            this.context.stderr.write(`chunk-memo worker: stopped (${w.counts.completed} jobs completed, ${w.counts.failed} failed)\n`);
            // Exit even if a library left a handle open.
            setTimeout(() => process.exit(0), 2000).unref();
            resolve(0);
          },
          (e: unknown) => resolve(fail(e)),
        );
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
  }
}
