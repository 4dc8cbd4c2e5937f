/** Helpers shared by the management modules and the CLI. */
import { CacheNotFoundError, InvalidOptionError } from '../errors/index.js';
import type { BindingStore } from '../binding/native.js';
import { unpackMeta, type CacheMeta } from '../cache/meta.js';

/** Checks a cache id's shape. */
export function checkId(where: string, id: unknown): string {
  if (typeof id !== 'string' || !/^[0-9a-f]{32}$/.test(id)) {
    throw new InvalidOptionError(`${where}: a cache id is 32 lowercase hex characters (got ${JSON.stringify(id)})`);
  }
  return id;
}

export { listMetas } from '../cache/meta.js';

export function metaOf(store: BindingStore, root: string, id: string, where: string): CacheMeta {
  const blob = store.getMeta(Buffer.from(id, 'hex'));
  if (!blob) throw new CacheNotFoundError(`${where}: no cache ${id} in ${root}; list caches with \`chunk-memo ls ${root}\``);
  return unpackMeta(blob);
}

/**
 * A JSON-safe rendering of values: bigint as `{ $bigint }`, Date as
 * `{ $date }`, typed arrays as `{ $typed, values }`, bytes as `{ $bytes }`
 * (base64), non-finite numbers as `{ $number }`.
 */
export function jsonSafe(v: unknown): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isFinite(v) ? v : { $number: String(v) };
  if (typeof v === 'bigint') return { $bigint: v.toString() };
  if (v instanceof Date) return { $date: v.toISOString() };
  if (v instanceof Uint8Array && (v.constructor === Uint8Array || v.constructor === Buffer)) return { $bytes: Buffer.from(v).toString('base64') };
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    return { $typed: v.constructor.name, values: Array.from(v as unknown as ArrayLike<number | bigint>, (x) => jsonSafe(x)) };
  }
  if (Array.isArray(v)) return v.map(jsonSafe);
  if (typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v as Record<string, unknown>)) out[k] = jsonSafe(x);
    return out;
  }
  return String(v);
}

/** Short human rendering of a value. */
export function shortValue(v: unknown, max = 40): string {
  let s: string;
  if (typeof v === 'bigint') s = `${v}n`;
  else if (typeof v === 'string') s = JSON.stringify(v);
  else if (v instanceof Date) s = v.toISOString();
  else if (ArrayBuffer.isView(v) && !(v instanceof DataView)) s = `${v.constructor.name}(${(v as unknown as ArrayLike<unknown>).length})`;
  else {
    try {
      s = JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x)) ?? String(v);
    } catch {
      s = String(v);
    }
  }
  return s.length > max ? `${s.slice(0, max - 3)}...` : s;
}

const UNITS: Record<string, number> = {
  '': 1, b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12,
  ki: 2 ** 10, kib: 2 ** 10, mi: 2 ** 20, mib: 2 ** 20, gi: 2 ** 30, gib: 2 ** 30, ti: 2 ** 40, tib: 2 ** 40,
};

/** Parses a byte size: `12345`, `10MB` (10^6), `1GiB` (2^30), `1.5k`. */
export function parseSize(text: string, where = 'size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(String(text));
  const mult = m ? UNITS[m[2]!.toLowerCase()] : undefined;
  if (!m || mult === undefined) {
    throw new InvalidOptionError(`${where}: cannot read ${JSON.stringify(text)} as a byte size; use e.g. 12345, 500kB, 10MB or 1GiB`);
  }
  return Math.floor(Number(m[1]) * mult);
}

/** Human duration. */
export function formatDuration(ms: number): string {
  const parts: Array<[number, string]> = [[86400e3, 'd'], [3600e3, 'h'], [60e3, 'm'], [1e3, 's']];
  for (const [u, name] of parts) if (ms >= u && ms % u === 0) return `${ms / u}${name}`;
  for (const [u, name] of parts) if (ms >= u) return `${(ms / u).toFixed(1)}${name}`;
  return `${ms}ms`;
}

/** Human byte size (binary units). */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let x = n;
  let u = -1;
  do {
    x /= 1024;
    u++;
  } while (x >= 1024 && u < units.length - 1);
  return `${x.toFixed(x < 10 ? 1 : 0)} ${units[u]}`;
}

/** Human time (ms since the epoch), or '-'. */
export function formatTime(ms: number | null | undefined): string {
  if (!ms) return '-';
  return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

export { existingStore } from '../cache/root.js';
export { parseDuration } from '../cache/units.js';
