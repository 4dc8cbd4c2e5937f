import test from 'ava';
import { codeWarning, normalizeCode } from '../ts/code-identity/normalize.js';

// Functions written in this file are rewritten by tsx (whitespace minified,
// comments dropped), so formatting-sensitive cases are built from exact source
// text with an indirect eval, which keeps `toString()` byte-for-byte.
const globalEval = eval;
const fromSource = (src: string): Function => globalEval(`(${src}\n)`) as Function;
const norm = (src: string): string => normalizeCode(fromSource(src)).normalized;
const free = (src: string): string[] => normalizeCode(fromSource(src)).freeVariables;

test('a string is a version label', (t) => {
  t.deepEqual(normalizeCode('v2'), { normalized: 'v2', freeVariables: [], kind: 'version' });
});

test('functions have kind "function" and no positions in the normalised form', (t) => {
  const r = normalizeCode(fromSource('function f(x) { return x + 1 }'));
  t.is(r.kind, 'function');
  t.deepEqual(r.freeVariables, []);
  t.false(/\b(start|end|loc|raw)=/.test(r.normalized));
});

test('formatting, comments, semicolons, quotes, trailing commas and parentheses do not matter', (t) => {
  const base = norm(`function f(a, b) {
  const s = 'hi';
  const o = { k: [1, 2], 'q': a };
  return s + (a * b) + o.k.length + f2(a, b);
}`);
  const variants = [
    `function f(a,b){const s="hi";const o={k:[1,2],"q":a};return s+a*b+o.k.length+f2(a,b)}`,
    `function f(
      a, // first
      b, /* second */
    ) {
      /* a block comment */
      const s = \`hi\`
      const o = {
        k: [1, 2,],
        q: a,
      }
      // line comment
      return ((s + ((a * b)))) + o.k.length + f2(a, b,)
    }`,
  ];
  for (const v of variants) t.is(norm(v), base, v);
});

test('arrow bodies and object shorthand normalise alike across formatting', (t) => {
  t.is(norm('(x) => x * 2'), norm('x=>(x*2)'));
  t.not(norm('(x) => String.raw`a\\n`'), norm('(x) => String.raw`a\\t`'));
  t.not(norm('(x) => `a${x}`'), norm('(x) => `b${x}`'));
  t.is(norm('({ a, b }) => ({ a, b })'), norm('({a:a,b:b})=>({"a":a,\'b\':b})'));
});

test('logic changes change the normalised form', (t) => {
  const base = norm('function f(x) { return x + 2 }');
  t.not(norm('function f(x) { return x + 3 }'), base, 'literal');
  t.not(norm('function f(x) { return x - 2 }'), base, 'operator');
  t.not(norm('function f(y) { return y + 2 }'), base, 'identifier');
  t.not(norm('function f(x) { x++; return x + 2 }'), base, 'extra statement');
  t.not(norm('function f(x) { return x + "2" }'), base, 'literal type');
  t.not(norm('async function f(x) { return x + 2 }'), base, 'async');
  t.not(norm('function* f(x) { return x + 2 }'), base, 'generator');
  t.not(norm('function f(x) { return (x + 2) * 3 }'), norm('function f(x) { return x + 2 * 3 }'), 'meaningful parentheses');
});

test('the function\'s own name is not part of its identity', (t) => {
  t.is(norm('function first(x) { return x + 1 }'), norm('function second(x) { return x + 1 }'));
  // recursion through the own name follows the rename
  t.is(
    norm('function fact(n) { return n <= 1 ? 1 : n * fact(n - 1) }'),
    norm('function factorial(n) { return n <= 1 ? 1 : n * factorial(n - 1) }'),
  );
  t.deepEqual(free('function fact(n) { return n <= 1 ? 1 : n * fact(n - 1) }'), []);
  // but names of inner declarations are logic
  t.not(norm('function f() { function a() {} return a }'), norm('function f() { function b() {} return b }'));
});

test('arrow, async, generator, method shorthand and class sources parse', (t) => {
  const cases: Function[] = [
    (x: number) => x + 1,
    (x: number) => {
      return x + 1;
    },
    async (x: number) => x,
    async function named(x: number) {
      return x;
    },
    function* gen() {
      yield 1;
    },
    async function* agen() {
      yield 1;
    },
    { method(a: number) { return a * 2; } }.method,
    { async am(a: number) { return a; } }.am,
    { *gm() { yield 1; } }.gm,
    { async *agm() { yield 1; } }.agm,
    { ['comp' + 'uted'](a: number) { return a; } }.computed,
    Object.getOwnPropertyDescriptor({ get g() { return 1; } }, 'g')!.get!,
    class K {
      m() {
        return 1;
      }
    },
  ];
  for (const fn of cases) {
    const r = normalizeCode(fn);
    t.is(r.kind, 'function');
    t.deepEqual(r.freeVariables, [], fn.toString());
  }
  class WithPrivate {
    #secret = 3;
    static s(a: number) {
      return a;
    }
    #p() {
      return this.#secret;
    }
    read() {
      return this.#p();
    }
  }
  t.notThrows(() => normalizeCode(WithPrivate.s));
  t.notThrows(() => normalizeCode(WithPrivate.prototype.read));
  t.notThrows(() => normalizeCode(WithPrivate));
  // exact method-shorthand text, formatting-independent
  const m1 = { foo(a: number) { return a + 1; } }.foo;
  t.is(normalizeCode(m1).normalized, normalizeCode(globalEval('({ bar ( a ) { return a+1 } }).bar')).normalized);
  t.not(normalizeCode(m1).normalized, norm('function (a) { return a + 1 }'));
});

test('tsx keepNames helpers do not leak into identity or free variables', (t) => {
  function outer(x: number) {
    function inner(y: number) {
      return y + 1;
    }
    const g = (z: number) => z;
    class Inner {
      m() {
        return 1;
      }
    }
    return inner(x) + g(1) + new Inner().m();
  }
  const r = normalizeCode(outer);
  t.deepEqual(r.freeVariables, []);
  t.false(r.normalized.includes('__name'));
  t.is(
    r.normalized,
    norm(`function outer(x) {
      function inner(y) { return y + 1 }
      const g = (z) => z
      class Inner { m() { return 1 } }
      return inner(x) + g(1) + new Inner().m()
    }`),
  );
});

test('closures report captured variables; Math and params do not count', (t) => {
  const scale = 3;
  const offset = 1;
  t.deepEqual(normalizeCode((x: number) => x * scale).freeVariables, ['scale']);
  t.deepEqual(normalizeCode((x: number) => Math.sqrt(x) * Math.PI).freeVariables, []);
  t.deepEqual(normalizeCode((x: number) => x * scale + offset + scale).freeVariables, ['offset', 'scale']);
});

test('free variables respect nested scopes', (t) => {
  // an inner function's locals are not free in the outer one
  t.deepEqual(free('function f(a) { function g(b) { let c = b + a; return c } return g(a) + q }'), ['q']);
  // block scope: `t` is only declared inside the block
  t.deepEqual(free('function f() { { let t = 1; t++ } return t }'), ['t']);
  // var hoists out of blocks
  t.deepEqual(free('function f() { if (x0) { var v = 1 } return v }'), ['x0']);
  // for / for-of / catch / switch scopes
  t.deepEqual(
    free(`function f(xs) {
      let s = 0
      for (let i = 0; i < xs.length; i++) s += xs[i]
      for (const [k, { v = dflt }] of xs) s += k + v
      try { s += risky() } catch ({ message }) { s += message.length }
      switch (s) { case 1: { const z = 2; s += z; break } default: s += w }
      return s
    }`),
    ['dflt', 'risky', 'w'],
  );
  // destructured params with defaults and rest
  t.deepEqual(free('({ a, b: [c, ...d] = init, ...rest }, e = a + c) => a + c + d.length + rest.x + e + other'), [
    'init',
    'other',
  ]);
  // property keys, member properties, labels, this/arguments are not references
  t.deepEqual(
    free(`function f() {
      const o = { key: 1, [computedKey]: 2, method() { return this.key } }
      outer: for (const p in o) { if (p) continue outer; break outer }
      return o.key + o.notAVar + arguments.length + this.x + o[idx]
    }`),
    ['computedKey', 'idx'],
  );
  // assignment to an undeclared variable is a free reference
  t.deepEqual(free('function f() { counter += 1; [aa, bb] = [1, 2] }'), ['aa', 'bb', 'counter']);
  // named function / class expressions bind their own names inside only
  t.deepEqual(free('() => { const h = function inner() { return inner }; return [h, inner2] }'), ['inner2']);
  t.deepEqual(free('() => { class C extends Base { static { let y = C } m() { return C } } return C }'), ['Base']);
  // well-known globals are not reported
  t.deepEqual(
    free('(x) => JSON.stringify([Math.max(x, 1), new Float64Array(2), Number.isFinite(x), new Map(), console, undefined, NaN, new Error("e")])'),
    [],
  );
  // sorted and unique
  t.deepEqual(free('() => zeta + alpha + zeta + mid'), ['alpha', 'mid', 'zeta']);
});

test('native and bound functions cannot be hashed', (t) => {
  const err = t.throws(() => normalizeCode(Math.max));
  t.regex(err!.message, /native or bound/);
  t.regex(err!.message, /version string/);
  t.throws(() => normalizeCode(((x: number) => x).bind(null)), { message: /native or bound/ });
  t.throws(() => normalizeCode(Array.prototype.map), { message: /native or bound/ });
});

test('codeWarning names the free variables and suggests params', (t) => {
  const msg = codeWarning(['a', 'b']);
  t.is(
    msg,
    "code: the function refers to free variables a, b that cannot be hashed; their values are not part of the cache identity. Move them into params (or pass code: '<version>' to silence this).",
  );
  t.regex(codeWarning(['scale']), /free variable scale that/);
  t.is(codeWarning([]), '');
});
