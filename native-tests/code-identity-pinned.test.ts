// Pins the normalised form of a few functions (SHA-256 of `normalizeCode(fn).normalized`)
// and their cache-identity digest, as computed before ts/identity/code.ts was split into
// ts/code-identity/: a refactor of the normaliser must not move any existing cache.
import { createHash } from 'node:crypto';
import test from 'ava';
import { normalizeCode } from '../ts/code-identity/normalize.js';
import { codeIdentity } from '../ts/cache/code-digest.js';

// Built from exact source text (tsx rewrites functions written in this file).
const globalEval = eval;
const fromSource = (src: string): Function =>
  globalEval(`(() => { const Base = class {}; return (${src}\n) })()`) as Function;
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

const pinned: { src: string; sha: string; free: string[]; fn?: string }[] = [
  {
    src: 'function f(x) { return x * 10 }',
    sha: '095d3da954cf0bf31c474c207a9f148e79e9ce339c06a9e9c63f36358604067d',
    free: [],
    fn: '8c61bb8e58c974bd92f5b1ecfee8158e32838c938049a800c78cae4b0317c41b',
  },
  {
    src: '(p, a) => a.x.map((v) => v * p.k + 1)',
    sha: '3a06bfcff192229dd8c8216da21b86afbf068ab2128678d481fe1cae55c3fbc0',
    free: [],
    fn: '493d6494c686629d9844490a0b0675c1007127a3adcc1d09b79a5143beb1b528',
  },
  {
    src: 'async function* g(a, { b = 2, ...rest }, [c, , d] = []) { for (const k of a) { if (k > b) yield k ** 2; else continue } try { throw new Error(`bad ${c}`) } catch ({ message }) { return message + rest.z + d } finally { label: for (let i = 0; i < 3; i++) { switch (i) { case 1: break label; default: var q = i } } } }',
    sha: '3db3a7cb0dcd937a37b4b85f7a1ba7c222ef854ceec55e85389a4a42c66b75ef',
    free: [],
    fn: 'fbbe381b1935654ecd930ed865689b8c69af951c23ecab42166c5aeb2435f9f2',
  },
  {
    src: 'class K extends Base { #p = 1; static s = 2; static { this.t = 3 } get x() { return this.#p } set x(v) { this.#p = v } [Symbol.iterator]() { return [1n, 0x10, -0, /a+b/gi, "s", \'t\', tag`raw\\n${1}`, `x`][Symbol.iterator]() } }',
    sha: '774fbe14717d9c1130884cef2cdcc6aa569e1327a7550b0e001c0171acb6485a',
    free: ['Base', 'tag'],
  },
  {
    src: 'function fact(n) { return n <= 1 ? 1 : n * fact(n - 1) }',
    sha: '051825550cb16e636b19024b64c7075acc38dd6b4be9d8e8ce643dfeb95a920a',
    free: [],
    fn: 'efa445ca8a5350b9d49f37a21f1dadd4cf53beef5755fd0377ecb78d38cf4fdd',
  },
  {
    src: 'function h(o) { const { a, b: [c] } = o; let z; ({ z } = o); return { a, c, z, "k": 1, 2: 3, [a]: __name(function inner() {}, "inner"), m() { return super.x }, new: new.target, v: void 0, t: typeof foo, d: delete o.a, i: o?.a?.[0] ?? null, s: [...o.l], r: a in o, l: a instanceof Object } }',
    sha: '38728ca07e069654c0f6e3031c0c332b7fe239645246965a96df49a2f82e3dca',
    free: ['foo'],
  },
];

for (const [i, p] of pinned.entries()) {
  test(`normalised hash pinned: function ${i + 1}`, (t) => {
    const fn = fromSource(p.src);
    const n = normalizeCode(fn);
    t.is(sha(n.normalized), p.sha);
    t.deepEqual(n.freeVariables, p.free);
    if (p.fn) t.deepEqual(codeIdentity(fn as () => unknown, 'test'), { fn: p.fn });
  });
}

test('normalised hash pinned: method shorthand', (t) => {
  const o = fromSource('{ async *m(a) { yield a }, get g() { return 1 } }') as unknown as Record<string, Function>;
  t.is(sha(normalizeCode(o.m!).normalized), 'c67b5b6879f33e948b1c4e5faf8705a61004733e1401277d0134e08a97663188');
  const g = Object.getOwnPropertyDescriptor(o, 'g')!.get!;
  t.is(sha(normalizeCode(g).normalized), '14e6f81230996a99a6bd696959bfebd25cd07a8d054291b5816f734098300daf');
});
