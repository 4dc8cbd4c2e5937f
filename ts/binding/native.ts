/**
 * The only module that loads the native binding. Everything else imports the
 * typed wrappers from here; binding errors become `ChunkMemoError`s.
 */
import { createRequire } from 'node:module';
import { ChunkMemoError } from '../errors/index.js';
import type * as Binding from './binding.cjs';

const require = createRequire(import.meta.url);

function load(): typeof Binding {
  try {
    return require('./binding.cjs') as typeof Binding;
  } catch (e) {
    throw new ChunkMemoError(
      'ERR_NATIVE_BINDING',
      `chunk-memo could not load its native addon for ${process.platform}-${process.arch}: ` +
        `${(e as Error).message}\nInstall the matching platform package (chunk-memo-${process.platform}-${process.arch}*), ` +
        'or build from source with a Rust toolchain: `npm run build:native`.',
      { cause: e },
    );
  }
}

export const native: typeof Binding = load();
export type { BindingStore, BindingGrid, BindingPlan, BindingChunkData, BindingDescriptor, BindingAxisPlan } from './binding.cjs';
