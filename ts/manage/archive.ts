/**
 * Export of whole caches or selections as ONE archive (gzip-compressed
 * tar; the format is described in archive-format.ts). Import lives in
 * archive-import.ts: it validates the whole archive in bounded memory
 * before writing anything, then writes it in one transaction.
 */
import { closeSync, createWriteStream, mkdtempSync, openSync, readSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';
import type { BindingStore } from '../binding/native.js';
import { ChunkCache, type SelectSpec } from '../cache/cache.js';
import { hashList } from '../cache/grid.js';
import { packMeta } from '../cache/meta.js';
import { ChunkMemoError, InvalidOptionError } from '../errors/index.js';
import type { Value } from '../value.js';
import { ARCHIVE_FORMAT, ARCHIVE_VERSION, MAX_MANIFEST_BYTES, recordFile, sha256, type Manifest, type ManifestCache, type ManifestRecord } from './archive-format.js';
import { checkId, existingStore, jsonSafe, metaOf } from './util.js';

export { ARCHIVE_FORMAT, ARCHIVE_VERSION } from './archive-format.js';
export type { Manifest, ManifestCache, ManifestRecord } from './archive-format.js';
export { importArchive } from './archive-import.js';
export type { ImportResult } from './archive-import.js';

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

/**
 * Writes caches `ids` of `root` (or a selection of each) to one archive at
 * `file`. Records that fail verification are left out (and counted).
 *
 * Memory stays bounded by one record: record files go to a spool file in
 * the temporary directory as they are read (hashed on the way), then the
 * archive is streamed through gzip to a temporary file renamed into place.
 */
export async function exportCaches(root: string, ids: readonly string[], file: string, options: ExportOptions = {}): Promise<ExportResult> {
  const where = 'exportCaches';
  if (!Array.isArray(ids) || ids.length === 0) throw new InvalidOptionError(`${where}: give at least one cache id`);
  if (typeof file !== 'string' || !file) throw new InvalidOptionError(`${where}: file must be a path`);
  const { abs, store } = existingStore(root, where);
  const dir = mkdtempSync(join(tmpdir(), 'chunk-memo-export-'));
  const spool = openSync(join(dir, 'records.spool'), 'w+');
  try {
    const { files, result } = collect(store, abs, ids, options, spool, where);
    const out = resolvePath(file);
    const tmp = `${out}.${process.pid}.tmp`;
    try {
      await pipeline(tarStream(files, spool), createGzip(), createWriteStream(tmp));
      renameSync(tmp, out);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw new ChunkMemoError('ERR_IO', `${where}: cannot write ${out}: ${(e as Error).message}`, { cause: e });
    }
    return { file: out, bytes: statSync(out).size, caches: result };
  } finally {
    closeSync(spool);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** An archive entry: in memory (manifest, metadata) or a byte range of the spool. */
interface OutFile {
  readonly path: string;
  readonly data?: Buffer;
  readonly at?: number;
  readonly size: number;
}

/** Reads the caches' metadata and records (records into the spool); builds the manifest. */
function collect(
  store: BindingStore, abs: string, ids: readonly string[], options: ExportOptions, spoolFd: number, where: string,
): { files: OutFile[]; result: ExportResult['caches'] } {
  const files: OutFile[] = [];
  let spooled = 0;
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
    files.push({ path: metaPath, data: metaBlob, size: metaBlob.length });
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
      writeSync(spoolFd, body, 0, body.length, spooled);
      files.push({ path, at: spooled, size: body.length });
      spooled += body.length;
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
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  if (manifestBytes.length > MAX_MANIFEST_BYTES) {
    throw new InvalidOptionError(
      `${where}: the manifest would be ${manifestBytes.length} bytes, over the ${MAX_MANIFEST_BYTES} byte limit of import; export fewer caches or a selection per archive`,
    );
  }
  files.unshift({ path: 'manifest.json', data: manifestBytes, size: manifestBytes.length });
  return { files, result };
}

// node-tar is loaded on first use: most processes never export or import,
// and worker threads that load the library should start fast.
let tarModule: Promise<typeof import('tar')> | undefined;
const loadTar = (): Promise<typeof import('tar')> => (tarModule ??= import('tar'));

/**
 * The ustar bytes of `files` (plain files; data in memory or in the spool),
 * end marker included, in pieces of at most 1 MiB.
 */
async function* tarStream(files: readonly OutFile[], spoolFd: number): AsyncGenerator<Buffer> {
  const { Header } = await loadTar();
  const mtime = new Date();
  const PIECE = 2 ** 20;
  for (const f of files) {
    const block = Buffer.alloc(512);
    new Header({ path: f.path, type: 'File', size: f.size, mode: 0o644, mtime }).encode(block, 0);
    yield block;
    if (f.data) yield f.data;
    else {
      for (let done = 0; done < f.size; ) {
        const piece = Buffer.allocUnsafe(Math.min(PIECE, f.size - done));
        const got = readSync(spoolFd, piece, 0, piece.length, f.at! + done);
        if (got !== piece.length) throw new Error('the export spool file is shorter than written');
        done += got;
        yield piece;
      }
    }
    const pad = (512 - (f.size % 512)) % 512;
    if (pad) yield Buffer.alloc(pad);
  }
  yield Buffer.alloc(1024);
}
