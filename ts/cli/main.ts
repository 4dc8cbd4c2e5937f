#!/usr/bin/env node
/**
 * The `chunk-memo` command line: inspect and manage cache roots.
 *
 *   chunk-memo ls [ROOT] [--json]            chunk-memo show ROOT ID [--json]
 *   chunk-memo status ROOT ID [--json]       chunk-memo stats [ROOT] [--json]
 *   chunk-memo gc ROOT --max-bytes SIZE      chunk-memo verify ROOT [--repair]
 *   chunk-memo export ROOT ID... -o FILE     chunk-memo import FILE --root ROOT
 *   chunk-memo rm ROOT ID...                 chunk-memo map ROOT ID [--axes A,B]
 *
 * Exit status 0 on success; otherwise non-zero with a one-line reason on
 * stderr (`chunk-memo: <reason>`). See docs/cli.md.
 */
import { Builtins, Cli, type BaseContext } from 'clipanion';
import { readFileSync, realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { commands, oneLine } from './commands.js';

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

/** Runs the CLI on `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], context: Partial<BaseContext> = {}): Promise<number> {
  const ctx = { ...Cli.defaultContext, ...context } as BaseContext;
  const cli = new Cli({ binaryLabel: 'chunk-memo', binaryName: 'chunk-memo', binaryVersion: version(), enableColors: false });
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
    const known = commands.find((c) => c.paths?.some((p) => p[0] === argv[0]));
    const msg = known
      ? `bad arguments for \`${argv[0]}\`; usage: ${oneLine(cli.usage(known, { detailed: false })).replace(/^\$\s*/, '')}`
      : /^Command not found/.test((e as Error).message ?? '')
        ? `unknown command ${JSON.stringify(argv[0])}; run \`chunk-memo --help\` for the list of commands`
        : oneLine((e as Error).message ?? String(e));
    ctx.stderr.write(`chunk-memo: ${msg}\n`);
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
