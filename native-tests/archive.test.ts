/**
 * Archive import against hostile and damaged archives: every failure is
 * ERR_ARCHIVE, the promise settles, and the target store is unchanged (no
 * metadata, no records). A decompression bomb is refused with bounded RSS
 * (measured in a child process). Import is one transaction.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createGzip, gunzipSync, gzipSync } from 'node:zlib';
import { Writable } from 'node:stream';
import { Header } from 'tar';
import { ChunkCache, run, pointwise, ChunkMemoError } from '../ts/index.js';
import { openStore } from '../ts/cache/stores.js';
import { listMetas } from '../ts/cache/meta.js';
import { exportCaches, importArchive } from '../ts/manage/archive.js';
import { main as cliMain } from '../ts/cli/main.js';

const here = dirname(fileURLToPath(import.meta.url));
const tmp = (): string => mkdtempSync(join(tmpdir(), 'cm-arch-'));

const fn = pointwise((p, { x, y }) => ({ tag: p.tag, v: (x as number) * 10 + (y as number) }));
const grid = (root: string, tag: string): ChunkCache =>
  ChunkCache.open({ root, params: { tag }, axisValues: { x: [0, 1, 2, 3], y: [0, 1, 2, 3] }, chunkSpec: { x: 2, y: 2 } });

interface Entry {
  name: string;
  data: Buffer;
  type?: 'File' | 'SymbolicLink' | 'Link' | 'Directory';
  linkpath?: string;
}

/** Entries of an uncompressed ustar (plain files). */
function entriesOf(tar: Buffer): Entry[] {
  const out: Entry[] = [];
  let at = 0;
  while (at + 512 <= tar.length && tar[at] !== 0) {
    const name = tar.subarray(at, at + 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(tar.subarray(at + 124, at + 136).toString('utf8').replace(/\0.*$/s, '').trim(), 8);
    out.push({ name, data: Buffer.from(tar.subarray(at + 512, at + 512 + size)) });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/** An uncompressed ustar of `entries`, end marker included. */
function tarOf(entries: Entry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    const type = e.type ?? 'File';
    const size = type === 'File' ? e.data.length : 0;
    const block = Buffer.alloc(512);
    new Header({ path: e.name, type, size, mode: 0o644, mtime: new Date(0), linkpath: e.linkpath }).encode(block, 0);
    parts.push(block);
    if (size) parts.push(e.data, Buffer.alloc(Math.ceil(size / 512) * 512 - size));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** A root with one cache of 4 chunks (16 points); its archive's entries. */
async function exported(): Promise<{ root: string; c: ChunkCache; file: string; entries: Entry[] }> {
  const root = tmp();
  const c = grid(root, 'a');
  await run(c, fn);
  const file = join(tmp(), 'a.tar.gz');
  await exportCaches(root, [c.id], file);
  return { root, c, file, entries: entriesOf(gunzipSync(readFileSync(file))) };
}

/** Rewrites entries and fixes the manifest's sizes and checksums to match. */
function rebuilt(entries: Entry[], edit: (e: Entry[]) => void): Buffer {
  const es = entries.map((e) => ({ ...e, data: Buffer.from(e.data) }));
  edit(es);
  const m = JSON.parse(es[0]!.data.toString()) as { caches: Array<{ meta: { path: string; sha256: string; size: number }; records: Array<{ path: string; sha256: string; size: number }> }> };
  for (const c of m.caches) {
    for (const f of [c.meta, ...c.records]) {
      const e = es.find((x) => x.name === f.path);
      if (e) {
        f.sha256 = sha(e.data);
        f.size = e.data.length;
      }
    }
  }
  es[0]!.data = Buffer.from(JSON.stringify(m));
  return gzipSync(tarOf(es));
}

/** Everything a store holds (metas, descriptors, record bytes), or 'absent'. */
function snapshot(root: string): string {
  if (!existsSync(join(root, 'data.mdb'))) return 'absent';
  const store = openStore(root);
  const metas = listMetas(store).sort((a, b) => (a.id < b.id ? -1 : 1));
  return JSON.stringify(metas.map((m) => {
    const id = Buffer.from(m.id, 'hex');
    const descs = store.descriptors(id).map((d) => [d.chunk.toString('hex'), d.n, d.present, d.bytes, sha(store.getRecord(id, d.chunk)!)]);
    return [m.id, Object.fromEntries(Object.entries(m.axisValues)), descs.sort()];
  }));
}

/** Imports `archive` into a fresh root and into a root holding another cache; both must be refused and left unchanged. */
async function refused(t: import('ava').ExecutionContext, archive: Buffer, why: RegExp): Promise<void> {
  const dir = tmp();
  const file = join(dir, 'hostile.tar.gz');
  writeFileSync(file, archive);
  const fresh = join(dir, 'fresh');
  const e1 = await t.throwsAsync(importArchive(file, fresh));
  t.true(e1 instanceof ChunkMemoError, String(e1));
  t.is((e1 as ChunkMemoError).code, 'ERR_ARCHIVE', e1?.message);
  t.regex(e1!.message, why);
  t.false(existsSync(fresh), 'a refused import creates no root');
  const other = join(dir, 'other');
  await run(grid(other, 'other').select({ values: { x: [0] } }), fn);
  const before = snapshot(other);
  const e2 = await t.throwsAsync(importArchive(file, other));
  t.is((e2 as ChunkMemoError).code, 'ERR_ARCHIVE');
  t.is(snapshot(other), before, 'a refused import leaves the store unchanged');
}

test('round trip: import into a fresh root serves every point; again merges nothing new', async (t) => {
  const { c, file } = await exported();
  const target = tmp();
  const r = await importArchive(file, target);
  t.deepEqual(r.caches.map((x) => [x.id, x.records, x.points, x.created]), [[c.id, 4, 16, true]]);
  const again = await run(grid(target, 'a'), fn);
  t.is(again.diagnostics.executedPoints, 0);
  const before = snapshot(target);
  const r2 = await importArchive(file, target);
  t.false(r2.caches[0]!.created);
  t.is(snapshot(target).replace(/,\d{13}/g, ''), before.replace(/,\d{13}/g, ''));
});

test('import merges with stored points and extended axes in one go', async (t) => {
  const { file } = await exported();
  const target = tmp();
  const ext = ChunkCache.open({ root: target, params: { tag: 'a' }, axisValues: { x: [0, 1, 2, 3, 9], y: [0, 1, 2, 3] }, chunkSpec: { x: 2, y: 2 } });
  await run(ext.select({ values: { x: [9] } }), fn);
  await importArchive(file, target);
  const r = await run(ChunkCache.open({ root: target, params: { tag: 'a' }, axisValues: { x: [0, 1, 2, 3, 9], y: [0, 1, 2, 3] }, chunkSpec: { x: 2, y: 2 } }), fn);
  t.is(r.diagnostics.executedPoints, 0);
});

test('a truncated gzip is ERR_ARCHIVE and writes nothing', async (t) => {
  const { file } = await exported();
  const gz = readFileSync(file);
  await refused(t, gz.subarray(0, Math.floor(gz.length * 0.6)), /gzip|truncated/);
  // Cut inside the gzip trailer too.
  await refused(t, gz.subarray(0, gz.length - 3), /gzip|truncated/);
});

test('a corrupted gzip is ERR_ARCHIVE and writes nothing', async (t) => {
  const { file } = await exported();
  const gz = Buffer.from(readFileSync(file));
  gz[Math.floor(gz.length / 2)]! ^= 0xff;
  await refused(t, gz, /gzip|tar|checksum|manifest/);
  await refused(t, Buffer.from('this is not an archive\n'), /gzip/);
});

test('a record whose checksum is bad under a matching manifest hash: nothing is written (atomic)', async (t) => {
  const { entries } = await exported();
  const recs = entries.filter((e) => e.name.endsWith('.rec'));
  t.is(recs.length, 4);
  const archive = rebuilt(entries, (es) => {
    const last = es.filter((e) => e.name.endsWith('.rec'))[3]!;
    last.data[last.data.length - 12]! ^= 0x01; // inside the record, before its xxh3 checksum
  });
  await refused(t, archive, /record is damaged.*checksum/);
});

test('paths that escape, absolute paths and NUL are refused', async (t) => {
  const { entries } = await exported();
  const evil = Buffer.from('evil\n');
  await refused(t, gzipSync(tarOf([...entries, { name: '../evil.txt', data: evil }])), /"\.\." component/);
  await refused(t, gzipSync(tarOf([...entries, { name: '/tmp/cm-evil-abs.txt', data: evil }])), /absolute path/);
  // The manifest itself naming a traversal path.
  await refused(t, rebuilt(entries, (es) => {
    const m = JSON.parse(es[0]!.data.toString());
    m.caches[0].records[0].path = '../../x.rec';
    es[0]!.data = Buffer.from(JSON.stringify(m));
  }), /unsafe path/);
  t.false(existsSync('/tmp/cm-evil-abs.txt'));
});

test('links, directories before the manifest and other entry types are refused', async (t) => {
  const { entries } = await exported();
  await refused(t, gzipSync(tarOf([...entries, { name: 'caches/link', data: Buffer.alloc(0), type: 'SymbolicLink', linkpath: '/etc/passwd' }])), /SymbolicLink entry/);
  await refused(t, gzipSync(tarOf([...entries, { name: 'caches/hard', data: Buffer.alloc(0), type: 'Link', linkpath: 'manifest.json' }])), /Link entry/);
  // A record replaced by a link to another file.
  const rec = entries.find((e) => e.name.endsWith('.rec'))!;
  await refused(t, gzipSync(tarOf(entries.map((e) => (e === rec ? { name: e.name, data: Buffer.alloc(0), type: 'SymbolicLink' as const, linkpath: '/etc/passwd' } : e)))), /SymbolicLink entry/);
});

test('entries that disagree with the manifest are refused', async (t) => {
  const { entries } = await exported();
  const [manifest, ...rest] = entries;
  // Not first.
  await refused(t, gzipSync(tarOf([...rest, manifest!])), /not manifest\.json/);
  // Unlisted, duplicated, missing.
  await refused(t, gzipSync(tarOf([...entries, { name: 'caches/extra.bin', data: Buffer.from('x') }])), /unexpected entry/);
  await refused(t, gzipSync(tarOf([...entries, entries[2]!])), /appears twice/);
  await refused(t, gzipSync(tarOf(entries.slice(0, -1))), /missing from the archive/);
  // A record tampered with, manifest untouched.
  const tampered = entries.map((e) => ({ ...e, data: Buffer.from(e.data) }));
  tampered[3]!.data[tampered[3]!.data.length - 20]! ^= 0x10;
  await refused(t, gzipSync(tarOf(tampered)), /checksum mismatch/);
  // A size that differs from the manifest.
  const longer = entries.map((e, i) => (i === 2 ? { ...e, data: Buffer.concat([e.data, Buffer.from('x')]) } : e));
  await refused(t, gzipSync(tarOf(longer)), /manifest says/);
  // Data after the end marker; not a tar at all.
  await refused(t, gzipSync(Buffer.concat([tarOf(entries), Buffer.from('trailing')])), /after the end/);
  await refused(t, gzipSync(Buffer.alloc(4096, 0x41)), /tar|header/);
  await refused(t, gzipSync(Buffer.alloc(0)), /truncated|manifest/);
});

/** A gzip of `prefix` followed by `count` bytes `fill`, streamed (never held in memory). */
async function bomb(prefix: Buffer, count: number, fill = 0): Promise<Buffer> {
  const out: Buffer[] = [];
  const gz = createGzip({ level: 9 });
  const done = new Promise<void>((resolve, reject) => {
    gz.pipe(new Writable({ write(c: Buffer, _e, cb) { out.push(c); cb(); } })).on('finish', resolve).on('error', reject);
  });
  gz.write(prefix);
  const block = Buffer.alloc(1 << 20, fill);
  for (let left = count; left > 0; left -= block.length) {
    if (!gz.write(left >= block.length ? block : block.subarray(0, left))) await new Promise((r) => gz.once('drain', r));
  }
  gz.end();
  await done;
  return Buffer.concat(out);
}

test('decompression bombs are refused quickly with bounded memory (child process RSS)', async (t) => {
  const { entries } = await exported();
  const GB = 2 ** 30;
  const dir = tmp();
  const manifestHeader = Buffer.alloc(512);
  new Header({ path: 'manifest.json', type: 'File', size: 30 * 2 ** 20, mode: 0o644, mtime: new Date(0) }).encode(manifestHeader, 0);
  const bombs: Array<[string, Buffer]> = [
    // Plain zeros: the end marker at once, then a gigabyte of padding.
    ['zeros', await bomb(Buffer.alloc(0), GB)],
    // A valid archive followed by a gigabyte of zeros.
    ['trailing', await bomb(tarOf(entries), GB)],
    // A manifest entry that declares 30 MiB (under its 32 MiB limit): zeros, or a
    // JSON-looking run of spaces (held in memory up to the manifest limit).
    ['manifest', await bomb(manifestHeader, GB)],
    ['manifest-spaces', await bomb(Buffer.concat([manifestHeader, Buffer.from('{')]), 30 * 2 ** 20 - 1, 0x20)],
    // A valid manifest, then a record entry whose header claims 1 GiB.
    ['record', await bomb(Buffer.concat([tarOf(entries.slice(0, 1)).subarray(0, -1024), (() => {
      const h = Buffer.alloc(512);
      new Header({ path: entries[2]!.name, type: 'File', size: GB, mode: 0o644, mtime: new Date(0) }).encode(h, 0);
      return h;
    })()]), GB)],
  ];
  for (const [name, gz] of bombs) {
    t.true(gz.length < 2 ** 21, `${name} bomb is small (${gz.length} B)`);
    const file = join(dir, `${name}.tar.gz`);
    writeFileSync(file, gz);
    const target = join(dir, `root-${name}`);
    const r = spawnSync(process.execPath, ['--import=tsx', join(here, 'fixtures', 'archive-import-child.ts'), file, target], { encoding: 'utf8', timeout: 120_000 });
    t.is(r.status, 0, `${name}: ${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { code: string; message: string; maxRssMB: number };
    t.is(out.code, 'ERR_ARCHIVE', `${name}: ${out.message}`);
    t.true(out.maxRssMB < 300, `${name}: peak RSS ${out.maxRssMB} MB`);
    t.log(`${name}: ${gz.length} B compressed, refused (${out.message.replace(/^.*?: /, '').slice(0, 90)}), peak RSS ${out.maxRssMB} MB`);
    t.false(existsSync(target));
  }
});

test('CLI import of a hostile archive exits non-zero with one line', async (t) => {
  const { file } = await exported();
  const gz = readFileSync(file);
  const dir = tmp();
  const bad = join(dir, 'cut.tar.gz');
  writeFileSync(bad, gz.subarray(0, gz.length >> 1));
  let err = '';
  let out = '';
  const sink = (f: (s: string) => void): Writable => new Writable({ write(c: Buffer, _e, cb) { f(c.toString()); cb(); } });
  const code = await cliMain(['import', bad, '--root', join(dir, 'r')], { stdout: sink((s) => (out += s)), stderr: sink((s) => (err += s)) });
  t.not(code, 0);
  const lines = err.split('\n').filter(Boolean);
  t.is(lines.length, 1, err);
  t.regex(lines[0]!, /^chunk-memo: .*(gzip|truncated)/);
  t.is(out, '');
  t.false(existsSync(join(dir, 'r')));
});

test.serial('metadata changed by another opener between merge and write is merged again, not overwritten', async (t) => {
  const { file, c } = await exported();
  const target = tmp();
  const open = (x: number[]): ChunkCache => ChunkCache.open({ root: target, params: { tag: 'a' }, axisValues: { x, y: [0, 1, 2, 3] }, chunkSpec: { x: 2, y: 2 } });
  open([7]);
  const store = openStore(target);
  const proto = Object.getPrototypeOf(store) as { importSpool: (...a: unknown[]) => Promise<unknown> };
  const orig = proto.importSpool;
  let calls = 0;
  proto.importSpool = function (this: { path: string }, ...a: unknown[]) {
    // Another open adds x = 8 after the import computed its merge (other
    // tests' imports pass through untouched).
    if (this.path === store.path && ++calls === 1) open([7, 8]);
    return orig.apply(this, a);
  };
  t.teardown(() => {
    proto.importSpool = orig;
  });
  const r = await importArchive(file, target);
  t.is(calls, 2, 'the first write saw the change and wrote nothing; the second merged it');
  t.false(r.caches[0]!.created);
  const meta = listMetas(store).find((m) => m.id === c.id)!;
  t.deepEqual([...(meta.axisValues.x as number[])].sort(), [0, 1, 2, 3, 7, 8]);
  const again = await run(open([0, 1, 2, 3]), fn);
  t.is(again.diagnostics.executedPoints, 0);
});

test('export streams records larger than its 1 MiB pieces; the archive round-trips', async (t) => {
  const root = tmp();
  const x = Array.from({ length: 200_000 }, (_, i) => i);
  const open = (r: string): ChunkCache => ChunkCache.open({ root: r, params: { big: 1 }, axisValues: { x }, chunkSpec: { x: 150_000 } });
  const typed = (_p: unknown, axes: Record<string, unknown[]>): Float64Array => Float64Array.from(axes.x as number[], (v) => v / 7);
  const first = await run(open(root), typed);
  const file = join(tmp(), 'big.tar.gz');
  const ex = await exportCaches(root, [open(root).id], file);
  t.deepEqual(ex.caches.map((c) => [c.records, c.points]), [[2, 200_000]]);
  const big = entriesOf(gunzipSync(readFileSync(file))).find((e) => e.data.length > 2 ** 20);
  t.truthy(big, 'one record file is over 1 MiB');
  const target = tmp();
  await importArchive(file, target);
  const again = await run(open(target), () => {
    throw new Error('nothing should run');
  });
  t.is(again.diagnostics.executedPoints, 0);
  t.deepEqual(again.output, first.output);
});
