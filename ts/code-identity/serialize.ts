/**
 * Canonical serialisation of a parsed function: an S-expression of the AST
 * with positions and raw text dropped, keys sorted, and the spellings that
 * mean the same thing (quote styles, `{ a }` vs `{ a: a }`, the function's own
 * name, esbuild's `__name` helper) written one way.
 */
import { isNode, NAME_HELPER, SKIP_KEYS, type AstNode } from './ast.js';
import type { Analysis } from './analyze.js';

const OMIT_ID: ReadonlySet<string> = new Set(['id']);
const OMIT_SHORTHAND: ReadonlySet<string> = new Set(['shorthand']);

const str = (s: string): string => JSON.stringify(s);

function literal(node: AstNode): string {
  if (node.regex) return `(Re ${str(node.regex.pattern)} ${str(node.regex.flags)})`;
  const v: unknown = node.value;
  if (typeof v === 'bigint') return `(Big ${v.toString()})`;
  if (node.bigint !== undefined) return `(Big ${BigInt(node.bigint).toString()})`;
  if (typeof v === 'string') return `(Str ${str(v)})`;
  if (typeof v === 'number') return `(Num ${Object.is(v, -0) ? '-0' : String(v)})`;
  return `(Lit ${String(v)})`;
}

class Serializer {
  /** Identifier nodes that are free references to `__name`. */
  private readonly helperRefs: Set<AstNode>;
  /** Quasis of tagged templates: the tag sees their raw text. */
  private readonly rawQuasis = new Set<AstNode>();

  constructor(
    private readonly root: AstNode,
    private readonly analysis: Analysis,
  ) {
    this.helperRefs = new Set(analysis.free.get(NAME_HELPER) ?? []);
  }

  /** `__name(x, "x")` injected by esbuild keepNames */
  private isNameHelperCall(node: AstNode | null | undefined): boolean {
    return (
      !!node &&
      node.type === 'CallExpression' &&
      this.helperRefs.has(node.callee) &&
      node.arguments.length === 2 &&
      node.arguments[1].type === 'Literal' &&
      typeof node.arguments[1].value === 'string'
    );
  }

  /** statements that exist only to call the helper: `__name(inner, "inner");`, `static { __name(this, "K") }` */
  private isHelperOnly(node: unknown): boolean {
    if (!isNode(node)) return false;
    if (node.type === 'ExpressionStatement') {
      const arg = node.expression.arguments?.[0] as AstNode | undefined;
      return this.isNameHelperCall(node.expression) && !!arg && (arg.type === 'Identifier' || arg.type === 'ThisExpression');
    }
    if (node.type === 'StaticBlock') return node.body.length === 1 && this.isHelperOnly(node.body[0]);
    return false;
  }

  /** Non-computed keys: `a`, `'a'`, `"a"` and `1` / `'1'` name the same property. */
  private propertyKey(key: AstNode, computed: boolean): string {
    if (computed) return `(Computed ${this.ser(key)})`;
    if (key.type === 'Identifier') return `(Key ${str(key.name)})`;
    if (key.type === 'Literal' && (typeof key.value === 'string' || typeof key.value === 'number')) {
      return `(Key ${str(String(key.value))})`;
    }
    return this.ser(key);
  }

  private value(v: unknown): string {
    if (v === null || v === undefined) return '~';
    if (Array.isArray(v)) return `[${v.filter((x) => !this.isHelperOnly(x)).map((x) => this.value(x)).join(',')}]`;
    if (isNode(v)) return this.ser(v);
    if (typeof v === 'string') return str(v);
    if (typeof v === 'boolean' || typeof v === 'number') return String(v);
    if (typeof v === 'bigint') return `${v}n`;
    return str(JSON.stringify(v) ?? String(v));
  }

  /** `(Type key=value ...)` over the node's fields in key order. */
  private generic(node: AstNode, omit?: ReadonlySet<string>, override?: Record<string, string>): string {
    const parts: string[] = [node.type];
    for (const key of Object.keys(node).sort()) {
      if (SKIP_KEYS.has(key) || omit?.has(key)) continue;
      parts.push(`${key}=${override && key in override ? override[key] : this.value(node[key])}`);
    }
    return `(${parts.join(' ')})`;
  }

  private template(node: AstNode): string {
    // an untagged template without substitutions is just another quote style
    if (node.expressions.length === 0 && !this.rawQuasis.has(node.quasis[0]) && node.quasis[0].value.cooked != null) {
      return `(Str ${str(node.quasis[0].value.cooked)})`;
    }
    return this.generic(node);
  }

  private templateElement(node: AstNode): string {
    // tagged templates see the raw text; untagged ones only the cooked value
    return this.rawQuasis.has(node) || node.value.cooked == null
      ? `(TplRaw ${str(node.value.raw)})`
      : `(Tpl ${str(node.value.cooked)})`;
  }

  ser(node: AstNode): string {
    if (node === this.root && (node.type === 'FunctionExpression' || node.type === 'ClassExpression')) {
      // the function's / class's own name is not part of its identity
      return this.generic(node, OMIT_ID);
    }
    switch (node.type) {
      case 'Identifier':
        return this.analysis.selfRefs.has(node) ? '(Self)' : `(Id ${str(node.name)})`;
      case 'Literal':
        return literal(node);
      case 'TemplateElement':
        return this.templateElement(node);
      case 'TemplateLiteral':
        return this.template(node);
      case 'TaggedTemplateExpression':
        for (const q of node.quasi.quasis as AstNode[]) this.rawQuasis.add(q);
        return this.generic(node);
      case 'ExpressionStatement':
        // `directive` holds the raw text of 'use strict' etc.; the literal already carries its value
        return this.generic(node, undefined, { directive: node.directive === undefined ? '~' : 'true' });
      case 'CallExpression':
        return this.isNameHelperCall(node) ? this.ser(node.arguments[0]) : this.generic(node);
      case 'Property':
        // `{ a }` and `{ a: a }` are the same property
        return this.generic(node, OMIT_SHORTHAND, { key: this.propertyKey(node.key, node.computed) });
      case 'MethodDefinition':
      case 'PropertyDefinition':
        return this.generic(node, undefined, { key: this.propertyKey(node.key, node.computed) });
      default:
        return this.generic(node);
    }
  }
}

/** The canonical string of a parsed function or class node. */
export function serialize(root: AstNode, analysis: Analysis): string {
  return new Serializer(root, analysis).ser(root);
}
