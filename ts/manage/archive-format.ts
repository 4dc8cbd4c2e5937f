/**
 * The chunk-memo archive format (shared by export and import):
 *
 *   manifest.json                      format, version, caches, checksums (FIRST entry)
 *   caches/<id>/meta.msgpack           the cache's metadata record
 *   caches/<id>/records/<chunk>.rec    one file per chunk record
 *
 * as a gzip-compressed ustar archive. A record file is `CMR1` + u32 LE
 * header length + header (JSON: the record's index descriptor) + the
 * record's bytes as stored. Every file is listed in the manifest with its
 * size and SHA-256.
 */
import { createHash } from 'node:crypto';
import type { BindingDescriptor } from '../binding/native.js';
import { ArchiveError } from '../errors/index.js';

export const ARCHIVE_FORMAT = 'chunk-memo-archive';
export const ARCHIVE_VERSION = 1;
export const REC_MAGIC = Buffer.from('CMR1');

/** Largest manifest.json (it is held in memory; about 200,000 records). */
export const MAX_MANIFEST_BYTES = 32 * 2 ** 20;
/** Largest metadata entry import accepts. */
export const MAX_META_BYTES = 64 * 2 ** 20;
/** Largest record entry import accepts (one record is held in memory at a time). */
export const MAX_RECORD_BYTES = 2 ** 31 - 1;
/** Absolute cap on the decompressed size of an archive. */
export const MAX_ARCHIVE_BYTES = 2 ** 40;

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

export const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Encodes a record file: magic, header length, JSON descriptor, record bytes. */
export function recordFile(d: BindingDescriptor, bytes: Buffer): Buffer {
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

/** Decodes a record file; throws `ArchiveError` naming `where`. */
export function parseRecordFile(body: Buffer, where: string): { desc: BindingDescriptor; bytes: Buffer } {
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
  if (!h || typeof h.chunk !== 'string' || !/^[0-9a-f]{32}$/.test(h.chunk) || !okInt(h.n) || h.n > 0xffffffff || !okInt(h.present) || !okInt(h.updatedMs) || !Array.isArray(h.axes)
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

/** Why an entry path is unsafe, or null. */
export function unsafePath(p: string): string | null {
  if (!p) return 'an empty path';
  if (p.startsWith('/') || p.startsWith('\\') || /^[a-zA-Z]:/.test(p)) return 'an absolute path';
  if (p.split(/[\\/]/).includes('..')) return 'a ".." component';
  if (p.includes('\0')) return 'a NUL character';
  return null;
}
