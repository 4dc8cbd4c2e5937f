/**
 * Crash safety: a child process sweeping 200 chunks is killed with SIGKILL
 * after it reported a number of stored chunks (three times, at different
 * points, on one root). After each kill every record is absent or complete
 * and valid, every chunk the child reported is stored, and a final re-run
 * executes exactly the missing points, none twice.
 */
import test, { type ExecutionContext } from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run, type ChunkCache } from '../ts/index.js';
import { decodeOutputs } from '../ts/run/payload.js';
import { CRASH_X, CRASH_Y, crashExpected, crashFn, openCrash } from './fixtures/sweep.js';

const writer = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url));
const CHUNK_X = 5;
const CHUNKS = CRASH_X.length / CHUNK_X;
const PER_CHUNK = CHUNK_X * CRASH_Y.length;
const TOTAL = CRASH_X.length * CRASH_Y.length;

interface Killed {
  /** Points the child found stored when it started. */
  cachedAtStart: number;
  /** Chunk indices the child reported as stored. */
  reported: number[];
  signal: NodeJS.Signals | null;
  code: number | null;
  finished: boolean;
  stderr: string;
}

/** Runs the writer and SIGKILLs it once it has reported `threshold` stored chunks. */
function runAndKill(root: string, threshold: number): Promise<Killed> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--no-warnings=ExperimentalWarning', writer, root], { stdio: ['ignore', 'pipe', 'pipe'] });
    const res: Killed = { cachedAtStart: -1, reported: [], signal: null, code: null, finished: false, stderr: '' };
    let pending = '';
    let killed = false;
    child.stdout.on('data', (d: Buffer) => {
      pending += d.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const [word, a] = line.split(' ');
        if (word === 'cached') res.cachedAtStart = Number(a);
        else if (word === 'done') res.reported.push(Number(a));
        else if (word === 'finished') res.finished = true;
      }
      if (!killed && res.reported.length >= threshold) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.on('data', (d: Buffer) => (res.stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      res.code = code;
      res.signal = signal;
      resolve(res);
    });
  });
}

/** Compares long lists of plain values fast; reports the first difference. */
function sameList(t: ExecutionContext, got: unknown[], want: unknown[], what: string): void {
  t.is(got.length, want.length, `${what}: length`);
  const i = got.findIndex((g, j) => JSON.stringify(g) !== JSON.stringify(want[j]));
  if (i >= 0) t.deepEqual(got[i], want[i], `${what}: first difference at ${i}`);
  else t.pass();
}

/**
 * Checks the store after a kill: verify() is clean, every record is absent
 * or complete, every available chunk reads back the expected outputs.
 * Returns the stored points and the indices of the stored chunks.
 */
function checkStore(t: ExecutionContext, cache: ChunkCache): { cached: number; chunks: Set<number> } {
  const core = cache._core;
  t.deepEqual(core.store.verify(core.idBytes), []);
  for (const d of core.store.descriptors(core.idBytes)) {
    t.is(d.n, PER_CHUNK);
    t.is(d.present, d.n, 'a record is complete');
  }
  const plan = core.grid.plan([null, null]);
  t.is(plan.chunkCount, CHUNKS);
  const resolved = plan.resolve(core.store, core.idBytes);
  t.deepEqual(resolved.corrupt, []);
  const chunks = new Set<number>();
  let cached = 0;
  for (let i = 0; i < CHUNKS; i++) {
    const avail = resolved.available[i]!;
    t.true(avail === 0 || avail === PER_CHUNK, `chunk ${i} has ${avail} of ${PER_CHUNK} points`);
    if (avail === 0) continue;
    chunks.add(i);
    cached += avail;
    const rd = plan.read(core.store, core.idBytes, i);
    t.deepEqual(rd.corrupt, []);
    t.is(rd.kind, 0);
    t.true(rd.present.every((p) => p === 1));
    const vals = Array.from(decodeOutputs(rd.kind, rd.data, PER_CHUNK, rd.dicts, rd.pointDicts, rd.offsets));
    const want = [];
    for (let x = i * CHUNK_X; x < (i + 1) * CHUNK_X; x++) for (const y of CRASH_Y) want.push(crashExpected(x, y));
    sameList(t, vals, want, `chunk ${i}`);
  }
  t.is(cache.status().cachedPoints, cached);
  return { cached, chunks };
}

test('a writer killed with SIGKILL leaves only complete, valid records; a re-run computes only what is missing', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cm-crash-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  let cachedBefore = 0;
  let stored = new Set<number>();
  let cache: ChunkCache | null = null;
  for (const threshold of [30, 12, 45]) {
    const k = await runAndKill(root, threshold);
    t.is(k.stderr.replace(/.*ExperimentalWarning.*\n?/g, ''), '', 'the writer printed no error');
    t.is(k.cachedAtStart, cachedBefore, 'the writer found what the last one stored');
    t.false(k.finished, 'killed before the end');
    t.is(k.signal, 'SIGKILL');
    t.true(k.reported.length >= threshold);
    // Chunks are resumed where the last writer stopped: none is redone.
    t.deepEqual(k.reported.filter((i) => stored.has(i)), []);
    cache ??= openCrash(root);
    // LMDB publishes a commit to readers (the txn id in the lock file) just
    // after writing its meta page, holding the write lock: a writer killed
    // in between leaves that commit on disk but unseen by readers until the
    // next process to take the write lock recovers it (and publishes the
    // newest meta page). Take the lock once, as the next writer would, so
    // this check sees what the next writer sees.
    cache._core.store.releaseSession(0);
    const now = checkStore(t, cache);
    // Everything reported before the kill was committed.
    t.deepEqual(k.reported.filter((i) => !now.chunks.has(i)), [], 'every reported chunk is stored');
    t.deepEqual([...stored].filter((i) => !now.chunks.has(i)), [], 'chunks stored earlier are still stored');
    t.true(now.cached >= cachedBefore + threshold * PER_CHUNK);
    t.true(now.cached < TOTAL);
    t.log(`threshold ${threshold}: ${k.reported.length} chunks reported, ${now.chunks.size - stored.size} newly stored`);
    cachedBefore = now.cached;
    stored = now.chunks;
  }

  // Re-run in this process: only the missing points run, each once.
  const seen = new Set<string>();
  const twice: string[] = [];
  const { output, diagnostics } = await run(cache!, crashFn((key) => {
    if (seen.has(key)) twice.push(key);
    seen.add(key);
  }));
  t.deepEqual(twice, []);
  t.is(diagnostics.cachedPoints, cachedBefore);
  t.is(diagnostics.executedPoints, TOTAL - cachedBefore);
  t.is(seen.size, TOTAL - cachedBefore);
  t.deepEqual([...seen].filter((key) => stored.has(Math.floor(Number(key.split('/')[0]) / CHUNK_X))), [], 'no point of a stored chunk was recomputed');
  t.deepEqual(diagnostics.corruptRecords, []);
  const expected = CRASH_X.flatMap((x) => CRASH_Y.map((y) => crashExpected(x, y)));
  sameList(t, output as unknown[], expected, 're-run output');
  const final = checkStore(t, cache!);
  t.is(final.cached, TOTAL);
});
