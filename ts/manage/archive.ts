/**
 * Export and import of whole caches or selections as ONE archive
 * (tar, gzip-compressed):
 *
 *   manifest.json                      format, version, caches, checksums
 *   caches/<id>/meta.msgpack           the cache's metadata record
 *   caches/<id>/records/<chunk>.rec    one file per chunk record
 *
 * A record file is `CMR1` + u32 LE header length + header (JSON: the
 * record's index descriptor) + the record's bytes as stored. Every file is
 * listed in the manifest with its SHA-256.
 *
 * Import reads the archive in memory and validates everything (entry types
 * and paths, format version, every checksum, ids, descriptors) before
 * writing anything; an unsafe or damaged archive raises `ArchiveError`
 * (`ERR_ARCHIVE`) and leaves the target root untouched. Nothing is ever
 * extracted to a path taken from the archive.
 */
import { createHash } from 'node:crypto';
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import type { ReadEntry } from 'tar';
import type { BindingDescriptor } from '../binding/native.js';
import { cacheIdOf, ChunkCache, type SelectSpec } from '../cache/cache.js';
import { hashList } from '../cache/grid.js';
import { packMeta, unpackMeta, type CacheMeta } from '../cache/meta.js';
import { openStore } from '../cache/stores.js';
import { ArchiveError, ChunkMemoError, fromNative, InvalidOptionError } from '../errors/index.js';
import type { Value } from '../value.js';
import { checkId, existingStore, jsonSafe, metaOf } from './util.js';

export const ARCHIVE_FORMAT = 'chunk-memo-archive';
export const ARCHIVE_VERSION = 1;
const REC_MAGIC = Buffer.from('CMR1');

/** Manifest entry of one record. */
export interface ManifestRecord {
  readonly path: string;
  readonly chunk: string;
  readonly sha256: string;
  readonly size: number;
  readonly n: number;
  readonly points: number;
}

/** Manifest entry of one cache. */
export interface ManifestCache {
  readonly id: string;
  /** JSON renderings (see `jsonSafe`); the metadata file is authoritative. */
  readonly params: unknown;
  readonly axisOrder: string[];
  readonly axisValues: unknown;
  readonly chunkSpec: Record<string, number>;
  readonly cacheVersion: string;
  readonly counts: { chunks: number; points: number; bytes: number };
  readonly meta: { path: string; sha256: string; size: number };
  readonly records: ManifestRecord[];
}

export interface Manifest {
  readonly format: typeof ARCHIVE_FORMAT;
  readonly version: number;
  readonly createdAt: string;
  readonly caches: ManifestCache[];
}

/** Options of `exportCaches`. */
export interface ExportOptions {
  /** Export only the records holding points of this selection (values/indices per axis). */
  readonly selection?: SelectSpec;
}

/** Result of `exportCaches`. */
export interface ExportResult {
  readonly file: string;
  readonly bytes: number;
  readonly caches: Array<{ id: string; records: number; points: number; skippedCorrupt: number }>;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function recordFile(d: BindingDescriptor, bytes: Buffer): Buffer {
  const head = Buffer.from(
    JSON.stringify({
      chunk: d.chunk.toString('hex'), n: d.n, present: d.present, bytes: d.bytes, updatedMs: d.updatedMs,
      axes: d.axes.map((a) => ({ name: a.name, hashes: a.hashes.toString('hex') })),
    }),
  );
  const len = Buffer.alloc(4);
  len.writeUInt32LE(head.length);
  return Buffer.concat([REC_MAGIC, len, head, bytes]);
}

/**
 * Writes caches `ids` of `root` (or a selection of each) to one archive at
 * `file`. Records that fail verification are left out (and counted).
 */
export async function exportCaches(root: string, ids: readonly string[], file: string, options: ExportOptions = {}): Promise<ExportResult> {
  const where = 'exportCaches';
  if (!Array.isArray(ids) || ids.length === 0) throw new InvalidOptionError(`${where}: give at least one cache id`);
  if (typeof file !== 'string' || !file) throw new InvalidOptionError(`${where}: file must be a path`);
  const { abs, store } = existingStore(root, where);
  const files: Array<[string, Buffer]> = [];
  const caches: ManifestCache[] = [];
  const result: ExportResult['caches'] = [];
  for (const id of [...new Set(ids)]) {
    checkId(where, id);
    let meta = metaOf(store, abs, id, where);
    const idBytes = Buffer.from(id, 'hex');
    // Selected value hashes per axis (null: whole cache).
    let selected: Map<string, Set<bigint>> | null = null;
    if (options.selection) {
      const view = ChunkCache._fromMeta(abs, meta).select(options.selection);
      const values = view.axisValues;
      selected = new Map();
      for (const a of meta.axisOrder) selected.set(a, new Set(hashList(values[a]!, `selection.${a}`)));
      meta = { ...meta, axisValues: values as Record<string, Value[]> };
    }
    const bad = new Set(store.verify(idBytes).map((b) => b.chunk.toString('hex')));
    const metaBlob = packMeta(meta);
    const metaPath = `caches/${id}/meta.msgpack`;
    files.push([metaPath, metaBlob]);
    const records: ManifestRecord[] = [];
    let points = 0;
    let bytes = 0;
    let skipped = 0;
    for (const d of store.descriptors(idBytes)) {
      const chunk = d.chunk.toString('hex');
      if (bad.has(chunk)) {
        skipped++;
        continue;
      }
      if (selected) {
        const hit = meta.axisOrder.every((a) => {
          const ax = d.axes.find((x) => x.name === a);
          if (!ax) return false;
          const want = selected!.get(a)!;
          for (let i = 0; i + 8 <= ax.hashes.length; i += 8) if (want.has(ax.hashes.readBigUInt64LE(i))) return true;
          return false;
        });
        if (!hit) continue;
      }
      const rec = store.getRecord(idBytes, d.chunk);
      if (!rec) continue;
      const body = recordFile(d, rec);
      const path = `caches/${id}/records/${chunk}.rec`;
      files.push([path, body]);
      records.push({ path, chunk, sha256: sha256(body), size: body.length, n: d.n, points: d.present });
      points += d.present;
      bytes += d.bytes;
    }
    caches.push({
      id, params: jsonSafe(meta.params), axisOrder: meta.axisOrder, axisValues: jsonSafe(meta.axisValues), chunkSpec: meta.chunkSpec,
      cacheVersion: meta.cacheVersion, counts: { chunks: records.length, points, bytes },
      meta: { path: metaPath, sha256: sha256(metaBlob), size: metaBlob.length }, records,
    });
    result.push({ id, records: records.length, points, skippedCorrupt: skipped });
  }
  const manifest: Manifest = { format: ARCHIVE_FORMAT, version: ARCHIVE_VERSION, createdAt: new Date().toISOString(), caches };
  files.unshift(['manifest.json', Buffer.from(JSON.stringify(manifest, null, 2))]);
  const archive = await packFiles(files);
  const out = resolvePath(file);
  const tmp = `${out}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, archive);
    renameSync(tmp, out);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw new ChunkMemoError('ERR_IO', `${where}: cannot write ${out}: ${(e as Error).message}`, { cause: e });
  }
  return { file: out, bytes: archive.length, caches: result };
}

// node-tar is loaded on first use: most processes never export or import,
// and worker threads that load the library should start fast.
let tarModule: Promise<typeof import('tar')> | undefined;
const loadTar = (): Promise<typeof import('tar')> => (tarModule ??= import('tar'));

/** A gzip-compressed tar of in-memory files (no file of the disk is read). */
async function packFiles(files: Array<[string, Buffer]>): Promise<Buffer> {
  const { Pack, Header, ReadEntry } = await loadTar();
  return new Promise((resolve, reject) => {
    const pack = new Pack({ gzip: true, portable: true });
    const parts: Buffer[] = [];
    pack.on('data', (c: Buffer) => parts.push(c));
    pack.on('end', () => resolve(Buffer.concat(parts)));
    pack.on('error', reject);
    const mtime = new Date();
    for (const [path, data] of files) {
      const h = new Header({ path, type: 'File', size: data.length, mode: 0o644, mtime });
      h.encode();
      const e = new ReadEntry(h);
      e.end(data);
      pack.add(e);
    }
    pack.end();
  });
}

// ---------------------------------------------------------------------------
// Import.

/** Result of `importArchive`. */
export interface ImportResult {
  readonly root: string;
  readonly caches: Array<{ id: string; records: number; points: number; created: boolean }>;
}

const SAFE_TYPES = new Set(['File', 'OldFile', 'ContiguousFile']);

/** Why an entry path is unsafe, or null. */
function unsafePath(p: string): string | null {
  if (!p) return 'an empty path';
  if (p.startsWith('/') || p.startsWith('\\') || /^[a-zA-Z]:/.test(p)) return 'an absolute path';
  if (p.split(/[\\/]/).includes('..')) return 'a ".." component';
  if (p.includes('\0')) return 'a NUL character';
  return null;
}

/** Reads every entry of a (gzip) tar in memory, refusing unsafe entries. */
async function readEntries(data: Buffer, file: string): Promise<Map<string, Buffer>> {
  const { Parser } = await loadTar();
  return new Promise((resolve, reject) => {
    const files = new Map<string, Buffer>();
    let failed: ArchiveError | null = null;
    const fail = (msg: string): void => {
      failed ??= new ArchiveError(`import: ${file}: ${msg}; nothing was imported`);
    };
    const parser = new Parser({ strict: true });
    parser.on('entry', (entry: ReadEntry) => {
      const p = entry.path;
      const bad = unsafePath(p);
      if (bad) fail(`refusing entry ${JSON.stringify(p)}: ${bad}`);
      else if (!SAFE_TYPES.has(entry.type)) {
        if (entry.type !== 'Directory') fail(`refusing entry ${JSON.stringify(p)}: a ${entry.type} entry (only plain files are allowed)`);
      } else if (files.has(p)) fail(`entry ${JSON.stringify(p)} appears twice`);
      const parts: Buffer[] = [];
      entry.on('data', (c: Buffer) => parts.push(c));
      entry.on('end', () => {
        if (!bad && SAFE_TYPES.has(entry.type) && !files.has(p)) files.set(p, Buffer.concat(parts));
      });
    });
    parser.on('warn', (_code: string, message: string | Error) => fail(`not a valid archive (${typeof message === 'string' ? message : message.message})`));
    parser.on('error', (e: Error) => fail(`not a valid archive (${e.message})`));
    parser.on('abort', (e: Error) => fail(`not a valid archive (${e?.message ?? 'aborted'})`));
    parser.on('close', () => (failed ? reject(failed) : resolve(files)));
    try {
      parser.end(data);
    } catch (e) {
      fail(`not a valid archive (${(e as Error).message})`);
      reject(failed);
    }
  });
}

interface PlannedCache {
  id: string;
  meta: CacheMeta;
  records: Array<{ desc: BindingDescriptor; bytes: Buffer; points: number }>;
}

function parseRecordFile(body: Buffer, where: string): { desc: BindingDescriptor; bytes: Buffer } {
  if (body.length < 8 || !body.subarray(0, 4).equals(REC_MAGIC)) throw new ArchiveError(`${where}: not a record file`);
  const hl = body.readUInt32LE(4);
  if (8 + hl > body.length) throw new ArchiveError(`${where}: truncated record header`);
  let h: { chunk: string; n: number; present: number; bytes: number; updatedMs: number; axes: Array<{ name: string; hashes: string }> };
  try {
    h = JSON.parse(body.subarray(8, 8 + hl).toString('utf8'));
  } catch {
    throw new ArchiveError(`${where}: record header is not JSON`);
  }
  const okInt = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;
  if (!h || typeof h.chunk !== 'string' || !/^[0-9a-f]{32}$/.test(h.chunk) || !okInt(h.n) || !okInt(h.present) || !okInt(h.updatedMs) || !Array.isArray(h.axes)
    || !h.axes.every((a) => a && typeof a.name === 'string' && typeof a.hashes === 'string' && /^([0-9a-f]{16})*$/.test(a.hashes))) {
    throw new ArchiveError(`${where}: malformed record header`);
  }
  const bytes = body.subarray(8 + hl);
  return {
    desc: {
      chunk: Buffer.from(h.chunk, 'hex'), n: h.n, present: h.present, bytes: bytes.length, updatedMs: h.updatedMs,
      axes: h.axes.map((a) => ({ name: a.name, hashes: Buffer.from(a.hashes, 'hex') })),
    },
    bytes,
  };
}

/** Validates the whole archive; returns what to write. */
async function validateArchive(file: string): Promise<PlannedCache[]> {
  let data: Buffer;
  try {
    data = readFileSync(file);
  } catch (e) {
    throw new ArchiveError(`import: cannot read ${file}: ${(e as Error).message}`, { cause: e });
  }
  const files = await readEntries(data, file);
  const fail = (msg: string): never => {
    throw new ArchiveError(`import: ${file}: ${msg}; nothing was imported`);
  };
  const mbuf = files.get('manifest.json') ?? fail('no manifest.json (not a chunk-memo archive)');
  let manifest: Manifest;
  try {
    manifest = JSON.parse(mbuf.toString('utf8')) as Manifest;
  } catch {
    return fail('manifest.json is not valid JSON');
  }
  if (!manifest || manifest.format !== ARCHIVE_FORMAT) fail(`manifest.json is not a ${ARCHIVE_FORMAT} manifest`);
  if (manifest.version !== ARCHIVE_VERSION) fail(`unsupported archive format version ${JSON.stringify(manifest.version)} (this chunk-memo reads version ${ARCHIVE_VERSION})`);
  if (!Array.isArray(manifest.caches)) fail('manifest.json lists no caches');
  const used = new Set(['manifest.json']);
  const take = (path: unknown, sum: unknown, what: string): Buffer => {
    if (typeof path !== 'string' || unsafePath(path)) return fail(`manifest names an unsafe path for ${what}: ${JSON.stringify(path)}`);
    const b = files.get(path) ?? fail(`${what} (${path}) is missing from the archive`);
    if (used.has(path)) fail(`${path} is listed twice in the manifest`);
    used.add(path);
    if (typeof sum !== 'string' || sha256(b) !== sum) fail(`checksum mismatch for ${path} (${what}): the archive is damaged or was tampered with`);
    return b;
  };
  const planned: PlannedCache[] = [];
  const seen = new Set<string>();
  for (const c of manifest.caches) {
    if (!c || typeof c.id !== 'string' || !/^[0-9a-f]{32}$/.test(c.id)) fail(`manifest lists a cache with a bad id ${JSON.stringify(c?.id)}`);
    if (seen.has(c.id)) fail(`cache ${c.id} is listed twice`);
    seen.add(c.id);
    const metaBlob = take(c.meta?.path, c.meta?.sha256, `metadata of cache ${c.id}`);
    let meta: CacheMeta;
    try {
      meta = unpackMeta(metaBlob);
    } catch {
      return fail(`metadata of cache ${c.id} does not decode`);
    }
    let again: string;
    try {
      again = cacheIdOf(meta.params, meta.cacheVersion, meta.code).id;
    } catch (e) {
      return fail(`metadata of cache ${c.id} is not valid: ${(e as Error).message}`);
    }
    if (meta.id !== c.id || again !== c.id) fail(`metadata of cache ${c.id} describes cache ${again}`);
    if (!Array.isArray(meta.axisOrder) || !meta.axisOrder.every((a) => Array.isArray(meta.axisValues?.[a]))) fail(`metadata of cache ${c.id} is malformed`);
    if (!Array.isArray(c.records)) fail(`manifest lists no records for cache ${c.id}`);
    const records: PlannedCache['records'] = [];
    for (const r of c.records) {
      const body = take(r?.path, r?.sha256, `a record of cache ${c.id}`);
      const { desc, bytes } = parseRecordFile(body, `import: ${file}: ${r.path}`);
      if (desc.chunk.toString('hex') !== r.chunk || desc.n !== r.n) fail(`${r.path} does not match its manifest entry`);
      const names = desc.axes.map((a) => a.name).sort();
      if (names.join('\0') !== [...meta.axisOrder].sort().join('\0')) fail(`${r.path}: record axes ${names.join(', ')} differ from the cache's`);
      const prod = desc.axes.reduce((x, a) => x * (a.hashes.length / 8), 1);
      if (prod !== desc.n || desc.present > desc.n) fail(`${r.path}: record descriptor is inconsistent`);
      records.push({ desc, bytes, points: desc.present });
    }
    planned.push({ id: c.id, meta, records });
  }
  for (const p of files.keys()) if (!used.has(p)) fail(`unexpected entry ${JSON.stringify(p)} (not listed in the manifest)`);
  return planned;
}

/**
 * Imports an archive written by `exportCaches` into `root` (created if
 * absent): metadata is merged (axis values united), records are merged with
 * stored ones, keeping stored points. Throws `ArchiveError` and writes
 * nothing when any entry is unsafe or damaged.
 */
export async function importArchive(file: string, root = '.chunk_memo'): Promise<ImportResult> {
  if (typeof file !== 'string' || !file) throw new InvalidOptionError('importArchive: file must be a path');
  const planned = await validateArchive(resolvePath(file));
  const abs = resolvePath(root);
  const store = openStore(abs);
  const out: ImportResult['caches'] = [];
  for (const c of planned) {
    const idBytes = Buffer.from(c.id, 'hex');
    const existing = store.getMeta(idBytes);
    try {
      if (existing) {
        const old = unpackMeta(existing);
        const merged = mergeMetas(old, c.meta);
        if (merged) store.putMeta(idBytes, packMeta(merged));
      } else {
        store.putMeta(idBytes, packMeta(c.meta));
      }
      for (const r of c.records) store.putRecord(idBytes, r.desc, r.bytes);
    } catch (e) {
      const err = fromNative(e, `import: cache ${c.id}`);
      throw new ArchiveError(err.message, { cause: e });
    }
    out.push({ id: c.id, records: c.records.length, points: c.records.reduce((x, r) => x + r.points, 0), created: !existing });
  }
  return { root: abs, caches: out };
}

/** Union of axis values (stored order first); null when nothing changes. */
function mergeMetas(old: CacheMeta, add: CacheMeta): CacheMeta | null {
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
  return { ...old, axisValues, updatedAt: Math.max(old.updatedAt, add.updatedAt, Date.now()) };
}
