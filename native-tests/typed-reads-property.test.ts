/**
 * Property test of warm typed reads: whatever is stored (whole chunks,
 * partly stored chunks, records of another chunking) and whatever a run
 * selects, the Float64Array it returns holds every requested point in grid
 * order and computes exactly the points not stored. Runs over caches of
 * many records go through the resolution's gathering threads and the
 * batched reads; small ones through the one-by-one path.
 */
import test from 'ava';
import { ChunkCache, run, type ChunkFn } from '../ts/index.js';
import { freshRoot, prng } from './helpers/grid.js';

const value = (a: number, b: number, c: number): number => a * 1e6 + b * 1e3 + c + 0.5;

/** Every point's value, in request order (axes a, b, c; c may be absent). */
const fn: ChunkFn = (_p, axes) => {
  const A = axes.a as number[];
  const B = axes.b as number[];
  const C = (axes.c as number[] | undefined) ?? [0];
  const out = new Float64Array(A.length * B.length * C.length);
  let k = 0;
  for (const a of A) for (const b of B) for (const c of C) out[k++] = value(a, b, c);
  return out;
};

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

test('warm typed runs return every selected point in place, over any mix of stored chunks', async (t) => {
  for (let iter = 0; iter < 30; iter++) {
    const seed = 0x7e5d + iter * 104729;
    const rnd = prng(seed);
    const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
    const subset = (n: number): number[] => {
      const s = range(n).filter(() => rnd() < 0.6);
      return s.length ? s : [int(0, n - 1)];
    };
    const three = rnd() < 0.4;
    const sizes: Record<string, number> = { a: int(2, 40), b: int(2, 40), ...(three ? { c: int(1, 4) } : {}) };
    const axisValues = Object.fromEntries(Object.entries(sizes).map(([k, n]) => [k, range(n)]));
    const spec = (): Record<string, number> => Object.fromEntries(Object.entries(sizes).map(([k, n]) => [k, int(1, Math.max(1, Math.ceil(n / int(1, 6))))]));
    const root = freshRoot();
    const open = (chunkSpec: Record<string, number>): ChunkCache => ChunkCache.open({ root, params: { test: 'typed-reads' }, axisValues, chunkSpec });
    const what = `iteration ${iter} (seed ${seed}), sizes ${JSON.stringify(sizes)}`;
    const reference = (sel: Record<string, number[]>): number[] => {
      const out: number[] = [];
      for (const a of sel.a!) for (const b of sel.b!) for (const c of sel.c ?? [0]) out.push(value(a, b, c));
      return out;
    };
    const stored = new Set<string>();
    const key = (a: number, b: number, c: number): string => `${a},${b},${c}`;
    const check = async (cache: ChunkCache, sel: Record<string, number[]> | null, label: string): Promise<void> => {
      const full = Object.fromEntries(Object.entries(sizes).map(([k, n]) => [k, range(n)])) as Record<string, number[]>;
      const s = sel ?? full;
      const view = sel ? cache.select({ indices: sel }) : cache;
      const r = await run(view, fn);
      let missing = 0;
      for (const a of s.a!) for (const b of s.b!) for (const c of s.c ?? [0]) if (!stored.has(key(a, b, c))) missing++;
      t.true(r.output instanceof Float64Array, `${what}: ${label}: a Float64Array`);
      t.deepEqual(Array.from(r.output as Float64Array), reference(s), `${what}: ${label}: outputs`);
      t.is(r.diagnostics.executedPoints, missing, `${what}: ${label}: computed exactly the points not stored`);
      for (const a of s.a!) for (const b of s.b!) for (const c of s.c ?? [0]) stored.add(key(a, b, c));
    };
    // Some points stored in one chunking (random subsets), then runs in it
    // and in another chunking, over random selections and the whole grid.
    const first = open(spec());
    for (let k = int(1, 3); k > 0; k--) await check(first, Object.fromEntries(Object.entries(sizes).map(([ax, n]) => [ax, subset(n)])), 'a subset stored');
    const other = open(spec());
    await check(rnd() < 0.5 ? first : other, Object.fromEntries(Object.entries(sizes).map(([ax, n]) => [ax, subset(n)])), 'a subset, warm in part');
    await check(first, null, 'the whole grid');
    await check(other, null, 'the whole grid in another chunking');
    await check(first, Object.fromEntries(Object.entries(sizes).map(([ax, n]) => [ax, subset(n)])), 'a subset, all warm');
    await check(first, null, 'the whole grid again');
  }
});
