/**
 * Product blocks of a chunk's requested points. A chunk's requested points
 * are the product of its per-axis selections (`dims[k]` positions per axis);
 * request index `r` is their mixed-radix number, first axis slowest. A block
 * is, per axis, a list of positions; its points are the product, in order.
 */

/** Shared 0..n-1 arrays of the last sizes asked for (read only: never modify one). */
const iotas = new Map<number, Uint32Array>();

/** 0, 1, ..., n-1 (a shared array: callers must not modify it). */
export function iota(n: number): Uint32Array {
  let a = iotas.get(n);
  if (!a) {
    a = new Uint32Array(n);
    for (let i = 0; i < n; i++) a[i] = i;
    if (iotas.size >= 16) iotas.delete(iotas.keys().next().value!);
    iotas.set(n, a);
  }
  return a;
}

/** True when `points` is 0, 1, ..., points.length-1. */
export function isIota(points: Uint32Array): boolean {
  if (points === iotas.get(points.length)) return true;
  for (let j = 0; j < points.length; j++) if (points[j] !== j) return false;
  return true;
}

/** True when `points` are all `n` request indices of a chunk, in order (a chunk taken whole). */
export function isAllOf(points: Uint32Array, n: number): boolean {
  return points.length === n && isIota(points);
}

/** True when a block takes every position of every axis of `dims`. */
function isWhole(dims: readonly number[], block: readonly ArrayLike<number>[]): boolean {
  for (let k = 0; k < dims.length; k++) {
    const pos = block[k]!;
    // Blocks are Uint32Arrays; anything else takes the general path.
    if (pos.length !== dims[k] || !(pos instanceof Uint32Array) || !isIota(pos)) return false;
  }
  return true;
}

/** Request indices of a block's points, in block order (read only: may be shared). */
export function blockPoints(dims: readonly number[], block: readonly ArrayLike<number>[]): Uint32Array {
  if (isWhole(dims, block)) return iota(dims.reduce((a, b) => a * b, 1));
  let acc = new Uint32Array([0]);
  for (let k = 0; k < dims.length; k++) {
    const pos = block[k]!;
    const d = dims[k]!;
    const next = new Uint32Array(acc.length * pos.length);
    let w = 0;
    for (let i = 0; i < acc.length; i++) {
      const base = acc[i]! * d;
      for (let j = 0; j < pos.length; j++) next[w++] = base + pos[j]!;
    }
    acc = next;
  }
  return acc;
}

/** Points of a block: the product of its list lengths. */
export function blockSize(block: readonly ArrayLike<number>[]): number {
  let n = 1;
  for (const p of block) n *= p.length;
  return n;
}

/**
 * Splits a set of request indices (sorted, unique) into disjoint product
 * blocks that cover exactly that set. A full chunk is one block; rows that
 * miss the same points share a block.
 */
export function splitBlocks(dims: readonly number[], points: ArrayLike<number>): Uint32Array[][] {
  if (points.length === 0) return [];
  if (dims.length === 0) return [[]];
  const total = dims.reduce((a, b) => a * b, 1);
  if (points.length === total) return [dims.map((d) => iota(d))];
  if (dims.length === 1) return [[Uint32Array.from(points as ArrayLike<number>)]];
  const stride = total / dims[0]!;
  // Group the first-axis positions by the set of points they miss in the rest.
  const groups = new Map<string, { heads: number[]; rest: number[] }>();
  let i = 0;
  while (i < points.length) {
    const head = Math.floor(points[i]! / stride);
    const rest: number[] = [];
    while (i < points.length && Math.floor(points[i]! / stride) === head) rest.push(points[i++]! - head * stride);
    const key = rest.length === stride ? '*' : rest.join(',');
    const g = groups.get(key);
    if (g) g.heads.push(head);
    else groups.set(key, { heads: [head], rest });
  }
  const out: Uint32Array[][] = [];
  const tail = dims.slice(1);
  for (const g of groups.values()) {
    const heads = Uint32Array.from(g.heads);
    for (const sub of splitBlocks(tail, g.rest)) out.push([heads, ...sub]);
  }
  return out;
}

/** Cuts a block into blocks of at most `max` points (keeping block order within each). */
export function cutBlock(block: Uint32Array[], max: number): Uint32Array[][] {
  if (blockSize(block) <= max || block.length === 0) return [block];
  const rest = blockSize(block.slice(1));
  const head = block[0]!;
  const out: Uint32Array[][] = [];
  if (rest <= max) {
    const rows = Math.max(1, Math.floor(max / rest));
    for (let s = 0; s < head.length; s += rows) out.push([head.subarray(s, s + rows), ...block.slice(1)]);
    return out;
  }
  for (let s = 0; s < head.length; s++) for (const sub of cutBlock(block.slice(1), max)) out.push([head.subarray(s, s + 1), ...sub]);
  return out;
}
