/**
 * Scope analysis of a parsed function: which identifiers are free (captured
 * from an enclosing scope) and which refer to the root function's / class's
 * own name. A small visitor: one handler per node kind that binds names or
 * opens a scope; every other node just visits its children.
 */
import { isNode, SKIP_KEYS, type AstNode } from './ast.js';
import { boundNames, declareBody, hoistLexical, Scope } from './scope.js';

export interface Analysis {
  /** free name -> referencing Identifier nodes */
  free: Map<string, AstNode[]>;
  /** Identifier nodes that refer to the root function's / class's own name */
  selfRefs: Set<AstNode>;
}

type Handler = (a: Analyzer, node: AstNode, scope: Scope) => void;

/** Nodes with no references below them (labels of break / continue are not variables). */
const LEAVES = ['BreakStatement', 'ContinueStatement', 'MetaProperty', 'Literal', 'TemplateElement', 'ThisExpression', 'Super', 'PrivateIdentifier'];

const HANDLERS: ReadonlyMap<string, Handler> = new Map(Object.entries<Handler>({
  Identifier: (a, n, s) => a.reference(n, s),
  FunctionDeclaration: (a, n, s) => a.visitFunction(n, s),
  FunctionExpression: (a, n, s) => a.visitFunction(n, s),
  ArrowFunctionExpression: (a, n, s) => a.visitFunction(n, s),
  ClassDeclaration: (a, n, s) => a.visitClass(n, s),
  ClassExpression: (a, n, s) => a.visitClass(n, s),
  BlockStatement: (a, n, s) => a.visitBlock(n, s),
  VariableDeclaration: (a, n, s) => a.visitVariableDeclaration(n, s),
  ForStatement: (a, n, s) => a.visitFor(n, s),
  ForInStatement: (a, n, s) => a.visitForInOf(n, s),
  ForOfStatement: (a, n, s) => a.visitForInOf(n, s),
  SwitchStatement: (a, n, s) => a.visitSwitch(n, s),
  CatchClause: (a, n, s) => a.visitCatch(n, s),
  AssignmentExpression: (a, n, s) => {
    a.visitPattern(n.left, s, 'assign');
    a.visit(n.right, s);
  },
  MemberExpression: (a, n, s) => {
    a.visit(n.object, s);
    if (n.computed) a.visit(n.property, s);
  },
  Property: (a, n, s) => {
    if (n.computed) a.visit(n.key, s);
    a.visit(n.value, s);
  },
  LabeledStatement: (a, n, s) => a.visit(n.body, s),
  ...Object.fromEntries(LEAVES.map((t): [string, Handler] => [t, () => {}])),
}));

class Analyzer {
  readonly free = new Map<string, AstNode[]>();
  readonly selfRefs = new Set<AstNode>();
  constructor(private readonly root: AstNode) {}

  reference(id: AstNode, scope: Scope): void {
    const b = scope.lookup(id.name);
    if (b === 'self') this.selfRefs.add(id);
    else if (b === undefined) {
      const list = this.free.get(id.name);
      if (list) list.push(id);
      else this.free.set(id.name, [id]);
    }
  }

  visit(node: AstNode | null | undefined, scope: Scope): void {
    if (!node) return;
    const handler = HANDLERS.get(node.type);
    if (handler) handler(this, node, scope);
    else this.visitChildren(node, scope);
  }

  private visitChildren(node: AstNode, scope: Scope): void {
    for (const key of Object.keys(node)) {
      if (SKIP_KEYS.has(key)) continue;
      const v = node[key];
      if (Array.isArray(v)) {
        for (const item of v) if (isNode(item)) this.visit(item, scope);
      } else if (isNode(v)) {
        this.visit(v, scope);
      }
    }
  }

  private visitStatements(statements: AstNode[], scope: Scope): void {
    for (const s of statements) this.visit(s, scope);
  }

  /** A binding pattern ('bind': names already declared) or an assignment target ('assign': names are references). */
  visitPattern(node: AstNode | null, scope: Scope, mode: 'bind' | 'assign'): void {
    if (!node) return;
    switch (node.type) {
      case 'Identifier':
        if (mode === 'assign') this.reference(node, scope);
        return;
      case 'ObjectPattern':
        for (const p of node.properties as AstNode[]) {
          if (p.type === 'RestElement') this.visitPattern(p.argument, scope, mode);
          else {
            if (p.computed) this.visit(p.key, scope);
            this.visitPattern(p.value, scope, mode);
          }
        }
        return;
      case 'ArrayPattern':
        for (const el of node.elements as (AstNode | null)[]) this.visitPattern(el, scope, mode);
        return;
      case 'AssignmentPattern':
        this.visitPattern(node.left, scope, mode);
        this.visit(node.right, scope);
        return;
      case 'RestElement':
        this.visitPattern(node.argument, scope, mode);
        return;
      default:
        // member expressions as assignment targets
        this.visit(node, scope);
        return;
    }
  }

  visitFunction(fn: AstNode, outer: Scope): void {
    let scope = outer;
    if (fn.type === 'FunctionExpression' && fn.id) {
      // a named function expression binds its own name in an intermediate scope
      scope = new Scope(outer);
      scope.declare(fn.id.name, fn === this.root ? 'self' : 'local');
    }
    const fscope = new Scope(scope);
    for (const p of fn.params as AstNode[]) for (const n of boundNames(p)) fscope.declare(n);
    for (const p of fn.params as AstNode[]) this.visitPattern(p, fscope, 'bind');
    if (fn.body.type === 'BlockStatement') {
      const body = fn.body.body as AstNode[];
      declareBody(body, fscope);
      this.visitStatements(body, fscope);
    } else {
      this.visit(fn.body, fscope);
    }
  }

  visitClass(cls: AstNode, outer: Scope): void {
    if (cls.superClass) this.visit(cls.superClass, outer);
    const scope = new Scope(outer);
    if (cls.id) scope.declare(cls.id.name, cls === this.root ? 'self' : 'local');
    for (const member of cls.body.body as AstNode[]) {
      if (member.type === 'StaticBlock') {
        const bscope = new Scope(scope);
        const body = member.body as AstNode[];
        declareBody(body, bscope);
        this.visitStatements(body, bscope);
        continue;
      }
      if (member.computed) this.visit(member.key, scope);
      if (member.value) this.visit(member.value, scope);
    }
  }

  visitBlock(node: AstNode, scope: Scope): void {
    const bscope = new Scope(scope);
    hoistLexical(node.body, bscope);
    this.visitStatements(node.body, bscope);
  }

  visitVariableDeclaration(node: AstNode, scope: Scope): void {
    for (const d of node.declarations as AstNode[]) {
      this.visitPattern(d.id, scope, 'bind');
      this.visit(d.init, scope);
    }
  }

  visitFor(node: AstNode, scope: Scope): void {
    const fscope = new Scope(scope);
    if (node.init?.type === 'VariableDeclaration') hoistLexical([node.init], fscope);
    this.visit(node.init, fscope);
    this.visit(node.test, fscope);
    this.visit(node.update, fscope);
    this.visit(node.body, fscope);
  }

  visitForInOf(node: AstNode, scope: Scope): void {
    const fscope = new Scope(scope);
    if (node.left.type === 'VariableDeclaration') {
      hoistLexical([node.left], fscope);
      this.visit(node.left, fscope);
    } else {
      this.visitPattern(node.left, fscope, 'assign');
    }
    this.visit(node.right, fscope);
    this.visit(node.body, fscope);
  }

  visitSwitch(node: AstNode, scope: Scope): void {
    this.visit(node.discriminant, scope);
    const sscope = new Scope(scope);
    const all: AstNode[] = [];
    for (const c of node.cases as AstNode[]) all.push(...(c.consequent as AstNode[]));
    hoistLexical(all, sscope);
    for (const c of node.cases as AstNode[]) {
      this.visit(c.test, sscope);
      this.visitStatements(c.consequent, sscope);
    }
  }

  visitCatch(node: AstNode, scope: Scope): void {
    const cscope = new Scope(scope);
    for (const n of boundNames(node.param)) cscope.declare(n);
    this.visitPattern(node.param, cscope, 'bind');
    this.visit(node.body, cscope);
  }
}

/** Free variables and self references of a function or class node. */
export function analyze(root: AstNode): Analysis {
  const a = new Analyzer(root);
  a.visit(root, new Scope(null));
  return { free: a.free, selfRefs: a.selfRefs };
}
