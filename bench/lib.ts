/** Shared helpers of the benchmark programs: timing, machine, tables, BENCHMARKS.md. */
import { execSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem, platform, release } from 'node:os';

export interface Row {
  bench: string;
  value: string;
  unit: string;
  target?: string;
  note?: string;
}

/** Median of `reps` timings (ms) of `fn`, after `setup` before each. */
export async function timeMedian(reps: number, fn: () => unknown, setup?: () => unknown): Promise<{ median: number; samples: number[] }> {
  const samples: number[] = [];
  for (let i = 0; i < reps; i++) {
    if (setup) await setup();
    const t = performance.now();
    await fn();
    samples.push(performance.now() - t);
  }
  const s = [...samples].sort((a, b) => a - b);
  return { median: s[Math.floor(s.length / 2)]!, samples };
}

export function machine(): string {
  const cpu = cpus();
  let rustc = 'unknown';
  try {
    rustc = execSync('rustc --version', { encoding: 'utf8' }).trim();
  } catch {
    /* not installed */
  }
  return `${cpu[0]?.model ?? 'unknown CPU'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, ${platform()} ${release()}, Node ${process.version}, ${rustc}`;
}

export function table(rows: Row[]): string {
  const head = ['benchmark', 'result', 'unit', 'target', 'note'];
  const body = rows.map((r) => [r.bench, r.value, r.unit, r.target ?? '', r.note ?? '']);
  const lines = [head, head.map(() => '---'), ...body].map((c) => `| ${c.join(' | ')} |`);
  return lines.join('\n');
}

export function fmt(n: number, digits = 1): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(digits);
}

/** Replaces (or appends) a marked section of BENCHMARKS.md. */
export function writeSection(name: string, title: string, body: string): void {
  const file = 'BENCHMARKS.md';
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const section = `${start}\n## ${title}\n\nMeasured ${new Date().toISOString().slice(0, 10)} on: ${machine()}\n\n${body}\n${end}`;
  let text = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n\nProduced by `npm run bench` (and `npm run bench:peers`); every figure quoted in the docs comes from here.\n';
  const i = text.indexOf(start);
  const j = text.indexOf(end);
  text = i >= 0 && j > i ? text.slice(0, i) + section + text.slice(j + end.length) : `${text.trimEnd()}\n\n${section}\n`;
  writeFileSync(file, text.endsWith('\n') ? text : `${text}\n`);
}
