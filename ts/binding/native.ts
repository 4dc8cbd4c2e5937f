/**
 * The only module that loads the native binding. Everything else imports the
 * typed wrappers from here; binding errors become `ChunkMemoError`s.
 */
import { createRequire } from 'node:module';
import { ChunkMemoError } from '../errors/index.js';
import type * as Binding from './binding.cjs';

const require = createRequire(import.meta.url);

/** True on a Linux whose C library is musl (no glibc version in the report). */
function isMusl(): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const report = process.report.getReport() as { header?: { glibcVersionRuntime?: string } };
    return !report.header?.glibcVersionRuntime;
  } catch {
    return false;
  }
}

/**
 * The platform package that holds the prebuilt addon for this process, named
 * as the generated loader (binding.cjs) looks it up:
 * `chunk-memo-<platform>-<arch>[-abi]`.
 */
function platformPackageName(): string {
  const { platform, arch } = process;
  let suffix = `${platform}-${arch}`;
  if (platform === 'linux') {
    const musl = isMusl();
    suffix += arch === 'arm' ? (musl ? '-musleabihf' : '-gnueabihf') : musl ? '-musl' : '-gnu';
  } else if (platform === 'win32') {
    suffix += '-msvc';
  } else if (platform === 'android' && arch === 'arm') {
    suffix += '-eabi';
  }
  return `chunk-memo-${suffix}`;
}

/** The messages of an error and of its `cause` chain, one a line. */
function causes(e: unknown): string {
  const lines: string[] = [];
  for (let c = e; c instanceof Error && lines.length < 8; c = c.cause) lines.push(`  - ${c.message.split('\n')[0]}`);
  return lines.join('\n');
}

function load(): typeof Binding {
  try {
    return require('./binding.cjs') as typeof Binding;
  } catch (e) {
    const pkg = platformPackageName();
    throw new ChunkMemoError(
      'ERR_NATIVE_BINDING',
      `chunk-memo could not load its native addon for ${process.platform}-${process.arch}: ` +
        `the platform package \`${pkg}\` is missing or does not load.\n` +
        `- Prebuilt binaries come as optional dependencies of chunk-memo: reinstall without --omit=optional ` +
        `(or \`npm install ${pkg}\`); a lockfile made on another platform can lack it.\n` +
        '- No prebuilt binary for this platform? Build from source in a clone of the repository with a Rust ' +
        'toolchain: `npm install && npm run build:native`.\n' +
        `Load errors:\n${causes(e)}`,
      { cause: e },
    );
  }
}

export const native: typeof Binding = load();
export type { BindingStore, BindingGrid, BindingPlan, BindingPendingWrite, BindingChunkData, BindingDescriptor, BindingAxisPlan, BindingResolved } from './binding.cjs';
