/**
 * The published declarations (dist/ts/*.d.ts, built with stripInternal)
 * type-check on their own under --strict without skipLibCheck, and do not
 * show internals (`_core`, `_sel`, the core state) to users.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

test('published declarations type-check under --strict and hide internals', (t) => {
  const dist = fileURLToPath(new URL('../dist/ts/index.js', import.meta.url));
  const dir = mkdtempSync(join(fileURLToPath(new URL('..', import.meta.url)), '.published-types-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'consumer.mts');
  writeFileSync(
    file,
    `import { ChunkCache, run, pointwise, runParallel, defineTask, read, gpuKernel, bullmqExecutor, type CacheStatus } from ${JSON.stringify(dist)};
const cache = ChunkCache.open({ root: '/tmp/x', axisValues: { x: [1, 2] } });
const r: Promise<{ output: number[] }> = run(cache, pointwise((_p, { x }) => (x as number) * 2));
const s: CacheStatus = cache.status();
void r; void s; void runParallel; void defineTask; void read; void gpuKernel; void bullmqExecutor;
// @ts-expect-error internals are not part of the published types
void cache._core;
// @ts-expect-error internals are not part of the published types
void cache._sel;
`,
  );
  const program = ts.createProgram([file], {
    target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true, noEmit: true, skipLibCheck: false, types: ['node'],
  });
  const diags = ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? `${d.file.fileName}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}` : '';
    return `${where} ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
  t.deepEqual(diags, []);
});
