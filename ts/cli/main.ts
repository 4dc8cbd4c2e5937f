#!/usr/bin/env node
/**
 * The `chunk-memo` command line: inspect and manage cache roots.
 *
 *   chunk-memo ls [ROOT] [--json]            chunk-memo show ROOT ID [--json]
 *   chunk-memo status ROOT ID [--json]       chunk-memo stats [ROOT] [--json]
 *   chunk-memo gc ROOT --max-bytes SIZE      chunk-memo verify ROOT [--repair]
 *   chunk-memo export ROOT ID... -o FILE     chunk-memo import FILE --root ROOT
 *   chunk-memo rm ROOT ID...                 chunk-memo map ROOT ID [--axes A,B]
 *   chunk-memo dump ROOT ID [--format jsonl|csv]
 *
 * ROOT defaults to $CHUNK_MEMO_ROOT (else .chunk_memo); an ID may be any
 * unique prefix of a cache id. Exit status 0 on success; otherwise non-zero
 * with a one-line reason on stderr (`chunk-memo: <reason>`). See docs/cli.md.
 */
import { Builtins, Cli, type BaseContext } from 'clipanion';
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { commands, oneLine } from './commands.js';
import { usageFixer, type UsageFixer } from './usage.js';
import { suggestions } from './args.js';

function version(): string {
  for (const rel of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'chunk-memo' && pkg.version) return pkg.version;
    } catch {
      // try the next location
    }
  }
  return '0.0.0';
}

/** clipanion's CLI with usage text that names placeholders (`SIZE`, not `#0`) and optional ROOTs. */
class ChunkMemoCli extends Cli {
  /** Reads the registered commands when used, so commands registered later are covered. */
  readonly fixer: UsageFixer = usageFixer(this);
  override usage(...args: Parameters<Cli['usage']>): string {
    return this.fixer.text(super.usage(...args));
  }
}

/** A parse failure as one line: clipanion's reason, a suggestion, the usage. */
function parseError(cli: ChunkMemoCli, argv: string[], e: unknown): string {
  const fixer = cli.fixer;
  const err = e as Error & { candidates?: Array<{ usage: string; reason: string | null }> };
  const word = argv[0]!;
  const known = fixer.command(word);
  if (!known) {
    if (word.startsWith('-')) {
      const near = suggestions(word, ['--help', '--version', '-h']);
      return `unsupported option ${JSON.stringify(word)}${near.length ? `; did you mean ${near[0]}?` : ''} Run \`chunk-memo --help\` for the list of commands`;
    }
    const near = suggestions(word, fixer.commandNames());
    const hint = near.length ? `; did you mean ${near.map((n) => `\`${n}\``).join(' or ')}? (${near.map((n) => fixer.synopsis(n)).join('; ')})` : '';
    return `unknown command ${JSON.stringify(word)}${hint}. Run \`chunk-memo --help\` for the list of commands`;
  }
  const usage = fixer.synopsis(word);
  const reasons = [...new Set((err.candidates ?? []).map((c) => c.reason).filter((r): r is string => !!r))];
  let reason = reasons[0] ?? '';
  // An option of the command line that the command does not know (found from argv, not from the message).
  const names = fixer.optionNames(word);
  const bad = argv.slice(1).find((a) => a.startsWith('-') && a !== '-' && a !== '--' && !names.includes(a.split('=')[0]!) && a.split('=')[0] !== '--help' && a.split('=')[0] !== '-h');
  if (bad) {
    const near = suggestions(bad.split('=')[0]!, names);
    reason = `unsupported option ${JSON.stringify(bad)}${near.length ? `; did you mean ${near.join(' or ')}?` : ''}`;
  } else if (!reason) {
    const missing = fixer.requiredOptions(word).filter((names) => !names.some((n) => argv.some((a) => a === n || a.startsWith(`${n}=`))));
    reason = missing.length
      ? `missing required option ${missing.map((names) => fixer.optionWithPlaceholder(word, names)).join(', ')}`
      : `unexpected arguments (${JSON.stringify(argv.slice(1).join(' '))})`;
  } else {
    reason = (reason.charAt(0).toLowerCase() + reason.slice(1)).replace(/\.$/, '');
  }
  return `${word}: ${oneLine(reason)}; usage: chunk-memo ${usage}`;
}

/** Runs the CLI on `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], context: Partial<BaseContext> = {}): Promise<number> {
  const ctx = { ...Cli.defaultContext, ...context } as BaseContext;
  const cli = new ChunkMemoCli({ binaryLabel: 'chunk-memo', binaryName: 'chunk-memo', binaryVersion: version(), enableColors: false });
  for (const c of commands) cli.register(c);
  cli.register((await import('./worker-command.js')).WorkerCommand);
  cli.register(Builtins.HelpCommand);
  cli.register(Builtins.VersionCommand);
  if (argv.length === 0) {
    ctx.stderr.write('chunk-memo: missing command; run `chunk-memo --help` for the list of commands\n');
    return 2;
  }
  let command;
  try {
    command = cli.process(argv, ctx);
  } catch (e) {
    ctx.stderr.write(`chunk-memo: ${oneLine(parseError(cli, argv, e))}\n`);
    return 2;
  }
  return cli.run(command, ctx);
}

/** True when this file is the program (not imported, e.g. by tests). */
const isMain = (() => {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (isMain) {
  // `chunk-memo dump ... | head`: a closed pipe ends the output quietly.
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(0);
    throw e;
  });
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`chunk-memo: ${oneLine((e as Error)?.message ?? String(e))}\n`);
      process.exitCode = 1;
    },
  );
}
