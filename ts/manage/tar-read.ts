/**
 * A strict, incremental reader of the tar subset chunk-memo archives use
 * (POSIX ustar headers, plain files; GNU `ustar  ` headers accepted).
 *
 * Why not node-tar's Parser for reading: it sniffs every input for gzip,
 * zstd and brotli and decompresses nested streams on its own (which would
 * escape our decompression cap), and after an abort it does not always emit
 * the event a caller waits for. This reader does no decompression, keeps at
 * most one 512-byte header in memory, and reports every problem by throwing
 * from `push` or `finish`, synchronously. Writing still uses node-tar.
 */

/** One entry header. `type` uses node-tar's names (`File`, `SymbolicLink`, ...). */
export interface TarHeader {
  readonly path: string;
  readonly type: string;
  readonly size: number;
}

/** Callbacks of a `TarReader`; throwing from any of them fails the read. */
export interface TarSink {
  /** A header; `size` bytes of body follow through `data`. */
  entry(h: TarHeader): void;
  data(chunk: Buffer): void;
  /** The body of the last entry is complete. */
  end(): void;
}

/** Thrown for a malformed tar. */
export class TarFormatError extends Error {}

const BLOCK = 512;

const TYPES: Record<string, string> = {
  '0': 'File', '\0': 'File', '1': 'Link', '2': 'SymbolicLink', '3': 'CharacterDevice', '4': 'BlockDevice',
  '5': 'Directory', '6': 'FIFO', '7': 'ContiguousFile', g: 'GlobalExtendedHeader', x: 'ExtendedHeader',
  L: 'NextFileHasLongPath', K: 'NextFileHasLongLinkpath', A: 'SolarisACL', D: 'GNUDumpDir', I: 'Inode',
  M: 'ContinuationFile', N: 'OldGnuLongPath', S: 'SparseFile', V: 'TapeVolumeHeader', X: 'OldExtendedHeader',
};

function cstring(b: Buffer): string {
  const z = b.indexOf(0);
  return (z < 0 ? b : b.subarray(0, z)).toString('utf8');
}

function octal(b: Buffer, what: string): number {
  if (b[0]! & 0x80) throw new TarFormatError(`header field ${what} uses the base-256 encoding (too large)`);
  const s = cstring(b).trim();
  if (!/^[0-7]*$/.test(s)) throw new TarFormatError(`header field ${what} is not an octal number`);
  return s ? parseInt(s, 8) : 0;
}

/** Parses and checks one header block (its checksum included). */
function parseHeader(h: Buffer): TarHeader {
  const stored = octal(h.subarray(148, 156), 'chksum');
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : h[i]!;
  if (sum !== stored) throw new TarFormatError('a header checksum does not match (damaged archive)');
  const magic = h.subarray(257, 263).toString('latin1');
  if (magic !== 'ustar\0' && magic !== 'ustar ') throw new TarFormatError('a header is not a ustar header');
  const name = cstring(h.subarray(0, 100));
  const prefix = magic === 'ustar\0' ? cstring(h.subarray(345, 500)) : '';
  const flag = String.fromCharCode(h[156]!);
  return { path: prefix ? `${prefix}/${name}` : name, type: TYPES[flag] ?? `unknown (type flag ${JSON.stringify(flag)})`, size: octal(h.subarray(124, 136), 'size') };
}

const isZero = (b: Buffer): boolean => {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
};

/** Feeds tar bytes in any chunking to a `TarSink`. */
export class TarReader {
  private readonly head = Buffer.alloc(BLOCK);
  private headFill = 0;
  /** Body bytes left in the current entry, then padding bytes left. */
  private body = 0;
  private pad = 0;
  /** Zero blocks seen at the end (2 = end of archive). */
  private zeros = 0;
  private inEntry = false;

  constructor(private readonly sink: TarSink) {}

  /** True once the end-of-archive marker was read. */
  get ended(): boolean {
    return this.zeros >= 2;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.ended) {
        // After the end marker only zero padding may follow.
        if (!isZero(chunk.subarray(at))) throw new TarFormatError('data after the end-of-archive marker');
        return;
      }
      if (this.body > 0) {
        const n = Math.min(this.body, chunk.length - at);
        this.sink.data(chunk.subarray(at, at + n));
        this.body -= n;
        at += n;
        if (this.body === 0) this.closeEntry();
        continue;
      }
      if (this.pad > 0) {
        const n = Math.min(this.pad, chunk.length - at);
        if (!isZero(chunk.subarray(at, at + n))) throw new TarFormatError('non-zero padding after an entry');
        this.pad -= n;
        at += n;
        continue;
      }
      const n = Math.min(BLOCK - this.headFill, chunk.length - at);
      chunk.copy(this.head, this.headFill, at, at + n);
      this.headFill += n;
      at += n;
      if (this.headFill < BLOCK) continue;
      this.headFill = 0;
      if (isZero(this.head)) {
        this.zeros++;
        continue;
      }
      if (this.zeros > 0) throw new TarFormatError('an entry after an end-of-archive block');
      const h = parseHeader(this.head);
      this.inEntry = true;
      this.sink.entry(h);
      this.body = h.size;
      this.pad = (BLOCK - (h.size % BLOCK)) % BLOCK;
      if (h.size === 0) this.closeEntry();
    }
  }

  private closeEntry(): void {
    this.inEntry = false;
    this.sink.end();
  }

  /** The input is complete: throws unless it ended cleanly. */
  finish(): void {
    if (this.inEntry || this.headFill > 0 || this.body > 0 || this.pad > 0) throw new TarFormatError('truncated archive (an entry is cut short)');
    if (!this.ended) throw new TarFormatError('truncated archive (no end-of-archive marker)');
  }
}
