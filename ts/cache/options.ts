/**
 * Validation (typanion) and normalisation of public options. Every failure
 * is an `InvalidOptionError` naming the option, axis and value.
 */
import * as t from 'typanion';
import { InvalidOptionError } from '../errors/index.js';
import { compareCodePoints, encodeCanonical } from '../canonical/encode.js';
import type { Params, Value } from '../value.js';

/** Options of `ChunkCache.open`. */
export interface OpenOptions {
  /** Store directory (one LMDB environment). @default '.chunk_memo' under cwd */
  readonly root?: string;
  /** Fixed parameters: part of the cache identity. @default {} */
  readonly params?: Params;
  /** Values of each axis. `{}` makes a singleton cache (one point). */
  readonly axisValues: Readonly<Record<string, Iterable<Value>>>;
  /**
   * Memo chunk size per axis (at most 2^24 points per chunk).
   * @default the full axis length, reduced (last axis first) to at most 65,536 points per chunk
   */
  readonly chunkSpec?: Readonly<Record<string, number | { size: number }>>;
  /** Axis order of the grid (first slowest). @default names sorted by code point */
  readonly axisOrder?: readonly string[];
  /** Part of the identity; bump it to start afresh. @default 'v1' */
  readonly cacheVersion?: string;
  /** Bind the identity to a function's normalised source or to a version label. */
  readonly code?: ((...args: never[]) => unknown) | string;
  /** Refuse to create a cache that duplicates, covers or is covered by another. @default false */
  readonly exclusive?: boolean;
  /** Emit a `CHUNK_MEMO_OVERLAP` warning when another cache shares points. @default false */
  readonly warnOnOverlap?: boolean;
  /** 1: one-line progress on stderr; 2: also a line per chunk. @default 0 */
  readonly verbose?: 0 | 1 | 2;
  /** LRU byte budget of the root, applied after runs (see `gc`). */
  readonly maxBytes?: number;
  /** Read-only shared roots searched after `root` (hits are copied into `root`). */
  readonly sharedRoots?: readonly string[];
}

const isOpenOptions = t.isObject(
  {
    root: t.isOptional(t.isString()),
    params: t.isOptional(t.isUnknown()),
    axisValues: t.isUnknown(),
    chunkSpec: t.isOptional(t.isUnknown()),
    axisOrder: t.isOptional(t.isArray(t.isString())),
    cacheVersion: t.isOptional(t.isString()),
    code: t.isOptional(t.isUnknown()),
    exclusive: t.isOptional(t.isBoolean()),
    warnOnOverlap: t.isOptional(t.isBoolean()),
    verbose: t.isOptional(t.isEnum([0, 1, 2] as const)),
    maxBytes: t.isOptional(t.cascade(t.isNumber(), [t.isInteger(), t.isAtLeast(0)])),
    sharedRoots: t.isOptional(t.isArray(t.isString())),
  },
  { extra: t.isUnknown() },
);

const KNOWN = new Set([
  'root', 'params', 'axisValues', 'chunkSpec', 'axisOrder', 'cacheVersion', 'code', 'exclusive',
  'warnOnOverlap', 'verbose', 'maxBytes', 'sharedRoots',
]);

/** Runs a typanion check and throws an InvalidOptionError listing its messages. */
export function check<T>(where: string, validator: t.StrictValidator<unknown, T>, value: unknown): asserts value is T {
  const errors: string[] = [];
  if (!validator(value, { errors })) {
    const text = errors.map((e) => e.replace(/^\./, 'options.').replace(/^Expected/, 'options: expected')).join('; ');
    throw new InvalidOptionError(`${where}: ${text}`);
  }
}

function describe(v: unknown): string {
  try {
    if (typeof v === 'bigint') return `${v}n`;
    if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
    if (typeof v === 'string') return JSON.stringify(v);
    if (v instanceof Date) return `Date(${v.toISOString()})`;
    const s = JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x));
    if (s !== undefined) return s.length > 80 ? `${s.slice(0, 77)}...` : s;
  } catch {
    /* fall through */
  }
  return String(v);
}
export { describe as describeValue };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const p = Object.getPrototypeOf(v);
  return p === Object.prototype || p === null;
}

/** Normalised grid description. */
export interface NormalizedGrid {
  params: Params;
  axisOrder: string[];
  axisValues: Record<string, Value[]>;
  chunkSpec: Record<string, number>;
}

/** Throws the encoder's error (naming the value's path) for a value that cannot be hashed; numbers and well-formed strings need no encoding to tell. */
function checkEncodable(values: readonly Value[], where: string): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v === 'number' ? !Number.isNaN(v) : typeof v === 'string' && (v as string & { isWellFormed(): boolean }).isWellFormed()) continue;
    encodeCanonical(v, `${where}[${i}]`);
  }
}

/** Sorts values of a non-array iterable by their canonical encoding. */
function sortCanonical(values: Value[], where: string): Value[] {
  const keyed = values.map((v, i) => ({ v, k: encodeCanonical(v, `${where}[${i}]`) }));
  keyed.sort((a, b) => Buffer.compare(a.k, b.k));
  return keyed.map((x) => x.v);
}

/** Normalises one axis' values: arrays keep order, other iterables are sorted. */
export function normalizeAxisList(where: string, axis: string, list: unknown): Value[] {
  if (typeof list === 'string' || list === null || typeof list !== 'object' || !(Symbol.iterator in list)) {
    throw new InvalidOptionError(
      `${where}: axisValues.${axis} must be an array or iterable of values (got ${describe(list)}); wrap a single value in [ ]`,
    );
  }
  const arr = Array.from(list as Iterable<Value>);
  return Array.isArray(list) ? arr : sortCanonical(arr, `axisValues.${axis}`);
}

/** Validates and normalises `ChunkCache.open` options (not the identity). */
export function normalizeOpenOptions(where: string, options: unknown): OpenOptions & NormalizedGrid {
  if (!isPlainObject(options)) throw new InvalidOptionError(`${where}: options must be an object with at least axisValues`);
  for (const k of Object.keys(options)) {
    if (!KNOWN.has(k)) throw new InvalidOptionError(`${where}: unknown option ${JSON.stringify(k)}; known options are ${[...KNOWN].join(', ')}`);
  }
  check(where, isOpenOptions, options);
  const o = options as unknown as OpenOptions;
  if (o.root !== undefined && !o.root.trim()) {
    throw new InvalidOptionError(`${where}: options.root is an empty path; give a directory (e.g. '.chunk_memo') or leave root out to use $CHUNK_MEMO_ROOT or .chunk_memo`);
  }
  if (o.axisValues === undefined || !isPlainObject(o.axisValues)) {
    throw new InvalidOptionError(`${where}: options.axisValues must be an object mapping axis names to value lists (use {} for a singleton cache)`);
  }
  const params = o.params ?? {};
  if (!isPlainObject(params)) throw new InvalidOptionError(`${where}: options.params must be a plain object (got ${describe(params)})`);
  encodeCanonical(params, 'params');
  if (o.code !== undefined && typeof o.code !== 'function' && typeof o.code !== 'string') {
    throw new InvalidOptionError(`${where}: options.code must be a function or a version string (got ${describe(o.code)})`);
  }
  const names = Object.keys(o.axisValues);
  for (const n of names) {
    // An own "__proto__" key (from JSON.parse, say) cannot be a property name
    // of the plain objects that carry axes around.
    if (n === '__proto__') throw new InvalidOptionError(`${where}: axisValues names an axis "__proto__", which is reserved; rename the axis`);
  }
  for (const n of names) {
    if (Object.prototype.hasOwnProperty.call(params, n)) {
      throw new InvalidOptionError(
        `${where}: ${JSON.stringify(n)} is both a param and an axis; drop it from params and use cache.select({ values: { ${n}: ... } }), or autoLoad with allowSuperset`,
      );
    }
  }
  const axisValues: Record<string, Value[]> = {};
  for (const n of names) {
    const vals = normalizeAxisList(where, n, (o.axisValues as Record<string, unknown>)[n]);
    if (vals.length === 0) throw new InvalidOptionError(`${where}: axisValues.${n} is empty; an axis needs at least one value`);
    // Encodability is checked here (naming the path); duplicates are found
    // when the grid is built from the value hashes.
    checkEncodable(vals, `axisValues.${n}`);
    axisValues[n] = vals;
  }
  let axisOrder = [...names].sort(compareCodePoints);
  if (o.axisOrder !== undefined) {
    const given = [...o.axisOrder];
    const missing = names.filter((n) => !given.includes(n));
    const extra = given.filter((n) => !names.includes(n));
    if (missing.length || extra.length || new Set(given).size !== given.length) {
      throw new InvalidOptionError(
        `${where}: options.axisOrder must list each axis exactly once (axes: ${names.join(', ') || 'none'}; got ${given.join(', ') || 'none'})`,
      );
    }
    axisOrder = given;
  }
  const chunkSpec = normalizeChunkSpec(where, o.chunkSpec, axisValues, axisOrder);
  return { ...o, params: params as Params, axisOrder, axisValues, chunkSpec };
}

/**
 * Default memo chunk size: the full axis lengths, reduced (last axis first)
 * until a chunk holds at most this many points (SPEC §4.2).
 */
export const DEFAULT_CHUNK_POINTS = 65_536;
/**
 * Hard limit on the points of one memo chunk. A record is rewritten whole
 * when points are added, holds u32 offsets into at most 4 GiB of data, and
 * is read into memory whole; 2^24 points keep a float64 record at 128 MiB
 * and leave 256 bytes per point for item outputs.
 */
export const MAX_CHUNK_POINTS = 2 ** 24;

/** Sizes reduced, last axis first, until a chunk holds at most `cap` points. */
function reduceSizes(sizes: Record<string, number>, lengths: Record<string, number>, order: readonly string[], reducible: (a: string) => boolean, cap: number): void {
  const eff = (a: string): number => Math.min(sizes[a]!, lengths[a]!);
  for (let k = order.length - 1; k >= 0; k--) {
    const a = order[k]!;
    if (!reducible(a)) continue;
    let rest = 1;
    for (const b of order) if (b !== a) rest *= eff(b);
    if (rest * eff(a) > cap) sizes[a] = Math.max(1, Math.floor(cap / rest));
  }
}

/**
 * Validates chunk sizes (positive integers for known axes) and fills in
 * the default for axes without one: the full axis length, reduced (last
 * axis of `axisOrder` first) until a chunk holds at most
 * `DEFAULT_CHUNK_POINTS` points. Chunks over `MAX_CHUNK_POINTS` points are
 * an `InvalidOptionError` that suggests sizes.
 */
export function normalizeChunkSpec(
  where: string, spec: unknown, axisValues: Record<string, Value[]>, axisOrder: readonly string[] = Object.keys(axisValues),
): Record<string, number> {
  const out: Record<string, number> = {};
  if (spec !== undefined && !isPlainObject(spec)) throw new InvalidOptionError(`${where}: options.chunkSpec must be an object mapping axis names to sizes`);
  const s = (spec ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(s)) {
    if (!Object.prototype.hasOwnProperty.call(axisValues, k)) {
      throw new InvalidOptionError(`${where}: chunkSpec names unknown axis ${JSON.stringify(k)}; axes are ${Object.keys(axisValues).join(', ') || 'none'}`);
    }
  }
  const lengths: Record<string, number> = {};
  const defaulted = new Set<string>();
  for (const [axis, vals] of Object.entries(axisValues)) {
    lengths[axis] = vals.length;
    let size: unknown = Object.prototype.hasOwnProperty.call(s, axis) ? s[axis] : undefined;
    if (isPlainObject(size)) size = size.size;
    if (size === undefined) {
      size = vals.length;
      defaulted.add(axis);
    }
    if (typeof size !== 'number' || !Number.isInteger(size) || size < 1 || size > 0xffffffff) {
      throw new InvalidOptionError(
        `${where}: chunkSpec.${axis} must be a positive integer of at most ${0xffffffff} (got ${describe(isPlainObject(s[axis]) ? size : s[axis])})`,
      );
    }
    out[axis] = size;
  }
  const order = axisOrder.filter((a) => a in out);
  reduceSizes(out, lengths, order, (a) => defaulted.has(a), DEFAULT_CHUNK_POINTS);
  let points = 1;
  for (const a of order) points *= Math.min(out[a]!, lengths[a]!);
  if (points > MAX_CHUNK_POINTS) {
    const suggest = { ...out };
    reduceSizes(suggest, lengths, order, () => true, DEFAULT_CHUNK_POINTS);
    const sizes = order.map((a) => `${a}: ${Math.min(out[a]!, lengths[a]!)}`).join(', ');
    throw new InvalidOptionError(
      `${where}: chunkSpec makes memo chunks of ${points} points (${sizes}), over the limit of ${MAX_CHUNK_POINTS} points per chunk; ` +
        `use smaller sizes, e.g. chunkSpec: ${JSON.stringify(Object.fromEntries(order.map((a) => [a, suggest[a]])))} ` +
        `(${DEFAULT_CHUNK_POINTS} points per chunk, the default), or leave chunkSpec out`,
    );
  }
  return out;
}
