/** One participant of the shared-sweep benchmark: runs the sweep at argv[2], prints its diagnostics as JSON. */
import { ChunkCache, run, type ChunkFn } from '../ts/index.js';

const root = process.argv[2]!;
const spin = Number(process.argv[3] ?? 100);
const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const cache = ChunkCache.open({ root, params: { bench: 'claims', spin }, axisValues: { x: range(100), y: range(100) }, chunkSpec: { x: 5, y: 50 } });
const fn: ChunkFn = (_p, axes) => {
  const xs = axes.x as number[];
  const ys = axes.y as number[];
  const out = new Float64Array(xs.length * ys.length);
  let i = 0;
  for (const x of xs) {
    for (const y of ys) {
      const end = performance.now() + spin / 1000;
      while (performance.now() < end);
      out[i++] = x * 1000 + y;
    }
  }
  return out;
};
const { diagnostics: d } = await run(cache, fn);
process.stdout.write(`${JSON.stringify({ executed: d.executedPoints, waited: d.waitedPoints, cached: d.cachedPoints, claimMs: d.claimMs, execChunks: d.execChunks })}\n`);
