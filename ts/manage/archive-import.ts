/**
 * Import of an archive written by `exportCaches` (format: archive-format.ts).
 *
 * All or nothing, in bounded memory:
 *
 * 1. The archive is streamed once (gunzip, then a strict tar reader) and
 *    ALL of it is validated: manifest first, then for every entry its path,
 *    type, size against the manifest, SHA-256, and for records the record's
 *    own checksum and structure (native `checkRecordBytes`) and its
 *    agreement with the manifest and the cache's metadata. The decompressed
 *    size is capped by the sizes the manifest declares (plus tar framing)
 *    and by an absolute cap, so a decompression bomb stops at once. At most
 *    one entry is held in memory; validated records go to a spool file in
 *    the temporary directory (`TMPDIR`).
 * 2. Only when everything passed: the root is opened (created) and the
 *    metadata and every record are written in ONE LMDB transaction
 *    (`importSpool`). Metadata is merged with what is stored
 *    (compare-and-swap: a concurrent change makes the merge run again).
 *
 * Every problem with the archive is an `ArchiveError` (`ERR_ARCHIVE`) and the
 * promise always settles; the target root is not created or changed.
 */
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { createReadStream } from 'node:fs';
import { createHash, type Hash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { native } from '../binding/native.js';
import { cacheIdOf } from '../cache/cache.js';
import { hashList } from '../cache/grid.js';
import { packMeta, unpackMeta, type CacheMeta } from '../cache/meta.js';
import { openStore } from '../cache/stores.js';
import { ArchiveError, ChunkMemoError, fromNative, InvalidOptionError } from '../errors/index.js';
import type { Value } from '../value.js';
import {
  ARCHIVE_FORMAT, ARCHIVE_VERSION, MAX_ARCHIVE_BYTES, MAX_MANIFEST_BYTES, MAX_META_BYTES, MAX_RECORD_BYTES,
  parseRecordFile, unsafePath, type Manifest,
} from './archive-format.js';
import { TarFormatError, TarReader, type TarHeader } from './tar-read.js';

/** Result of `importArchive`. */
export interface ImportResult {
  readonly root: string;
  readonly caches: Array<{ id: string; records: number; points: number; created: boolean }>;
}

/** What the manifest says one entry must be. */
interface Expected {
  readonly kind: 'meta' | 'record';
  readonly cache: number;
  readonly path: string;
  readonly sha256: string;
  readonly size: number;
  readonly chunk?: string;
  readonly n?: number;
}

interface PlannedCache {
  readonly id: string;
  meta: CacheMeta | null;
  records: number;
  points: number;
  /** Sorted axis names of its records (checked against the metadata at the end). */
  readonly axisSets: Set<string>;
}

const BLOCK = 512;
const padded = (n: number): number => Math.ceil(n / BLOCK) * BLOCK;
/** Tar framing allowed besides the entries: end marker and record blocking. */
const TAR_SLACK = 2 * BLOCK + 10240;
const isSize = (x: unknown, max: number): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= max;

/** Validates a (small, already parsed) manifest; returns the expected entries. */
function planManifest(m: Manifest, fail: (msg: string) => never): { caches: PlannedCache[]; entries: Map<string, Expected>; total: number } {
  if (!m || typeof m !== 'object' || m.format !== ARCHIVE_FORMAT) fail(`manifest.json is not a ${ARCHIVE_FORMAT} manifest`);
  if (m.version !== ARCHIVE_VERSION) fail(`unsupported archive format version ${JSON.stringify(m.version)} (this chunk-memo reads version ${ARCHIVE_VERSION})`);
  if (!Array.isArray(m.caches)) fail('manifest.json lists no caches');
  const entries = new Map<string, Expected>();
  const caches: PlannedCache[] = [];
  let total = 0;
  const add = (e: Expected): void => {
    if (typeof e.path !== 'string' || unsafePath(e.path)) fail(`manifest names an unsafe path ${JSON.stringify(e.path)}`);
    if (e.path === 'manifest.json' || entries.has(e.path)) fail(`${e.path} is listed twice in the manifest`);
    if (typeof e.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(e.sha256)) fail(`manifest has no valid sha256 for ${e.path}`);
    if (!isSize(e.size, e.kind === 'meta' ? MAX_META_BYTES : MAX_RECORD_BYTES)) {
      fail(`manifest declares a bad or too large size for ${e.path}: ${JSON.stringify(e.size)}`);
    }
    entries.set(e.path, e);
    total += BLOCK + padded(e.size);
    if (total > MAX_ARCHIVE_BYTES) fail(`the manifest declares more than ${MAX_ARCHIVE_BYTES} bytes`);
  };
  for (const c of m.caches) {
    if (!c || typeof c.id !== 'string' || !/^[0-9a-f]{32}$/.test(c.id)) fail(`manifest lists a cache with a bad id ${JSON.stringify(c?.id)}`);
    if (caches.some((x) => x.id === c.id)) fail(`cache ${c.id} is listed twice`);
    const ci = caches.length;
    caches.push({ id: c.id, meta: null, records: 0, points: 0, axisSets: new Set() });
    if (!c.meta || typeof c.meta !== 'object') fail(`manifest has no metadata entry for cache ${c.id}`);
    add({ kind: 'meta', cache: ci, path: c.meta.path, sha256: c.meta.sha256, size: c.meta.size });
    if (!Array.isArray(c.records)) fail(`manifest lists no records for cache ${c.id}`);
    for (const r of c.records) {
      if (!r || typeof r.chunk !== 'string' || !/^[0-9a-f]{32}$/.test(r.chunk) || !isSize(r.n, 0xffffffff)) {
        fail(`manifest lists a malformed record of cache ${c.id}`);
      }
      add({ kind: 'record', cache: ci, path: r.path, sha256: r.sha256, size: r.size, chunk: r.chunk, n: r.n });
    }
  }
  return { caches, entries, total };
}

/** One spool entry (layout: chunk_memo_core::import). */
function spoolEntry(id: string, desc: ReturnType<typeof parseRecordFile>['desc'], recordLength: number): Buffer {
  const parts: Buffer[] = [Buffer.from(id, 'hex'), desc.chunk];
  const fixed = Buffer.alloc(16);
  fixed.writeUInt32LE(desc.n, 0);
  fixed.writeBigUInt64LE(BigInt(desc.updatedMs), 4);
  fixed.writeUInt32LE(desc.axes.length, 12);
  parts.push(fixed);
  for (const a of desc.axes) {
    const name = Buffer.from(a.name, 'utf8');
    const h = Buffer.alloc(4);
    h.writeUInt32LE(name.length);
    const c = Buffer.alloc(4);
    c.writeUInt32LE(a.hashes.length / 8);
    parts.push(h, name, c, a.hashes);
  }
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(recordLength));
  parts.push(len);
  return Buffer.concat(parts);
}

type Entry = { h: TarHeader; exp: Expected | null; hash: Hash; buf: Buffer; fill: number };

/**
 * Streams and validates the whole archive, writing validated records to a
 * spool file: the manifest first (it bounds what may follow), then every
 * entry against it (path, type, size, sha256; records also parsed and
 * checksummed natively). `run()` resolves to the caches to import; every
 * failure is an ArchiveError.
 */
class ArchiveScan {
  private caches: PlannedCache[] | null = null;
  private entries = new Map<string, Expected>();
  private readonly seen = new Set<string>();
  /** Decompressed bytes allowed so far: the manifest's limit, then what it accounts for. */
  private cap = BLOCK + MAX_MANIFEST_BYTES + TAR_SLACK;
  private total = 0;
  private endSeen = false;
  /** The entry being read: its bytes go into one buffer of the declared size. */
  private cur: Entry | null = null;
  private readonly tar = new TarReader({
    entry: (h) => this.onEntry(h),
    data: (chunk) => this.onData(chunk),
    end: () => this.onEnd(),
  });

  constructor(
    private readonly file: string,
    private readonly spoolFd: number,
  ) {}

  private fail(msg: string): never {
    throw new ArchiveError(`import: ${this.file}: ${msg}; nothing was imported`);
  }

  async run(): Promise<PlannedCache[]> {
    try {
      await pipeline(createReadStream(this.file), createGunzip(), this.sink());
    } catch (e) {
      if (e instanceof ArchiveError) throw e;
      if (e instanceof TarFormatError) this.fail(`not a valid tar archive: ${e.message}`);
      if (e instanceof ChunkMemoError) this.fail((e as Error).message);
      const err = e as NodeJS.ErrnoException;
      if (typeof err.code === 'string' && err.code.startsWith('Z_')) this.fail(`not a valid gzip archive (${err.message})`);
      throw new ArchiveError(`import: cannot read ${this.file}: ${err.message}; nothing was imported`, { cause: e });
    }
    return this.caches!;
  }

  private sink(): Writable {
    return new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        try {
          this.take(chunk);
          cb();
        } catch (e) {
          cb(e as Error);
        }
      },
      final: (cb) => {
        try {
          this.finish();
          cb();
        } catch (e) {
          cb(e as Error);
        }
      },
    });
  }

  private take(chunk: Buffer): void {
    this.total += chunk.length;
    if (this.total > this.cap) this.fail(`it decompresses to more than the ${this.cap} bytes its manifest accounts for (a damaged archive or a decompression bomb)`);
    this.tar.push(chunk);
    if (this.tar.ended && !this.endSeen) {
      // After the end marker only a little zero padding may follow.
      this.endSeen = true;
      if (!this.caches) this.fail('no manifest.json (not a chunk-memo archive)');
      this.cap = Math.min(this.cap, this.total + TAR_SLACK);
    }
  }

  private finish(): void {
    this.tar.finish();
    if (!this.caches) this.fail('no manifest.json (not a chunk-memo archive)');
    const missing = [...this.entries.keys()];
    if (missing.length) this.fail(`${missing[0]} is missing from the archive${missing.length > 1 ? ` (and ${missing.length - 1} more entries)` : ''}`);
    for (const c of this.caches!) {
      const axes = [...c.meta!.axisOrder].sort().join('\0');
      for (const s of c.axisSets) if (s !== axes) this.fail(`records of cache ${c.id} have axes ${s.split('\0').join(', ')}, not the cache's ${c.meta!.axisOrder.join(', ')}`);
    }
  }

  private onEntry(h: TarHeader): void {
    const bad = unsafePath(h.path);
    if (bad) this.fail(`refusing entry ${JSON.stringify(h.path)}: ${bad}`);
    if (h.type === 'Directory' && h.size === 0 && this.caches) {
      this.cur = null;
      return;
    }
    if (h.type !== 'File' && h.type !== 'ContiguousFile') this.fail(`refusing entry ${JSON.stringify(h.path)}: a ${h.type} entry (only plain files are allowed)`);
    if (!this.caches) {
      if (h.path !== 'manifest.json') this.fail(`the first entry is ${JSON.stringify(h.path)}, not manifest.json (not a chunk-memo archive)`);
      if (h.size > MAX_MANIFEST_BYTES) this.fail(`manifest.json is ${h.size} bytes, over the ${MAX_MANIFEST_BYTES} byte limit`);
      this.begin(h, null);
      return;
    }
    const exp = this.entries.get(h.path);
    if (!exp) this.fail(this.seen.has(h.path) || h.path === 'manifest.json' ? `entry ${JSON.stringify(h.path)} appears twice` : `unexpected entry ${JSON.stringify(h.path)} (not listed in the manifest)`);
    if (h.size !== exp.size) this.fail(`${h.path} is ${h.size} bytes but the manifest says ${exp.size}`);
    this.entries.delete(h.path);
    this.seen.add(h.path);
    this.begin(h, exp);
  }

  private begin(h: TarHeader, exp: Expected | null): void {
    // Pages of the buffer are touched only as data arrives.
    this.cur = { h, exp, hash: createHash('sha256'), buf: Buffer.allocUnsafe(h.size), fill: 0 };
  }

  private onData(chunk: Buffer): void {
    const cur = this.cur;
    if (!cur) return;
    // JSON never holds a raw NUL: a zero-filled manifest stops here.
    if (!cur.exp && chunk.includes(0)) this.fail('manifest.json is not valid JSON (it holds NUL bytes)');
    cur.hash.update(chunk);
    chunk.copy(cur.buf, cur.fill);
    cur.fill += chunk.length;
  }

  private onEnd(): void {
    const cur = this.cur;
    if (!cur) return;
    this.cur = null;
    const { exp, hash, buf: body } = cur;
    if (!exp) return this.finishManifest(body);
    const c = this.caches![exp.cache]!;
    if (hash.digest('hex') !== exp.sha256) {
      this.fail(`checksum mismatch for ${exp.path} (${exp.kind === 'meta' ? 'metadata' : 'a record'} of cache ${c.id}): the archive is damaged or was tampered with`);
    }
    if (exp.kind === 'meta') this.finishMeta(c, body);
    else this.finishRecord(c, exp, body);
  }

  private finishManifest(body: Buffer): void {
    let m: Manifest;
    try {
      m = JSON.parse(body.toString('utf8')) as Manifest;
    } catch {
      return this.fail('manifest.json is not valid JSON');
    }
    const plan = planManifest(m, (msg) => this.fail(msg));
    this.caches = plan.caches;
    this.entries = plan.entries;
    this.cap = BLOCK + padded(body.length) + plan.total + TAR_SLACK;
  }

  private finishMeta(c: PlannedCache, blob: Buffer): void {
    let meta: CacheMeta;
    try {
      meta = unpackMeta(blob);
    } catch {
      return this.fail(`metadata of cache ${c.id} does not decode`);
    }
    let again: string;
    try {
      again = cacheIdOf(meta.params, meta.cacheVersion, meta.code).id;
    } catch (e) {
      return this.fail(`metadata of cache ${c.id} is not valid: ${(e as Error).message}`);
    }
    if (meta.id !== c.id || again !== c.id) this.fail(`metadata of cache ${c.id} describes cache ${again}`);
    if (!Array.isArray(meta.axisOrder) || !meta.axisOrder.every((a) => Array.isArray(meta.axisValues?.[a]))) this.fail(`metadata of cache ${c.id} is malformed`);
    c.meta = meta;
  }

  private finishRecord(c: PlannedCache, exp: Expected, body: Buffer): void {
    const { desc, bytes } = parseRecordFile(body, `import: ${this.file}: ${exp.path}`);
    if (desc.chunk.toString('hex') !== exp.chunk || desc.n !== exp.n) this.fail(`${exp.path} does not match its manifest entry`);
    const prod = desc.axes.reduce((x, a) => x * (a.hashes.length / 8), 1);
    if (prod !== desc.n || desc.present > desc.n || new Set(desc.axes.map((a) => a.name)).size !== desc.axes.length) {
      this.fail(`${exp.path}: record descriptor is inconsistent`);
    }
    let info: { n: number; present: number };
    try {
      info = native.checkRecordBytes(bytes);
    } catch (e) {
      return this.fail(`${exp.path}: the record is damaged (${fromNative(e).message}) although its archive checksum matches`);
    }
    if (info.n !== desc.n || info.present !== desc.present) this.fail(`${exp.path}: the record disagrees with its descriptor`);
    c.axisSets.add(desc.axes.map((a) => a.name).sort().join('\0'));
    c.records++;
    c.points += desc.present;
    writeSync(this.spoolFd, spoolEntry(c.id, desc, bytes.length));
    writeSync(this.spoolFd, bytes);
  }
}

/**
 * Imports an archive written by `exportCaches` into `root` (created if
 * absent): metadata is merged (axis values united), records are merged with
 * stored ones, keeping stored points. All of it in one transaction after
 * the whole archive was validated: an unsafe, damaged or hostile archive
 * raises `ArchiveError` and writes nothing.
 */
export async function importArchive(file: string, root = '.chunk_memo'): Promise<ImportResult> {
  if (typeof file !== 'string' || !file) throw new InvalidOptionError('importArchive: file must be a path');
  if (typeof root !== 'string' || !root) throw new InvalidOptionError('importArchive: root must be a non-empty path');
  const src = resolvePath(file);
  const abs = resolvePath(root);
  const dir = mkdtempSync(join(tmpdir(), 'chunk-memo-import-'));
  const spool = join(dir, 'records.spool');
  try {
    const fd = openSync(spool, 'w');
    let planned: PlannedCache[];
    try {
      planned = await new ArchiveScan(src, fd).run();
    } finally {
      closeSync(fd);
    }
    const store = openStore(abs);
    for (let attempt = 0; ; attempt++) {
      const created = new Set<string>();
      const metas = planned.map((c) => {
        const id = Buffer.from(c.id, 'hex');
        const existing = store.getMeta(id);
        if (!existing) created.add(c.id);
        const blob = existing ? mergeMetas(unpackMeta(existing), c.meta!) : packMeta(c.meta!);
        return { id, blob: blob ?? undefined, expected: existing ?? undefined };
      });
      let r: { conflict?: Buffer | null };
      try {
        r = await store.importSpool(metas, spool);
      } catch (e) {
        const err = fromNative(e, `import: ${src} into ${abs}`);
        // A full store is the store's condition, not the archive's.
        if (err.code === 'ERR_STORE_FULL') throw err;
        throw new ArchiveError(`${err.message}; nothing was imported`, { cause: e });
      }
      if (!r.conflict) {
        return { root: abs, caches: planned.map((c) => ({ id: c.id, records: c.records, points: c.points, created: created.has(c.id) })) };
      }
      if (attempt >= 16) throw new ArchiveError(`import: the metadata of cache ${r.conflict.toString('hex')} in ${abs} keeps changing; nothing was imported, try again`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Union of axis values (stored order first); null when nothing changes. */
function mergeMetas(old: CacheMeta, add: CacheMeta): Buffer | null {
  let changed = false;
  const axisValues: Record<string, Value[]> = { ...old.axisValues };
  for (const a of Object.keys(add.axisValues)) {
    const have = axisValues[a] ?? [];
    const hs = new Set(hashList(have, `meta.${a}`));
    const incoming = add.axisValues[a]!;
    const ih = hashList(incoming, `meta.${a}`);
    const extra = incoming.filter((_, i) => !hs.has(ih[i]!));
    if (extra.length || !(a in axisValues)) {
      axisValues[a] = [...have, ...extra];
      changed = true;
    }
  }
  if (!changed) return null;
  return packMeta({ ...old, axisValues, updatedAt: Math.max(old.updatedAt, add.updatedAt, Date.now()) });
}
