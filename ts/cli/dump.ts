/**
 * `chunk-memo dump`: every stored point of a cache, with its axis values and
 * its output, as JSON lines or CSV. Reads one chunk at a time.
 */
import type { ChunkCache } from '../cache/cache.js';
import { storedChunks, type StoredChunk } from '../manage/read.js';
import { InvalidOptionError } from '../errors/index.js';
import { jsonSafe } from '../manage/util.js';
import { csvField } from './format.js';

export type DumpFormat = 'jsonl' | 'csv';

/** Axis values of each stored point of a chunk, with its output, in order. */
function* points(c: StoredChunk): Generator<{ values: unknown[]; output: unknown }> {
  const order = c.axisOrder;
  const lists = order.map((a) => c.axisValues[a]!);
  const idx = new Array<number>(order.length).fill(0);
  let w = 0;
  for (let j = 0; j < c.present.length; j++) {
    if (c.present[j]) yield { values: lists.map((l, a) => l[idx[a]!]), output: c.values[w++] };
    for (let a = order.length - 1; a >= 0; a--) {
      if (++idx[a]! < lists[a]!.length) break;
      idx[a] = 0;
    }
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === 'object' && !Array.isArray(v) && !ArrayBuffer.isView(v) && !(v instanceof Date) && !(v instanceof Map);

/**
 * Writes the stored points of `cache` to `write` (chunk by chunk; inside a
 * chunk in grid order). Returns the number of points written.
 *
 * - jsonl: one object per point, `{ <axis>: value, ..., output }` (the output
 *   key is `$output` if an axis is named `output`); values JSON cannot hold
 *   are tagged as in `--json` output.
 * - csv: a header, then one row per point: the axis values, then the output;
 *   outputs that are all plain objects get one column per key (`output.<key>`).
 */
export function dumpCache(cache: ChunkCache, format: DumpFormat, write: (text: string) => void): number {
  if (format !== 'jsonl' && format !== 'csv') throw new InvalidOptionError(`dump: --format must be jsonl or csv (got ${JSON.stringify(format)})`);
  const axes = cache.axisOrder;
  const outKey = axes.includes('output') ? '$output' : 'output';
  let count = 0;
  if (format === 'jsonl') {
    for (const c of storedChunks(cache, 'dump').chunks) {
      let text = '';
      for (const p of points(c)) {
        const o: Record<string, unknown> = {};
        axes.forEach((a, k) => (o[a] = jsonSafe(p.values[k])));
        o[outKey] = jsonSafe(p.output);
        text += `${JSON.stringify(o)}\n`;
        count++;
      }
      write(text);
    }
    return count;
  }
  // CSV: a first pass finds whether outputs are records, and their keys.
  let records = true;
  let any = false;
  const keys = new Set<string>();
  for (const c of storedChunks(cache, 'dump').chunks) {
    for (let w = 0; w < c.stored; w++) {
      const v = c.values[w];
      any = true;
      if (!isRecord(v)) {
        records = false;
        break;
      }
      for (const k of Object.keys(v)) keys.add(k);
    }
    if (!records) break;
  }
  const cols = records && any ? [...keys] : null;
  write(`${[...axes, ...(cols ? cols.map((k) => `${outKey}.${k}`) : [outKey])].map(csvField).join(',')}\n`);
  for (const c of storedChunks(cache, 'dump').chunks) {
    let text = '';
    for (const p of points(c)) {
      const fields = p.values.map(csvField);
      if (cols) for (const k of cols) fields.push(csvField((p.output as Record<string, unknown>)[k]));
      else fields.push(csvField(p.output));
      text += `${fields.join(',')}\n`;
      count++;
    }
    write(text);
  }
  return count;
}
