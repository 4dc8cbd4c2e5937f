/**
 * The loader error a user sees when no native addon fits the platform: a
 * child process whose binding lookup is forced to fail (the generated loader
 * tries only NAPI_RS_NATIVE_LIBRARY_PATH when it is set) must get a
 * ChunkMemoError naming the missing platform package and the source build.
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const nativeTs = pathToFileURL(join(repo, 'ts', 'binding', 'native.ts')).href;

/** The package suffix napi's loader picks on this machine, computed independently. */
function expectedPackage(): string {
  const { platform, arch } = process;
  if (platform === 'linux') {
    const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
    const libc = report.header?.glibcVersionRuntime ? 'gnu' : 'musl';
    return `chunk-memo-linux-${arch}-${arch === 'arm' ? `${libc}eabihf` : libc}`;
  }
  if (platform === 'win32') return `chunk-memo-win32-${arch}-msvc`;
  return `chunk-memo-${platform}-${arch}`;
}

test('a missing addon fails with ERR_NATIVE_BINDING naming the platform package and the source build', (t) => {
  const script = `
    try { await import(${JSON.stringify(nativeTs)}); console.log(JSON.stringify({ loaded: true })); }
    catch (e) { console.log(JSON.stringify({ name: e.name, code: e.code, message: e.message, hasCause: e.cause !== undefined })); }`;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: repo,
    encoding: 'utf8',
    env: { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: join(repo, 'no-such-dir', 'chunk-memo.missing.node') },
  });
  t.is(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { loaded?: boolean; name: string; code: string; message: string; hasCause: boolean };
  t.falsy(out.loaded);
  t.is(out.name, 'ChunkMemoError');
  t.is(out.code, 'ERR_NATIVE_BINDING');
  t.true(out.message.includes(`\`${expectedPackage()}\``), out.message);
  t.true(out.message.includes('npm run build:native'), out.message);
  t.true(out.message.includes('Rust toolchain'), out.message);
  // The loader's own errors are kept: the forced path is among them.
  t.true(out.message.includes('chunk-memo.missing.node'), out.message);
  t.true(out.hasCause);
});
