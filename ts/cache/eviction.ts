/**
 * Eviction: records unused for longer than `maxAge`, then least-recently-used
 * records down to a byte budget; by hand (`gc`) or automatically after runs
 * of caches opened with `maxBytes` (amortised: only once the bytes written
 * since the last collection exceed a tenth of the budget).
 */
import { InvalidOptionError } from '../errors/index.js';
import type { ChunkCache } from './cache.js';
import { cachesInUse, lastUseSeq } from '../store/in-use.js';
import { listMetas } from './meta.js';
import { existingStore } from './root.js';
import { parseDuration } from './units.js';

/** Options of `gc`: `maxBytes`, `maxAge` or both. */
export interface GcOptions {
  /** Byte budget of the records of the whole root. */
  readonly maxBytes?: number;
  /**
   * Evict records not used (read or written) for longer than this: ms, or a
   * duration such as `'30d'`, `'12h'`, `'90m'` (as joblib's `reduce_size(age_limit=...)`).
   */
  readonly maxAge?: number | string;
  /** Report what would be evicted without deleting anything. @default false */
  readonly dryRun?: boolean;
  /** Current time in ms (tests). @default Date.now() */
  readonly now?: number;
}

/** A record evicted by `gc`. */
export interface EvictedRecord {
  readonly id: string;
  /** Chunk key (32 hex chars). */
  readonly chunk: string;
  readonly bytes: number;
  readonly points: number;
  /** Last use (ms): access time, else the write time. */
  readonly lastUsed: number;
}

/** Result of `gc`. */
export interface GcResult {
  readonly root: string;
  /** The byte budget, or null when none was given. */
  readonly maxBytes: number | null;
  /** The age limit in ms, or null when none was given. */
  readonly maxAge: number | null;
  /** Of `evicted`: records evicted for their age. */
  readonly expired: number;
  readonly bytesBefore: number;
  readonly bytesAfter: number;
  readonly evicted: EvictedRecord[];
  /** Records kept over the budget because a run of this process uses their cache. */
  readonly keptInUse: number;
  /** Record bytes per cache after the collection. */
  readonly perCache: Record<string, number>;
}

interface Candidate extends EvictedRecord {
  seq: number;
  chunkBytes: Buffer;
}

/**
 * Evicts records of any cache in `root`: with `maxAge`, every record not used
 * (by access time, else write time) for longer than that; with `maxBytes`,
 * then least-recently-used records until the records take at most
 * `maxBytes`. Records of caches that a run of this process is using are
 * never evicted.
 *
 * @example gc('.chunk_memo', { maxBytes: 10 * 2 ** 30 })
 * @example gc('.chunk_memo', { maxAge: '30d' })
 */
export function gc(root: string, options: GcOptions): GcResult {
  const where = 'gc';
  if (!options || typeof options !== 'object') throw new InvalidOptionError(`${where}: expected options { maxBytes?, maxAge?, dryRun? }`);
  const maxBytes = options.maxBytes ?? null;
  if (maxBytes !== null && (typeof maxBytes !== 'number' || !Number.isFinite(maxBytes) || maxBytes < 0)) {
    throw new InvalidOptionError(`${where}: options.maxBytes must be a non-negative number of bytes (got ${JSON.stringify(maxBytes)})`);
  }
  const maxAge = options.maxAge === undefined ? null : parseDuration(options.maxAge, `${where}: options.maxAge`);
  if (maxBytes === null && maxAge === null) throw new InvalidOptionError(`${where}: give options.maxBytes (a byte budget), options.maxAge (an age limit) or both`);
  const now = options.now ?? Date.now();
  const { abs, store } = existingStore(root, where);
  // Caches in use here, or by any live process sharing the root.
  const busy = cachesInUse(abs);
  for (const id of store.cachesInUse()) busy.add(id);
  const all: Candidate[] = [];
  const perCache: Record<string, number> = {};
  let total = 0;
  for (const m of listMetas(store)) {
    const idBytes = Buffer.from(m.id, 'hex');
    const atimes = new Map<string, number>();
    for (const a of store.accessTimes(idBytes)) atimes.set(a.chunk.toString('hex'), a.ms);
    const seq = lastUseSeq(abs, m.id);
    let sum = 0;
    for (const d of store.descriptors(idBytes)) {
      const chunk = d.chunk.toString('hex');
      sum += d.bytes;
      all.push({ id: m.id, chunk, chunkBytes: d.chunk, bytes: d.bytes, points: d.present, lastUsed: Math.max(atimes.get(chunk) ?? 0, d.updatedMs), seq });
    }
    perCache[m.id] = sum;
    total += sum;
  }
  const bytesBefore = total;
  const evicted: Candidate[] = [];
  const inUse = new Set<Candidate>();
  all.sort((a, b) => a.lastUsed - b.lastUsed || a.seq - b.seq || (a.chunk < b.chunk ? -1 : a.chunk > b.chunk ? 1 : 0));
  let next = 0;
  const evict = (stop: (c: Candidate) => boolean): void => {
    for (; next < all.length; next++) {
      const c = all[next]!;
      if (stop(c)) break;
      if (busy.has(c.id)) {
        inUse.add(c);
        continue;
      }
      evicted.push(c);
      total -= c.bytes;
      perCache[c.id]! -= c.bytes;
    }
  };
  // Oldest first: records past the age limit, then down to the budget.
  if (maxAge !== null) evict((c) => c.lastUsed >= now - maxAge);
  const expired = evicted.length;
  if (maxBytes !== null) evict(() => total <= maxBytes);
  const keptInUse = inUse.size;
  if (!options.dryRun && evicted.length) {
    const byCache = new Map<string, Buffer[]>();
    for (const c of evicted) {
      const l = byCache.get(c.id) ?? [];
      l.push(c.chunkBytes);
      byCache.set(c.id, l);
    }
    for (const [id, chunks] of byCache) store.deleteRecords(Buffer.from(id, 'hex'), chunks);
  }
  return {
    root: abs, maxBytes, maxAge, expired, bytesBefore, bytesAfter: options.dryRun ? bytesBefore : total,
    evicted: evicted.map(({ id, chunk, bytes, points, lastUsed }) => ({ id, chunk, bytes, points, lastUsed })),
    keptInUse, perCache,
  };
}

// ---------------------------------------------------------------------------
// Automatic, amortised collection after runs.

interface RootState {
  /** Record bytes per cache as last seen. */
  known: Map<string, number>;
  /** Bytes written since the last collection (estimated from the caches run). */
  written: number;
  /** Whether a collection ran in this process (it establishes the baseline). */
  collected: boolean;
}

const rootState = new Map<string, RootState>();

/** Fraction of the budget written between two automatic collections. */
export const AUTO_GC_FRACTION = 0.1;

/** @internal Runs after every run: collects when enough was written. */
export function autoGc(cache: ChunkCache): GcResult | null {
  const core = cache._core;
  const maxBytes = core.maxBytes;
  if (maxBytes === undefined || core.closed) return null;
  let st = rootState.get(core.root);
  if (!st) rootState.set(core.root, (st = { known: new Map(), written: 0, collected: false }));
  // Cheap: totals of the cache just run, from its index entries (no record
  // is read, no value hash decoded).
  const bytes = core.store.summary(core.idBytes).bytes;
  const prev = st.known.get(core.id) ?? 0;
  st.known.set(core.id, bytes);
  st.written += Math.max(0, bytes - prev);
  if (st.collected && st.written <= AUTO_GC_FRACTION * maxBytes) return null;
  const r = gc(core.root, { maxBytes });
  st.known = new Map(Object.entries(r.perCache));
  st.written = 0;
  st.collected = true;
  return r;
}
