/** Any typed array that can hold numbers or bigints. */
export type TypedArray =
  | Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array
  | Int32Array | Uint32Array | Float32Array | Float64Array
  | BigInt64Array | BigUint64Array;

/**
 * A value that chunk-memo can hash canonically: parameters, axis values and
 * (via msgpack) outputs. See docs/canonical-encoding.md.
 */
export type Value =
  | null | boolean | number | bigint | string | Date | Uint8Array
  | TypedArray | Value[] | { [k: string]: Value };

/** Fixed parameters of a cache. */
export type Params = Record<string, Value>;
