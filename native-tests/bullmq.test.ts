/**
 * bullmqExecutor and `chunk-memo worker` against a real redis-server (started
 * on a free loopback port, no persistence). Where redis-server is absent,
 * one test says so and passes.
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { bullmqExecutor } from '../ts/executor/bullmq.js';
import { JOB_NAME } from '../ts/executor/wire.js';
import { executeJob } from '../ts/task/execute.js';
import type { Executor } from '../ts/task/executor.js';
import { makeTlsMaterial, redisServerBinary, startRedis, type RedisServer } from './fixtures/redis.js';
import { blockJob, FIXTURES, logLines, range, remoteTask, startWorkerProc, until, type WorkerProc } from './fixtures/remote.js';

const BIN = redisServerBinary();

if (!BIN) {
  test('bullmq executor and chunk-memo worker', (t) => {
    const line = 'SKIPPED: redis-server is not installed (apt-get install redis-server, or set REDIS_SERVER); the BullMQ executor tests did not run';
    t.log(line);
    t.pass();
  });
} else {
  let redis: RedisServer;
  let dir: string;
  const workers: WorkerProc[] = [];
  const executors: Executor[] = [];
  // Fast stall detection, so a killed worker's job moves on within seconds.
  const FAST = ['--lock-duration', '1500', '--stalled-interval', '500'];

  test.before(async () => {
    redis = await startRedis(BIN);
    dir = mkdtempSync(join(tmpdir(), 'cm-bullmq-'));
  });

  test.after.always(async () => {
    await Promise.allSettled(executors.map((e) => e.close?.()));
    for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await Promise.allSettled(workers.map((w) => w.exit));
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const executor = (queue: string, extra: Record<string, unknown> = {}): Executor => {
    const e = bullmqExecutor({ connection: redis.url, queue, ...extra });
    executors.push(e);
    return e;
  };
  const spawnWorkers = async (n: number, queue: string, log: string, args: string[] = []): Promise<WorkerProc[]> => {
    const timing = args.includes('--lock-duration') ? [] : FAST;
    const ws = await Promise.all(range(n).map(() => startWorkerProc(redis.url, ['--queue', queue, '--tasks', FIXTURES, ...timing, ...args], { CM_TEST_LOG: log })));
    workers.push(...ws);
    return ws;
  };
  const leftovers = async (queue: string): Promise<{ keys: string[]; jobs: number }> => {
    const c = new Redis(redis.url);
    const q = new Queue(queue, { connection: { url: redis.url } });
    try {
      const keys = await c.keys(`bull:${queue}:cm-result:*`);
      const counts = await q.getJobCounts('waiting', 'active', 'completed', 'failed', 'delayed');
      return { keys, jobs: Object.values(counts).reduce((a, b) => a + b, 0) };
    } finally {
      await q.close();
      c.disconnect();
    }
  };

  test.serial('object outputs equal a local executeJob, each point computed once, nothing left in Redis', async (t) => {
    const log = join(dir, 'objs.log');
    await spawnWorkers(2, 'objs', log);
    const ex = executor('objs', { concurrency: 8 });
    const jobs = range(6).map((x) => blockJob(remoteTask('objs'), { k: 0.5 }, { x: [x], y: range(4) }, x));
    const outs = await Promise.all(jobs.map((j) => ex.run(j)));
    for (let i = 0; i < jobs.length; i++) t.deepEqual(outs[i], await executeJob(jobs[i]!));
    const lines = logLines(log);
    t.is(lines.length, 24);
    t.is(new Set(lines.map((l) => l.point)).size, 24);
    await ex.close!();
    t.deepEqual(await leftovers('objs'), { keys: [], jobs: 0 });
  });

  test.serial('Float64Array outputs of 20,000 points per job round-trip bit-exact', async (t) => {
    const log = join(dir, 'floats.log');
    await spawnWorkers(2, 'floats', log);
    const ex = executor('floats');
    const jobs = range(2).map((i) => blockJob(remoteTask('floats'), { k: 1 / 3 }, { x: range(100, i * 100), y: range(200) }, i));
    const outs = await Promise.all(jobs.map((j) => ex.run(j)));
    for (let i = 0; i < jobs.length; i++) {
      const out = outs[i] as Float64Array;
      t.true(out instanceof Float64Array);
      t.is(out.length, 20_000);
      const local = (await executeJob(jobs[i]!)) as Float64Array;
      t.true(Buffer.from(out.buffer, out.byteOffset, out.byteLength).equals(Buffer.from(local.buffer, local.byteOffset, local.byteLength)));
    }
    t.true(Object.is(outs[0]![0], -0));
  });

  test.serial('a malformed job, a task outside the allow-list and a throwing task fail clearly; the worker goes on serving', async (t) => {
    const log = join(dir, 'bad.log');
    const [w] = await spawnWorkers(1, 'bad', log);
    const q = new Queue('bad', { connection: { url: redis.url } });
    try {
      const bad = await q.addBulk([
        { name: JOB_NAME, data: { v: 1, task: 'not a task' }, opts: { jobId: 'bad-1' } },
        { name: JOB_NAME, data: { v: 1, task: { kind: 'module', moduleUrl: remoteTask('objs').moduleUrl, exportName: 'objs' }, jobIndex: 0, count: 1, key: 'k', ttl: 60, session: 's', block: '!!notbase64msgpack' }, opts: { jobId: 'bad-2' } },
        { name: 'something-else', data: {}, opts: { jobId: 'bad-3' } },
      ]);
      await until(async () => (await Promise.all(bad.map((j) => q.getJobState(j.id!)))).every((s) => s === 'failed'), 'malformed jobs to fail');
      const reasons = await Promise.all(bad.map(async (j) => (await q.getJob(j.id!))!.failedReason));
      t.regex(reasons[0]!, /malformed chunk-memo job: task must be/);
      t.regex(reasons[1]!, /malformed chunk-memo job: (its block|the block)/);
      t.regex(reasons[2]!, /not a chunk-memo job/);
    } finally {
      await q.close();
    }
    const ex = executor('bad');
    const outside = join(dir, 'evil.mjs');
    writeFileSync(outside, 'export function run() { return [1]; }\n');
    await t.throwsAsync(ex.run(blockJob({ kind: 'module', moduleUrl: `file://${outside}`, exportName: 'run' }, {}, { x: [1] }, 0)), { message: /outside the allowed task locations/ });
    await t.throwsAsync(ex.run(blockJob(remoteTask('nope'), {}, { x: [1] }, 1)), { message: /nope.*not exported/ });
    await t.throwsAsync(ex.run(blockJob(remoteTask('broken'), {}, { x: [1] }, 2)), { message: /exec chunk 2 failed on a chunk-memo worker.*RangeError: deliberate failure/ });
    const ok = blockJob(remoteTask('objs'), { k: 1 }, { x: [7], y: [1, 2] }, 3);
    t.deepEqual(await ex.run(ok), await executeJob(ok));
    t.is(w!.proc.exitCode, null);
  });

  test.serial('a restarted coordinator attaches to its running and finished jobs instead of adding them again', async (t) => {
    const log = join(dir, 'attach.log');
    await spawnWorkers(2, 'attach', log);
    const release = join(dir, 'attach.release');
    const salt = 'attach-salt';
    const jobs = range(2).map((i) => blockJob(remoteTask('hold'), { release }, { x: [i], y: [0, 1] }, i, salt));
    const first = executor('attach');
    const lost = jobs.map((j) => first.run(j).catch((e: Error) => e));
    await until(() => logLines(log).length === 4, 'both jobs to start');
    await first.close!(); // the coordinator goes away; its jobs stay on the queue
    t.true((await lost[0]) instanceof Error);
    const second = executor('attach');
    const attachedWhileActive = second.run(jobs[0]!);
    writeFileSync(release, '');
    t.deepEqual(await attachedWhileActive, [0, 1]);
    // jobs[1] finished with no coordinator listening: attach to the completed job.
    t.deepEqual(await second.run(jobs[1]!), [10, 11]);
    t.is(logLines(log).length, 4, 'no point computed twice');
  });

  test.serial('a finished job whose result expired or was damaged is computed again', async (t) => {
    const log = join(dir, 'expire.log');
    await spawnWorkers(2, 'expire', log);
    const release = join(dir, 'expire.release');
    const jobs = range(2).map((i) => blockJob(remoteTask('hold'), { release }, { x: [i], y: [7] }, i, 'expire-salt'));
    const first = executor('expire');
    const lost = jobs.map((j) => first.run(j).catch((e: Error) => e));
    await until(() => logLines(log).length === 2, 'both jobs to start');
    await first.close!();
    await Promise.all(lost);
    writeFileSync(release, '');
    const q = new Queue('expire', { connection: { url: redis.url } });
    const c = new Redis(redis.url);
    try {
      await until(async () => (await q.getJobCounts('completed')).completed === 2, 'both jobs to complete');
      const keys = (await c.keys('bull:expire:cm-result:*')).sort();
      t.is(keys.length, 2);
      const byJob = await Promise.all(jobs.map(async (j) => (await q.getJobs(['completed'])).find((x) => x.data.jobIndex === j.jobIndex)!.returnvalue.key as string));
      await c.del(byJob[0]!); // expired
      await c.set(byJob[1]!, Buffer.alloc(8)); // damaged
    } finally {
      await q.close();
      c.disconnect();
    }
    const second = executor('expire');
    t.deepEqual(await Promise.all(jobs.map((j) => second.run(j))), [[7], [17]]);
    t.is(logLines(log).length, 4, 'each job computed again once');
  });

  test.serial('a worker SIGKILLed mid-job: the job is retried on another worker', async (t) => {
    const log = join(dir, 'kill.log');
    const ws = await spawnWorkers(2, 'kill', log);
    const release = join(dir, 'kill.release');
    const ex = executor('kill');
    const job = blockJob(remoteTask('hold'), { release }, { x: [3], y: [1, 2, 3] }, 0);
    const out = ex.run(job);
    await until(() => logLines(log).length === 3, 'the job to start');
    const victim = logLines(log)[0]!.pid;
    const w = ws.find((x) => x.pid === victim)!;
    t.truthy(w, 'the job ran in one of the worker processes');
    w.proc.kill('SIGKILL');
    await w.exit;
    writeFileSync(release, '');
    t.deepEqual(await out, [31, 32, 33]);
    const pids = new Set(logLines(log).map((l) => l.pid));
    t.is(pids.size, 2, 'computed again by the other worker');
  });

  test.serial('SIGTERM: the worker finishes its running job, then exits 0', async (t) => {
    const log = join(dir, 'term.log');
    const [w] = await spawnWorkers(1, 'term', log);
    const release = join(dir, 'term.release');
    const ex = executor('term');
    const out = ex.run(blockJob(remoteTask('hold'), { release }, { x: [1], y: [2] }, 0));
    await until(() => logLines(log).length === 1, 'the job to start');
    w!.proc.kill('SIGTERM');
    await until(() => /finishing running jobs/.test(w!.stderr()), 'the worker to acknowledge SIGTERM');
    writeFileSync(release, '');
    t.deepEqual(await out, [12]);
    t.is(await w!.exit, 0);
  });

  test.serial('a second SIGTERM returns the running job to the queue at once; another worker computes it', async (t) => {
    const log = join(dir, 'return.log');
    // A long lock: only a job handed back (not one that stalled) moves on within the test.
    const [a] = await spawnWorkers(1, 'return', log, ['--lock-duration', '600000', '--stalled-interval', '600000']);
    const release = join(dir, 'return.release');
    const ex = executor('return');
    const out = ex.run(blockJob(remoteTask('hold'), { release }, { x: [4], y: [5] }, 0));
    await until(() => logLines(log).length === 1, 'the job to start');
    a!.proc.kill('SIGTERM');
    await until(() => /finishing running jobs/.test(a!.stderr()), 'the first SIGTERM to be acknowledged');
    a!.proc.kill('SIGTERM');
    t.is(await a!.exit, 0, a!.stderr());
    t.regex(a!.stderr(), /returning running jobs to the queue/);
    const [b] = await spawnWorkers(1, 'return', log, ['--lock-duration', '600000', '--stalled-interval', '600000']);
    await until(() => logLines(log).length === 2, 'the other worker to take the job');
    writeFileSync(release, '');
    t.deepEqual(await out, [45]);
    t.deepEqual(logLines(log).map((l) => l.pid), [a!.pid, b!.pid]);
  });

  test.serial('--device sets ctx.device, CHUNK_MEMO_DEVICE and CUDA_VISIBLE_DEVICES of the sandbox', async (t) => {
    const [w] = await spawnWorkers(1, 'device', join(dir, 'device.log'), ['--device', 'cuda:1']);
    t.regex(w!.stderr(), /device cuda:1/);
    const ex = executor('device');
    const out = await ex.run(blockJob(remoteTask('whereami'), {}, { x: [1, 2] }, 0));
    t.deepEqual(out, [0, 1].map(() => ({ device: 'cuda:1', CHUNK_MEMO_DEVICE: 'cuda:1', CUDA_VISIBLE_DEVICES: '1' })));
  });

  test.serial('abort takes a waiting job back off the queue; a run with no worker connected warns', async (t) => {
    const warned = new Promise<Error>((resolve) => {
      const on = (w: Error): void => {
        if ((w as Error & { code?: string }).code !== 'CHUNK_MEMO_NO_WORKERS') return;
        process.off('warning', on);
        resolve(w);
      };
      process.on('warning', on);
    });
    const ex = executor('nobody');
    const ac = new AbortController();
    const p = ex.run(blockJob(remoteTask('objs'), { k: 0 }, { x: [1], y: [1] }, 0), ac.signal);
    t.regex((await warned).message, /no chunk-memo worker is connected to queue nobody/);
    await until(async () => (await leftovers('nobody')).jobs === 1, 'the job to be queued');
    ac.abort();
    await t.throwsAsync(p, { code: 'ERR_ABORTED' });
    await until(async () => (await leftovers('nobody')).jobs === 0, 'the job to be taken back');
    // Closing the executor (the run ended) takes back the jobs that did not start.
    const pending = ex.run(blockJob(remoteTask('objs'), { k: 0 }, { x: [2], y: [1] }, 1));
    await until(async () => (await leftovers('nobody')).jobs === 1, 'the second job to be queued');
    await ex.close!();
    await t.throwsAsync(pending, { code: 'ERR_CLOSED' });
    t.is((await leftovers('nobody')).jobs, 0);
  });

  test.serial('connection options pass through: a password-protected Redis, as URL (worker) and as ioredis options (coordinator)', async (t) => {
    const secure = await startRedis(BIN, ['--requirepass', 's3cret']);
    try {
      const log = join(dir, 'auth.log');
      const w = await startWorkerProc(secure.url.replace('redis://', 'redis://:s3cret@'), ['--queue', 'auth', '--tasks', FIXTURES], { CM_TEST_LOG: log });
      workers.push(w);
      t.notRegex(w.stderr(), /s3cret/, 'the status line hides the password');
      t.regex(w.stderr(), /\*\*\*/);
      const ex = bullmqExecutor({ connection: { host: '127.0.0.1', port: secure.port, password: 's3cret' }, queue: 'auth' });
      executors.push(ex);
      const job = blockJob(remoteTask('objs'), { k: 2 }, { x: [1, 2], y: [3] }, 0);
      t.deepEqual(await ex.run(job), await executeJob(job));
      const wrong = bullmqExecutor({ connection: { host: '127.0.0.1', port: secure.port, password: 'wrong' }, queue: 'auth', connectTimeoutSeconds: 3 });
      executors.push(wrong);
      await t.throwsAsync(wrong.run(job), { message: /WRONGPASS|NOAUTH|did not answer|invalid/i });
      w.proc.kill('SIGTERM');
      t.is(await w.exit, 0);
      await Promise.all([ex.close!(), wrong.close!()]);
    } finally {
      await secure.stop();
    }
  });

  test.serial('TLS: rediss:// with --tls-ca on the worker, ioredis tls options on the coordinator', async (t) => {
    const tlsDir = join(dir, 'tls');
    mkdirSync(tlsDir);
    const tls = makeTlsMaterial(tlsDir);
    if (!tls) {
      t.log('openssl is not installed: the TLS test did not run');
      t.pass();
      return;
    }
    const secure = await startRedis(BIN, [], tls);
    try {
      t.regex(secure.url, /^rediss:/);
      const w = await startWorkerProc(secure.url, ['--queue', 'tls', '--tasks', FIXTURES, '--tls-ca', tls.ca], { CM_TEST_LOG: join(dir, 'tls.log') });
      workers.push(w);
      const ex = bullmqExecutor({ connection: { host: '127.0.0.1', port: secure.port, tls: { ca: readFileSync(tls.ca), servername: 'localhost' } }, queue: 'tls' });
      executors.push(ex);
      const job = blockJob(remoteTask('floats'), { k: 1 }, { x: [1, 2], y: [3, 4] }, 0);
      t.deepEqual(await ex.run(job), await executeJob(job));
      await ex.close!();
      w.proc.kill('SIGTERM');
      t.is(await w.exit, 0);
    } finally {
      await secure.stop();
    }
  });
}
