/** The `chunk-memo` commands (clipanion). */
import { Command, Option } from 'clipanion';
import { load } from '../cache/discovery.js';
import { ChunkMemoError, InvalidOptionError } from '../errors/index.js';
import { exportCaches, importArchive } from '../manage/index.js';
import { coverageMap, renderCoverageMap } from '../manage/coverage.js';
import { gc } from '../cache/eviction.js';
import { rm, verify } from '../manage/maintain.js';
import { cacheStats, stats, type CacheStats } from '../manage/stats.js';
import { formatBytes, formatDuration, formatTime, jsonSafe, metaOf, parseDuration, parseSize, shortValue } from '../manage/util.js';
import { cacheIdArg, openRoot, rootAndIds, rootArg } from './args.js';
import { dumpCache, type DumpFormat } from './dump.js';
import { formatCode, fullValue, table, wrap } from './format.js';

/** One line: the reason of a failure. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/**
 * Library messages in command-line words: a library function named at the
 * start becomes the command, and hints that name API calls are dropped.
 */
export function cliWording(msg: string, command: string): string {
  return msg
    .replace(/^(?:ChunkCache\.\w+|autoLoad|load|discover|findCompatible|findOverlapping|cacheStats|coverageMap|exportCaches|importArchive):\s*/, `${command}: `)
    .replace(/ChunkCache\.discover\(root\) or /g, '')
    .replace(/\boptions\.(\w+)/g, '$1');
}

const ROOT_NOTE = 'ROOT defaults to $CHUNK_MEMO_ROOT, else .chunk_memo. ID is a cache id or any unique prefix of one.';

/** Base: prints failures as one line on stderr and exits 1. */
export abstract class BaseCommand extends Command {
  /** The command line as users write it (after the binary name), e.g. `show [ROOT] ID [--json]`. */
  static synopsis?: string;
  /** Placeholders of option values in usage text, e.g. `{ '--max-bytes': 'SIZE' }`. */
  static placeholders?: Record<string, string>;

  abstract run(): Promise<number | void> | number | void;

  async execute(): Promise<number> {
    try {
      return (await this.run()) ?? 0;
    } catch (e) {
      const msg = e instanceof ChunkMemoError ? e.message : e instanceof Error ? e.message : String(e);
      this.context.stderr.write(`chunk-memo: ${oneLine(cliWording(msg, (this.constructor as { paths?: string[][] }).paths?.[0]?.[0] ?? 'chunk-memo'))}\n`);
      if (process.env.CHUNK_MEMO_DEBUG && e instanceof Error && e.stack) this.context.stderr.write(`${e.stack}\n`);
      return 1;
    }
  }

  out(text: string): void {
    this.context.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
  }

  json(v: unknown): void {
    this.out(JSON.stringify(jsonSafe(v), null, 2));
  }
}

const axesSummary = (c: Pick<CacheStats, 'axisOrder' | 'axisSizes'>): string =>
  c.axisOrder.map((a) => `${a}[${c.axisSizes[a]}]`).join(' x ') || 'singleton';

/** Width left for a wrapped column on this terminal ($COLUMNS, else 100, when not a terminal). */
function columnWidth(stdout: NodeJS.WritableStream, used: number, min = 32): number {
  const cols = (stdout as { columns?: number }).columns ?? (Number(process.env.COLUMNS || 0) || 100);
  return Math.max(min, cols - used);
}

export class LsCommand extends BaseCommand {
  static paths = [['ls']];
  static synopsis = 'ls [ROOT] [--wide] [--json]';
  static usage = Command.Usage({
    description: 'List the caches of a root',
    details: `One line per cache: id, code identity, params, axes, stored chunks, points and bytes, last update. Params are shown in full, wrapped to the terminal (--wide: on one line). ${ROOT_NOTE}`,
    examples: [['List caches', '$0 ls .chunk_memo'], ['Params on one line', '$0 ls --wide'], ['As JSON', '$0 ls .chunk_memo --json']],
  });
  root = Option.String({ required: false, name: 'ROOT' });
  wide = Option.Boolean('--wide', false, { description: 'Params on one line, never wrapped' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    const { abs } = openRoot(this.root, 'ls');
    const s = stats(abs, 'ls');
    if (this.asJson) {
      this.json(s.perCache);
      return 0;
    }
    if (s.perCache.length === 0) {
      this.out(`no caches in ${s.root}`);
      return 0;
    }
    const rows = s.perCache.map((c) => [c.id, formatCode(c.code), fullValue(c.params), axesSummary(c), String(c.chunks), `${c.points}/${c.gridPoints}`, formatBytes(c.bytes), formatTime(c.updatedAt)]);
    // Width of every column but PARAMS, with the two-space gaps.
    const others = [0, 1, 3, 4, 5, 6, 7].reduce((x, i) => x + Math.max(...rows.map((r) => r[i]!.length), 8) + 2, 0);
    const width = this.wide ? 0 : columnWidth(this.context.stdout, others);
    this.out(table(
      ['ID', 'CODE', 'PARAMS', 'AXES', 'CHUNKS', 'POINTS', 'BYTES', 'UPDATED'],
      rows.map((r) => r.map((cell, i) => (i === 2 ? wrap(cell, width) : cell))),
    ));
    return 0;
  }
}

export class ShowCommand extends BaseCommand {
  static paths = [['show']];
  static synopsis = 'show [ROOT] ID [--json]';
  static usage = Command.Usage({ description: 'Show one cache: identity, axes, chunking and stored totals', details: ROOT_NOTE });
  root = Option.String({ required: false, name: 'ROOT' });
  id = Option.String({ name: 'ID' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    const { abs, store } = openRoot(this.root, 'show');
    const id = cacheIdArg(store, abs, this.id, 'show');
    const meta = metaOf(store, abs, id, 'show');
    const st = cacheStats(abs, id);
    if (this.asJson) {
      this.json({ ...st, axisValues: meta.axisValues, code: meta.code });
      return 0;
    }
    const lines = [
      `id:            ${st.id}`,
      `root:          ${abs}`,
      `params:        ${fullValue(meta.params)}`,
      `cacheVersion:  ${meta.cacheVersion}`,
      `code:          ${formatCode(meta.code, true)}`,
      `axes:          ${axesSummary(st)}`,
      ...st.axisOrder.map((a) => `  ${a}: ${shortValue(meta.axisValues[a], 120)} (chunk ${meta.chunkSpec[a]})`),
      `stored:        ${st.chunks} records, ${st.points} of ${st.gridPoints} points, ${formatBytes(st.bytes)}`,
      `created:       ${formatTime(st.createdAt)}`,
      `updated:       ${formatTime(st.updatedAt)}`,
      `last write:    ${formatTime(st.lastWrite)}`,
      `last access:   ${formatTime(st.lastAccess)}`,
    ];
    this.out(lines.join('\n'));
    return 0;
  }
}

export class StatusCommand extends BaseCommand {
  static paths = [['status']];
  static synopsis = 'status [ROOT] ID [--json]';
  static usage = Command.Usage({ description: 'Cached, partial and missing chunks of a cache (over its stored grid and chunking)', details: ROOT_NOTE });
  root = Option.String({ required: false, name: 'ROOT' });
  id = Option.String({ name: 'ID' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output (with every chunk)' });

  run(): number {
    const { abs, store } = openRoot(this.root, 'status');
    const id = cacheIdArg(store, abs, this.id, 'status');
    const st = load(abs, id).status();
    const summary = {
      id, totalChunks: st.totalChunks, cachedChunks: st.cached.length, partialChunks: st.partial.length,
      missingChunks: st.missing.length, totalPoints: st.totalPoints, cachedPoints: st.cachedPoints, missingPoints: st.missingPoints,
    };
    if (this.asJson) {
      this.json({ ...summary, cached: st.cached, partial: st.partial, missing: st.missing });
      return 0;
    }
    const pct = st.totalPoints ? ((100 * st.cachedPoints) / st.totalPoints).toFixed(1) : '100.0';
    this.out([
      `cache ${id}`,
      `chunks: ${st.totalChunks} total, ${st.cached.length} cached, ${st.partial.length} partial, ${st.missing.length} missing`,
      `points: ${st.totalPoints} total, ${st.cachedPoints} cached, ${st.missingPoints} missing (${pct}% cached)`,
    ].join('\n'));
    return 0;
  }
}

export class StatsCommand extends BaseCommand {
  static paths = [['stats']];
  static synopsis = 'stats [ROOT] [--json]';
  static usage = Command.Usage({ description: 'Totals of a root and per cache: records, points, bytes, last access', details: ROOT_NOTE });
  root = Option.String({ required: false, name: 'ROOT' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    const { abs } = openRoot(this.root, 'stats');
    const s = stats(abs);
    if (this.asJson) {
      this.json(s);
      return 0;
    }
    this.out([
      `root:        ${s.root}`,
      `caches:      ${s.caches}`,
      `records:     ${s.chunks}`,
      `points:      ${s.points}`,
      `bytes:       ${formatBytes(s.bytes)} in records, ${formatBytes(s.diskBytes)} on disk`,
      `last access: ${formatTime(s.lastAccess)}`,
      '',
      s.perCache.length
        ? table(['ID', 'CHUNKS', 'POINTS', 'BYTES', 'CREATED', 'UPDATED', 'LAST ACCESS'], s.perCache.map((c) => [
          c.id, String(c.chunks), String(c.points), formatBytes(c.bytes), formatTime(c.createdAt), formatTime(c.updatedAt), formatTime(c.lastAccess),
        ]))
        : 'no caches',
    ].join('\n'));
    return 0;
  }
}

export class GcCommand extends BaseCommand {
  static paths = [['gc']];
  static synopsis = 'gc [ROOT] (--max-bytes SIZE | --max-age DURATION) [--dry-run] [--json]';
  static placeholders = { '--max-bytes': 'SIZE', '--max-age': 'DURATION' };
  static usage = Command.Usage({
    description: 'Evict records unused for longer than an age limit, and/or least-recently-used records down to a byte budget',
    details:
      'Needs --max-bytes, --max-age or both. With both, records older than DURATION go first, then the least recently used ones until the root fits SIZE. ' +
      'SIZE: bytes (12345) or with a unit: kB, MB, GB (powers of 1000), KiB, MiB, GiB (powers of 1024). ' +
      `DURATION: a number with a unit: ms, s, m, h, d, w (e.g. 30d, 12h, 1d12h). ${ROOT_NOTE}`,
    examples: [['Keep at most 10 GiB', '$0 gc .chunk_memo --max-bytes 10GiB'], ['Drop what was not used for 30 days', '$0 gc --max-age 30d']],
  });
  root = Option.String({ required: false, name: 'ROOT' });
  maxBytes = Option.String('--max-bytes', { description: 'Byte budget of the root, e.g. 10MB, 1GiB, 12345' });
  maxAge = Option.String('--max-age', { description: 'Age limit since last use, e.g. 30d, 12h, 90m' });
  dryRun = Option.Boolean('--dry-run', false, { description: 'Only report what would be evicted' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    if (this.maxBytes === undefined && this.maxAge === undefined) {
      throw new InvalidOptionError('gc: give --max-bytes SIZE (a byte budget), --max-age DURATION (an age limit) or both');
    }
    const { abs } = openRoot(this.root, 'gc');
    const r = gc(abs, {
      ...(this.maxBytes !== undefined ? { maxBytes: parseSize(this.maxBytes, '--max-bytes') } : {}),
      ...(this.maxAge !== undefined ? { maxAge: parseDuration(this.maxAge, '--max-age') } : {}),
      dryRun: this.dryRun,
    });
    if (this.asJson) {
      this.json(r);
      return 0;
    }
    const points = r.evicted.reduce((x, e) => x + e.points, 0);
    const freed = r.evicted.reduce((x, e) => x + e.bytes, 0);
    const why = [
      r.maxAge !== null ? `${r.expired} unused for over ${formatDuration(r.maxAge)}` : '',
      r.maxBytes !== null ? `records ${this.dryRun ? 'would' : 'now'} take ${formatBytes(r.bytesBefore - freed)} of a ${formatBytes(r.maxBytes)} budget` : `records ${this.dryRun ? 'would' : 'now'} take ${formatBytes(r.bytesBefore - freed)}`,
    ].filter(Boolean);
    this.out(
      `${this.dryRun ? 'would evict' : 'evicted'} ${r.evicted.length} records (${points} points, ${formatBytes(freed)}); ${why.join('; ')}` +
        (r.keptInUse ? `; ${r.keptInUse} records of caches in use were kept` : ''),
    );
    return 0;
  }
}

export class VerifyCommand extends BaseCommand {
  static paths = [['verify']];
  static synopsis = 'verify [ROOT] [--repair] [--json]';
  static usage = Command.Usage({
    description: 'Check every record (checksum, structure, index); --repair deletes bad records so the next run recomputes them',
    details: `Exits 1 when problems remain (not repaired). ${ROOT_NOTE}`,
  });
  root = Option.String({ required: false, name: 'ROOT' });
  repair = Option.Boolean('--repair', false, { description: 'Delete bad records' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    const { abs } = openRoot(this.root, 'verify');
    const r = verify(abs, { repair: this.repair });
    if (this.asJson) this.json(r);
    else {
      for (const p of r.problems) this.out(`${p.repaired ? 'repaired' : 'BAD'} ${p.id}${p.chunk ? ` record ${p.chunk}` : ' metadata'}: ${p.reason}`);
      this.out(`checked ${r.records} records of ${r.caches} caches: ${r.problems.length} problems${r.problems.length ? (r.ok ? ', all repaired' : '') : ''}`);
    }
    if (!r.ok) {
      this.context.stderr.write(`chunk-memo: verify found ${r.problems.filter((p) => !p.repaired).length} problems in ${r.root}; run \`chunk-memo verify ${abs} --repair\` to delete bad records\n`);
      return 1;
    }
    return 0;
  }
}

export class ExportCommand extends BaseCommand {
  static paths = [['export']];
  static synopsis = 'export [ROOT] ID... -o FILE [--json]';
  static placeholders = { '-o,--output': 'FILE' };
  static usage = Command.Usage({
    description: 'Write caches to one archive (tar.gz with a manifest and SHA-256 checksums)',
    details: `The first argument is ROOT when several are given and it is a path or not an id. ${ROOT_NOTE}`,
    examples: [['Export two caches', '$0 export .chunk_memo 0123ab 4567cd -o sweep.tar.gz']],
  });
  args = Option.Rest({ name: 'ID' });
  output = Option.String('-o,--output', { required: true, description: 'Archive file to write' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  async run(): Promise<number> {
    const { root, ids } = rootAndIds(this.args, 'export');
    const { abs, store } = openRoot(root, 'export');
    const full = ids.map((id) => cacheIdArg(store, abs, id, 'export'));
    const r = await exportCaches(abs, full, this.output);
    if (this.asJson) this.json(r);
    else {
      for (const c of r.caches) this.out(`${c.id}: ${c.records} records, ${c.points} points${c.skippedCorrupt ? ` (${c.skippedCorrupt} bad records left out)` : ''}`);
      this.out(`wrote ${r.file} (${formatBytes(r.bytes)})`);
    }
    return 0;
  }
}

export class ImportCommand extends BaseCommand {
  static paths = [['import']];
  static synopsis = 'import FILE [--root ROOT] [--json]';
  static placeholders = { '--root': 'ROOT' };
  static usage = Command.Usage({
    description: 'Import an archive into a root (verified first; nothing is written if anything is wrong)',
    details: 'The root is created if absent. --root defaults to $CHUNK_MEMO_ROOT, else .chunk_memo.',
    examples: [['Import', '$0 import sweep.tar.gz --root .chunk_memo']],
  });
  file = Option.String({ name: 'FILE' });
  root = Option.String('--root', { description: 'Target root (default $CHUNK_MEMO_ROOT, else .chunk_memo)' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  async run(): Promise<number> {
    const r = await importArchive(this.file, rootArg(this.root));
    if (this.asJson) this.json(r);
    else {
      for (const c of r.caches) this.out(`${c.id}: ${c.records} records, ${c.points} points (${c.created ? 'new cache' : 'merged'})`);
      this.out(`imported ${r.caches.length} caches into ${r.root}`);
    }
    return 0;
  }
}

export class RmCommand extends BaseCommand {
  static paths = [['rm']];
  static synopsis = 'rm [ROOT] ID... [--dry-run] [--json]';
  static usage = Command.Usage({
    description: 'Delete caches (metadata and records)',
    details: `An unknown or ambiguous id deletes nothing. The first argument is ROOT when several are given and it is a path or not an id. ${ROOT_NOTE}`,
    examples: [['See what would go', '$0 rm .chunk_memo 0123ab --dry-run'], ['Delete', '$0 rm .chunk_memo 0123ab 4567cd']],
  });
  args = Option.Rest({ name: 'ID' });
  dryRun = Option.Boolean('--dry-run', false, { description: 'Only report what would be deleted' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    const { root, ids } = rootAndIds(this.args, 'rm');
    const { abs, store } = openRoot(root, 'rm');
    const full = [...new Set(ids.map((id) => cacheIdArg(store, abs, id, 'rm')))];
    const sizes = new Map(full.map((id) => [id, store.summary(Buffer.from(id, 'hex'))]));
    const done = this.dryRun ? full.map((id) => ({ id, records: sizes.get(id)!.records })) : rm(abs, full);
    const list = done.map((r) => ({ id: r.id, records: r.records, points: sizes.get(r.id)!.points, bytes: sizes.get(r.id)!.bytes }));
    if (this.asJson) {
      this.json({ root: abs, dryRun: this.dryRun, caches: list });
      return 0;
    }
    for (const r of list) this.out(`${this.dryRun ? 'would remove' : 'removed'} ${r.id} (${r.records} records, ${r.points} points, ${formatBytes(r.bytes)})`);
    return 0;
  }
}

export class MapCommand extends BaseCommand {
  static paths = [['map']];
  static synopsis = 'map [ROOT] ID [--axes A,B] [--json]';
  static placeholders = { '--axes': 'A,B' };
  static usage = Command.Usage({
    description: 'Coverage map of a 2-D slice: rows are bins of axis A, columns bins of axis B, one character per chunk',
    details: `'█' cached, '▒' partial, '·' missing; chunks of other axes are aggregated. Default axes: the first two of the cache. ${ROOT_NOTE}`,
    examples: [['Map over x and y', '$0 map .chunk_memo 0123ab --axes x,y']],
  });
  root = Option.String({ required: false, name: 'ROOT' });
  id = Option.String({ name: 'ID' });
  axes = Option.String('--axes', { description: 'A,B: row axis and column axis' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    const axes = this.axes === undefined ? undefined : this.axes.split(',').map((s) => s.trim()).filter(Boolean);
    if (axes && axes.length === 0) throw new InvalidOptionError('map: --axes needs one or two axis names, e.g. --axes x,y');
    const { abs, store } = openRoot(this.root, 'map');
    const id = cacheIdArg(store, abs, this.id, 'map');
    const m = coverageMap(abs, id, axes);
    if (this.asJson) this.json(m);
    else this.out(renderCoverageMap(m));
    return 0;
  }
}

export class DumpCommand extends BaseCommand {
  static paths = [['dump']];
  static synopsis = 'dump [ROOT] ID [--format jsonl|csv]';
  static placeholders = { '--format': 'jsonl|csv' };
  static usage = Command.Usage({
    description: 'Print every stored point of a cache: its axis values and its output',
    details:
      'jsonl (default): one JSON object per point, the axis values under their names and the output under "output"; values JSON cannot hold are tagged as in --json output. ' +
      'csv: a header row, then the axis values and the output (outputs that are objects get one column per key, output.KEY). ' +
      `Points come chunk by chunk (grid order inside a chunk); missing points are left out. ${ROOT_NOTE}`,
    examples: [['As JSON lines', '$0 dump .chunk_memo 0123ab'], ['As CSV', '$0 dump .chunk_memo 0123ab --format csv > sweep.csv']],
  });
  root = Option.String({ required: false, name: 'ROOT' });
  id = Option.String({ name: 'ID' });
  format = Option.String('--format', 'jsonl', { description: 'jsonl (default) or csv' });

  run(): number {
    const format = this.format.toLowerCase();
    if (format !== 'jsonl' && format !== 'csv') throw new InvalidOptionError(`dump: --format must be jsonl or csv (got ${JSON.stringify(this.format)})`);
    const { abs, store } = openRoot(this.root, 'dump');
    const id = cacheIdArg(store, abs, this.id, 'dump');
    dumpCache(load(abs, id), format as DumpFormat, (text) => this.context.stdout.write(text));
    return 0;
  }
}

export const commands = [LsCommand, ShowCommand, StatusCommand, StatsCommand, GcCommand, VerifyCommand, ExportCommand, ImportCommand, RmCommand, MapCommand, DumpCommand];
