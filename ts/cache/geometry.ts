/**
 * Geometry of planned chunks: which values a chunk covers and where its
 * points go in the flat, grid-ordered output (one place for flat index ↔
 * per-axis positions; product blocks within a chunk are in blocks.ts).
 */
import type { BindingAxisPlan, BindingPlan } from '../binding/native.js';

export interface ChunkGeo {
  /** Per axis: bin number. */
  bins: number[];
  /** Per axis: global index of the bin's first value. */
  start: number[];
  /** Per axis: selected offsets in the bin. */
  sel: Uint32Array[];
  /** Per axis: position of the first selected offset in the axis selection. */
  selPos: number[];
  /** Requested points. */
  points: number;
}

export class PlanGeometry {
  readonly axes: BindingAxisPlan[];
  readonly shape: number[];
  readonly total: number;
  readonly chunkCount: number;
  private readonly selStart: number[][];
  /** Flat output stride of each axis. */
  readonly outStride: number[];

  constructor(plan: BindingPlan) {
    this.axes = plan.describe();
    this.shape = plan.shape;
    this.total = this.shape.reduce((a, b) => a * b, 1);
    this.chunkCount = plan.chunkCount;
    this.selStart = this.axes.map((ax) => {
      const s = [0];
      for (const c of ax.selCount) s.push(s[s.length - 1]! + c);
      return s;
    });
    this.outStride = this.shape.map(() => 1);
    for (let a = this.shape.length - 2; a >= 0; a--) this.outStride[a] = this.outStride[a + 1]! * this.shape[a + 1]!;
  }

  chunk(i: number): ChunkGeo {
    const n = this.axes.length;
    const choice = new Array<number>(n);
    for (let a = n - 1; a >= 0; a--) {
      const m = this.axes[a]!.bin.length;
      choice[a] = i % m;
      i = Math.floor(i / m);
    }
    const geo: ChunkGeo = { bins: [], start: [], sel: [], selPos: [], points: 1 };
    for (let a = 0; a < n; a++) {
      const ax = this.axes[a]!;
      const b = choice[a]!;
      geo.bins.push(ax.bin[b]!);
      geo.start.push(ax.start[b]!);
      geo.selPos.push(ax.selPos[b]!);
      geo.sel.push(ax.sel.subarray(this.selStart[a]![b]!, this.selStart[a]![b + 1]!));
      geo.points *= ax.selCount[b]!;
    }
    return geo;
  }

  /** Requested points of chunk `i` (without building its geometry). */
  chunkPoints(i: number): number {
    let n = 1;
    for (let a = this.axes.length - 1; a >= 0; a--) {
      const ax = this.axes[a]!;
      const m = ax.bin.length;
      n *= ax.selCount[i % m]!;
      i = Math.floor(i / m);
    }
    return n;
  }

  /**
   * Where a chunk's rows go in the flat output: a chunk's points in request
   * order are rows of `len` points (its last axis), and each row is
   * contiguous in the output, starting at `starts[r]`.
   */
  outRows(geo: ChunkGeo): { starts: Uint32Array; len: number } {
    const n = geo.sel.length;
    if (n === 0) return { starts: Uint32Array.of(0), len: 1 };
    const len = geo.sel[n - 1]!.length;
    let acc = Uint32Array.of(geo.selPos[n - 1]! * this.outStride[n - 1]!);
    for (let a = n - 2; a >= 0; a--) {
      const cnt = geo.sel[a]!.length;
      const stride = this.outStride[a]!;
      const base = geo.selPos[a]! * stride;
      const next = new Uint32Array(acc.length * cnt);
      let w = 0;
      for (let j = 0; j < cnt; j++) {
        const x = base + j * stride;
        for (let i = 0; i < acc.length; i++) next[w++] = x + acc[i]!;
      }
      acc = next;
    }
    return { starts: acc, len };
  }

  /** Output index of every requested point of a chunk (request order). */
  outIndices(geo: ChunkGeo): Uint32Array {
    let acc = new Uint32Array([0]);
    for (let a = 0; a < geo.sel.length; a++) {
      const len = geo.sel[a]!.length;
      const stride = this.outStride[a]!;
      const base = geo.selPos[a]! * stride;
      const next = new Uint32Array(acc.length * len);
      let w = 0;
      for (let i = 0; i < acc.length; i++) {
        const x = acc[i]! + base;
        for (let j = 0; j < len; j++) next[w++] = x + j * stride;
      }
      acc = next;
    }
    return acc;
  }
}
