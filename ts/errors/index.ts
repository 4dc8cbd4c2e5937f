/**
 * One error hierarchy: every failure chunk-memo raises is a `ChunkMemoError`
 * with a stable `code`, so scripts can branch on `err.code`.
 *
 * @example
 * try { ChunkCache.open({ axisValues: { x: [1, 1] } }) }
 * catch (e) { if (e instanceof ChunkMemoError && e.code === 'ERR_DUPLICATE_AXIS_VALUE') ... }
 */
export class ChunkMemoError extends Error {
  /** Stable machine-readable code, e.g. `ERR_INVALID_OPTION`. */
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = 'ChunkMemoError';
  }
}

function subclass(name: string, code: string) {
  const C = class extends ChunkMemoError {
    constructor(message: string, options?: { cause?: unknown }) {
      super(code, message, options);
      this.name = name;
    }
  };
  Object.defineProperty(C, 'name', { value: name });
  return C;
}

/** An option has a bad value. Code `ERR_INVALID_OPTION`. */
export const InvalidOptionError = subclass('InvalidOptionError', 'ERR_INVALID_OPTION');
export type InvalidOptionError = InstanceType<typeof InvalidOptionError>;
/** A value cannot be canonically encoded. Code `ERR_UNHASHABLE_VALUE`. */
export const UnhashableValueError = subclass('UnhashableValueError', 'ERR_UNHASHABLE_VALUE');
export type UnhashableValueError = InstanceType<typeof UnhashableValueError>;
/** An axis lists a value twice. Code `ERR_DUPLICATE_AXIS_VALUE`. */
export const DuplicateAxisValueError = subclass('DuplicateAxisValueError', 'ERR_DUPLICATE_AXIS_VALUE');
export type DuplicateAxisValueError = InstanceType<typeof DuplicateAxisValueError>;
/** A selection names a value or index the cache does not have. Code `ERR_SELECTION`. */
export const SelectionError = subclass('SelectionError', 'ERR_SELECTION');
export type SelectionError = InstanceType<typeof SelectionError>;
/** An exec function returned the wrong number or kind of outputs. Code `ERR_EXEC_OUTPUT`. */
export const ExecOutputError = subclass('ExecOutputError', 'ERR_EXEC_OUTPUT');
export type ExecOutputError = InstanceType<typeof ExecOutputError>;
/** An exec function threw; `cause` is its error. Code `ERR_EXEC_FAILED`. */
export const ExecError = subclass('ExecError', 'ERR_EXEC_FAILED');
export type ExecError = InstanceType<typeof ExecError>;
/** Several caches match a request. Code `ERR_AMBIGUOUS_CACHE`. */
export const AmbiguousCacheError = subclass('AmbiguousCacheError', 'ERR_AMBIGUOUS_CACHE');
export type AmbiguousCacheError = InstanceType<typeof AmbiguousCacheError>;
/** `exclusive` refused a cache that duplicates or overlaps another. Code `ERR_EXCLUSIVE`. */
export const ExclusiveCacheError = subclass('ExclusiveCacheError', 'ERR_EXCLUSIVE');
export type ExclusiveCacheError = InstanceType<typeof ExclusiveCacheError>;
/** No cache with that id at that root. Code `ERR_CACHE_NOT_FOUND`. */
export const CacheNotFoundError = subclass('CacheNotFoundError', 'ERR_CACHE_NOT_FOUND');
export type CacheNotFoundError = InstanceType<typeof CacheNotFoundError>;
/** The operation was aborted through its AbortSignal. Code `ERR_ABORTED`. */
export const AbortedError = subclass('AbortedError', 'ERR_ABORTED');
export type AbortedError = InstanceType<typeof AbortedError>;
/** An archive is malformed, tampered with or unsafe. Code `ERR_ARCHIVE`. */
export const ArchiveError = subclass('ArchiveError', 'ERR_ARCHIVE');
export type ArchiveError = InstanceType<typeof ArchiveError>;
/** The cache was closed. Code `ERR_CLOSED`. */
export const ClosedError = subclass('ClosedError', 'ERR_CLOSED');
export type ClosedError = InstanceType<typeof ClosedError>;
/** A gpu.js kernel or its backend failed (mode unavailable here, no WebGPU adapter, compile or run error). Code `ERR_GPU`. */
export const GpuError = subclass('GpuError', 'ERR_GPU');
export type GpuError = InstanceType<typeof GpuError>;

/**
 * Turns an error thrown by the native binding into a ChunkMemoError. The
 * binding's errors carry their stable code as `code` (and their data as
 * fields, kept on `cause`); anything else is `ERR_NATIVE`.
 */
export function fromNative(e: unknown, context?: string): ChunkMemoError {
  if (e instanceof ChunkMemoError) return e;
  const raw = (e as { code?: unknown } | null | undefined)?.code;
  const code = typeof raw === 'string' && raw.startsWith('ERR_') ? raw : 'ERR_NATIVE';
  const text = e instanceof Error ? e.message : String(e);
  return new ChunkMemoError(code, context ? `${context}: ${text}` : text, { cause: e });
}
