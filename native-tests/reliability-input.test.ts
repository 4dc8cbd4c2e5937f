/** Bad input to ChunkCache.open: clear ERR_INVALID_OPTION errors naming the option and the way out. */
import test from 'ava';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChunkCache, ChunkMemoError } from '../ts/index.js';

const code = (f: () => unknown): ChunkMemoError => {
  try {
    f();
  } catch (e) {
    return e as ChunkMemoError;
  }
  throw new Error('did not throw');
};

test("root: '' is refused instead of using the working directory", (t) => {
  const cwd = process.cwd();
  const dir = mkdtempSync(join(tmpdir(), 'cm-input-'));
  process.chdir(dir);
  try {
    for (const root of ['', '  ']) {
      const e = code(() => ChunkCache.open({ root, axisValues: { x: [1] } }));
      t.true(e instanceof ChunkMemoError, String(e));
      t.is(e.code, 'ERR_INVALID_OPTION');
      t.regex(e.message, /options\.root is an empty path/);
    }
    t.false(existsSync(join(dir, 'data.mdb')));
  } finally {
    process.chdir(cwd);
  }
});

test('an axis named __proto__ is ERR_INVALID_OPTION naming it', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cm-input-'));
  const axisValues = JSON.parse('{"__proto__": [1, 2], "x": [1]}') as Record<string, number[]>;
  const e = code(() => ChunkCache.open({ root, axisValues }));
  t.is(e.code, 'ERR_INVALID_OPTION', e.message);
  t.regex(e.message, /"__proto__".*reserved/);
});
