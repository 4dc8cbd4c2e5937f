// Builds the native addon and the TypeScript when they are missing or older
// than their sources, so `npm test`, `npm run demo` and `npm run bench` work
// on a fresh clone and stay cheap when nothing changed.
import { execSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function newest(dir, exts) {
  let t = 0;
  if (!existsSync(dir)) return t;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) t = Math.max(t, newest(p, exts));
    else if (exts.some((x) => e.name.endsWith(x))) t = Math.max(t, statSync(p).mtimeMs);
  }
  return t;
}
function mtime(p) {
  return existsSync(p) ? statSync(p).mtimeMs : 0;
}
const run = (cmd) => execSync(cmd, { stdio: 'inherit' });

const addon = readdirSync('ts/binding').find((f) => f.endsWith('.node'));
const nativeSrc = Math.max(newest('crates', ['.rs', '.toml']), mtime('Cargo.toml'), mtime('Cargo.lock'));
if (!addon || mtime(join('ts/binding', addon)) < nativeSrc) run('npm run build:native');
const tsSrc = Math.max(newest('ts', ['.ts', '.cts', '.node']), newest('bench', ['.ts']));
if (mtime('dist/ts/index.js') < tsSrc) run('npm run build:ts');
