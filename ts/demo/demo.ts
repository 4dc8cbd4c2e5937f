/**
 * `npm run demo`: a small but real sweep, run cold, then warm, then over an
 * extended axis, printing what was reused each time.
 *
 * The sweep integrates a damped, driven oscillator for every (frequency,
 * damping) pair and records its steady-state amplitude.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkCache, pointwise, run, type Diagnostics, type Params, type Value } from '../index.js';

function amplitude(p: Params, pt: Record<string, Value>): { amplitude: number; phaseLag: number } {
  const w = pt.frequency as number;
  const zeta = pt.damping as number;
  const w0 = p.naturalFrequency as number;
  const dt = p.dt as number;
  let x = 0;
  let v = 0;
  let peak = 0;
  let tPeak = 0;
  const steps = p.steps as number;
  for (let i = 0; i < steps; i++) {
    const t = i * dt;
    const a = Math.cos(w * t) - 2 * zeta * w0 * v - w0 * w0 * x;
    v += a * dt;
    x += v * dt;
    if (i > steps / 2 && Math.abs(x) > peak) {
      peak = Math.abs(x);
      tPeak = t;
    }
  }
  return { amplitude: Number(peak.toFixed(6)), phaseLag: Number(((w * tPeak) % (2 * Math.PI)).toFixed(4)) };
}

function line(label: string, d: Diagnostics): void {
  console.log(
    `${label.padEnd(9)} ${String(d.totalPoints).padStart(6)} points | executed ${String(d.executedPoints).padStart(5)} | reused ${String(d.cachedPoints).padStart(5)} | chunks: ${d.cachedChunks} cached, ${d.executedChunks} run (${d.partialChunks} partial) | ${d.timings.totalMs.toFixed(0)} ms`,
  );
}

const keep = process.argv.includes('--keep');
const root = keep ? '.chunk_memo' : mkdtempSync(join(tmpdir(), 'chunk-memo-demo-'));
try {
  const frequency = Array.from({ length: 40 }, (_, i) => Number((0.2 + i * 0.05).toFixed(2)));
  const damping = [0.02, 0.05, 0.1, 0.2, 0.5];
  const params = { naturalFrequency: 1, dt: 0.01, steps: 20000 };
  const fn = pointwise(amplitude);
  console.log(`chunk-memo demo: resonance sweep, ${frequency.length} frequencies x ${damping.length} dampings, store at ${root}\n`);

  const cache = ChunkCache.open({ root, params, axisValues: { frequency, damping }, axisOrder: ['frequency', 'damping'], chunkSpec: { frequency: 10, damping: 5 } });
  const cold = await run(cache, fn);
  line('cold', cold.diagnostics);
  const warm = await run(cache, fn);
  line('warm', warm.diagnostics);

  const more = cache.extendAxisValues({ frequency: [2.2, 2.25, 2.3, 2.35, 2.4] });
  const ext = await run(more, fn);
  line('extended', ext.diagnostics);

  const slice = more.select({ values: { damping: [0.05, 0.2] }, indices: { frequency: { step: 3 } } });
  const sub = await run(slice, fn);
  line('subset', sub.diagnostics);

  const rechunked = ChunkCache.open({ root, params, axisValues: more.axisValues, axisOrder: ['damping', 'frequency'], chunkSpec: { frequency: 7, damping: 2 } });
  const re = await run(rechunked, fn);
  line('rechunked', re.diagnostics);

  const out = warm.output as Array<{ amplitude: number }>;
  const best = out.reduce((b, o, i) => (o.amplitude > out[b]!.amplitude ? i : b), 0);
  const bf = frequency[Math.floor(best / damping.length)];
  const bd = damping[best % damping.length];
  console.log(`\npeak response: amplitude ${out[best]!.amplitude} at frequency ${bf}, damping ${bd} (cache ${cache.id})`);
  const same = JSON.stringify(cold.output) === JSON.stringify(warm.output);
  console.log(`warm output identical to cold: ${same}`);
  if (!same || warm.diagnostics.executedPoints !== 0 || ext.diagnostics.executedPoints !== 5 * damping.length || re.diagnostics.executedPoints !== 0) {
    throw new Error('demo: unexpected reuse counts');
  }
} finally {
  if (!keep) rmSync(root, { recursive: true, force: true });
}
