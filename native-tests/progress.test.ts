import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pointwise, run, ChunkCache, type ProgressEvent } from '../ts/index.js';
import { freshRoot } from './helpers/grid.js';

const fixture = fileURLToPath(new URL('./fixtures/verbose-run.ts', import.meta.url));
const child = (verbose: number) =>
  spawnSync(process.execPath, ['--import', 'tsx', fixture, freshRoot(), String(verbose)], { encoding: 'utf8' });

test('verbose 1 prints a progress line on stderr; 0 prints nothing', (t) => {
  const quiet = child(0);
  t.is(quiet.status, 0, quiet.stderr);
  t.is(quiet.stderr, '');
  const loud = child(1);
  t.is(loud.status, 0, loud.stderr);
  t.regex(loud.stderr, /run [0-9a-f]{8}: 6\/6 points computed, 0 reused, 3\/3 chunks, \d+ pts\/s, ETA 0\.0s/);
  // Not a line per chunk: one at the start at most, one at the end.
  t.true(loud.stderr.trim().split('\n').length <= 2, loud.stderr);
});

test('verbose 2 adds a line per chunk', (t) => {
  const r = child(2);
  t.is(r.status, 0, r.stderr);
  for (const i of [0, 1, 2]) t.regex(r.stderr, new RegExp(`run: chunk ${i}: 0 cached, 2 executed`));
});

test('onProgress reports points done, total, rate and ETA', async (t) => {
  const cache = ChunkCache.open({ root: freshRoot(), axisValues: { x: [1, 2, 3, 4, 5] }, chunkSpec: { x: 2 } });
  const events: ProgressEvent[] = [];
  await run(cache, pointwise((_p, { x }) => x), { onProgress: (e) => events.push(e) });
  t.true(events.length > 0);
  const last = events[events.length - 1]!;
  t.is(last.pointsDone, 5);
  t.is(last.pointsTotal, 5);
  t.is(last.chunksDone, 3);
  t.is(last.etaMs, 0);
  t.true(events.every((e, i) => i === 0 || e.pointsDone >= events[i - 1]!.pointsDone));
  t.true(events.every((e) => e.rate >= 0));
});

test('a finished chunk is committed before a slow exec call starts', async (t) => {
  const root = freshRoot();
  const axisValues = { x: [1, 2, 3, 4] };
  const cache = ChunkCache.open({ root, axisValues, chunkSpec: { x: 2 } });
  const seen: number[] = [];
  const busyUntil = (ms: number) => {
    const end = performance.now() + ms;
    while (performance.now() < end);
  };
  await run(cache, (_p, axes) => {
    const xs = axes.x as number[];
    if (xs[0] === 1) busyUntil(60); // a slow exec call: its chunk is committed before the next one runs
    else seen.push(ChunkCache.open({ root, axisValues, chunkSpec: { x: 2 } }).status().cachedPoints);
    return xs.map((x) => x * 2);
  });
  t.deepEqual(seen, [2]);
});
