/**
 * The `chunk-memo` CLI as a user runs it: the built bin
 * (dist/ts/cli/main.js, from `npm run build:ts`) spawned with node, against
 * real LMDB roots filled through the library.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { Header } from 'tar';
import { ChunkCache, run, pointwise } from '../ts/index.js';
import { openStore } from '../ts/cache/stores.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(repo, 'dist', 'ts', 'cli', 'main.js');

const tmp = (): string => mkdtempSync(join(tmpdir(), 'cm-cli-'));

function cli(...args: string[]): { code: number; stdout: string; stderr: string } {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run build:ts\` first`);
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: tmpdir() });
  if (r.status === null) throw new Error(`chunk-memo ${args.join(' ')}: ended by ${r.signal ?? r.error?.message}; stderr: ${r.stderr}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A failure: non-zero exit and exactly one line on stderr. */
function failsWithOneLine(t: { not: (a: unknown, b: unknown) => void; is: (a: unknown, b: unknown) => void; regex: (a: string, r: RegExp) => void }, r: ReturnType<typeof cli>, pattern: RegExp): void {
  t.not(r.code, 0);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  t.is(lines.length, 1);
  t.regex(lines[0]!, /^chunk-memo: /);
  t.regex(lines[0]!, pattern);
}

const fn = pointwise((p, { x, y }) => {
  return { tag: p.tag, v: (x as number) * 10 + (y as number) };
});

const grid = (root: string, tag: string): ChunkCache =>
  ChunkCache.open({ root, params: { tag }, axisValues: { x: [0, 1, 2, 3, 4, 5], y: [0, 1, 2, 3] }, chunkSpec: { x: 2, y: 2 } });

/** Entries of an uncompressed tar: header offset, name, data offset and size. */
function tarEntries(tar: Buffer): Array<{ at: number; name: string; data: number; size: number }> {
  const out = [];
  let at = 0;
  while (at + 512 <= tar.length && tar[at] !== 0) {
    const name = tar.subarray(at, at + 100).toString('utf8').replace(/\0.*$/s, '');
    const size = parseInt(tar.subarray(at + 124, at + 136).toString('utf8').replace(/\0.*$/s, '').trim(), 8);
    out.push({ at, name, data: at + 512, size });
    at += 512 + Math.ceil(size / 512) * 512;
  }
  return out;
}

/** Adds a raw entry before the end of a tar. */
function withExtraEntry(tar: Buffer, h: Header, data: Buffer): Buffer {
  const es = tarEntries(tar);
  const last = es[es.length - 1]!;
  const end = last.data + Math.ceil(last.size / 512) * 512;
  const block = Buffer.alloc(512);
  h.encode(block, 0);
  const body = Buffer.alloc(Math.ceil(data.length / 512) * 512);
  data.copy(body);
  return Buffer.concat([tar.subarray(0, end), block, body, Buffer.alloc(1024)]);
}

async function filledRoot(): Promise<{ root: string; a: ChunkCache; b: ChunkCache; outA: unknown }> {
  const root = tmp();
  const a = grid(root, 'a');
  const b = grid(root, 'b');
  const outA = (await run(a, fn)).output;
  await run(b.select({ values: { x: [0, 1] } }), fn);
  return { root, a, b, outA };
}

test('export, then import into a fresh root: a run there executes nothing', async (t) => {
  const { root, a, b, outA } = await filledRoot();
  const file = join(tmp(), 'caches.tar.gz');
  const ex = cli('export', root, a.id, b.id, '-o', file);
  t.is(ex.code, 0, ex.stderr);
  t.true(existsSync(file));
  const target = join(tmp(), 'fresh');
  const im = cli('import', file, '--root', target);
  t.is(im.code, 0, im.stderr);
  t.regex(im.stdout, /imported 2 caches/);
  let calls = 0;
  const counted = pointwise((p, pt) => {
    calls++;
    return fn.pointFn(p, pt);
  });
  const ra = await run(grid(target, 'a'), counted);
  t.is(ra.diagnostics.executedPoints, 0);
  t.deepEqual(ra.output, outA);
  const rb = await run(grid(target, 'b').select({ values: { x: [0, 1] } }), counted);
  t.is(rb.diagnostics.executedPoints, 0);
  t.is(calls, 0);
  const ls = JSON.parse(cli('ls', target, '--json').stdout) as Array<{ id: string; points: number }>;
  t.deepEqual(ls.map((c) => [c.id, c.points]).sort(), [[a.id, 24], [b.id, 8]].sort());
  // Importing again merges (nothing new) and succeeds.
  t.is(cli('import', file, '--root', target).code, 0);
});

test('a tampered archive is refused and nothing is written', async (t) => {
  const { root, a } = await filledRoot();
  const dir = tmp();
  const file = join(dir, 'a.tar.gz');
  t.is(cli('export', root, a.id, '-o', file).code, 0);
  const tar = gunzipSync(readFileSync(file));
  const rec = tarEntries(tar).find((e) => e.name.endsWith('.rec'))!;
  t.truthy(rec);
  tar[rec.data + rec.size - 2]! ^= 0x55; // a byte of the record, not of a header
  const bad = join(dir, 'tampered.tar.gz');
  writeFileSync(bad, gzipSync(tar));
  const target = join(dir, 'target');
  const r = cli('import', bad, '--root', target);
  failsWithOneLine(t, r, /checksum mismatch/);
  t.true(r.stderr.includes(rec.name));
  t.false(existsSync(target));
});

test('archives with a ../ path, an absolute path or a link are refused and nothing is written', async (t) => {
  const { root, a } = await filledRoot();
  const dir = tmp();
  const file = join(dir, 'a.tar.gz');
  t.is(cli('export', root, a.id, '-o', file).code, 0);
  const tar = gunzipSync(readFileSync(file));
  const evil = [
    { h: new Header({ path: '../evil.txt', type: 'File', size: 5, mode: 0o644, mtime: new Date() }), why: /"\.\.\/evil\.txt".*"\.\." component/ },
    { h: new Header({ path: '/tmp/evil-abs.txt', type: 'File', size: 5, mode: 0o644, mtime: new Date() }), why: /absolute path/ },
    { h: new Header({ path: 'caches/link', type: 'SymbolicLink', linkpath: '/etc/passwd', size: 0, mode: 0o777, mtime: new Date() }), why: /SymbolicLink entry/ },
  ];
  for (const [i, e] of evil.entries()) {
    const data = e.h.type === 'File' ? Buffer.from('evil\n') : Buffer.alloc(0);
    const f = join(dir, `evil${i}.tar.gz`);
    writeFileSync(f, gzipSync(withExtraEntry(tar, e.h, data)));
    const target = join(dir, `target${i}`);
    const r = cli('import', f, '--root', target);
    failsWithOneLine(t, r, e.why);
    t.false(existsSync(target));
  }
  t.false(existsSync(join(dirname(dir), 'evil.txt')));
  t.false(existsSync('/tmp/evil-abs.txt'));
  // An existing root is left as it was.
  const existing = tmp();
  await run(grid(existing, 'z').select({ values: { x: [0] } }), fn);
  const before = readdirSync(existing).filter((f) => statSync(join(existing, f)).isFile()).map((f) => [f, readFileSync(join(existing, f)).length]);
  const zid = grid(existing, 'z').id;
  const descs = (): string => JSON.stringify(openStore(grid(existing, 'z').root).descriptors(Buffer.from(zid, 'hex')));
  const d0 = descs();
  const r = cli('import', join(dir, 'evil0.tar.gz'), '--root', existing);
  t.not(r.code, 0);
  t.is(descs(), d0);
  t.deepEqual(JSON.parse(cli('ls', existing, '--json').stdout).map((c: { id: string }) => c.id), [zid]);
  t.is(readdirSync(existing).filter((f) => statSync(join(existing, f)).isFile()).length, before.length);
});

test('verify finds a planted bad record; --repair makes the next run recompute exactly that chunk', async (t) => {
  const root = tmp();
  const c = grid(root, 'v');
  await run(c, fn);
  t.is(cli('verify', root).code, 0);
  const store = openStore(c.root);
  const id = Buffer.from(c.id, 'hex');
  const victim = store.descriptors(id)[2]!;
  const bytes = Buffer.from(store.getRecord(id, victim.chunk)!);
  bytes[Math.floor(bytes.length / 2)]! ^= 0xff;
  store.putRawRecordForTests(id, victim.chunk, bytes);
  const found = cli('verify', root);
  failsWithOneLine(t, found, /verify found 1 problems/);
  t.true(found.stdout.includes(victim.chunk.toString('hex')));
  const fixed = cli('verify', root, '--repair');
  t.is(fixed.code, 0, fixed.stderr);
  t.regex(fixed.stdout, /repaired/);
  t.is(cli('verify', root).code, 0);
  const r = await run(c, fn);
  t.is(r.diagnostics.executedPoints, victim.present);
  t.is(r.diagnostics.executedPoints, 4);
  t.is(r.diagnostics.executedChunks, 1);
});

test('ls, show, status and stats --json parse and hold the right ids and counts', async (t) => {
  const { root, a, b } = await filledRoot();
  const ls = JSON.parse(cli('ls', root, '--json').stdout) as Array<{ id: string; chunks: number; points: number; bytes: number }>;
  t.deepEqual(ls.map((c) => c.id).sort(), [a.id, b.id].sort());
  t.like(ls.find((c) => c.id === a.id), { chunks: 6, points: 24 });
  t.like(ls.find((c) => c.id === b.id), { chunks: 2, points: 8 });

  const show = JSON.parse(cli('show', root, b.id, '--json').stdout);
  t.like(show, { id: b.id, params: { tag: 'b' }, chunks: 2, points: 8, gridPoints: 24, axisOrder: ['x', 'y'], chunkSpec: { x: 2, y: 2 } });
  t.deepEqual(show.axisValues, { x: [0, 1, 2, 3, 4, 5], y: [0, 1, 2, 3] });

  const status = JSON.parse(cli('status', root, b.id, '--json').stdout);
  t.like(status, { id: b.id, totalChunks: 6, cachedChunks: 2, partialChunks: 0, missingChunks: 4, totalPoints: 24, cachedPoints: 8, missingPoints: 16 });
  t.is(status.cached.length, 2);

  const st = cli('stats', root, '--json');
  t.is(st.code, 0, st.stderr);
  const stats = JSON.parse(st.stdout);
  t.like(stats, { caches: 2, chunks: 8, points: 32 });
  t.is(stats.bytes, ls.reduce((x, c) => x + c.bytes, 0));
  t.is(stats.perCache.length, 2);

  // Human output names the ids too.
  const human = cli('ls', root);
  t.is(human.code, 0);
  t.true(human.stdout.includes(a.id) && human.stdout.includes(b.id));
  t.regex(cli('status', root, b.id).stdout, /2 cached, 0 partial, 4 missing/);
  t.regex(cli('stats', root).stdout, /caches:\s+2/);
  t.regex(cli('show', root, a.id).stdout, /24 of 24 points/);
});

test('map prints a grid with the right cached, partial and missing cells', async (t) => {
  const root = tmp();
  const c = grid(root, 'm');
  await run(c.select({ indices: { x: { start: 0, stop: 2 } } }), fn); // row bin 0: both column bins
  await run(c.select({ values: { x: [2], y: [0] } }), fn); // one point of chunk (1, 0)
  const count = (text: string, ch: string): number =>
    text.split('\n').filter((l) => !l.startsWith('legend')).join('\n').split(ch).length - 1;
  const r = cli('map', root, c.id, '--axes', 'x,y');
  t.is(r.code, 0, r.stderr);
  const rows = r.stdout.split('\n').filter((l) => /^x=/.test(l));
  t.is(rows.length, 3);
  t.true(rows.every((l) => [...l.slice(-2)].every((ch) => '█▒·'.includes(ch))));
  t.is(count(r.stdout, '█'), 2);
  t.is(count(r.stdout, '▒'), 1);
  t.is(count(r.stdout, '·'), 3);
  t.regex(r.stdout, /legend: █ cached {2}▒ partial {2}· missing/);
  // Transposed: two rows of three.
  const tr = cli('map', root, c.id, '--axes', 'y,x');
  const trRows = tr.stdout.split('\n').filter((l) => /^y=/.test(l));
  t.is(trRows.length, 2);
  t.is(count(tr.stdout, '█'), 2);
  t.is(count(tr.stdout, '·'), 3);
  // One axis: the other is aggregated (a row is cached only when all its chunks are).
  const one = cli('map', root, c.id, '--axes', 'x');
  t.is(count(one.stdout, '█'), 1);
  t.is(count(one.stdout, '▒'), 1);
  t.is(count(one.stdout, '·'), 1);
  failsWithOneLine(t, cli('map', root, c.id, '--axes', 'x,nope'), /unknown axis "nope"/);
});

test('gc from the command line evicts to the budget', async (t) => {
  const { root, a, b } = await filledRoot();
  const before = JSON.parse(cli('stats', root, '--json').stdout);
  const r = cli('gc', root, '--max-bytes', String(before.bytes - 1));
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /evicted 1 records/);
  const after = JSON.parse(cli('stats', root, '--json').stdout);
  t.is(after.chunks, before.chunks - 1);
  t.is(cli('gc', root, '--max-bytes', '1GiB').code, 0);
  t.is(JSON.parse(cli('stats', root, '--json').stdout).chunks, before.chunks - 1);
  const all = cli('gc', root, '--max-bytes', '0', '--json');
  t.is(JSON.parse(all.stdout).bytesAfter, 0);
  t.is((await run(a, fn)).diagnostics.executedPoints, 24);
  void b;
  failsWithOneLine(t, cli('gc', root, '--max-bytes', 'lots'), /--max-bytes: cannot read "lots" as a byte size/);
});

test('rm deletes caches; errors exit non-zero with one line on stderr', async (t) => {
  const { root, a, b } = await filledRoot();
  const r = cli('rm', root, a.id);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(JSON.parse(cli('ls', root, '--json').stdout).map((c: { id: string }) => c.id), [b.id]);
  failsWithOneLine(t, cli('rm', root, a.id), /no cache [0-9a-f]{32}/);
  failsWithOneLine(t, cli('show', root, 'not-an-id'), /up to 32 hex characters/);
  failsWithOneLine(t, cli('status', root, '0'.repeat(32)), /no cache 0{32}/);
  const missingRoot = join(tmp(), 'none');
  failsWithOneLine(t, cli('ls', missingRoot), /no cache root at/);
  t.false(existsSync(missingRoot));
  failsWithOneLine(t, cli('stats', missingRoot, '--json'), /no cache root at/);
  failsWithOneLine(t, cli('frobnicate'), /unknown command "frobnicate"/);
  failsWithOneLine(t, cli('gc', root), /gc: give --max-bytes SIZE .*--max-age DURATION/);
  failsWithOneLine(t, cli('export', root, b.id), /export: missing required option -o,--output FILE; usage: chunk-memo export \[ROOT\] ID\.\.\. -o FILE/);
  failsWithOneLine(t, cli('import', join(tmp(), 'nope.tar.gz'), '--root', join(tmp(), 'r')), /cannot read/);
  failsWithOneLine(t, cli(), /missing command/);
  const notArchive = join(tmp(), 'x.tar.gz');
  writeFileSync(notArchive, 'hello, not an archive');
  failsWithOneLine(t, cli('import', notArchive, '--root', join(tmp(), 'r')), /not a valid (gzip )?archive|no manifest/);
  t.is(cli('--help').code, 0);
});
