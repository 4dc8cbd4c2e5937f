/**
 * Which task modules a `chunk-memo worker` will import. A job names its task
 * by module URL; a worker imports only modules inside the directories and
 * packages it was started with (`--tasks DIR|PACKAGE`, default: its current
 * directory), so whoever can add jobs to the queue cannot make it run
 * arbitrary code on the host.
 */
import { existsSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { InvalidOptionError } from '../errors/index.js';

interface Entry {
  /** As given on the command line. */
  readonly given: string;
  /** Real path of the directory (or package root). */
  readonly dir: string;
  /** Package name, for packages. */
  readonly pkg?: string;
}

const inside = (dir: string, p: string): boolean => {
  const r = relative(dir, p);
  return r === '' || (!r.startsWith('..') && !isAbsolute(r));
};

/** Finds the installed root of package `name`, looking up from `from` as Node does. */
function packageRoot(name: string, from: string): string | undefined {
  for (let d = from; ; d = dirname(d)) {
    const p = join(d, 'node_modules', ...name.split('/'));
    if (existsSync(join(p, 'package.json'))) return realpathSync(p);
    if (dirname(d) === d) return undefined;
  }
}

const PACKAGE_NAME = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/i;

/** The allowed task locations of a worker. */
export class TaskAllowList {
  private readonly entries: Entry[];

  /**
   * @param given directories (absolute or relative to `cwd`) and package names; none: `cwd`
   */
  constructor(given: readonly string[], cwd = process.cwd()) {
    const list = given.length > 0 ? given : [cwd];
    this.entries = list.map((g) => {
      const asPath = resolve(cwd, g);
      const isDir = existsSync(asPath) && statSync(asPath).isDirectory();
      const pathSyntax = isAbsolute(g) || g.startsWith('.') || (g.includes('/') && !g.startsWith('@')) || g.includes(sep);
      const root = !pathSyntax && PACKAGE_NAME.test(g) ? packageRoot(g, cwd) : undefined;
      if (root) return { given: g, dir: root, pkg: g };
      if (isDir) return { given: g, dir: realpathSync(asPath) };
      if (pathSyntax || !PACKAGE_NAME.test(g)) throw new InvalidOptionError(`--tasks ${g}: not a directory`);
      throw new InvalidOptionError(`--tasks ${g}: neither a directory nor an installed package (looked in node_modules from ${cwd} up)`);
    });
  }

  /** What the status line and refusals print. */
  describe(): string {
    return this.entries.map((e) => (e.pkg ? `package ${e.pkg} (${e.dir})` : e.dir)).join(', ');
  }

  /**
   * The local URL to import for a job's `moduleUrl`, or an error saying why
   * it is refused. A module inside a package (`.../node_modules/PKG/...`)
   * whose name is allowed is found in this host's copy of the package, so
   * the coordinator and the workers may install it in different places.
   */
  resolve(moduleUrl: string): { url: string } | { refused: string } {
    const refuse = (why: string) => ({
      refused: `task module ${moduleUrl} ${why}; this worker runs tasks from ${this.describe()} (start it with --tasks DIR|PACKAGE)`,
    });
    if (!moduleUrl.startsWith('file:')) return refuse('is not a file: URL');
    let path: string;
    try {
      path = fileURLToPath(moduleUrl);
    } catch {
      return refuse('is not a valid file URL');
    }
    let real: string | undefined;
    try {
      real = realpathSync(path);
    } catch {
      real = undefined;
    }
    if (real !== undefined && this.entries.some((e) => inside(e.dir, real))) return { url: pathToFileURL(real).href };
    // A module of an allowed package, found in this host's installation.
    const parts = path.split(sep);
    const nm = parts.lastIndexOf('node_modules');
    if (nm >= 0 && nm + 1 < parts.length) {
      const scoped = parts[nm + 1]!.startsWith('@');
      const name = scoped ? `${parts[nm + 1]}/${parts[nm + 2] ?? ''}` : parts[nm + 1]!;
      const rest = parts.slice(nm + (scoped ? 3 : 2));
      const entry = this.entries.find((e) => e.pkg === name);
      if (entry) {
        let local: string;
        try {
          local = realpathSync(join(entry.dir, ...rest));
        } catch {
          return refuse(`is not in this host's copy of package ${name} (${entry.dir}); install the same version`);
        }
        if (inside(entry.dir, local)) return { url: pathToFileURL(local).href };
      }
    }
    return real === undefined ? refuse('does not exist on this host and is not part of an allowed package') : refuse('is outside the allowed task locations');
  }
}
