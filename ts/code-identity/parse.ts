/** Parsing a function's source text (`fn.toString()`) into the AST node whose identity is taken. */
import { createRequire } from 'node:module';
import type { Options } from 'acorn';
import type { AstNode } from './ast.js';

// acorn is loaded on first use (only caches with `code` need it).
let acorn: typeof import('acorn') | undefined;
const parse: typeof import('acorn').parse = (input, options) =>
  (acorn ??= createRequire(import.meta.url)('acorn') as typeof import('acorn')).parse(input, options);

/** How the source had to be wrapped to parse: methods print without `function`. */
type Wrapper = 'expression' | 'object-method' | 'class-method';

interface ParsedFunction {
  /** The function / class node whose identity is taken. */
  root: AstNode;
  wrapper: Wrapper;
  /** For method shorthand: 'method' | 'get' | 'set'. */
  methodKind?: string;
}

function tryParse(text: string): AstNode | null {
  const base: Options = { ecmaVersion: 'latest', checkPrivateFields: false };
  for (const sourceType of ['script', 'module'] as const) {
    try {
      return parse(text, { ...base, sourceType }) as unknown as AstNode;
    } catch {
      // try the next source type / wrapper
    }
  }
  return null;
}

function singleExpression(program: AstNode | null): AstNode | null {
  if (!program || program.body.length !== 1) return null;
  const stmt = program.body[0] as AstNode;
  return stmt.type === 'ExpressionStatement' ? (stmt.expression as AstNode) : null;
}

/** Function declarations / expressions, arrows, async, generators, classes. */
function asExpression(src: string): ParsedFunction | null {
  const expr = singleExpression(tryParse(`(${src}\n)`));
  if (
    expr &&
    (expr.type === 'FunctionExpression' ||
      expr.type === 'ArrowFunctionExpression' ||
      expr.type === 'ClassExpression')
  ) {
    return { root: expr, wrapper: 'expression' };
  }
  return null;
}

/** Method shorthand as printed for object / class methods: `foo(a) { ... }`, `async *foo() {}`, `get x() {}`, `[key]() {}`. */
function asObjectMethod(src: string): ParsedFunction | null {
  const obj = singleExpression(tryParse(`({${src}\n})`));
  if (obj && obj.type === 'ObjectExpression' && obj.properties.length === 1) {
    const prop = obj.properties[0] as AstNode;
    if (prop.type === 'Property' && prop.value.type === 'FunctionExpression' && (prop.method || prop.kind !== 'init')) {
      return { root: prop.value, wrapper: 'object-method', methodKind: prop.kind === 'init' ? 'method' : prop.kind };
    }
  }
  return null;
}

/** Private methods `#foo() {}` only parse inside a class body. */
function asClassMethod(src: string): ParsedFunction | null {
  const cls = singleExpression(tryParse(`(class{${src}\n})`));
  if (cls && cls.type === 'ClassExpression' && cls.body.body.length === 1) {
    const member = cls.body.body[0] as AstNode;
    if (member.type === 'MethodDefinition' && !member.static) {
      return { root: member.value, wrapper: 'class-method', methodKind: member.kind };
    }
  }
  return null;
}

/** Parses a function's source; throws (naming the way out) when it is not a function acorn can read. */
export function parseFunctionSource(src: string): ParsedFunction {
  const parsed = asExpression(src) ?? asObjectMethod(src) ?? asClassMethod(src);
  if (parsed) return parsed;
  throw new Error(
    `code: could not parse the function's source to hash it; pass a version string instead (code: '<version>'). Source: ${truncate(src)}`,
  );
}

function truncate(s: string, n = 120): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length > n ? `${one.slice(0, n)}…` : one;
}
