// Code-aware identity (SPEC §4.4).
//
// `code: fn` binds a cache to the *logic* of a function: its source is parsed
// with acorn and re-serialised from the AST into a compact canonical string, so
// comments, whitespace, line breaks, semicolons vs ASI, quote style, trailing
// commas, redundant parentheses and the function's own name do not matter,
// while any change to an operator, literal, identifier or statement does.
// Free variables (identifiers captured from an enclosing scope) cannot be
// hashed; they are reported so the caller can warn about them.
// `code: 'string'` is a user-chosen version label and is used verbatim.

import { createRequire } from 'node:module';
import type { Options } from 'acorn';

// acorn is loaded on first use (only caches with `code` need it).
let acorn: typeof import('acorn') | undefined;
const parse: typeof import('acorn').parse = (input, options) => (acorn ??= createRequire(import.meta.url)('acorn') as typeof import('acorn')).parse(input, options);

export interface NormalizedCode {
  /** Canonical form to hash: AST serialisation for functions, the label itself for versions. */
  normalized: string;
  /** Identifiers the function reads from an enclosing scope (sorted, unique; well-known globals excluded). */
  freeVariables: string[];
  kind: 'function' | 'version';
}

/** Loose view of an ESTree node as produced by acorn. */
interface AstNode {
  type: string;
  [key: string]: any;
}

/**
 * Globals that are deterministic enough (or environment plumbing) that using
 * them should not trigger a free-variable warning.
 */
const KNOWN_GLOBALS: ReadonlySet<string> = new Set([
  // value properties
  'globalThis', 'undefined', 'NaN', 'Infinity',
  // functions
  'isNaN', 'isFinite', 'parseInt', 'parseFloat', 'eval',
  'encodeURI', 'encodeURIComponent', 'decodeURI', 'decodeURIComponent', 'escape', 'unescape',
  // fundamental objects and namespaces
  'Object', 'Function', 'Boolean', 'Symbol', 'Number', 'BigInt', 'Math', 'Date', 'String',
  'RegExp', 'Array', 'JSON', 'Reflect', 'Proxy', 'Intl', 'Atomics', 'Iterator',
  'Promise', 'Map', 'Set', 'WeakMap', 'WeakSet', 'WeakRef', 'FinalizationRegistry',
  // errors
  'Error', 'AggregateError', 'EvalError', 'RangeError', 'ReferenceError', 'SyntaxError',
  'TypeError', 'URIError', 'SuppressedError', 'DOMException',
  // binary data
  'ArrayBuffer', 'SharedArrayBuffer', 'DataView',
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
  'Int32Array', 'Uint32Array', 'Float16Array', 'Float32Array', 'Float64Array',
  'BigInt64Array', 'BigUint64Array',
  // host (Node / web) APIs
  'console', 'process', 'Buffer', 'require', 'module', 'exports', '__dirname', '__filename',
  'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate',
  'queueMicrotask', 'structuredClone', 'performance', 'crypto', 'fetch', 'atob', 'btoa',
  'URL', 'URLSearchParams', 'TextEncoder', 'TextDecoder', 'AbortController', 'AbortSignal',
  'Blob', 'Event', 'EventTarget', 'MessageChannel', 'MessagePort', 'BroadcastChannel',
  // always in scope inside non-arrow functions
  'arguments',
]);

/**
 * esbuild's keepNames helper (`__name(fn, "fn")`), injected by tsx and other
 * bundlers. Calls to it are stripped from the normalised form so that the same
 * source hashes alike whether it was run through tsx or compiled by tsc.
 */
const NAME_HELPER = '__name';

const NATIVE_RE = /\{\s*\[native code\]\s*\}\s*$/;

/** Position / raw-text fields dropped from the serialisation. */
const SKIP_KEYS: ReadonlySet<string> = new Set(['type', 'start', 'end', 'loc', 'range', 'raw', 'sourceFile']);

// ---------------------------------------------------------------------------
// parsing

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

function parseFunctionSource(src: string): ParsedFunction {
  // function declarations / expressions, arrows, async, generators, classes
  const expr = singleExpression(tryParse(`(${src}\n)`));
  if (
    expr &&
    (expr.type === 'FunctionExpression' ||
      expr.type === 'ArrowFunctionExpression' ||
      expr.type === 'ClassExpression')
  ) {
    return { root: expr, wrapper: 'expression' };
  }
  // method shorthand as printed for object / class methods: `foo(a) { ... }`,
  // `async *foo() {}`, `get x() {}`, `[key]() {}`
  const obj = singleExpression(tryParse(`({${src}\n})`));
  if (obj && obj.type === 'ObjectExpression' && obj.properties.length === 1) {
    const prop = obj.properties[0] as AstNode;
    if (prop.type === 'Property' && prop.value.type === 'FunctionExpression' && (prop.method || prop.kind !== 'init')) {
      return { root: prop.value, wrapper: 'object-method', methodKind: prop.kind === 'init' ? 'method' : prop.kind };
    }
  }
  // private methods `#foo() {}` only parse inside a class body
  const cls = singleExpression(tryParse(`(class{${src}\n})`));
  if (cls && cls.type === 'ClassExpression' && cls.body.body.length === 1) {
    const member = cls.body.body[0] as AstNode;
    if (member.type === 'MethodDefinition' && !member.static) {
      return { root: member.value, wrapper: 'class-method', methodKind: member.kind };
    }
  }
  throw new Error(
    `code: could not parse the function's source to hash it; pass a version string instead (code: '<version>'). Source: ${truncate(src)}`,
  );
}

function truncate(s: string, n = 120): string {
  const one = s.replace(/\s+/g, ' ');
  return one.length > n ? `${one.slice(0, n)}…` : one;
}

// ---------------------------------------------------------------------------
// scope analysis

type Binding = 'local' | 'self';

class Scope {
  readonly names = new Map<string, Binding>();
  constructor(readonly parent: Scope | null) {}

  declare(name: string, binding: Binding = 'local'): void {
    this.names.set(name, binding);
  }

  lookup(name: string): Binding | undefined {
    for (let s: Scope | null = this; s; s = s.parent) {
      const b = s.names.get(name);
      if (b) return b;
    }
    return undefined;
  }
}

function boundNames(pattern: AstNode | null, out: string[] = []): string[] {
  if (!pattern) return out;
  switch (pattern.type) {
    case 'Identifier':
      out.push(pattern.name);
      break;
    case 'ObjectPattern':
      for (const p of pattern.properties as AstNode[]) {
        boundNames(p.type === 'RestElement' ? p.argument : p.value, out);
      }
      break;
    case 'ArrayPattern':
      for (const el of pattern.elements as (AstNode | null)[]) boundNames(el, out);
      break;
    case 'AssignmentPattern':
      boundNames(pattern.left, out);
      break;
    case 'RestElement':
      boundNames(pattern.argument, out);
      break;
    default:
      break;
  }
  return out;
}

function isNode(v: unknown): v is AstNode {
  return typeof v === 'object' && v !== null && typeof (v as { type?: unknown }).type === 'string';
}

interface Analysis {
  /** free name -> referencing Identifier nodes */
  free: Map<string, AstNode[]>;
  /** Identifier nodes that refer to the root function's / class's own name */
  selfRefs: Set<AstNode>;
}

function analyze(root: AstNode): Analysis {
  const free = new Map<string, AstNode[]>();
  const selfRefs = new Set<AstNode>();

  const reference = (id: AstNode, scope: Scope): void => {
    const b = scope.lookup(id.name);
    if (b === 'self') selfRefs.add(id);
    else if (b === undefined) {
      const list = free.get(id.name);
      if (list) list.push(id);
      else free.set(id.name, [id]);
    }
  };

  /** `var` declarations and function declarations, hoisted to the function scope. */
  const hoistVars = (node: AstNode | null | undefined, scope: Scope): void => {
    if (!node) return;
    switch (node.type) {
      case 'VariableDeclaration':
        if (node.kind === 'var') {
          for (const d of node.declarations as AstNode[]) for (const n of boundNames(d.id)) scope.declare(n);
        }
        return;
      case 'FunctionDeclaration':
        // top level: a real var binding; in blocks: Annex B hoisting (sloppy mode)
        if (node.id) scope.declare(node.id.name);
        return;
      case 'BlockStatement':
        for (const s of node.body as AstNode[]) hoistVars(s, scope);
        return;
      case 'IfStatement':
        hoistVars(node.consequent, scope);
        hoistVars(node.alternate, scope);
        return;
      case 'ForStatement':
        hoistVars(node.init, scope);
        hoistVars(node.body, scope);
        return;
      case 'ForInStatement':
      case 'ForOfStatement':
        hoistVars(node.left, scope);
        hoistVars(node.body, scope);
        return;
      case 'WhileStatement':
      case 'DoWhileStatement':
      case 'LabeledStatement':
      case 'WithStatement':
        hoistVars(node.body, scope);
        return;
      case 'TryStatement':
        hoistVars(node.block, scope);
        if (node.handler) hoistVars(node.handler.body, scope);
        hoistVars(node.finalizer, scope);
        return;
      case 'SwitchStatement':
        for (const c of node.cases as AstNode[]) for (const s of c.consequent as AstNode[]) hoistVars(s, scope);
        return;
      default:
        return;
    }
  };

  /** let / const / class / function declared directly in a statement list. */
  const hoistLexical = (statements: AstNode[], scope: Scope): void => {
    for (const s of statements) {
      if (s.type === 'VariableDeclaration' && s.kind !== 'var') {
        for (const d of s.declarations as AstNode[]) for (const n of boundNames(d.id)) scope.declare(n);
      } else if ((s.type === 'ClassDeclaration' || s.type === 'FunctionDeclaration') && s.id) {
        scope.declare(s.id.name);
      }
    }
  };

  const visitPattern = (node: AstNode | null, scope: Scope, mode: 'bind' | 'assign'): void => {
    if (!node) return;
    switch (node.type) {
      case 'Identifier':
        if (mode === 'assign') reference(node, scope);
        return;
      case 'ObjectPattern':
        for (const p of node.properties as AstNode[]) {
          if (p.type === 'RestElement') visitPattern(p.argument, scope, mode);
          else {
            if (p.computed) visit(p.key, scope);
            visitPattern(p.value, scope, mode);
          }
        }
        return;
      case 'ArrayPattern':
        for (const el of node.elements as (AstNode | null)[]) visitPattern(el, scope, mode);
        return;
      case 'AssignmentPattern':
        visitPattern(node.left, scope, mode);
        visit(node.right, scope);
        return;
      case 'RestElement':
        visitPattern(node.argument, scope, mode);
        return;
      default:
        // member expressions as assignment targets
        visit(node, scope);
        return;
    }
  };

  const visitStatements = (statements: AstNode[], scope: Scope): void => {
    for (const s of statements) visit(s, scope);
  };

  const visitFunction = (fn: AstNode, outer: Scope): void => {
    let scope = outer;
    if (fn.type === 'FunctionExpression' && fn.id) {
      // a named function expression binds its own name in an intermediate scope
      scope = new Scope(outer);
      scope.declare(fn.id.name, fn === root ? 'self' : 'local');
    }
    const fscope = new Scope(scope);
    for (const p of fn.params as AstNode[]) for (const n of boundNames(p)) fscope.declare(n);
    for (const p of fn.params as AstNode[]) visitPattern(p, fscope, 'bind');
    if (fn.body.type === 'BlockStatement') {
      const body = fn.body.body as AstNode[];
      for (const s of body) hoistVars(s, fscope);
      hoistLexical(body, fscope);
      visitStatements(body, fscope);
    } else {
      visit(fn.body, fscope);
    }
  };

  const visitClass = (cls: AstNode, outer: Scope): void => {
    if (cls.superClass) visit(cls.superClass, outer);
    const scope = new Scope(outer);
    if (cls.id) scope.declare(cls.id.name, cls === root ? 'self' : 'local');
    for (const member of cls.body.body as AstNode[]) {
      if (member.type === 'StaticBlock') {
        const bscope = new Scope(scope);
        const body = member.body as AstNode[];
        for (const s of body) hoistVars(s, bscope);
        hoistLexical(body, bscope);
        visitStatements(body, bscope);
        continue;
      }
      if (member.computed) visit(member.key, scope);
      if (member.value) visit(member.value, scope);
    }
  };

  const visit = (node: AstNode | null | undefined, scope: Scope): void => {
    if (!node) return;
    switch (node.type) {
      case 'Identifier':
        reference(node, scope);
        return;
      case 'FunctionDeclaration':
      case 'FunctionExpression':
      case 'ArrowFunctionExpression':
        visitFunction(node, scope);
        return;
      case 'ClassDeclaration':
      case 'ClassExpression':
        visitClass(node, scope);
        return;
      case 'BlockStatement': {
        const bscope = new Scope(scope);
        hoistLexical(node.body, bscope);
        visitStatements(node.body, bscope);
        return;
      }
      case 'VariableDeclaration':
        for (const d of node.declarations as AstNode[]) {
          visitPattern(d.id, scope, 'bind');
          visit(d.init, scope);
        }
        return;
      case 'ForStatement': {
        const fscope = new Scope(scope);
        if (node.init?.type === 'VariableDeclaration') hoistLexical([node.init], fscope);
        visit(node.init, fscope);
        visit(node.test, fscope);
        visit(node.update, fscope);
        visit(node.body, fscope);
        return;
      }
      case 'ForInStatement':
      case 'ForOfStatement': {
        const fscope = new Scope(scope);
        if (node.left.type === 'VariableDeclaration') {
          hoistLexical([node.left], fscope);
          visit(node.left, fscope);
        } else {
          visitPattern(node.left, fscope, 'assign');
        }
        visit(node.right, fscope);
        visit(node.body, fscope);
        return;
      }
      case 'SwitchStatement': {
        visit(node.discriminant, scope);
        const sscope = new Scope(scope);
        const all: AstNode[] = [];
        for (const c of node.cases as AstNode[]) all.push(...(c.consequent as AstNode[]));
        hoistLexical(all, sscope);
        for (const c of node.cases as AstNode[]) {
          visit(c.test, sscope);
          visitStatements(c.consequent, sscope);
        }
        return;
      }
      case 'CatchClause': {
        const cscope = new Scope(scope);
        for (const n of boundNames(node.param)) cscope.declare(n);
        visitPattern(node.param, cscope, 'bind');
        visit(node.body, cscope);
        return;
      }
      case 'AssignmentExpression':
        visitPattern(node.left, scope, 'assign');
        visit(node.right, scope);
        return;
      case 'MemberExpression':
        visit(node.object, scope);
        if (node.computed) visit(node.property, scope);
        return;
      case 'Property':
        if (node.computed) visit(node.key, scope);
        visit(node.value, scope);
        return;
      case 'LabeledStatement':
        visit(node.body, scope);
        return;
      case 'BreakStatement':
      case 'ContinueStatement':
      case 'MetaProperty':
      case 'Literal':
      case 'TemplateElement':
      case 'ThisExpression':
      case 'Super':
      case 'PrivateIdentifier':
        return;
      default:
        for (const key of Object.keys(node)) {
          if (SKIP_KEYS.has(key)) continue;
          const v = node[key];
          if (Array.isArray(v)) {
            for (const item of v) if (isNode(item)) visit(item, scope);
          } else if (isNode(v)) {
            visit(v, scope);
          }
        }
        return;
    }
  };

  visit(root, new Scope(null));
  return { free, selfRefs };
}

// ---------------------------------------------------------------------------
// canonical serialisation

function serialize(root: AstNode, analysis: Analysis): string {
  const helperRefs = new Set(analysis.free.get(NAME_HELPER) ?? []);
  const rawQuasis = new Set<AstNode>();

  /** `__name(x, "x")` injected by esbuild keepNames */
  const isNameHelperCall = (node: AstNode | null | undefined): boolean =>
    !!node &&
    node.type === 'CallExpression' &&
    helperRefs.has(node.callee) &&
    node.arguments.length === 2 &&
    node.arguments[1].type === 'Literal' &&
    typeof node.arguments[1].value === 'string';

  /** statements that exist only to call the helper: `__name(inner, "inner");`, `static { __name(this, "K") }` */
  const isHelperOnly = (node: unknown): boolean => {
    if (!isNode(node)) return false;
    if (node.type === 'ExpressionStatement') {
      const arg = node.expression.arguments?.[0] as AstNode | undefined;
      return isNameHelperCall(node.expression) && !!arg && (arg.type === 'Identifier' || arg.type === 'ThisExpression');
    }
    if (node.type === 'StaticBlock') return node.body.length === 1 && isHelperOnly(node.body[0]);
    return false;
  };

  const str = (s: string): string => JSON.stringify(s);

  const literal = (node: AstNode): string => {
    if (node.regex) return `(Re ${str(node.regex.pattern)} ${str(node.regex.flags)})`;
    const v: unknown = node.value;
    if (typeof v === 'bigint') return `(Big ${v.toString()})`;
    if (node.bigint !== undefined) return `(Big ${BigInt(node.bigint).toString()})`;
    if (typeof v === 'string') return `(Str ${str(v)})`;
    if (typeof v === 'number') return `(Num ${Object.is(v, -0) ? '-0' : String(v)})`;
    return `(Lit ${String(v)})`;
  };

  /** Non-computed keys: `a`, `'a'`, `"a"` and `1` / `'1'` name the same property. */
  const propertyKey = (key: AstNode, computed: boolean): string => {
    if (computed) return `(Computed ${ser(key)})`;
    if (key.type === 'Identifier') return `(Key ${str(key.name)})`;
    if (key.type === 'Literal' && (typeof key.value === 'string' || typeof key.value === 'number')) {
      return `(Key ${str(String(key.value))})`;
    }
    return ser(key);
  };

  const value = (v: unknown): string => {
    if (v === null || v === undefined) return '~';
    if (Array.isArray(v)) return `[${v.filter((x) => !isHelperOnly(x)).map(value).join(',')}]`;
    if (isNode(v)) return ser(v);
    if (typeof v === 'string') return str(v);
    if (typeof v === 'boolean' || typeof v === 'number') return String(v);
    if (typeof v === 'bigint') return `${v}n`;
    return str(JSON.stringify(v) ?? String(v));
  };

  const generic = (node: AstNode, omit?: ReadonlySet<string>, override?: Record<string, string>): string => {
    const parts: string[] = [node.type];
    for (const key of Object.keys(node).sort()) {
      if (SKIP_KEYS.has(key) || omit?.has(key)) continue;
      parts.push(`${key}=${override && key in override ? override[key] : value(node[key])}`);
    }
    return `(${parts.join(' ')})`;
  };

  const OMIT_ID = new Set(['id']);
  const OMIT_SHORTHAND = new Set(['shorthand']);

  const ser = (node: AstNode): string => {
    if (node === root && (node.type === 'FunctionExpression' || node.type === 'ClassExpression')) {
      // the function's / class's own name is not part of its identity
      return generic(node, OMIT_ID);
    }
    switch (node.type) {
      case 'Identifier':
        return analysis.selfRefs.has(node) ? '(Self)' : `(Id ${str(node.name)})`;
      case 'Literal':
        return literal(node);
      case 'TemplateElement':
        // tagged templates see the raw text; untagged ones only the cooked value
        return rawQuasis.has(node) || node.value.cooked == null
          ? `(TplRaw ${str(node.value.raw)})`
          : `(Tpl ${str(node.value.cooked)})`;
      case 'TemplateLiteral':
        // an untagged template without substitutions is just another quote style
        if (node.expressions.length === 0 && !rawQuasis.has(node.quasis[0]) && node.quasis[0].value.cooked != null) {
          return `(Str ${str(node.quasis[0].value.cooked)})`;
        }
        return generic(node);
      case 'TaggedTemplateExpression':
        for (const q of node.quasi.quasis as AstNode[]) rawQuasis.add(q);
        return generic(node);
      case 'ExpressionStatement':
        // `directive` holds the raw text of 'use strict' etc.; the literal already carries its value
        return generic(node, undefined, { directive: node.directive === undefined ? '~' : 'true' });
      case 'CallExpression':
        if (isNameHelperCall(node)) return ser(node.arguments[0]);
        return generic(node);
      case 'Property':
        // `{ a }` and `{ a: a }` are the same property
        return generic(node, OMIT_SHORTHAND, { key: propertyKey(node.key, node.computed) });
      case 'MethodDefinition':
      case 'PropertyDefinition':
        return generic(node, undefined, { key: propertyKey(node.key, node.computed) });
      default:
        return generic(node);
    }
  };

  return ser(root);
}

// ---------------------------------------------------------------------------
// public API

/**
 * Normalise `code` for hashing.
 *
 * - string: a user-chosen version label, used verbatim.
 * - function: its source (`fn.toString()`) is parsed and serialised from the AST,
 *   independent of formatting, comments, quote style and the function's own name.
 *   Native and bound functions have no source and throw.
 */
export function normalizeCode(code: Function | string): NormalizedCode {
  if (typeof code === 'string') return { normalized: code, freeVariables: [], kind: 'version' };
  if (typeof code !== 'function') {
    throw new TypeError(`code: expected a function or a version string, got ${code === null ? 'null' : typeof code}`);
  }
  const src = Function.prototype.toString.call(code);
  if (NATIVE_RE.test(src)) {
    throw new Error(
      `code: cannot hash native or bound function${code.name ? ` '${code.name}'` : ''} (its source is not available); pass a version string instead (code: '<version>').`,
    );
  }
  const parsed = parseFunctionSource(src);
  const analysis = analyze(parsed.root);
  let normalized = serialize(parsed.root, analysis);
  if (parsed.wrapper !== 'expression') normalized = `(Method ${parsed.methodKind ?? 'method'} ${normalized})`;
  const freeVariables = [...analysis.free.keys()]
    .filter((n) => !KNOWN_GLOBALS.has(n) && n !== NAME_HELPER)
    .sort();
  return { normalized, freeVariables, kind: 'function' };
}

/** Warning text for a function with free variables ('' when there are none). */
export function codeWarning(freeVariables: string[]): string {
  if (freeVariables.length === 0) return '';
  const noun = freeVariables.length === 1 ? 'variable' : 'variables';
  return (
    `code: the function refers to free ${noun} ${freeVariables.join(', ')} that cannot be hashed; ` +
    `their values are not part of the cache identity. Move them into params ` +
    `(or pass code: '<version>' to silence this).`
  );
}
