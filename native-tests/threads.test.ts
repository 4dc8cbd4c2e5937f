/**
 * One LMDB environment per root per process, shared by worker threads; and
 * several processes on one root. Four worker threads (and then two child
 * processes) open the same cache and run disjoint selections plus one shared
 * selection at the same time, writing partial records of the same chunks
 * concurrently; afterwards every point's stored output is checked.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, type ChunkCache } from '../ts/index.js';
import { tsWorker } from './fixtures/ts-worker.js';
import { CONC_X, CONC_Y, concExpected, openConcurrent, ownX, SHARED_X } from './fixtures/sweep.js';

const fixture = (name: string): string => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));

function tempRoot(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'cm-threads-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Checks every point of the whole grid from the store; nothing may run. */
async function checkAllStored(t: ExecutionContext, cache: ChunkCache): Promise<void> {
  const status = cache.status();
  t.is(status.totalPoints, CONC_X.length * CONC_Y.length);
  t.is(status.cachedPoints, status.totalPoints);
  t.is(status.missingPoints, 0);
  t.is(status.cached.length, status.totalChunks);
  t.deepEqual(status.partial, []);
  t.deepEqual(status.missing, []);
  const { output, diagnostics } = await run(cache, () => {
    throw new Error('nothing should be computed');
  });
  t.is(diagnostics.executedPoints, 0);
  t.deepEqual(diagnostics.corruptRecords, []);
  const expected = CONC_X.flatMap((x) => CONC_Y.map((y) => concExpected(x, y)));
  t.deepEqual(output, expected);
  t.deepEqual(cache._core.store.verify(cache._core.idBytes), []);
}

/** Every point of the disjoint selections was computed exactly once; shared ones at least once. */
function checkExecutions(t: ExecutionContext, executed: string[], n: number): void {
  const counts = new Map<string, number>();
  for (const key of executed) counts.set(key, (counts.get(key) ?? 0) + 1);
  for (let k = 0; k < n; k++) {
    for (const x of ownX(k, n)) {
      for (const y of CONC_Y) t.is(counts.get(`${x}/${y}`), 1, `point ${x}/${y} of participant ${k}`);
    }
  }
  for (const x of SHARED_X) {
    for (const y of CONC_Y) {
      const c = counts.get(`${x}/${y}`) ?? 0;
      t.true(c >= 1 && c <= n, `shared point ${x}/${y} computed ${c} times`);
    }
  }
  t.is(counts.size, CONC_X.length * CONC_Y.length);
}

interface WorkerDone {
  type: 'done';
  executed: string[];
  executedAgain: string[];
  ownExecutedPoints: number;
  problems: string[];
}
type WorkerMessage = { type: 'ready' } | WorkerDone | { type: 'error'; error: string };

test('four worker threads share one environment and write the same chunks concurrently', async (t) => {
  const root = tempRoot(t);
  const n = 4;
  // The main thread opens the root first and keeps it open throughout.
  const mainCache = openConcurrent(root);
  t.is(mainCache.status().cachedPoints, 0);

  const start = new Int32Array(new SharedArrayBuffer(4));
  const errors: string[] = [];
  let ready = 0;
  let allReady!: () => void;
  const readyP = new Promise<void>((r) => (allReady = r));
  const results = await Promise.all(
    Array.from({ length: n }, (_, k) => {
      // The worker is a .ts file (see fixtures/ts-worker.ts for why it is
      // not started with `new Worker(url)`).
      const w = tsWorker(new URL('./fixtures/thread-worker.ts', import.meta.url), { workerData: { root, k, n, start } });
      return new Promise<WorkerDone | null>((resolve) => {
        let result: WorkerDone | null = null;
        w.on('message', (m: WorkerMessage) => {
          if (m.type === 'ready') {
            if (++ready === n) allReady();
          } else if (m.type === 'done') result = m;
          else errors.push(`worker ${k}: ${m.error}`);
        });
        w.on('error', (e) => errors.push(`worker ${k}: ${e.stack ?? String(e)}`));
        w.on('exit', (code) => {
          if (code !== 0) errors.push(`worker ${k} exited with ${code}`);
          if (ready < n) allReady(); // never wait for a worker that died early
          resolve(result);
        });
        void readyP.then(() => {
          // All workers are waiting: release them together.
          if (Atomics.load(start, 0) === 0) {
            Atomics.store(start, 0, 1);
            Atomics.notify(start, 0);
          }
        });
      });
    }),
  );
  t.deepEqual(errors, []);
  t.false(errors.some((e) => /EnvAlreadyOpened|already opened/i.test(e)));
  const done = results.filter((r): r is WorkerDone => r !== null);
  t.is(done.length, n);
  for (const r of done) {
    t.deepEqual(r.problems, []);
    t.deepEqual(r.executedAgain, [], 'reading back computed nothing');
  }
  done.forEach((r, k) => t.is(r.ownExecutedPoints, ownX(k, n).length * CONC_Y.length));
  checkExecutions(t, done.flatMap((r) => r.executed), n);
  await checkAllStored(t, mainCache);
  // A handle opened afresh in this thread sees the same.
  await checkAllStored(t, openConcurrent(root));
});

/** Spawns a proc-writer child; resolves its stdout lines as they come. */
function spawnWriter(root: string, k: number, n: number): { child: ChildProcess; ready: Promise<void>; result: Promise<{ code: number | null; out: string; err: string }> } {
  const child = spawn(process.execPath, ['--import', 'tsx', '--no-warnings=ExperimentalWarning', fixture('proc-writer.ts'), root, String(k), String(n)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  let onReady!: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('ready\n')) onReady();
  });
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const result = new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
    child.on('close', (code) => {
      onReady();
      resolve({ code, out, err });
    });
  });
  return { child, ready, result };
}

test('two processes write to one root at once and both succeed', async (t) => {
  const root = tempRoot(t);
  const n = 2;
  const writers = Array.from({ length: n }, (_, k) => spawnWriter(root, k, n));
  await Promise.all(writers.map((w) => w.ready));
  for (const w of writers) w.child.stdin!.write('go\n');
  const results = await Promise.all(writers.map((w) => w.result));
  const executed: string[] = [];
  results.forEach((r, k) => {
    t.is(r.code, 0, `writer ${k} failed: ${r.err}`);
    const line = r.out.split('\n').find((l) => l.startsWith('{'));
    t.truthy(line, `writer ${k} printed no result: ${r.out}`);
    const res = JSON.parse(line!) as { executed: string[]; own: number; shared: number };
    t.is(res.own, ownX(k, n).length * CONC_Y.length);
    executed.push(...res.executed);
  });
  checkExecutions(t, executed, n);
  // This process opens the root only now, after both wrote.
  await checkAllStored(t, openConcurrent(root));
});
