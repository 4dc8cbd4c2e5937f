/**
 * The `chunk-memo` CLI as a new user meets it (the built bin, spawned):
 * $CHUNK_MEMO_ROOT, id prefixes, dump, rm --dry-run/--json, ls with code and
 * full params, clipanion's errors with suggestions, usage text, gc --max-age.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChunkCache, gc, run, pointwise, type Value } from '../ts/index.js';
import { openStore } from '../ts/cache/stores.js';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(repo, 'dist', 'ts', 'cli', 'main.js');
const tmp = (): string => mkdtempSync(join(tmpdir(), 'cm-cli-user-'));

interface Result { code: number; stdout: string; stderr: string }

function cli(args: string[], env: Record<string, string | undefined> = {}): Result {
  if (!existsSync(bin)) throw new Error(`${bin} is missing: run \`npm run build:ts\` first`);
  const e: NodeJS.ProcessEnv = { ...process.env, CHUNK_MEMO_ROOT: undefined, COLUMNS: '100', ...env };
  for (const k of Object.keys(e)) if (e[k] === undefined) delete e[k];
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', cwd: tmpdir(), env: e });
  if (r.status === null) throw new Error(`chunk-memo ${args.join(' ')}: ended by ${r.signal ?? r.error?.message}; stderr: ${r.stderr}`);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A failure: the exit code, exactly one stderr line `chunk-memo: ...` matching `pattern`, and no API names. */
function fails(t: { is: (a: unknown, b: unknown, m?: string) => void; regex: (a: string, r: RegExp, m?: string) => void; notRegex: (a: string, r: RegExp, m?: string) => void }, r: Result, code: number, pattern: RegExp): void {
  t.is(r.code, code, r.stderr);
  const lines = r.stderr.split('\n').filter((l) => l.length > 0);
  t.is(lines.length, 1, r.stderr);
  t.regex(lines[0] ?? '', /^chunk-memo: /);
  t.regex(lines[0] ?? '', pattern);
  t.notRegex(r.stderr, /ChunkCache\.|options\.|\(root\)|autoLoad|discover\(/, 'no API names in CLI errors');
}

const fn = pointwise((p, { x, y }) => ({ tag: p.tag as string, v: (x as number) * 10 + (y as number) }));
const grid = (root: string, tag: string, extra: Record<string, Value> = {}, code?: (...a: never[]) => unknown): ChunkCache =>
  ChunkCache.open({ root, params: { tag, ...extra }, axisValues: { x: [0, 1, 2], y: [0, 1] }, chunkSpec: { x: 2 }, ...(code ? { code } : {}) });

/** Several caches, so that some share a first hex digit. */
function manyCaches(root: string, n = 20): string[] {
  return Array.from({ length: n }, (_, i) => ChunkCache.open({ root, params: { i }, axisValues: {} }).id);
}

function sharedPrefix(ids: string[]): { prefix: string; matches: string[] } {
  const by = new Map<string, string[]>();
  for (const id of ids) by.set(id[0]!, [...(by.get(id[0]!) ?? []), id]);
  const [prefix, matches] = [...by].find(([, l]) => l.length > 1)!;
  return { prefix, matches };
}

test('$CHUNK_MEMO_ROOT is the root of commands where ROOT is optional', async (t) => {
  const root = tmp();
  const a = grid(root, 'env');
  await run(a, fn);
  const env = { CHUNK_MEMO_ROOT: root };
  const ls = cli(['ls', '--json'], env);
  t.is(ls.code, 0, ls.stderr);
  t.deepEqual(JSON.parse(ls.stdout).map((c: { id: string }) => c.id), [a.id]);
  t.is(JSON.parse(cli(['stats', '--json'], env).stdout).caches, 1);
  t.like(JSON.parse(cli(['show', a.id, '--json'], env).stdout), { id: a.id, points: 6 });
  t.like(JSON.parse(cli(['status', a.id.slice(0, 5), '--json'], env).stdout), { id: a.id, cachedPoints: 6 });
  t.is(cli(['map', a.id.slice(0, 5)], env).code, 0);
  t.is(cli(['verify'], env).code, 0);
  t.is(cli(['dump', a.id.slice(0, 5)], env).stdout.trim().split('\n').length, 6);
  t.is(cli(['gc', '--max-bytes', '1GiB'], env).code, 0);
  // An explicit ROOT still wins over the variable.
  const other = tmp();
  grid(other, 'other');
  t.deepEqual(JSON.parse(cli(['ls', other, '--json'], env).stdout).map((c: { params: { tag: string } }) => c.params.tag), ['other']);
  // import without --root writes into $CHUNK_MEMO_ROOT.
  const file = join(tmp(), 'a.tar.gz');
  t.is(cli(['export', a.id.slice(0, 6), '-o', file], env).code, 0);
  const target = join(tmp(), 'target');
  const im = cli(['import', file], { CHUNK_MEMO_ROOT: target });
  t.is(im.code, 0, im.stderr);
  t.deepEqual(JSON.parse(cli(['ls', target, '--json']).stdout).map((c: { id: string }) => c.id), [a.id]);
  // rm ID... with the default root, then the root is empty.
  const rm = cli(['rm', a.id.slice(0, 8)], env);
  t.is(rm.code, 0, rm.stderr);
  t.regex(rm.stdout, new RegExp(`removed ${a.id}`));
  t.deepEqual(JSON.parse(cli(['ls', '--json'], env).stdout), []);
  // Without the variable and without ROOT: the default root, named in the error.
  fails(t, cli(['ls']), 1, /no cache root at .*\.chunk_memo.*CHUNK_MEMO_ROOT/);
});

test('any unique id prefix is accepted; an ambiguous one is an error listing the matches', async (t) => {
  const root = tmp();
  const ids = manyCaches(root);
  const { prefix, matches } = sharedPrefix(ids);
  const one = ids[0]!;
  t.like(JSON.parse(cli(['show', root, one.slice(0, 7), '--json']).stdout), { id: one });
  t.like(JSON.parse(cli(['show', root, one.toUpperCase(), '--json']).stdout), { id: one });
  for (const cmd of ['show', 'status', 'map', 'dump']) {
    const r = cli([cmd, root, prefix]);
    fails(t, r, 1, new RegExp(`${cmd}: id prefix ${prefix} matches ${matches.length} caches`));
    for (const id of matches) t.true(r.stderr.includes(id), `${cmd} lists ${id}`);
  }
  fails(t, cli(['rm', root, prefix]), 1, /matches \d+ caches/);
  t.is(JSON.parse(cli(['ls', root, '--json']).stdout).length, ids.length, 'an ambiguous rm deletes nothing');
  const unused = '0123456789abcdef'.split('').find((h) => !ids.some((id) => id.startsWith(h)));
  if (unused) fails(t, cli(['show', root, unused]), 1, /no cache id starts with .*chunk-memo ls/);
  fails(t, cli(['show', root, 'zz-top']), 1, /up to 32 hex characters/);
  // export takes prefixes too.
  const file = join(tmp(), 'one.tar.gz');
  const ex = cli(['export', root, one.slice(0, 10), '-o', file]);
  t.is(ex.code, 0, ex.stderr);
  t.regex(ex.stdout, new RegExp(one));
});

test('dump prints axis values and output per stored point, as JSON lines or CSV', async (t) => {
  const root = tmp();
  const a = grid(root, 'dump');
  await run(a.select({ values: { x: [0, 2] } }), fn);
  const jl = cli(['dump', root, a.id]);
  t.is(jl.code, 0, jl.stderr);
  const rows = jl.stdout.trim().split('\n').map((l) => JSON.parse(l) as { x: number; y: number; output: { tag: string; v: number } });
  t.is(rows.length, 4);
  t.deepEqual(rows.map((r) => [r.x, r.y, r.output.v]).sort(), [[0, 0, 0], [0, 1, 1], [2, 0, 20], [2, 1, 21]]);
  t.true(rows.every((r) => r.output.tag === 'dump'));
  const csv = cli(['dump', root, a.id, '--format', 'csv']);
  t.is(csv.code, 0, csv.stderr);
  const lines = csv.stdout.trim().split('\n');
  t.is(lines[0], 'x,y,output.tag,output.v');
  t.deepEqual(lines.slice(1).sort(), ['0,0,dump,0', '0,1,dump,1', '2,0,dump,20', '2,1,dump,21']);
  // Values JSON cannot hold are tagged; CSV quotes what needs quoting.
  const odd = ChunkCache.open({ root, params: { k: 'odd' }, axisValues: { s: ['a,b', 'q"uote'], n: [1n] } });
  await run(odd, pointwise((_p, { s }) => (s === 'a,b' ? new Date(Date.UTC(2024, 0, 2)) : [1.5, 'x'])));
  const oj = cli(['dump', root, odd.id]).stdout.trim().split('\n').map((l) => JSON.parse(l));
  t.deepEqual(oj, [
    { n: { $bigint: '1' }, s: 'a,b', output: { $date: '2024-01-02T00:00:00.000Z' } },
    { n: { $bigint: '1' }, s: 'q"uote', output: [1.5, 'x'] },
  ]);
  const oc = cli(['dump', root, odd.id, '--format', 'csv']).stdout.trim().split('\n');
  t.deepEqual(oc, ['n,s,output', '1,"a,b",2024-01-02T00:00:00.000Z', '1,"q""uote","[1.5,""x""]"']);
  // Typed outputs.
  const typed = ChunkCache.open({ root, params: { k: 'typed' }, axisValues: { x: [1, 2, 3] } });
  await run(typed, (_p, axes) => Float64Array.from(axes.x as number[], (x) => x / 2));
  t.deepEqual(cli(['dump', root, typed.id, '--format', 'csv']).stdout.trim().split('\n'), ['x,output', '1,0.5', '2,1', '3,1.5']);
  // An empty cache dumps nothing (CSV: the header).
  const empty = grid(root, 'empty');
  t.is(cli(['dump', root, empty.id]).stdout, '');
  t.is(cli(['dump', root, empty.id, '--format', 'csv']).stdout, 'x,y,output\n');
  fails(t, cli(['dump', root, a.id, '--format', 'xml']), 1, /--format must be jsonl or csv/);
});

test('rm --dry-run deletes nothing; --json reports what was (or would be) removed', async (t) => {
  const root = tmp();
  const a = grid(root, 'a');
  const b = grid(root, 'b');
  await run(a, fn);
  const dry = cli(['rm', root, a.id.slice(0, 6), b.id, '--dry-run', '--json']);
  t.is(dry.code, 0, dry.stderr);
  const dj = JSON.parse(dry.stdout);
  t.like(dj, { dryRun: true });
  t.deepEqual(dj.caches.map((c: { id: string; records: number; points: number }) => [c.id, c.records, c.points]), [[a.id, 2, 6], [b.id, 0, 0]]);
  t.is(JSON.parse(cli(['ls', root, '--json']).stdout).length, 2);
  t.regex(cli(['rm', root, a.id, '--dry-run']).stdout, new RegExp(`would remove ${a.id} \\(2 records, 6 points`));
  const real = cli(['rm', root, a.id, '--json']);
  t.is(real.code, 0, real.stderr);
  t.like(JSON.parse(real.stdout), { dryRun: false, caches: [{ id: a.id, records: 2, points: 6 }] });
  t.deepEqual(JSON.parse(cli(['ls', root, '--json']).stdout).map((c: { id: string }) => c.id), [b.id]);
});

test('ls shows the code identity and the full params (wrapped, or on one line with --wide)', async (t) => {
  const root = tmp();
  const longParams = { model: 'transformer-large-with-a-long-name', lr: 0.000125, layers: [64, 128, 256, 512, 1024], note: 'a note that makes the params long' };
  const withCode = grid(root, 'code', longParams, (p: unknown) => p);
  const plain = grid(root, 'plain');
  const versioned = ChunkCache.open({ root, params: { tag: 'ver' }, axisValues: {}, code: 'v7' });
  const meta = JSON.parse(cli(['ls', root, '--json']).stdout) as Array<{ id: string; code: { fn?: string } | null }>;
  const digest = meta.find((c) => c.id === withCode.id)!.code!.fn!;
  t.regex(digest, /^[0-9a-f]{64}$/);
  const human = cli(['ls', root]);
  t.is(human.code, 0, human.stderr);
  t.regex(human.stdout, /^ID\s+CODE\s+PARAMS/);
  t.true(human.stdout.includes(`fn:${digest.slice(0, 12)}`));
  t.true(human.stdout.includes('version:v7'));
  t.regex(human.stdout.split('\n').find((l) => l.startsWith(plain.id))!, new RegExp(`^${plain.id}\\s+-\\s+`));
  void versioned;
  // Wrapped: every part of the params is there, no "...", and no line is wider than the terminal.
  // The PARAMS column of that cache's lines, joined.
  const lines = human.stdout.split('\n');
  const [from, to] = [lines[0]!.indexOf('PARAMS'), lines[0]!.indexOf('AXES')];
  const first = lines.findIndex((l) => l.startsWith(withCode.id));
  let end = first + 1;
  while (end < lines.length && lines[end]!.startsWith(' ')) end++;
  const flat = lines.slice(first, end).map((l) => l.slice(from, to)).join('').replace(/\s+/g, '');
  for (const part of ['transformer-large-with-a-long-name', '0.000125', '[64,128,256,512,1024]', 'anotethatmakestheparamslong']) t.true(flat.includes(part), part);
  t.false(human.stdout.includes('...'));
  t.true(end - first > 1, 'params wrapped over several lines');
  const wide = cli(['ls', root, '--wide']);
  const line = wide.stdout.split('\n').find((l) => l.startsWith(withCode.id))!;
  t.true(line.includes(JSON.stringify({ tag: 'code', ...longParams })));
  // show names the full digest.
  t.regex(cli(['show', root, withCode.id]).stdout, new RegExp(`code:\\s+fn:${digest}`));
});

test('mistyped commands and options get clipanion\'s reason and a suggestion, on one line, exit 2', (t) => {
  const root = tmp();
  fails(t, cli(['shwo', root]), 2, /unknown command "shwo"; did you mean `show`\?/);
  fails(t, cli(['stat']), 2, /did you mean `stats` or `status`\?/);
  fails(t, cli(['ls', root, '--jsn']), 2, /ls: unsupported option "--jsn"; did you mean --json\?; usage: chunk-memo ls \[ROOT\] \[--wide\] \[--json\]/);
  fails(t, cli(['gc', root, '--max-byte', '1G']), 2, /did you mean --max-bytes\?/);
  fails(t, cli(['show']), 2, /show: not enough positional arguments; usage: chunk-memo show \[ROOT\] ID \[--json\]/);
  fails(t, cli(['show', root, 'ab', 'cd']), 2, /show: extraneous positional argument \("cd"\); usage:/);
  fails(t, cli(['export', root, 'ab']), 2, /export: missing required option -o,--output FILE/);
  fails(t, cli(['--hepl']), 2, /did you mean --help\?/);
  fails(t, cli([]), 2, /missing command/);
});

test('library messages read as command-line messages', async (t) => {
  const { cliWording } = await import('../ts/cli/commands.js');
  t.is(cliWording('load: no cache 00 in /r; list caches with ChunkCache.discover(root) or `chunk-memo ls /r`', 'status'), 'status: no cache 00 in /r; list caches with `chunk-memo ls /r`');
  t.is(cliWording('ChunkCache.load: options.chunkSpec.x must be positive', 'map'), 'map: chunkSpec.x must be positive');
});

test('usage text names placeholders and shows optional ROOT and required options', (t) => {
  const help = cli(['--help']);
  t.is(help.code, 0);
  t.notRegex(help.stdout, /#\d/);
  for (const line of [
    'chunk-memo ls [ROOT] [--wide] [--json]',
    'chunk-memo show [ROOT] ID [--json]',
    'chunk-memo gc [ROOT] (--max-bytes SIZE | --max-age DURATION) [--dry-run] [--json]',
    'chunk-memo export [ROOT] ID... -o FILE [--json]',
    'chunk-memo rm [ROOT] ID... [--dry-run] [--json]',
    'chunk-memo dump [ROOT] ID [--format jsonl|csv]',
    'chunk-memo import FILE [--root ROOT] [--json]',
  ]) t.true(help.stdout.includes(line), line);
  for (const cmd of ['gc', 'export', 'map', 'dump', 'import']) {
    const h = cli([cmd, '--help']);
    t.is(h.code, 0);
    t.notRegex(h.stdout, /#\d/, cmd);
  }
  t.regex(cli(['gc', '--help']).stdout, /--max-bytes SIZE {2,}Byte budget/);
  t.regex(cli(['gc', '--help']).stdout, /--max-age DURATION {2,}Age limit/);
});

test('gc --max-age evicts records unused for longer than the limit (API: maxAge)', async (t) => {
  const root = tmp();
  const a = grid(root, 'old');
  await run(a, fn);
  // Nothing is that old yet.
  const none = cli(['gc', root, '--max-age', '30d', '--json']);
  t.is(none.code, 0, none.stderr);
  t.like(JSON.parse(none.stdout), { expired: 0, maxAge: 30 * 86400e3, maxBytes: null });
  // Two days later, a one-day limit takes everything (dry run first).
  const later = Date.now() + 2 * 86400e3;
  const dry = gc(root, { maxAge: '1d', now: later, dryRun: true });
  t.is(dry.evicted.length, 2);
  t.is(dry.expired, 2);
  t.is(JSON.parse(cli(['stats', root, '--json']).stdout).chunks, 2);
  // A newer record survives an age limit that the older ones do not.
  await new Promise((r) => setTimeout(r, 60));
  const b = grid(root, 'new');
  await run(b.select({ values: { x: [0] } }), fn);
  const times = (c: ChunkCache): number[] => openStore(root).descriptors(Buffer.from(c.id, 'hex')).map((d) => d.updatedMs);
  const [oldest, newest] = [Math.max(...times(a)), Math.min(...times(b))];
  t.true(oldest < newest);
  const now = newest + 5000;
  const cut = gc(root, { maxAge: now - (oldest + newest) / 2, now });
  t.is(cut.expired, 2);
  t.deepEqual(cut.evicted.map((e) => e.id), [a.id, a.id]);
  const left = JSON.parse(cli(['ls', root, '--json']).stdout) as Array<{ id: string; chunks: number }>;
  t.like(left.find((c) => c.id === a.id), { chunks: 0 });
  t.like(left.find((c) => c.id === b.id), { chunks: 1 });
  // From the command line: an age limit of 0 takes every record written before.
  await run(a, fn);
  const all = cli(['gc', root, '--max-age', '0s', '--dry-run']);
  t.is(all.code, 0, all.stderr);
  t.regex(all.stdout, /would evict 3 records \(8 points, .*\); 3 unused for over 0ms/);
  // Both limits: age first, then the budget.
  const both = gc(root, { maxAge: '1h', maxBytes: 0, now: Date.now() });
  t.is(both.expired, 0);
  t.is(both.evicted.length, 3);
  t.is(both.bytesAfter, 0);
  t.throws(() => gc(root, {}), { code: 'ERR_INVALID_OPTION', message: /maxBytes .*maxAge/ });
  t.throws(() => gc(root, { maxAge: 'soon' }), { code: 'ERR_INVALID_OPTION', message: /cannot read "soon" as a duration/ });
  fails(t, cli(['gc', root, '--max-age', 'soon']), 1, /--max-age: cannot read "soon" as a duration/);
});
