/**
 * Plan geometry: where a chunk's points go in a run's flat output, checked
 * against the per-point output indices on random grids, chunkings and
 * selections.
 */
import test from 'ava';
import { ChunkCache } from '../ts/index.js';
import { planOf } from '../ts/cache/core.js';
import { PlanGeometry } from '../ts/cache/geometry.js';
import fs from 'node:fs';
import { freshRoot, prng } from './helpers/grid.js';

test('contiguousStart gives the first output index of exactly the chunks whose points lie together in the output', (t) => {
  const rnd = prng(0x9e0);
  const int = (lo: number, hi: number): number => lo + Math.floor(rnd() * (hi - lo + 1));
  let together = 0;
  let apart = 0;
  for (let iter = 0; iter < 60; iter++) {
    const axes = int(1, 3);
    const names = ['a', 'b', 'c'].slice(0, axes);
    const axisValues: Record<string, number[]> = {};
    const chunkSpec: Record<string, number> = {};
    for (const n of names) {
      axisValues[n] = Array.from({ length: int(1, 7) }, (_, k) => k);
      chunkSpec[n] = int(1, axisValues[n]!.length);
    }
    const root = freshRoot();
    const cache = ChunkCache.open({ root, params: { iter }, axisValues, chunkSpec });
    let view = cache;
    if (rnd() < 0.5) {
      const indices: Record<string, number[]> = {};
      for (const n of names) if (rnd() < 0.5) indices[n] = axisValues[n]!.map((_, k) => k).filter(() => rnd() < 0.6);
      if (Object.values(indices).every((l) => l.length > 0)) view = view.select({ indices });
    }
    const G = new PlanGeometry(planOf(view));
    for (let i = 0; i < G.chunkCount; i++) {
      const idx = G.outIndices(G.chunk(i));
      const consecutive = idx.every((x, k) => x === idx[0]! + k);
      const at = G.contiguousStart(i);
      t.is(at, consecutive ? idx[0]! : -1, `iteration ${iter}, chunk ${i}: ${JSON.stringify({ axisValues, chunkSpec, idx: [...idx] })}`);
      if (consecutive) together++;
      else apart++;
    }
    cache.close();
    fs.rmSync(root, { recursive: true, force: true });
  }
  // Both answers were exercised.
  t.true(together > 50 && apart > 50, `${together} together, ${apart} apart`);
});
