/**
 * Acceptance test of the published packages: `scripts/pack.mjs` packs the
 * main package and the host's platform package; a fresh project installs the
 * two tarballs with no Rust toolchain on PATH (dependencies from the npm
 * cache), runs a sweep through the public API cold then warm, lists the cache
 * with the `chunk-memo` bin, and gets the loader error once the platform
 * package is gone. Everything it writes lives under os.tmpdir().
 */
import test from 'ava';
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The environment of a user without cargo/rustc: node's directory and the system bins only. */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    // Drop what `npm test` exports about this repository (npm_package_*,
    // npm_config_local_prefix, ...); keep the user's cache and npmrc.
    if (/^npm_/i.test(k) && !/^npm_config_(cache|userconfig)$/i.test(k)) continue;
    if (/^(CARGO|RUSTUP)_HOME$/.test(k)) continue;
    env[k] = v;
  }
  env.PATH = [dirname(process.execPath), '/usr/bin', '/bin'].join(delimiter);
  return env;
}

function sh(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = userEnv()): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 });
}

function ok(r: SpawnSyncReturns<string>, what: string): string {
  if (r.status !== 0) throw new Error(`${what} failed (${r.status ?? r.signal}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const SWEEP = `
import { ChunkCache, run, pointwise } from 'chunk-memo';
const cache = ChunkCache.open({
  root: process.argv[2],
  params: { scale: 3 },
  axisValues: { x: [1, 2, 3, 4], y: [10, 20, 30] },
  chunkSpec: { x: 2 },
});
const { output, diagnostics } = await run(cache, pointwise((p, { x, y }) => p.scale * x + y));
console.log(JSON.stringify({ id: cache.id, output, executedPoints: diagnostics.executedPoints, cachedPoints: diagnostics.cachedPoints }));
`;

test('packed tarballs install without a Rust toolchain and run a sweep and the CLI', (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'cm-pack-'));
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));

  // Pack (builds the addon and the TS first when they are stale).
  const packed = ok(sh(process.execPath, [join(repo, 'scripts', 'pack.mjs'), '--out', join(tmp, 'pack')], repo, process.env), 'pack.mjs');
  const [mainTgz, platformTgz] = packed.trim().split('\n');
  t.truthy(mainTgz && platformTgz && existsSync(mainTgz) && existsSync(platformTgz), packed);

  // The main tarball ships built JS and the loader, never the addon or sources.
  const mainFiles = ok(sh('tar', ['-tzf', mainTgz!], tmp), 'tar -t').trim().split('\n');
  t.true(mainFiles.includes('package/dist/ts/index.js'));
  t.true(mainFiles.includes('package/dist/ts/cli/main.js'));
  t.true(mainFiles.includes('package/dist/ts/binding/binding.cjs'));
  t.deepEqual(mainFiles.filter((f) => f.endsWith('.node')), []);
  t.deepEqual(mainFiles.filter((f) => /^package\/(crates|ts|target|npm)\//.test(f)), []);
  const platformFiles = ok(sh('tar', ['-tzf', platformTgz!], tmp), 'tar -t').trim().split('\n');
  t.is(platformFiles.filter((f) => f.endsWith('.node')).length, 1);

  // A fresh ESM project, and a PATH without cargo.
  const app = join(tmp, 'app');
  mkdirSync(app);
  const env = userEnv();
  t.not(sh('which', ['cargo'], app, env).status, 0, 'cargo must not be on the test PATH');
  t.not(sh('which', ['rustc'], app, env).status, 0, 'rustc must not be on the test PATH');
  ok(sh('npm', ['init', '-y'], app, env), 'npm init');
  const appPkg = JSON.parse(readFileSync(join(app, 'package.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(app, 'package.json'), JSON.stringify({ ...appPkg, type: 'module' }, null, 2));

  // Dependencies come from the npm cache; fall back to the registry only for
  // what the cache lacks.
  const install = (mode: string): SpawnSyncReturns<string> =>
    sh('npm', ['install', mode, '--no-audit', '--no-fund', mainTgz!, platformTgz!], app, env);
  let r = install('--offline');
  if (r.status !== 0) {
    t.log(`npm install --offline failed, retrying with --prefer-offline:\n${r.stderr.split('\n').slice(-5).join('\n')}`);
    r = install('--prefer-offline');
  }
  ok(r, 'npm install');

  const installed = join(app, 'node_modules', 'chunk-memo');
  const platformName = (JSON.parse(ok(sh('tar', ['-xzOf', platformTgz!, 'package/package.json'], tmp), 'tar -x')) as { name: string }).name;
  const manifest = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { optionalDependencies?: Record<string, string>; version: string };
  t.is(manifest.optionalDependencies?.[platformName], manifest.version);
  t.false(readdirSync(join(installed, 'dist', 'ts', 'binding')).some((f) => f.endsWith('.node')));
  // The published package has no install script (nor sources to build).
  const published = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
  t.deepEqual(Object.keys(published.scripts ?? {}).filter((k) => /install/.test(k)), []);
  t.false(existsSync(join(installed, 'crates')) || existsSync(join(installed, 'ts')));
  // Optional peers (gpu.js, webgpu, bullmq, ioredis) are not installed with it.
  t.false(existsSync(join(app, 'node_modules', 'gpu.js')));
  const size = duBytes(join(app, 'node_modules'));
  t.log(`node_modules without the optional peers: ${(size / 2 ** 20).toFixed(1)} MiB`);
  t.true(size < 20 * 2 ** 20, `node_modules is ${(size / 2 ** 20).toFixed(1)} MiB`);
  // gpuKernel says what to install; CommonJS users are told how to load the ES module.
  writeFileSync(join(app, 'gpu.mjs'), "import { gpuKernel, runParallel, ChunkCache } from 'chunk-memo';\nconst c = ChunkCache.open({ root: process.argv[2], axisValues: { x: [1] } });\ntry { await runParallel(c, gpuKernel(function () { return 1; })); } catch (e) { console.log(e.code + ' ' + e.message); }\n");
  const gpu = ok(sh(process.execPath, ['gpu.mjs', join(tmp, 'gpu-root')], app, env), 'gpu without gpu.js');
  t.regex(gpu, /npm install gpu\.js/);
  const cjs = sh(process.execPath, ['-e', "try { require('chunk-memo') } catch (e) { console.log(e.code + ' ' + e.message) }"], app, env);
  t.regex(cjs.stdout, /^ERR_REQUIRE_ESM .*await import\('chunk-memo'\)/);

  // Cold then warm sweep through the public API, loading the platform package.
  writeFileSync(join(app, 'sweep.mjs'), SWEEP);
  const root = join(tmp, 'root');
  const cold = JSON.parse(ok(sh(process.execPath, ['sweep.mjs', root], app, env), 'cold sweep')) as { id: string; output: number[]; executedPoints: number; cachedPoints: number };
  const expected = [1, 2, 3, 4].flatMap((x) => [10, 20, 30].map((y) => 3 * x + y));
  t.deepEqual(cold.output, expected);
  t.is(cold.executedPoints, 12);
  const warm = JSON.parse(ok(sh(process.execPath, ['sweep.mjs', root], app, env), 'warm sweep')) as typeof cold;
  t.deepEqual(warm.output, expected);
  t.is(warm.id, cold.id);
  t.is(warm.executedPoints, 0);
  t.is(warm.cachedPoints, 12);

  // The bin shows the cache.
  const ls = JSON.parse(ok(sh(join(app, 'node_modules', '.bin', 'chunk-memo'), ['ls', root, '--json'], app, env), 'chunk-memo ls')) as Array<{ id: string; points: number; gridPoints: number }>;
  t.is(ls.length, 1);
  t.is(ls[0]!.id, cold.id);
  t.is(ls[0]!.points, 12);

  // Without the platform package the import fails with the loader error.
  const platformDir = join(app, 'node_modules', platformName);
  renameSync(platformDir, `${platformDir}.off`);
  try {
    const failed = sh(process.execPath, ['sweep.mjs', root], app, env);
    t.not(failed.status, 0);
    t.regex(failed.stderr, /ERR_NATIVE_BINDING/);
    t.true(failed.stderr.includes(`\`${platformName}\``), failed.stderr);
    t.true(failed.stderr.includes('npm run build:native'), failed.stderr);
  } finally {
    renameSync(`${platformDir}.off`, platformDir);
  }
});

/** Bytes of the files under a directory. */
function duBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) n += duBytes(p);
    else if (e.isFile()) n += statSync(p).size;
  }
  return n;
}
