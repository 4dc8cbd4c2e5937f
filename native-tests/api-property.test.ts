/**
 * Property test: random sequences of runs, selections, extensions,
 * re-chunkings and axis reorderings over a 2-axis grid never compute a point
 * twice and always return the requested points in grid order.
 */
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChunkCache, ChunkMemoError, run, type ChunkFn, type SelectSpec, type Value } from '../ts/index.js';
import { type Point, gridPoints, prng } from './helpers/grid.js';


const AXES = ['p', 'q'] as const;
type Axis = (typeof AXES)[number];

const keyOf = (pt: Point): string => JSON.stringify([pt.p, pt.q]);
const out = (pt: Point): string => `p=${JSON.stringify(pt.p)};q=${JSON.stringify(pt.q)}`;

/** Python slice semantics (what `{ start, stop, step }` means). */
function sliceIndices(n: number, start: number | undefined, stop: number | undefined, step: number): number[] {
  const norm = (v: number | undefined, dflt: number): number => {
    if (v === undefined) return dflt;
    const x = v < 0 ? v + n : v;
    return step > 0 ? Math.min(Math.max(x, 0), n) : Math.min(Math.max(x, -1), n - 1);
  };
  const s = norm(start, step > 0 ? 0 : n - 1);
  const e = norm(stop, step > 0 ? n : -1);
  const res: number[] = [];
  for (let i = s; step > 0 ? i < e : i > e; i += step) res.push(i);
  return res;
}

const ITERATIONS = 40;

test('random operation sequences never compute a point twice and return grid-ordered outputs', async (t) => {
  const opCounts: Record<string, number> = {};
  for (let iter = 0; iter < ITERATIONS; iter++) {
    const seed = 0x5eed + iter * 7919;
    const rnd = prng(seed);
    const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
    const shuffle = <T>(xs: T[]): T[] => {
      for (let i = xs.length - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [xs[i], xs[j]] = [xs[j]!, xs[i]!];
      }
      return xs;
    };
    const ctxMsg = (what: string): string => `iteration ${iter} (seed ${seed}): ${what}`;

    // Value pools: distinct small ints or strings per axis.
    const pools: Record<Axis, Value[]> = {
      p: shuffle(Array.from({ length: 20 }, (_, i) => (rnd() < 0.5 ? i : `s${i}`))),
      q: shuffle(Array.from({ length: 20 }, (_, i) => (rnd() < 0.5 ? i - 5 : `t${i}`))),
    };
    const take = (axis: Axis, n: number): Value[] => pools[axis].splice(0, n);
    let axisValues: Record<Axis, Value[]> = { p: take('p', int(1, 9)), q: take('q', int(1, 9)) };
    let axisOrder: string[] = rnd() < 0.5 ? ['p', 'q'] : ['q', 'p'];
    const randomSpec = (): Record<string, number> => ({ p: int(1, axisValues.p.length + 1), q: int(1, axisValues.q.length + 1) });

    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cm-'));
    let cache = ChunkCache.open({ root, params: { iter }, axisValues, axisOrder, chunkSpec: randomSpec() });
    const id = cache.id;

    const computed = new Map<string, number>();
    const fn: ChunkFn = (params, axes, ctx) => {
      t.deepEqual(params, { iter });
      const pts = gridPoints(ctx.axisOrder, axes);
      for (const pt of pts) computed.set(keyOf(pt), (computed.get(keyOf(pt)) ?? 0) + 1);
      return pts.map(out);
    };

    const checkRun = async (view: ChunkCache, expectPts: Point[], what: string): Promise<void> => {
      const before = computed.size;
      const missingBefore = expectPts.filter((pt) => !computed.has(keyOf(pt))).length;
      const r = await run(view, fn);
      t.deepEqual(r.output, expectPts.map(out), ctxMsg(what));
      for (const [k, n] of computed) if (n > 1) t.fail(ctxMsg(`${what}: point ${k} computed ${n} times`));
      t.is(r.diagnostics.executedPoints, missingBefore, ctxMsg(`${what}: executed points`));
      t.is(computed.size - before, missingBefore, ctxMsg(`${what}: new points`));
      t.is(r.diagnostics.cachedPoints + r.diagnostics.executedPoints, expectPts.length, ctxMsg(what));
    };

    const nOps = int(4, 8);
    for (let op = 0; op < nOps; op++) {
      const kind = pick(['run', 'select', 'select', 'extend', 'rechunk', 'reorder'] as const);
      opCounts[kind] = (opCounts[kind] ?? 0) + 1;
      const what = `op ${op} ${kind}`;
      if (kind === 'run') {
        await checkRun(cache, gridPoints(axisOrder, axisValues), what);
      } else if (kind === 'select') {
        const spec: { values?: Record<string, Value[]>; indices?: SelectSpec['indices'] } = {};
        const expected: Record<string, number[]> = {};
        let empty = false;
        for (const a of AXES) {
          const n = axisValues[a].length;
          const mode = pick(['all', 'values', 'int', 'list', 'slice'] as const);
          if (mode === 'all') continue;
          if (mode === 'values') {
            const idx = shuffle([...Array(n).keys()]).slice(0, int(1, n));
            (spec.values ??= {})[a] = idx.map((i) => axisValues[a][i]!);
            expected[a] = [...idx].sort((x, y) => x - y);
          } else if (mode === 'int') {
            const i = int(-n, n - 1);
            spec.indices = { ...spec.indices, [a]: i };
            expected[a] = [i < 0 ? i + n : i];
          } else if (mode === 'list') {
            const list = Array.from({ length: int(1, 4) }, () => int(-n, n - 1));
            spec.indices = { ...spec.indices, [a]: list };
            expected[a] = [...new Set(list.map((i) => (i < 0 ? i + n : i)))].sort((x, y) => x - y);
          } else {
            const step = pick([1, 1, 2, 3, -1, -2]);
            const start = rnd() < 0.3 ? undefined : int(-n - 1, n + 1);
            const stop = rnd() < 0.3 ? undefined : int(-n - 1, n + 1);
            spec.indices = { ...spec.indices, [a]: { ...(start !== undefined ? { start } : {}), ...(stop !== undefined ? { stop } : {}), step } };
            expected[a] = [...new Set(sliceIndices(n, start, stop, step))].sort((x, y) => x - y);
            if (expected[a]!.length === 0) empty = true;
          }
        }
        if (empty) {
          const e = t.throws(() => cache.select(spec), undefined, ctxMsg(what));
          t.true(e instanceof ChunkMemoError && e.code === 'ERR_SELECTION', ctxMsg(`${what}: ${String(e)}`));
          continue;
        }
        const view = cache.select(spec);
        const selValues: Record<string, Value[]> = {};
        for (const a of AXES) selValues[a] = expected[a] ? expected[a]!.map((i) => axisValues[a][i]!) : [...axisValues[a]];
        t.deepEqual(view.axisValues, selValues, ctxMsg(`${what}: view values`));
        await checkRun(view, gridPoints(axisOrder, selValues), `${what} ${JSON.stringify(spec)}`);
      } else if (kind === 'extend') {
        const a = pick(AXES);
        const add = take(a, int(1, 3));
        if (add.length === 0) continue;
        const next = { ...axisValues, [a]: [...axisValues[a], ...add] };
        cache = rnd() < 0.5 ? cache.extendAxisValues({ [a]: add }) : ChunkCache.open({ root, params: { iter }, axisValues: next, axisOrder, chunkSpec: cache.chunkSpec });
        axisValues = next;
        t.deepEqual(cache.axisValues, axisValues, ctxMsg(what));
      } else if (kind === 'rechunk') {
        cache = ChunkCache.open({ root, params: { iter }, axisValues, axisOrder, chunkSpec: randomSpec() });
      } else {
        axisOrder = [...axisOrder].reverse();
        cache = rnd() < 0.5
          ? ChunkCache.open({ root, params: { iter }, axisValues, axisOrder, chunkSpec: randomSpec() })
          : ChunkCache.load(root, id, { axisOrder, chunkSpec: randomSpec() });
        t.deepEqual(cache.axisOrder, axisOrder, ctxMsg(what));
        t.deepEqual(cache.axisValues, axisValues, ctxMsg(what));
      }
      t.is(cache.id, id, ctxMsg(`${what}: id`));
    }
    // Finally the whole grid, in both orders: everything computed exactly once.
    await checkRun(cache, gridPoints(axisOrder, axisValues), 'final run');
    const other = [...axisOrder].reverse();
    await checkRun(ChunkCache.open({ root, params: { iter }, axisValues, axisOrder: other, chunkSpec: randomSpec() }), gridPoints(other, axisValues), 'final run, other order');
    t.is(computed.size, axisValues.p.length * axisValues.q.length, ctxMsg('all points computed once'));
    t.is(cache.status().missingPoints, 0);
  }
  for (const k of ['run', 'select', 'extend', 'rechunk', 'reorder']) t.true((opCounts[k] ?? 0) > 5, `operation ${k} exercised`);
});
