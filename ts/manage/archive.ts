/**
 * Export of whole caches or selections as ONE archive (gzip-compressed
 * tar; the format is described in archive-format.ts). Import lives in
 * archive-import.ts: it validates the whole archive in bounded memory
 * before writing anything, then writes it in one transaction.
 */
import { renameSync, rmSync, writeFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
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
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  if (manifestBytes.length > MAX_MANIFEST_BYTES) {
    throw new InvalidOptionError(
      `${where}: the manifest would be ${manifestBytes.length} bytes, over the ${MAX_MANIFEST_BYTES} byte limit of import; export fewer caches or a selection per archive`,
    );
  }
  files.unshift(['manifest.json', manifestBytes]);
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
