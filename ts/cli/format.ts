/** Text output of the CLI: tables with wrapped cells, code identities, CSV. */
import { jsonSafe, shortValue } from '../manage/util.js';

/** Short form of a code identity: `-`, `version:LABEL` or `fn:` and 12 hex digits of its BLAKE3 digest. */
export function formatCode(code: unknown, full = false): string {
  if (code === null || code === undefined) return '-';
  if (typeof code === 'object' && !Array.isArray(code)) {
    const c = code as Record<string, unknown>;
    if (typeof c.fn === 'string') return `fn:${full ? c.fn : c.fn.slice(0, 12)}`;
    if (typeof c.version === 'string') return `version:${c.version}`;
  }
  return shortValue(code, full ? Infinity : 40);
}

/** Full one-line rendering of a value (bigints as `5n`, dates in ISO form). */
export function fullValue(v: unknown): string {
  return shortValue(v, Infinity);
}

/** Cuts `text` into lines of at most `width` characters, after `,` or spaces where it can. */
export function wrap(text: string, width: number): string[] {
  if (width <= 0 || text.length <= width) return [text];
  const lines: string[] = [];
  let rest = text;
  while (rest.length > width) {
    let cut = -1;
    for (let i = width; i > width / 2; i--) {
      if (rest[i - 1] === ',' || rest[i - 1] === ' ') {
        cut = i;
        break;
      }
    }
    if (cut < 0) cut = width;
    lines.push(rest.slice(0, cut).trimEnd());
    rest = rest.slice(cut).trimStart();
  }
  if (rest.length) lines.push(rest);
  return lines;
}

/** A left-aligned table; a cell may hold several lines. */
export function table(head: string[], rows: Array<Array<string | string[]>>): string {
  const cells = rows.map((r) => r.map((c) => (Array.isArray(c) ? c : [c])));
  const w = head.map((h, i) => Math.max(h.length, ...cells.map((r) => Math.max(0, ...(r[i] ?? ['']).map((l) => l.length)))));
  const line = (r: string[]): string => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(w[i]!))).join('  ').trimEnd();
  const out = [line(head)];
  for (const r of cells) {
    const height = Math.max(...r.map((c) => c.length));
    for (let k = 0; k < height; k++) out.push(line(r.map((c) => c[k] ?? '')));
  }
  return out.join('\n');
}

/** One CSV field (RFC 4180 quoting). */
export function csvField(v: unknown): string {
  let s: string;
  if (v === undefined || v === null) s = '';
  else if (typeof v === 'string') s = v;
  else if (typeof v === 'number' || typeof v === 'boolean') s = String(v);
  else if (typeof v === 'bigint') s = v.toString();
  else if (v instanceof Date) s = v.toISOString();
  else s = JSON.stringify(jsonSafe(v));
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
