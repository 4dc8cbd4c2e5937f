/**
 * Work claims across processes on one root (SPEC §4.3): several processes
 * running the same 10,000-point sweep compute every point exactly once; a
 * SIGKILLed one leaves no claim, and costs what it computed and had not
 * committed (for a slow function, the runner commits each block before the
 * next exec call: at most the block just computed);
 * `processes: { devices }` pins one child process per device.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChunkCache, defineTask, run, runParallel, type ChunkFn } from '../ts/index.js';
import { networkFsName } from '../ts/cache/network-fs.js';
import { gc, iterate, verify } from '../ts/index.js';

const sweep = fileURLToPath(new URL('./fixtures/claim-sweep.ts', import.meta.url));
const TASKS = new URL('./fixtures/tasks.ts', import.meta.url);
const roots: string[] = [];
const freshRoot = (): string => {
  const r = mkdtempSync(join(tmpdir(), 'cm-claims-'));
  roots.push(r);
  return r;
};
test.after.always(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

interface Final { executed: number; waited: number; takenOver: number; cached: number; wrong: number }
interface Participant { final: Final | null; blocks: number[]; progress: number[]; code: number | null; signal: string | null; stderr: string }

/** Starts a participant; `onLine` may kill it. */
function participant(root: string, mode: string, spin: number, onLine?: (p: Participant, kill: () => void) => void): Promise<Participant> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--no-warnings=ExperimentalWarning', sweep, root, mode, String(spin)], { stdio: ['ignore', 'pipe', 'pipe'] });
    const p: Participant = { final: null, blocks: [], progress: [], code: null, signal: null, stderr: '' };
    let pending = '';
    child.stdout.on('data', (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const o = JSON.parse(line) as { block?: number; progress?: number; final?: boolean } & Final;
        if (o.final) p.final = o;
        else if (o.block !== undefined) p.blocks.push(o.block);
        else if (o.progress !== undefined) p.progress.push(o.progress);
        onLine?.(p, () => child.kill('SIGKILL'));
      }
    });
    child.stderr.on('data', (d: Buffer) => (p.stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      p.code = code;
      p.signal = signal;
      resolve(p);
    });
  });
}

const TOTAL = 10_000;
const openSweep = (root: string, spin: number) =>
  ChunkCache.open({ root, params: { fixture: 'claims', spin }, axisValues: { x: Array.from({ length: 100 }, (_, i) => i), y: Array.from({ length: 100 }, (_, i) => i) }, chunkSpec: { x: 5, y: 50 } });
const claimsLeft = (c: ChunkCache): number => (c._core.store as unknown as { claimCount(): number }).claimCount();

test('3 processes on one sweep execute exactly 10,000 points, each output equal to a serial run', async (t) => {
  const root = freshRoot();
  const ps = await Promise.all([0, 1, 2].map(() => participant(root, 'serial', 100)));
  for (const p of ps) {
    t.is(p.code, 0, p.stderr);
    t.is(p.final!.wrong, 0);
    t.is(p.final!.executed + p.final!.waited + p.final!.cached, TOTAL);
  }
  t.is(ps.reduce((n, p) => n + p.final!.executed, 0), TOTAL, JSON.stringify(ps.map((p) => p.final)));
  t.log('executed / waited per process:', ps.map((p) => `${p.final!.executed}/${p.final!.waited}`).join(' '));
  const c = openSweep(root, 100);
  t.is(claimsLeft(c), 0);
  const again = await run(c, () => {
    throw new Error('nothing should run');
  });
  t.is(again.diagnostics.executedPoints, 0);
});

test('2 processes x 2 worker threads on one sweep execute exactly 10,000 points', async (t) => {
  const root = freshRoot();
  const ps = await Promise.all([0, 1].map(() => participant(root, 'threads', 100)));
  for (const p of ps) {
    t.is(p.code, 0, p.stderr);
    t.is(p.final!.wrong, 0);
  }
  t.is(ps.reduce((n, p) => n + p.final!.executed, 0), TOTAL, JSON.stringify(ps.map((p) => p.final)));
  t.is(claimsLeft(openSweep(root, 100)), 0);
});

test('a process SIGKILLed while holding claims: the others take over at once, no claim left behind', async (t) => {
  const root = freshRoot();
  // The victim computes a few blocks, then dies while it holds claims.
  // Its exec calls last 60 ms or more: a slow function's block is
  // committed before the next call starts (a fast one's are batched for up
  // to 200 ms, and a kill loses them all).
  const victim = participant(root, 'slow', 100, (p, kill) => {
    if (p.blocks.length === 3) kill();
  });
  const others = [0, 1].map(() => participant(root, 'serial', 100));
  const [v, ...rest] = await Promise.all([victim, ...others]);
  t.is(v!.signal, 'SIGKILL');
  for (const p of rest) {
    t.is(p.code, 0, p.stderr);
    t.is(p.final!.wrong, 0);
  }
  const victimPoints = v!.blocks.reduce((a, b) => a + b, 0);
  const executed = rest.reduce((n, p) => n + p.final!.executed, 0) + victimPoints;
  // At most the victim's last block (computed, not yet committed) runs twice.
  t.true(executed >= TOTAL && executed <= TOTAL + 500, `executed ${executed}`);
  const c = openSweep(root, 100);
  t.is(claimsLeft(c), 0);
  t.is(c.status().missingPoints, 0);
  t.is((await run(c, () => [])).diagnostics.executedPoints, 0);
});

test('a process killed mid-run: the store holds every point it reported done through onProgress', async (t) => {
  const root = freshRoot();
  const p = await participant(root, 'progress', 50, (q, kill) => {
    if (q.progress.length === 4) kill();
  });
  t.is(p.signal, 'SIGKILL');
  const reported = Math.max(...p.progress);
  t.true(reported > 0);
  t.true(openSweep(root, 50).status().cachedPoints >= reported, `reported ${reported}`);
});

test('processes: { devices }: one child per device sees its device in env and ctx.device', async (t) => {
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { x: Array.from({ length: 40 }, (_, i) => i) }, chunkSpec: { x: 4 } });
  const r = await runParallel(cache, defineTask(TASKS, 'deviceInfo'), { processes: { devices: ['a', 'b'] }, execChunkSize: 2 });
  const out = r.output as string[];
  t.is(out.length, 40);
  const byDevice = new Map<string, Set<string>>();
  for (const s of out) {
    const [ctxDevice, envDevice, cuda, pid] = s.split('|');
    t.is(ctxDevice, envDevice);
    t.is(cuda, envDevice);
    if (!byDevice.has(ctxDevice!)) byDevice.set(ctxDevice!, new Set());
    byDevice.get(ctxDevice!)!.add(pid!);
  }
  t.deepEqual([...byDevice.keys()].sort(), ['a', 'b']);
  // One process per device, not this one.
  for (const pids of byDevice.values()) {
    t.is(pids.size, 1);
    t.false(pids.has(String(process.pid)));
  }
  t.deepEqual(r.executors.map((e) => e.label), ['device a', 'device b']);
  t.true(r.executors.every((e) => e.points > 0));
});

test('processes: a function task is refused (it cannot travel); a bad processes value names the option', async (t) => {
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { x: [1, 2] } });
  const fn: ChunkFn = (_p, axes) => axes.x!.map(() => 1);
  await t.throwsAsync(runParallel(cache, fn, { processes: 2 }), { code: 'ERR_INVALID_OPTION', message: /processes needs a task from defineTask/ });
  await t.throwsAsync(runParallel(cache, defineTask(TASKS, 'obj'), { processes: 0 }), { code: 'ERR_INVALID_OPTION', message: /options\.processes/ });
  await t.throwsAsync(runParallel(cache, defineTask(TASKS, 'obj'), { processes: { devices: [] } }), { code: 'ERR_INVALID_OPTION', message: /options\.processes/ });
});

test('a root on a network file system is recognised by its statfs type (NFS, SMB, FUSE); a local one is not', async (t) => {
  t.is(networkFsName(0x6969), 'NFS');
  t.is(networkFsName(0xfe534d42), 'SMB2');
  t.is(networkFsName(0x65735546), 'FUSE');
  t.is(networkFsName(0xef53), undefined); // ext4
  t.is(networkFsName(0x01021994), undefined); // tmpfs
  // Opening a local root warns nothing.
  const warnings: string[] = [];
  const onWarning = (w: Error & { code?: string }) => warnings.push(w.code ?? '');
  process.on('warning', onWarning);
  ChunkCache.open({ root: freshRoot(), axisValues: { x: [1] } });
  await new Promise((r) => setImmediate(r));
  process.off('warning', onWarning);
  t.false(warnings.includes('CHUNK_MEMO_NETWORK_FS'));
});

test('gc in one process never evicts a cache a run in another process is using; verify --repair keeps the store sound', async (t) => {
  const root = freshRoot();
  let result: ReturnType<typeof gc> | null = null;
  const p = await participant(root, 'serial', 300, (q, kill) => {
    // The sweep is running and has stored some chunks: evict everything.
    if (q.blocks.length === 3 && result === null) {
      result = gc(root, { maxBytes: 0 });
      kill();
    }
  });
  t.is(p.signal, 'SIGKILL');
  t.truthy(result);
  const r = result as unknown as ReturnType<typeof gc>;
  t.is(r.evicted.length, 0, JSON.stringify(r.evicted.slice(0, 3)));
  t.true(r.keptInUse > 0);
  // The run is gone (killed): its mark ended with it, and gc now evicts.
  const after = gc(root, { maxBytes: 0 });
  t.true(after.evicted.length > 0);
  t.true(verify(root, { repair: true }).ok);
});

test('concurrent opens that add axis values lose none: 3 processes x 40 opens keep 120 of 120', async (t) => {
  const root = freshRoot();
  const script = fileURLToPath(new URL('./fixtures/open-adder.ts', import.meta.url));
  const codes = await Promise.all(
    ['a', 'b', 'c'].map(
      (who) =>
        new Promise<number | null>((resolve, reject) => {
          const c = spawn(process.execPath, ['--import', 'tsx', '--no-warnings=ExperimentalWarning', script, root, who, '40'], { stdio: ['ignore', 'ignore', 'inherit'] });
          c.on('error', reject);
          c.on('close', resolve);
        }),
    ),
  );
  t.deepEqual(codes, [0, 0, 0]);
  const [info] = ChunkCache.discover(root);
  const values = new Set(ChunkCache.load(root, info!.id).axisValues.x as string[]);
  t.is(values.size, 120);
  for (const who of ['a', 'b', 'c']) for (let i = 0; i < 40; i++) t.true(values.has(`${who}-${i}`));
});

test('a run that stops early (a break out of iterate, a throwing function, an abort) leaves no claim behind, also of the batch it claimed ahead; a re-run computes only the rest', async (t) => {
  const root = freshRoot();
  // Many small chunks: a run claims its next batch ahead while it computes one.
  const open = () => ChunkCache.open({ root, params: { fixture: 'stop-early' }, axisValues: { x: Array.from({ length: 4000 }, (_, i) => i) }, chunkSpec: { x: 2 } });
  const f: ChunkFn = (_p, { x }) => Float64Array.from(x as number[], (v) => v * 3);
  let seen = 0;
  for await (const c of (await import('../ts/index.js')).iterate(open(), f)) {
    seen += c.executedPoints;
    if (seen >= 200) break;
  }
  t.is(claimsLeft(open()), 0);
  let calls = 0;
  const throwing: ChunkFn = (p, axes, ctx) => {
    if (++calls === 600) throw new Error('boom');
    return f(p, axes, ctx);
  };
  await t.throwsAsync(run(open(), throwing), { message: /boom/ });
  t.is(claimsLeft(open()), 0);
  const ac = new AbortController();
  let n = 0;
  const aborting: ChunkFn = (p, axes, ctx) => {
    if (++n === 700) ac.abort();
    return f(p, axes, ctx);
  };
  await t.throwsAsync(run(open(), aborting, { signal: ac.signal }), { code: 'ERR_ABORTED' });
  t.is(claimsLeft(open()), 0);
  const rest = await run(open(), f);
  t.is(rest.diagnostics.executedPoints + rest.diagnostics.cachedPoints, 4000);
  t.true(rest.diagnostics.cachedPoints >= 1200);
  t.is(claimsLeft(open()), 0);
  t.deepEqual([...(rest.output as Float64Array).subarray(3990)], Array.from({ length: 10 }, (_, k) => (3990 + k) * 3));
});

test('a run keeps two batches claimed ahead of the one it computes (they commit on the writer thread meanwhile), and releases them when it stops', async (t) => {
  const root = freshRoot();
  // 500 chunks of 8 points. Before a rate is measured, a claim covers 1,024
  // points (128 chunks): the batch computed first and each batch claimed ahead.
  const open = () => ChunkCache.open({ root, params: { fixture: 'claims-ahead' }, axisValues: { x: Array.from({ length: 4000 }, (_, i) => i) }, chunkSpec: { x: 8 } });
  const f: ChunkFn = (_p, { x }) => Float64Array.from(x as number[], (v) => v + 1);
  let held = 0;
  for await (const _ of iterate(open(), f)) {
    // The run is paused at its first chunk; the claims made ahead commit
    // on their own. One batch ahead would hold at most 2 x 1,024 points.
    const probe = open();
    const deadline = Date.now() + 20_000;
    while ((held = claimsLeft(probe)) <= 2 * 1024 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    break;
  }
  t.true(held > 2 * 1024 && held <= 3 * 1024, `claimed ${held} points`);
  t.is(claimsLeft(open()), 0);
  const rest = await run(open(), f);
  t.is(rest.diagnostics.executedPoints + rest.diagnostics.cachedPoints, 4000);
  t.is(claimsLeft(open()), 0);
});

test('a run over stored and missing chunks in turn claims its missing ones in batches of about a thousand, not a few at a time', async (t) => {
  const root = freshRoot();
  const side = 200;
  const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
  const open = () => ChunkCache.open({ root, params: { fixture: 'claims-interleaved' }, axisValues: { a: range(side), b: range(side) }, chunkSpec: { a: 1, b: 1 } });
  const f: ChunkFn = (_p, { a, b }) => (a as number[]).flatMap((x) => (b as number[]).map((y) => x * side + y));
  // Every other chunk stored: in grid order, each missing chunk lies
  // between two stored ones.
  const first = await run(open().select({ indices: { b: { step: 2 } } }), f);
  t.is(first.diagnostics.executedPoints, side * side / 2);
  const d = (await run(open(), f)).diagnostics;
  t.is(d.executedPoints, side * side / 2);
  t.is(d.cachedPoints, side * side / 2);
  // 20,000 one-point chunks to claim: at least 1,024 points per claim (a
  // few more at the end), where handing out the stored chunks first
  // claimed every 64 chunks (over 300 claims).
  t.true(d.claimTransactions >= 3 && d.claimTransactions <= 40, `${d.claimTransactions} claims`);
  t.is(claimsLeft(open()), 0);
  const again = await run(open(), f);
  t.deepEqual(again.output, range(side * side));
  t.is(again.diagnostics.claimTransactions, 0, 'nothing to compute: no claim');
});
