/** Scopes and the names declarations bind in them (hoisting included), for the free-variable analysis. */
import type { AstNode } from './ast.js';

/** 'self': the root function's / class's own name (serialised as `(Self)`, not as its name). */
type Binding = 'local' | 'self';

export class Scope {
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

/** The names a binding pattern (`a`, `{ a, b: [c] }`, `...rest`, `x = 1`) declares. */
export function boundNames(pattern: AstNode | null, out: string[] = []): string[] {
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

/** `var` declarations and function declarations, hoisted to the function scope. */
export function hoistVars(node: AstNode | null | undefined, scope: Scope): void {
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
}

/** let / const / class / function declared directly in a statement list. */
export function hoistLexical(statements: AstNode[], scope: Scope): void {
  for (const s of statements) {
    if (s.type === 'VariableDeclaration' && s.kind !== 'var') {
      for (const d of s.declarations as AstNode[]) for (const n of boundNames(d.id)) scope.declare(n);
    } else if ((s.type === 'ClassDeclaration' || s.type === 'FunctionDeclaration') && s.id) {
      scope.declare(s.id.name);
    }
  }
}

/** A function body or static block: vars and functions hoisted, then lexical names, in one new scope. */
export function declareBody(body: AstNode[], scope: Scope): void {
  for (const s of body) hoistVars(s, scope);
  hoistLexical(body, scope);
}
