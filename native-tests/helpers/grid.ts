/** Helpers shared by the ava tests: temp roots and plain-loop references. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Value } from '../../ts/index.js';

export type Point = Record<string, Value>;

/** A fresh, empty cache root in the temp directory. */
export const freshRoot = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'cm-'));

/** Points of a grid in grid order (first axis slowest): the plain-loop reference. */
export function gridPoints(axisOrder: readonly string[], axisValues: Record<string, readonly Value[]>): Point[] {
  let out: Point[] = [{}];
  for (const a of axisOrder) {
    const next: Point[] = [];
    for (const p of out) for (const v of axisValues[a]!) next.push({ ...p, [a]: v });
    out = next;
  }
  return out;
}

/** A stable key of a point, independent of key order. */
export const keyOf = (p: Point): string => JSON.stringify(Object.keys(p).sort().map((k) => [k, p[k]]));

/** mulberry32: a small seeded PRNG, so a failing property test can be replayed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
