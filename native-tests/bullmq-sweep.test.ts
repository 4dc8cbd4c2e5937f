/**
 * End to end: runParallel(cache, task, { executor: bullmqExecutor(...) }) with
 * 2 `chunk-memo worker` processes and a real redis-server. Where
 * redis-server is absent, one test says so and passes.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChunkCache, read, runParallel } from '../ts/index.js';
import { bullmqExecutor } from '../ts/executor/bullmq.js';
import type { Executor } from '../ts/task/executor.js';
import { reapWithParent, redisServerBinary, startRedis, type RedisServer } from './fixtures/redis.js';
import { FIXTURES, logLines, range, remoteGrid, remoteTask, startWorkerProc, until, type WorkerProc } from './fixtures/remote.js';

const BIN = redisServerBinary();
const REPO = fileURLToPath(new URL('..', import.meta.url));

if (!BIN) {
  test('runParallel with bullmqExecutor', (t) => {
    const line = 'SKIPPED: redis-server is not installed (apt-get install redis-server, or set REDIS_SERVER); the distributed sweep tests did not run';
    t.log(line);
    t.pass();
  });
} else {
  let redis: RedisServer;
  let dir: string;
  const workers: WorkerProc[] = [];

  test.before(async () => {
    redis = await startRedis(BIN);
    dir = mkdtempSync(join(tmpdir(), 'cm-sweep-'));
  });

  test.after.always(async () => {
    for (const w of workers) if (w.proc.exitCode === null) w.proc.kill('SIGKILL');
    await Promise.allSettled(workers.map((w) => w.exit));
    await redis?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const spawnWorkers = async (queue: string, log: string): Promise<WorkerProc[]> => {
    const ws = await Promise.all(range(2).map(() => startWorkerProc(redis.url, ['--queue', queue, '--tasks', FIXTURES, '--lock-duration', '1500', '--stalled-interval', '500'], { CM_TEST_LOG: log })));
    workers.push(...ws);
    return ws;
  };

  /** An executor that counts the jobs handed to it. */
  const counting = (queue: string): { ex: Executor; calls: () => number } => {
    const inner = bullmqExecutor({ connection: redis.url, queue });
    let n = 0;
    return {
      calls: () => n,
      ex: {
        label: inner.label,
        concurrency: inner.concurrency,
        run: (job, signal) => {
          n++;
          return inner.run(job, signal);
        },
        close: () => inner.close!(),
      },
    };
  };

  for (const task of ['objs', 'floats'] as const) {
    test.serial(`${task}: outputs identical to a local run, each point computed once, a second run enqueues nothing`, async (t) => {
      const queue = `sweep-${task}`;
      const log = join(dir, `${queue}.log`);
      await spawnWorkers(queue, log);
      const params = { k: 0.25 };
      const cache = ChunkCache.open({ root: join(dir, `${queue}-root`), ...remoteGrid(params) });
      const local = ChunkCache.open({ root: join(dir, `${queue}-local`), ...remoteGrid(params) });
      try {
        const { ex, calls } = counting(queue);
        const r1 = await runParallel(cache, remoteTask(task), { executor: ex });
        const rl = await runParallel(local, remoteTask(task), { workers: 2 });
        if (task === 'floats') {
          const a = r1.output as Float64Array;
          const b = rl.output as Float64Array;
          t.true(a instanceof Float64Array);
          t.true(Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
        } else t.deepEqual(r1.output, rl.output);
        t.is(r1.diagnostics.executedPoints, 400);
        const lines = logLines(log);
        t.is(lines.length, 400);
        t.is(new Set(lines.map((l) => l.point)).size, 400);
        t.true(calls() > 0);
        const before = calls();
        const r2 = await runParallel(cache, remoteTask(task), { executor: ex });
        t.is(r2.diagnostics.executedPoints, 0);
        t.is(calls(), before, 'the second run hands no job to the executor');
        t.is(logLines(log).length, 400);
        t.deepEqual(r2.output, r1.output);
        t.is((await read(cache)).missingPoints, 0);
      } finally {
        cache.close();
        local.close();
      }
    });
  }

  test.serial('the coordinator SIGKILLed mid-sweep and restarted: the sweep completes, nothing stored before the kill is computed again', async (t) => {
    const queue = 'sweep-restart';
    const log = join(dir, `${queue}.log`);
    await spawnWorkers(queue, log);
    const root = join(dir, `${queue}-root`);
    const release = join(dir, `${queue}.release`);
    const params = { gateFrom: 4, release };
    const coordinator = () => {
      const p = spawn(process.execPath, ['--import', 'tsx', join(FIXTURES, 'remote-sweep.ts'), root, redis.url, queue, 'gated', JSON.stringify(params)], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
      reapWithParent(p);
      let out = '';
      let err = '';
      p.stdout!.on('data', (d) => (out += d.toString()));
      p.stderr!.on('data', (d) => (err += d.toString()));
      const exit = new Promise<number | string>((r) => p.once('exit', (c, s) => r(c ?? s ?? -1)));
      return { p, exit, out: () => out, err: () => err };
    };
    const storedPoints = async (): Promise<Set<string>> => {
      const c = ChunkCache.open({ root, ...remoteGrid(params) });
      try {
        const { present } = await read(c);
        const s = new Set<string>();
        present.forEach((v, i) => v && s.add(`${Math.floor(i / 50)},${i % 50}`));
        return s;
      } finally {
        c.close();
      }
    };
    const first = coordinator();
    // x < 4 is free, x >= 4 waits for the release file: wait until the free half is stored.
    await until(async () => (await storedPoints()).size >= 200 || first.p.exitCode !== null, 'the first half to be stored', 90_000);
    t.is(first.p.exitCode, null, first.err());
    first.p.kill('SIGKILL');
    await first.exit;
    const storedBefore = await storedPoints();
    t.is(storedBefore.size, 200);
    const linesBefore = logLines(log).length;
    writeFileSync(release, '');
    const second = coordinator();
    t.is(await second.exit, 0, second.err());
    const again = logLines(log).slice(linesBefore).filter((l) => storedBefore.has(l.point));
    t.deepEqual(again, [], 'no stored point computed again');
    // Jobs that ran on while no coordinator listened were attached to, not added again.
    t.is(logLines(log).length, 400, 'each point computed once across the restart');
    t.is((await storedPoints()).size, 400);
    const diag = JSON.parse(second.out().trim().split('\n').pop()!) as { executedPoints: number };
    t.true(diag.executedPoints <= 200);
  });

  test.serial('a worker SIGKILLed mid-job: the sweep completes on the other worker, every stored output correct', async (t) => {
    const queue = 'sweep-kill';
    const log = join(dir, `${queue}.log`);
    const ws = await spawnWorkers(queue, log);
    const release = join(dir, `${queue}.release`);
    const params = { gateFrom: 7, release };
    const cache = ChunkCache.open({ root: join(dir, `${queue}-root`), ...remoteGrid(params) });
    try {
      const ex = bullmqExecutor({ connection: redis.url, queue });
      const sweep = runParallel(cache, remoteTask('gated'), { executor: ex });
      const started = `${log}.started`;
      await until(() => existsSync(started) && readFileSync(started, 'utf8').length > 0, 'the gated block to start', 90_000);
      const victim = Number(readFileSync(started, 'utf8').split(' ')[0]);
      const w = ws.find((x) => x.pid === victim)!;
      t.truthy(w);
      w.proc.kill('SIGKILL');
      await w.exit;
      writeFileSync(release, '');
      const r = await sweep;
      const want = range(8).flatMap((x) => range(50).map((y) => ({ x, y, v: x * 10 + y, device: null })));
      t.deepEqual(r.output, want);
      t.is((await read(cache)).missingPoints, 0);
      const pids = new Set(readFileSync(started, 'utf8').trim().split('\n').map((l) => Number(l.split(' ')[0])));
      t.is(pids.size, 2, 'the gated block ran again on the other worker');
    } finally {
      cache.close();
    }
  });
}
