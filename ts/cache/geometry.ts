/**
 * Geometry of planned chunks: which values a chunk covers and where its
 * points go in the flat, grid-ordered output (one place for flat index ↔
 * per-axis positions; product blocks within a chunk are in blocks.ts).
 */
import type { BindingAxisPlan, BindingPlan } from '../binding/native.js';
import { iota } from './blocks.js';
import { keepShape } from '../shapes.js';

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

/**
 * The bins one axis of a plan touches: the arrays of `plan.describe()`, or
 * for a whole axis (every value selected, nothing listed per bin) the same
 * answers by arithmetic.
 */
export class AxisBins {
  /** Number of bins touched. */
  readonly count: number;
  private readonly selStart: Uint32Array | null;
  /**
   * The arrays of `plan.describe()`, copied into fields of this class: hot
   * code then depends on this class's maps, which are kept (see
   * ts/shapes.ts), not on those of the binding's objects, which die with
   * each run's plan.
   */
  private readonly ax: Omit<BindingAxisPlan, 'len'>;

  constructor(ax: BindingAxisPlan) {
    this.ax = { whole: ax.whole, values: ax.values, chunk: ax.chunk, bin: ax.bin, start: ax.start, selPos: ax.selPos, selCount: ax.selCount, sel: ax.sel };
    this.count = ax.whole ? Math.ceil(ax.values / ax.chunk) : ax.bin.length;
    if (ax.whole) this.selStart = null;
    else {
      const s = new Uint32Array(this.count + 1);
      for (let b = 0; b < this.count; b++) s[b + 1] = s[b]! + ax.selCount[b]!;
      this.selStart = s;
    }
  }

  /** Bin number along the axis of touched bin b. */
  bin(b: number): number {
    return this.ax.whole ? b : this.ax.bin[b]!;
  }

  /** Global index of the bin's first value. */
  start(b: number): number {
    return this.ax.whole ? b * this.ax.chunk : this.ax.start[b]!;
  }

  /** Position in the axis' selection of the bin's first selected offset. */
  selPos(b: number): number {
    return this.ax.whole ? b * this.ax.chunk : this.ax.selPos[b]!;
  }

  /** Number of selected offsets of the bin. */
  selCount(b: number): number {
    return this.ax.whole ? Math.min(this.ax.chunk, this.ax.values - b * this.ax.chunk) : this.ax.selCount[b]!;
  }

  /** Selected offsets inside the bin (read only: may be shared). */
  sel(b: number): Uint32Array {
    return this.selStart ? this.ax.sel.subarray(this.selStart[b]!, this.selStart[b + 1]!) : iota(this.selCount(b));
  }
}

const NO_POSITIONS = new Uint32Array(0);

/**
 * A chunk's geometry, made with `new` and its arrays as copies of the
 * plan's (see `PlainRecord` in ts/shapes.ts: no allocation site that V8
 * could decide to allocate in its old generation).
 */
class Geo implements ChunkGeo {
  bins: number[];
  start: number[];
  sel: Uint32Array[];
  selPos: number[];
  points = 1;
  constructor(numbers: number[], lists: Uint32Array[]) {
    this.bins = numbers.slice();
    this.start = numbers.slice();
    this.sel = lists.slice();
    this.selPos = numbers.slice();
  }
}

export class PlanGeometry {
  readonly axes: AxisBins[];
  readonly shape: number[];
  readonly total: number;
  readonly chunkCount: number;
  /** Flat output stride of each axis. */
  readonly outStride: number[];

  /** Per axis a 0 and an empty list: what a chunk's geometry copies its arrays from (see Geo). */
  private readonly numbers: number[];
  private readonly lists: Uint32Array[];

  constructor(plan: BindingPlan) {
    this.axes = plan.describe().map((ax) => new AxisBins(ax));
    this.numbers = this.axes.map(() => 0);
    this.lists = this.axes.map(() => NO_POSITIONS);
    this.shape = plan.shape;
    this.total = this.shape.reduce((a, b) => a * b, 1);
    this.chunkCount = plan.chunkCount;
    this.outStride = this.shape.map(() => 1);
    for (let a = this.shape.length - 2; a >= 0; a--) this.outStride[a] = this.outStride[a + 1]! * this.shape[a + 1]!;
  }

  chunk(i: number): ChunkGeo {
    const n = this.axes.length;
    const geo = new Geo(this.numbers, this.lists);
    for (let a = n - 1; a >= 0; a--) {
      const ax = this.axes[a]!;
      const b = i % ax.count;
      i = Math.floor(i / ax.count);
      geo.bins[a] = ax.bin(b);
      geo.start[a] = ax.start(b);
      geo.selPos[a] = ax.selPos(b);
      geo.sel[a] = ax.sel(b);
      geo.points *= ax.selCount(b);
    }
    return geo;
  }

  /** The last request shape `chunkDims` gave, and the whole block of it. */
  private dims: readonly number[] = [];
  private whole: Uint32Array[] | null = null;

  /**
   * Selected positions per axis of chunk `i` (its request shape), without
   * building its geometry. Chunks of one shape share the array: read only.
   */
  chunkDims(i: number): readonly number[] {
    const n = this.axes.length;
    let same = this.dims.length === n;
    for (let a = n - 1, j = i; a >= 0 && same; a--) {
      const ax = this.axes[a]!;
      same = ax.selCount(j % ax.count) === this.dims[a];
      j = Math.floor(j / ax.count);
    }
    if (same) return this.dims;
    const dims = new Array<number>(n);
    for (let a = n - 1, j = i; a >= 0; a--) {
      const ax = this.axes[a]!;
      dims[a] = ax.selCount(j % ax.count);
      j = Math.floor(j / ax.count);
    }
    this.dims = dims;
    this.whole = null;
    return dims;
  }

  /** The block of every position of every axis of `dims` (from `chunkDims`; shared, read only). */
  wholeBlock(dims: readonly number[]): Uint32Array[] {
    if (dims !== this.dims || this.whole === null) {
      const block = dims.map((d) => iota(d));
      if (dims !== this.dims) return block;
      this.whole = block;
    }
    return this.whole;
  }

  /** `[wholeBlock(dims)]`, the list shared too for the chunk shape `chunkDims` gave last (read only). */
  wholeBlockList(dims: readonly number[]): Uint32Array[][] {
    const block = this.wholeBlock(dims);
    if (block !== this.whole) return [block];
    if (this.wholeList?.[0] !== block) this.wholeList = [block];
    return this.wholeList;
  }

  private wholeList: Uint32Array[][] | null = null;

  /** Requested points of chunk `i` (without building its geometry). */
  chunkPoints(i: number): number {
    let n = 1;
    for (let a = this.axes.length - 1; a >= 0; a--) {
      const ax = this.axes[a]!;
      n *= ax.selCount(i % ax.count);
      i = Math.floor(i / ax.count);
    }
    return n;
  }

  /**
   * Where chunk `i`'s requested points start in the flat output when they
   * lie together there, in request order (the chunk covers every selected
   * value of the axes inside the innermost one it covers in part, and one
   * value of each axis outside it); -1 otherwise. Builds no geometry.
   */
  contiguousStart(i: number): number {
    let start = 0;
    let partial = false;
    for (let a = this.axes.length - 1; a >= 0; a--) {
      const ax = this.axes[a]!;
      const b = i % ax.count;
      i = Math.floor(i / ax.count);
      const cnt = ax.selCount(b);
      if (partial && cnt !== 1) return -1;
      if (cnt !== this.shape[a]) partial = true;
      start += ax.selPos(b) * this.outStride[a]!;
    }
    return start;
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

/**
 * A geometry of one empty whole axis, built from placeholders: kept for its
 * maps (see ts/shapes.ts), and the placeholder of RunSession's exemplar.
 */
export const GEOMETRY_EXEMPLAR = keepShape(
  new PlanGeometry({
    describe: () => [{ whole: true, values: 0, chunk: 1, bin: new Uint32Array(0), start: new Uint32Array(0), len: new Uint32Array(0), selPos: new Uint32Array(0), selCount: new Uint32Array(0), sel: new Uint32Array(0) }],
    shape: [0],
    chunkCount: 0,
  } as unknown as BindingPlan),
);
/** A chunk geometry of placeholders, kept for its maps (see ts/shapes.ts). */
export const GEO_EXEMPLAR: ChunkGeo = keepShape(new Geo([0], [NO_POSITIONS]));
