/**
 * Coverage of a cache at chunk granularity, as a 2-D map: rows are the bins
 * of one axis, columns the bins of another; other axes are aggregated (a
 * cell is cached when all its chunks are, missing when none holds a point).
 */
import { InvalidOptionError } from '../errors/index.js';
import { load } from '../cache/discovery.js';
import type { Value } from '../value.js';
import { checkId, existingStore, shortValue } from './util.js';

export type CellState = 'cached' | 'partial' | 'missing';

/** A coverage map. */
export interface CoverageMap {
  readonly id: string;
  /** Row axis and column axis (null when the cache has fewer axes). */
  readonly rowAxis: string | null;
  readonly colAxis: string | null;
  /** Label (value range) of each row bin and column bin. */
  readonly rowLabels: string[];
  readonly colLabels: string[];
  /** cells[row][col]. */
  readonly cells: CellState[][];
  readonly counts: { cached: number; partial: number; missing: number; chunks: number };
}

function binLabels(values: Value[], size: number): string[] {
  const out: string[] = [];
  for (let s = 0; s < values.length; s += size) {
    const last = Math.min(s + size, values.length) - 1;
    out.push(last === s ? shortValue(values[s], 16) : `${shortValue(values[s], 16)}..${shortValue(values[last], 16)}`);
  }
  return out;
}

/** Coverage map of cache `id` of `root` over axes `axes` ([row, col]). */
export function coverageMap(root: string, id: string, axes?: readonly string[]): CoverageMap {
  checkId('map', id);
  const { abs } = existingStore(root, 'map');
  const cache = load(abs, id);
  const order = cache.axisOrder;
  const chosen = axes && axes.length ? [...axes] : order.slice(0, 2);
  for (const a of chosen) {
    if (!order.includes(a)) throw new InvalidOptionError(`map: --axes names unknown axis ${JSON.stringify(a)}; axes of ${id} are ${order.join(', ') || 'none'}`);
  }
  if (chosen.length > 2 || new Set(chosen).size !== chosen.length) throw new InvalidOptionError(`map: --axes takes one or two distinct axes (got ${chosen.join(',')})`);
  const [rowAxis = null, colAxis = null] = chosen;
  const spec = cache.chunkSpec;
  const values = cache.axisValues;
  const rowLabels = rowAxis ? binLabels(values[rowAxis]!, spec[rowAxis]!) : [''];
  const colLabels = colAxis ? binLabels(values[colAxis]!, spec[colAxis]!) : [''];
  const agg = rowLabels.map(() => colLabels.map(() => ({ cached: 0, partial: 0, missing: 0 })));
  const st = cache.status();
  const add = (list: Array<{ bins: Readonly<Record<string, number>> }>, kind: CellState): void => {
    for (const c of list) agg[rowAxis ? c.bins[rowAxis]! : 0]![colAxis ? c.bins[colAxis]! : 0]![kind]++;
  };
  add(st.cached, 'cached');
  add(st.partial, 'partial');
  add(st.missing, 'missing');
  const counts = { cached: 0, partial: 0, missing: 0, chunks: st.totalChunks };
  const cells = agg.map((row) =>
    row.map((a): CellState => {
      const s: CellState = a.partial === 0 && a.missing === 0 ? 'cached' : a.partial === 0 && a.cached === 0 ? 'missing' : 'partial';
      counts[s]++;
      return s;
    }),
  );
  return { id, rowAxis, colAxis, rowLabels, colLabels, cells, counts };
}

export const CELL_CHARS: Record<CellState, string> = { cached: '█', partial: '▒', missing: '·' };

/** Text rendering: header, one line per row bin, a legend. */
export function renderCoverageMap(m: CoverageMap): string {
  const labels = m.rowLabels.map((l) => (m.rowAxis ? `${m.rowAxis}=${l}` : ''));
  const w = Math.max(0, ...labels.map((l) => l.length));
  const lines: string[] = [];
  const desc = (axis: string | null, n: number): string => (axis ? `${axis} (${n} bins)` : '-');
  lines.push(`cache ${m.id}  rows: ${desc(m.rowAxis, m.rowLabels.length)}  cols: ${desc(m.colAxis, m.colLabels.length)}`);
  if (m.colAxis) {
    lines.push(`${''.padEnd(w)}  ${m.colAxis}: ${m.colLabels[0]} .. ${m.colLabels[m.colLabels.length - 1]}`);
  }
  m.cells.forEach((row, r) => lines.push(`${labels[r]!.padEnd(w)}  ${row.map((c) => CELL_CHARS[c]).join('')}`));
  const cells = m.rowLabels.length * m.colLabels.length;
  lines.push(
    `legend: ${CELL_CHARS.cached} cached  ${CELL_CHARS.partial} partial  ${CELL_CHARS.missing} missing  ` +
      `(${m.counts.cached} cached, ${m.counts.partial} partial, ${m.counts.missing} missing of ${cells} cells; ${m.counts.chunks} chunks)`,
  );
  return lines.join('\n');
}
