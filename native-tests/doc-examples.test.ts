/**
 * Every ```ts block of README.md and docs/*.md type-checks under --strict.
 *
 * Each block becomes one in-memory module beside
 * fixtures/doc-examples/samples.d.ts. Many blocks are fragments: they use API
 * names they do not import (`run`, `ChunkCache`) and sample names they never
 * define (`cache`, `root`, `train`). A first compile finds those unresolved
 * names; each block then gets one extra first line that imports them, public
 * names from `chunk-memo` (mapped to ts/index.ts, whose exports are read with
 * the compiler API) and sample names from ./samples.js. The second compile
 * must report nothing; a failure lists every diagnostic at its doc file and
 * line. A block that is not code (a signature listing) belongs in ```text.
 */
import test from 'ava';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const DIR = path.join(REPO, 'native-tests', 'fixtures', 'doc-examples');
const SAMPLES = path.join(DIR, 'samples.d.ts');
const INDEX = path.join(REPO, 'ts', 'index.ts');

interface Block {
  /** Doc file, relative to the repository root. */
  doc: string;
  /** 1-based line of the block's first code line in the doc. */
  line: number;
  code: string;
  /** Virtual path of the module compiled for the block. */
  file: string;
}

/** The ```ts (or ```typescript) blocks of README.md and docs/*.md, in file order. */
function extractBlocks(): Block[] {
  const docs = ['README.md', ...fs.readdirSync(path.join(REPO, 'docs')).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
  const blocks: Block[] = [];
  for (const doc of docs) {
    const lines = fs.readFileSync(path.join(REPO, doc), 'utf8').split(/\r?\n/);
    for (let i = 0; i < lines.length; i++) {
      const open = /^(\s*)(`{3,}|~{3,})\s*(ts|typescript)\s*$/.exec(lines[i]!);
      if (!open) continue;
      const [, indent, fence] = open;
      const body: string[] = [];
      let j = i + 1;
      for (; j < lines.length && !lines[j]!.trim().startsWith(fence!); j++) body.push(lines[j]!.slice(indent!.length));
      const name = `${doc.replace(/[^A-Za-z0-9]+/g, '-')}-${i + 2}.ts`;
      blocks.push({ doc, line: i + 2, code: body.join('\n'), file: path.join(DIR, name) });
      i = j;
    }
  }
  return blocks;
}

const OPTIONS: ts.CompilerOptions = {
  target: ts.ScriptTarget.ES2022,
  lib: ['lib.es2023.d.ts', 'lib.esnext.disposable.d.ts'],
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  strict: true,
  noImplicitAny: true,
  noEmit: true,
  skipLibCheck: true,
  esModuleInterop: true,
  types: ['node'],
  paths: { 'chunk-memo': [INDEX] },
};

/** A compiler host that serves the blocks' modules from memory. */
function hostFor(sources: Map<string, string>): ts.CompilerHost {
  const host = ts.createCompilerHost(OPTIONS, true);
  const { getSourceFile, fileExists, readFile } = host;
  host.fileExists = (f) => sources.has(path.resolve(f)) || fileExists.call(host, f);
  host.readFile = (f) => sources.get(path.resolve(f)) ?? readFile.call(host, f);
  host.getSourceFile = (f, lang, onError, create) => {
    const text = sources.get(path.resolve(f));
    return text === undefined ? getSourceFile.call(host, f, lang, onError, create) : ts.createSourceFile(f, text, lang, true);
  };
  return host;
}

/** Names exported by a module, each marked whether it has a value meaning. */
function exportsOf(program: ts.Program, file: string): Map<string, boolean> {
  const checker = program.getTypeChecker();
  const sf = program.getSourceFile(file);
  const mod = sf && checker.getSymbolAtLocation(sf);
  if (!mod) throw new Error(`no module symbol for ${file}`);
  const out = new Map<string, boolean>();
  for (const sym of checker.getExportsOfModule(mod)) {
    const target = sym.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(sym) : sym;
    out.set(sym.name, (target.flags & ts.SymbolFlags.Value) !== 0);
  }
  return out;
}

/** Cannot find name 'x' (2304), ... Did you mean (2552), no value for shorthand property 'x' (18004). */
const UNRESOLVED = new Set([2304, 2552, 18004]);

/** `import { a, type B } from 'spec';` for the given names, or '' for none. */
function importLine(names: string[], kinds: Map<string, boolean>, spec: string): string {
  if (names.length === 0) return '';
  const list = names.sort().map((n) => (kinds.get(n) ? n : `type ${n}`));
  return `import { ${list.join(', ')} } from '${spec}'; `;
}

function describe(d: ts.Diagnostic, blocks: Map<string, Block>): string {
  const message = ts.flattenDiagnosticMessageText(d.messageText, '\n    ');
  const block = d.file && blocks.get(path.resolve(d.file.fileName));
  if (!d.file || d.start === undefined) return `TS${d.code}: ${message}`;
  const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
  const source = d.file.text.split('\n')[line] ?? '';
  if (!block) return `${path.relative(REPO, d.file.fileName)}:${line + 1}:${character + 1} TS${d.code}: ${message}`;
  // line 0 is the added import line; block line k (0-based) is file line k + 1
  const where = line === 0 ? `${block.doc}:${block.line - 1} (imports added to the block)` : `${block.doc}:${block.line + line - 1}:${character + 1}`;
  return `${where} TS${d.code}: ${message}\n    | ${source.trim()}`;
}

test('every ```ts example of README.md and docs/*.md type-checks under --strict', (t) => {
  const blocks = extractBlocks();
  t.true(blocks.length >= 20, `only ${blocks.length} blocks found`);
  const byFile = new Map(blocks.map((b) => [b.file, b]));
  // each block is a module even without an import or export of its own
  const sources = new Map(blocks.map((b) => [b.file, `\n${b.code}\nexport {};\n`]));
  const roots = [INDEX, SAMPLES, ...byFile.keys()];

  const first = ts.createProgram({ rootNames: roots, options: OPTIONS, host: hostFor(sources) });
  const api = exportsOf(first, INDEX);
  const samples = exportsOf(first, SAMPLES);
  t.true(api.has('ChunkCache') && api.has('run'), 'public exports of ts/index.ts not found');
  const shadowing = [...samples.keys()].filter((n) => api.has(n));
  t.deepEqual(shadowing, [], 'samples.d.ts must not declare public API names');

  for (const b of blocks) {
    const sf = first.getSourceFile(b.file)!;
    const missing = new Set<string>();
    for (const d of first.getSemanticDiagnostics(sf)) {
      if (UNRESOLVED.has(d.code) && d.start !== undefined && d.length) missing.add(sf.text.slice(d.start, d.start + d.length));
    }
    const fromApi = [...missing].filter((n) => api.has(n));
    const fromSamples = [...missing].filter((n) => !api.has(n) && samples.has(n));
    const header = importLine(fromApi, api, 'chunk-memo') + importLine(fromSamples, samples, './samples.js');
    sources.set(b.file, `${header}\n${b.code}\nexport {};\n`);
  }

  const second = ts.createProgram({ rootNames: roots, options: OPTIONS, host: hostFor(sources), oldProgram: first });
  const diagnostics = ts.getPreEmitDiagnostics(second);
  const report = diagnostics.map((d) => describe(d, byFile));
  if (report.length === 0) t.pass();
  else t.fail(`${report.length} diagnostics in the examples (a fragment may use public API names and the names of fixtures/doc-examples/samples.d.ts without defining them, no others):\n${report.join('\n')}`);
});
