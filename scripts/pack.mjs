// Packs what a release publishes, for the host platform only, as two
// tarballs: the main package (compiled TS, the generated loader, no addon)
// and the host's platform package (`chunk-memo-<platform>-<arch>[-abi]`, the
// addon alone). The release workflow does the same for every target of
// `napi.targets` with `napi artifacts` + `napi prepublish`.
//
//   node scripts/pack.mjs [--out DIR]      (npm run pack:host; DIR defaults to .pack)
//
// Prints the two tarball paths, main package first, one a line.
import { execFileSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({ options: { out: { type: 'string', default: '.pack' } } });
const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const out = resolve(args.out);
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const npx = process.platform === 'win32' ? 'npx.cmd' : 'npx';
// Progress goes to stderr so that stdout holds only the two paths.
const sh = (cmd, argv, cwd = root) => execFileSync(cmd, argv, { cwd, stdio: ['ignore', 2, 2] });
const capture = (cmd, argv, cwd = root) => execFileSync(cmd, argv, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 2] });

function fail(message) {
  console.error(`pack: ${message}`);
  process.exit(1);
}

// Build the host addon and the TS when stale. Never rebuild an up-to-date
// addon: overwriting a .node that another process has loaded crashes it.
sh(process.execPath, ['scripts/ensure-built.mjs']);

// The published addon is the release build, as in the release workflow:
// without the cargo feature `test-hooks` (raw record access for tests, the
// scan benchmark) that `npm run build:native` compiles into ts/binding's
// development addon. It goes to its own folder; ts/binding is left alone.
const addonDir = join(out, 'addon');
rmSync(addonDir, { recursive: true, force: true });
mkdirSync(addonDir, { recursive: true });
sh(npm, ['run', 'build:native:release', '--', '--output-dir', addonDir]);

const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const binaryName = pkg.napi.binaryName;
const hostPrefix = `${binaryName}.${process.platform}-${process.arch}`;
const addon = readdirSync(addonDir).find((f) => f.startsWith(hostPrefix) && f.endsWith('.node'));
if (!addon) fail(`no ${hostPrefix}*.node in ${addonDir}; see \`npm run build:native:release\``);
// `chunk-memo.linux-x64-gnu.node` -> `linux-x64-gnu`, napi's platformArchABI.
const platformArchAbi = addon.slice(binaryName.length + 1, -'.node'.length);

// The per-platform package folders (package.json with os/cpu/libc, README)
// come from @napi-rs/cli, for every configured target; npm/ is not committed
// and is regenerated so that it holds exactly the current targets.
rmSync(join(root, 'npm'), { recursive: true, force: true });
sh(npx, ['--no', 'napi', 'create-npm-dirs', '--package-json-path', 'package.json', '--npm-dir', 'npm']);
const platformDir = join(root, 'npm', platformArchAbi);
if (!existsSync(join(platformDir, 'package.json'))) fail(`${platformArchAbi} is not one of napi.targets in package.json`);
copyFileSync(join(addonDir, addon), join(platformDir, addon));

// Stage the main package: exactly the files `npm pack` selects from the
// repository (`files` leaves out the addon that build:ts copies into
// dist/ts/binding), and the manifest `napi prepublish` would publish, with
// optionalDependencies on the platform packages at this version.
const stage = join(out, 'stage', pkg.name);
rmSync(stage, { recursive: true, force: true });
mkdirSync(stage, { recursive: true });
const [listing] = JSON.parse(capture(npm, ['pack', '--dry-run', '--json', '--ignore-scripts']));
for (const { path } of listing.files) {
  if (path === 'package.json') continue;
  mkdirSync(dirname(join(stage, path)), { recursive: true });
  cpSync(join(root, path), join(stage, path));
}
const optionalDependencies = { ...pkg.optionalDependencies };
for (const target of readdirSync(join(root, 'npm'))) {
  const name = JSON.parse(readFileSync(join(root, 'npm', target, 'package.json'), 'utf8')).name;
  optionalDependencies[name] = pkg.version;
}
// The published package runs no install script and lists no development
// scripts or dependencies: installing it runs nothing.
const { scripts: _scripts, devDependencies: _dev, ...published } = pkg;
writeFileSync(join(stage, 'package.json'), `${JSON.stringify({ ...published, optionalDependencies }, null, 2)}\n`);

function pack(dir) {
  const [info] = JSON.parse(capture(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', out], dir));
  if (info.files.some((f) => f.path.endsWith('.node')) !== (dir === platformDir)) fail(`unexpected addon placement in ${info.filename}`);
  return join(out, info.filename);
}
const mainTarball = pack(stage);
const platformTarball = pack(platformDir);
rmSync(join(out, 'stage'), { recursive: true, force: true });
rmSync(addonDir, { recursive: true, force: true });
console.log(mainTarball);
console.log(platformTarball);
