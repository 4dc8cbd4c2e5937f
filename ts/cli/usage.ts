/**
 * Usage text as users read it: clipanion writes option values as `#0` and
 * cannot show an optional ROOT before ID or a named rest argument; commands
 * give their own `synopsis` and `placeholders`, and this module puts them
 * into clipanion's help and error texts. Commands without a synopsis (e.g.
 * registered by other modules) get clipanion's line with named placeholders.
 */
import type { Cli, CommandClass } from 'clipanion';

interface BuilderOption {
  names: string[];
  arity: number;
  required: boolean;
  hidden: boolean;
}

interface Registration {
  index: number;
  builder: { options: BuilderOption[] };
}

type Described = CommandClass & { synopsis?: string; placeholders?: Record<string, string> };

export interface UsageFixer {
  /** The command class whose (first) path word is `word`. */
  command(word: string): Described | null;
  commandNames(): string[];
  /** The command line after `chunk-memo`, e.g. `show [ROOT] ID [--json]`. */
  synopsis(word: string): string;
  optionNames(word: string): string[];
  /** Required options, each as its list of names. */
  requiredOptions(word: string): string[][];
  /** `--max-bytes SIZE` for an option given by its names. */
  optionWithPlaceholder(word: string, names: readonly string[]): string;
  /** Rewrites a clipanion usage or help text. */
  text(s: string): string;
}

const USAGE_TOKENS = /^(?:\s+(?:\[[^\]]*\]|<[^>]*>|\.\.\.))*\s*$/;

export function usageFixer(cli: Cli): UsageFixer {
  const regs = (): Map<Described, Registration> => (cli as unknown as { registrations: Map<Described, Registration> }).registrations;
  const byWord = (): Map<string, [Described, Registration]> => {
    const m = new Map<string, [Described, Registration]>();
    for (const [c, r] of regs()) for (const p of c.paths ?? []) if (p.length === 1 && !p[0]!.startsWith('-')) m.set(p[0]!, [c, r]);
    return m;
  };
  const placeholder = (cls: Described | null, names: readonly string[]): string => {
    const key = names.join(',');
    const own = cls?.placeholders ?? {};
    if (own[key]) return own[key]!;
    for (const n of names) if (own[n]) return own[n]!;
    for (const c of regs().keys()) {
      const p = c.placeholders ?? {};
      if (p[key]) return p[key]!;
    }
    const long = [...names].sort((a, b) => b.length - a.length)[0]!;
    return long.replace(/^-+/, '').replace(/-/g, '_').toUpperCase();
  };
  const fixPlaceholders = (s: string, cls: Described | null): string =>
    s.replace(/((?:--?[A-Za-z][\w-]*)(?:,--?[A-Za-z][\w-]*)*)((?: #\d+)+)/g, (_m, names: string, hashes: string) => {
      const list = names.split(',');
      const n = hashes.trim().split(/\s+/).length;
      return `${names}${` ${placeholder(cls, list)}`.repeat(n)}`;
    });
  const synopsis = (word: string): string => {
    const hit = byWord().get(word);
    if (!hit) return word;
    const [cls, reg] = hit;
    if (cls.synopsis) return cls.synopsis;
    const raw = (cli as unknown as { getUsageByIndex(i: number, o: object): { usage: string } }).getUsageByIndex(reg.index, { detailed: true }).usage;
    // Required options need no brackets: `<--redis #0>` -> `--redis URL`.
    return fixPlaceholders(raw.replace(/^\S+\s+/, ''), cls).replace(/<(--?[^>]+)>/g, '$1');
  };
  return {
    command: (word) => byWord().get(word)?.[0] ?? null,
    commandNames: () => [...byWord().keys()],
    synopsis,
    optionNames: (word) => (byWord().get(word)?.[1].builder.options ?? []).filter((o) => !o.hidden).flatMap((o) => o.names).concat(['--help']),
    requiredOptions: (word) => (byWord().get(word)?.[1].builder.options ?? []).filter((o) => o.required).map((o) => o.names),
    optionWithPlaceholder: (word, names) => {
      const cls = byWord().get(word)?.[0] ?? null;
      const opt = byWord().get(word)?.[1].builder.options.find((o) => o.names.join(',') === names.join(','));
      return opt && opt.arity === 0 ? names.join(',') : `${names.join(',')} ${placeholder(cls, names)}`;
    },
    text: (s) => {
      const words = byWord();
      let current: Described | null = null;
      const lines = s.split('\n').map((line) => {
        const m = /^(\s*(?:\$ |\d+\.\s+)?)chunk-memo (\S+)(.*)$/.exec(line);
        if (m && words.has(m[2]!) && USAGE_TOKENS.test(m[3]!)) {
          current = words.get(m[2]!)![0];
          return `${m[1]}chunk-memo ${synopsis(m[2]!)}`;
        }
        return fixPlaceholders(line, current);
      });
      // Re-align option lists (`  --max-bytes SIZE    description`).
      const opt = /^ {2}(-\S*(?: [^\s-]\S*)*)\s{2,}(\S.*)$/;
      for (let i = 0; i < lines.length; ) {
        let j = i;
        while (j < lines.length && opt.test(lines[j]!)) j++;
        if (j > i) {
          const rows = lines.slice(i, j).map((l) => opt.exec(l)!);
          const w = Math.max(...rows.map((r) => r[1]!.length));
          rows.forEach((r, k) => (lines[i + k] = `  ${r[1]!.padEnd(w)}    ${r[2]}`));
          i = j;
        } else i++;
      }
      return lines.join('\n');
    },
  };
}
