/** The `chunk-memo` commands (clipanion). */
import { Command, Option } from 'clipanion';
import { resolve as resolvePath } from 'node:path';
import { load } from '../cache/discovery.js';
import { ChunkMemoError, InvalidOptionError } from '../errors/index.js';
import { exportCaches, importArchive } from '../manage/archive.js';
import { coverageMap, renderCoverageMap } from '../manage/coverage.js';
import { gc } from '../manage/gc.js';
import { rm, verify } from '../manage/maintain.js';
import { cacheStats, stats, type CacheStats } from '../manage/stats.js';
import { checkId, existingStore, formatBytes, formatTime, jsonSafe, metaOf, parseSize, shortValue, table } from '../manage/util.js';

export const DEFAULT_ROOT = '.chunk_memo';

/** One line: the reason of a failure. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** Base: prints failures as one line on stderr and exits 1. */
abstract class BaseCommand extends Command {
  abstract run(): Promise<number | void> | number | void;

  async execute(): Promise<number> {
    try {
      return (await this.run()) ?? 0;
    } catch (e) {
      const msg = e instanceof ChunkMemoError ? e.message : e instanceof Error ? e.message : String(e);
      this.context.stderr.write(`chunk-memo: ${oneLine(msg)}\n`);
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

export class LsCommand extends BaseCommand {
  static paths = [['ls']];
  static usage = Command.Usage({
    description: 'List the caches of a root',
    details: 'One line per cache: id, params, axes, stored chunks, points and bytes, last update. ROOT defaults to .chunk_memo.',
    examples: [['List caches', '$0 ls .chunk_memo'], ['As JSON', '$0 ls .chunk_memo --json']],
  });
  root = Option.String({ required: false, name: 'ROOT' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    const s = stats(this.root ?? DEFAULT_ROOT, 'ls');
    if (this.asJson) {
      this.json(s.perCache);
      return 0;
    }
    if (s.perCache.length === 0) {
      this.out(`no caches in ${s.root}`);
      return 0;
    }
    this.out(table(
      ['ID', 'PARAMS', 'AXES', 'CHUNKS', 'POINTS', 'BYTES', 'UPDATED'],
      s.perCache.map((c) => [c.id, shortValue(c.params, 40), axesSummary(c), String(c.chunks), `${c.points}/${c.gridPoints}`, formatBytes(c.bytes), formatTime(c.updatedAt)]),
    ));
    return 0;
  }
}

export class ShowCommand extends BaseCommand {
  static paths = [['show']];
  static usage = Command.Usage({ description: 'Show one cache: identity, axes, chunking and stored totals' });
  root = Option.String({ name: 'ROOT' });
  id = Option.String({ name: 'ID' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    checkId('show', this.id);
    const { abs, store } = existingStore(this.root, 'show');
    const meta = metaOf(store, abs, this.id, 'show');
    const st = cacheStats(abs, this.id);
    if (this.asJson) {
      this.json({ ...st, axisValues: meta.axisValues, code: meta.code });
      return 0;
    }
    const lines = [
      `id:            ${st.id}`,
      `root:          ${abs}`,
      `params:        ${shortValue(meta.params, 200)}`,
      `cacheVersion:  ${meta.cacheVersion}`,
      `code:          ${shortValue(meta.code, 80)}`,
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
  static usage = Command.Usage({ description: 'Cached, partial and missing chunks of a cache (over its stored grid and chunking)' });
  root = Option.String({ name: 'ROOT' });
  id = Option.String({ name: 'ID' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output (with every chunk)' });

  run(): number {
    checkId('status', this.id);
    existingStore(this.root, 'status');
    const cache = load(resolvePath(this.root), this.id);
    const st = cache.status();
    const summary = {
      id: this.id, totalChunks: st.totalChunks, cachedChunks: st.cached.length, partialChunks: st.partial.length,
      missingChunks: st.missing.length, totalPoints: st.totalPoints, cachedPoints: st.cachedPoints, missingPoints: st.missingPoints,
    };
    if (this.asJson) {
      this.json({ ...summary, cached: st.cached, partial: st.partial, missing: st.missing });
      return 0;
    }
    const pct = st.totalPoints ? ((100 * st.cachedPoints) / st.totalPoints).toFixed(1) : '100.0';
    this.out([
      `cache ${this.id}`,
      `chunks: ${st.totalChunks} total, ${st.cached.length} cached, ${st.partial.length} partial, ${st.missing.length} missing`,
      `points: ${st.totalPoints} total, ${st.cachedPoints} cached, ${st.missingPoints} missing (${pct}% cached)`,
    ].join('\n'));
    return 0;
  }
}

export class StatsCommand extends BaseCommand {
  static paths = [['stats']];
  static usage = Command.Usage({ description: 'Totals of a root and per cache: records, points, bytes, last access. ROOT defaults to .chunk_memo.' });
  root = Option.String({ required: false, name: 'ROOT' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    const s = stats(this.root ?? DEFAULT_ROOT);
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
  static usage = Command.Usage({
    description: 'Evict least-recently-used records until the root fits a byte budget',
    details: 'SIZE: bytes (12345) or with a unit: kB, MB, GB (powers of 1000), KiB, MiB, GiB (powers of 1024).',
    examples: [['Keep at most 10 GiB', '$0 gc .chunk_memo --max-bytes 10GiB']],
  });
  root = Option.String({ name: 'ROOT' });
  maxBytes = Option.String('--max-bytes', { required: true, description: 'Byte budget, e.g. 10MB, 1GiB, 12345' });
  dryRun = Option.Boolean('--dry-run', false, { description: 'Only report what would be evicted' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    const r = gc(this.root, { maxBytes: parseSize(this.maxBytes, '--max-bytes'), dryRun: this.dryRun });
    if (this.asJson) {
      this.json(r);
      return 0;
    }
    const points = r.evicted.reduce((x, e) => x + e.points, 0);
    const freed = r.evicted.reduce((x, e) => x + e.bytes, 0);
    this.out(
      `${this.dryRun ? 'would evict' : 'evicted'} ${r.evicted.length} records (${points} points, ${formatBytes(freed)}); ` +
        `records ${this.dryRun ? 'would' : 'now'} take ${formatBytes(r.bytesBefore - freed)} of a ${formatBytes(r.maxBytes)} budget` +
        (r.keptInUse ? `; ${r.keptInUse} records of caches in use were kept` : ''),
    );
    return 0;
  }
}

export class VerifyCommand extends BaseCommand {
  static paths = [['verify']];
  static usage = Command.Usage({
    description: 'Check every record (checksum, structure, index); --repair deletes bad records so the next run recomputes them',
    details: 'Exits 1 when problems remain (not repaired).',
  });
  root = Option.String({ name: 'ROOT' });
  repair = Option.Boolean('--repair', false, { description: 'Delete bad records' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    const r = verify(this.root, { repair: this.repair });
    if (this.asJson) this.json(r);
    else {
      for (const p of r.problems) this.out(`${p.repaired ? 'repaired' : 'BAD'} ${p.id}${p.chunk ? ` record ${p.chunk}` : ' metadata'}: ${p.reason}`);
      this.out(`checked ${r.records} records of ${r.caches} caches: ${r.problems.length} problems${r.problems.length ? (r.ok ? ', all repaired' : '') : ''}`);
    }
    if (!r.ok) {
      this.context.stderr.write(`chunk-memo: verify found ${r.problems.filter((p) => !p.repaired).length} problems in ${r.root}; run \`chunk-memo verify ${this.root} --repair\` to delete bad records\n`);
      return 1;
    }
    return 0;
  }
}

export class ExportCommand extends BaseCommand {
  static paths = [['export']];
  static usage = Command.Usage({
    description: 'Write caches to one archive (tar.gz with a manifest and SHA-256 checksums)',
    examples: [['Export two caches', '$0 export .chunk_memo 0123... 4567... -o sweep.tar.gz']],
  });
  root = Option.String({ name: 'ROOT' });
  ids = Option.Rest({ required: 1, name: 'ID' });
  output = Option.String('-o,--output', { required: true, description: 'Archive file to write' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  async run(): Promise<number> {
    const r = await exportCaches(this.root, this.ids, this.output);
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
  static usage = Command.Usage({
    description: 'Import an archive into a root (verified first; nothing is written if anything is wrong)',
    examples: [['Import', '$0 import sweep.tar.gz --root .chunk_memo']],
  });
  file = Option.String({ name: 'FILE' });
  root = Option.String('--root', DEFAULT_ROOT, { description: 'Target root (default .chunk_memo)' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  async run(): Promise<number> {
    const r = await importArchive(this.file, this.root);
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
  static usage = Command.Usage({ description: 'Delete caches (metadata and records)' });
  root = Option.String({ name: 'ROOT' });
  ids = Option.Rest({ required: 1, name: 'ID' });

  run(): number {
    for (const r of rm(this.root, this.ids)) this.out(`removed ${r.id} (${r.records} records)`);
    return 0;
  }
}

export class MapCommand extends BaseCommand {
  static paths = [['map']];
  static usage = Command.Usage({
    description: 'Coverage map of a 2-D slice: rows are bins of axis A, columns bins of axis B, one character per chunk',
    details: "'█' cached, '▒' partial, '·' missing; chunks of other axes are aggregated. Default axes: the first two of the cache.",
    examples: [['Map over x and y', '$0 map .chunk_memo 0123... --axes x,y']],
  });
  root = Option.String({ name: 'ROOT' });
  id = Option.String({ name: 'ID' });
  axes = Option.String('--axes', { description: 'A,B: row axis and column axis' });
  asJson = Option.Boolean('--json', false, { description: 'Machine-readable output' });

  run(): number {
    const axes = this.axes === undefined ? undefined : this.axes.split(',').map((s) => s.trim()).filter(Boolean);
    if (axes && axes.length === 0) throw new InvalidOptionError('map: --axes needs one or two axis names, e.g. --axes x,y');
    const m = coverageMap(this.root, this.id, axes);
    if (this.asJson) this.json(m);
    else this.out(renderCoverageMap(m));
    return 0;
  }
}

export const commands = [LsCommand, ShowCommand, StatusCommand, StatsCommand, GcCommand, VerifyCommand, ExportCommand, ImportCommand, RmCommand, MapCommand];
