/**
 * What travels through Redis between a coordinator (`bullmqExecutor`) and
 * `chunk-memo worker` processes.
 *
 * BullMQ stores job data and return values as JSON, which would turn bigints,
 * Dates and typed arrays into something else and numbers into text 3-5x
 * their size. So a job's block (params, axes) is msgpack in base64 inside the
 * JSON, and a job's outputs never go through JSON at all: the worker writes
 * them to a Redis key as bytes (raw little-endian elements for a numeric
 * TypedArray, msgpack otherwise) and returns only a small descriptor with
 * their size and SHA-256, which the coordinator checks before decoding.
 */
import { createHash } from 'node:crypto';
import { endianness } from 'node:os';
import { Packr, Unpackr } from 'msgpackr';
import { ChunkMemoError } from '../errors/index.js';
import type { ExecJob, JobOutput, ModuleTaskSpec } from '../task/job.js';
import type { Params, TypedArray, Value } from '../value.js';

/** Version of the job and result formats; a worker refuses others. */
export const WIRE_VERSION = 1;

/** BullMQ job name of chunk-memo jobs. */
export const JOB_NAME = 'chunk-memo-exec';

/** Most points one job may carry (a sanity bound against malformed jobs). */
export const MAX_JOB_POINTS = 1 << 26;

/** The JSON data of a BullMQ job. */
export interface JobData {
  readonly v: number;
  readonly task: ModuleTaskSpec;
  readonly jobIndex: number;
  readonly count: number;
  readonly key: string;
  /** Seconds the result key lives. */
  readonly ttl: number;
  /** Identifies the coordinator session that added the job. */
  readonly session: string;
  /** base64 of msgpack `{ params, axisOrder, axes }`. */
  readonly block: string;
}

/** What a worker returns for a job (BullMQ's `returnvalue`). */
export interface ResultRef {
  readonly v: number;
  /** Redis key holding the output bytes. */
  readonly key: string;
  readonly bytes: number;
  /** A TypedArray constructor name (raw little-endian elements), or 'msgpack'. */
  readonly dtype: string;
  readonly count: number;
  /** Hex SHA-256 of the bytes. */
  readonly sha256: string;
}

/** A malformed job or result. Code `ERR_BAD_JOB`. */
export class BadJobError extends ChunkMemoError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ERR_BAD_JOB', message, options);
    this.name = 'BadJobError';
  }
}

// Values: msgpack with typed arrays, Dates and 64-bit integers as bigints
// (a bigint stays a bigint, a number a number).
const packr = new Packr({ useRecords: false, moreTypes: true, variableMapSize: true });
const unpackr = new Unpackr({ useRecords: false, moreTypes: true, int64AsType: 'bigint' });
// Outputs: records, so objects of one shape store their keys once per job.
const outUnpackr = new Unpackr({ moreTypes: true, int64AsType: 'bigint' });

const TYPED: Record<string, { new (b: ArrayBuffer, o?: number, n?: number): TypedArray; new (n: number): TypedArray; BYTES_PER_ELEMENT: number }> = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
} as never;

if (endianness() !== 'LE') {
  // Raw elements are little-endian on the wire and in the store.
  throw new ChunkMemoError('ERR_UNSUPPORTED_PLATFORM', 'chunk-memo distributed execution needs a little-endian host');
}

/** The deterministic BullMQ job id of a job: its key plus a hash of its task (no `:`, never an integer). */
export function jobIdOf(job: ExecJob): string {
  const task = job.task as ModuleTaskSpec;
  const t = createHash('sha256').update(`${task.moduleUrl}\0${task.exportName}`).digest('hex').slice(0, 12);
  return `cm-${job.key.replace(/[^A-Za-z0-9_-]/g, '_')}-${t}`;
}

/** Redis key of a job's result. */
export function resultKeyOf(prefix: string, queue: string, jobId: string): string {
  return `${prefix}:${queue}:cm-result:${jobId}`;
}

/** Encodes a job for BullMQ (JSON-safe). */
export function encodeJob(job: ExecJob, ttl: number, session: string): JobData {
  if (job.task.kind !== 'module') {
    throw new ChunkMemoError(
      'ERR_INVALID_OPTION',
      `bullmqExecutor runs module tasks only (defineTask(moduleUrl, exportName)); this job's task is a ${job.task.kind} task, which ${job.task.kind === 'local' ? 'exists only in this process' : 'carries code, and chunk-memo workers run no code sent to them'}`,
    );
  }
  const block = packr.pack({ params: job.params, axisOrder: job.axisOrder, axes: job.axes });
  return {
    v: WIRE_VERSION,
    task: { kind: 'module', moduleUrl: job.task.moduleUrl, exportName: job.task.exportName },
    jobIndex: job.jobIndex,
    count: job.count,
    key: job.key,
    ttl,
    session,
    block: block.toString('base64'),
  };
}

const isObj = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Checks the JSON part of a job (cheap: the block is not decoded). */
export function checkJobData(data: unknown): JobData {
  if (!isObj(data)) throw new BadJobError(`malformed chunk-memo job: data is ${data === null ? 'null' : typeof data}, not an object`);
  if (data.v !== WIRE_VERSION) throw new BadJobError(`malformed chunk-memo job: format version ${JSON.stringify(data.v)}, this worker reads version ${WIRE_VERSION} (coordinator and workers need the same chunk-memo release)`);
  const t = data.task;
  if (!isObj(t) || t.kind !== 'module' || typeof t.moduleUrl !== 'string' || typeof t.exportName !== 'string' || t.exportName === '') {
    throw new BadJobError('malformed chunk-memo job: task must be { kind: "module", moduleUrl, exportName }');
  }
  for (const f of ['jobIndex', 'count', 'ttl'] as const) {
    const n = data[f];
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new BadJobError(`malformed chunk-memo job: ${f} must be a non-negative integer`);
  }
  if ((data.count as number) > MAX_JOB_POINTS) throw new BadJobError(`malformed chunk-memo job: ${data.count as number} points (at most ${MAX_JOB_POINTS})`);
  if (typeof data.key !== 'string' || typeof data.session !== 'string' || typeof data.block !== 'string') {
    throw new BadJobError('malformed chunk-memo job: key, session and block must be strings');
  }
  return data as unknown as JobData;
}

/** Decodes a checked job into the ExecJob that `executeJob` runs. */
export function decodeJob(data: JobData, device: string | undefined): ExecJob {
  let block: unknown;
  try {
    block = unpackr.unpack(Buffer.from(data.block, 'base64'));
  } catch (e) {
    throw new BadJobError(`malformed chunk-memo job: its block is not msgpack (${(e as Error).message})`, { cause: e });
  }
  if (!isObj(block) || !isObj(block.params) || !Array.isArray(block.axisOrder) || !isObj(block.axes)) {
    throw new BadJobError('malformed chunk-memo job: the block must hold params, axisOrder and axes');
  }
  const axisOrder = block.axisOrder as unknown[];
  const axes = block.axes as Record<string, unknown>;
  let n = 1;
  for (const a of axisOrder) {
    if (typeof a !== 'string' || !Array.isArray(axes[a])) throw new BadJobError(`malformed chunk-memo job: axis ${JSON.stringify(a)} has no value list`);
    n *= (axes[a] as unknown[]).length;
  }
  if (Object.keys(axes).length !== axisOrder.length) throw new BadJobError('malformed chunk-memo job: axes and axisOrder name different axes');
  if (n !== data.count) throw new BadJobError(`malformed chunk-memo job: count ${data.count} but the block has ${n} points`);
  return {
    task: data.task,
    params: block.params as Params,
    axisOrder: axisOrder as string[],
    axes: axes as Record<string, Value[]>,
    count: data.count,
    jobIndex: data.jobIndex,
    key: data.key,
    ...(device !== undefined ? { device } : {}),
  };
}

/** Encoded outputs of a job, ready to be written to Redis. */
export interface EncodedOutput {
  readonly bytes: Uint8Array;
  readonly dtype: string;
  readonly count: number;
  readonly sha256: string;
}

/** Encodes a job's outputs: raw elements for a numeric TypedArray, msgpack otherwise. */
export function encodeOutput(out: JobOutput): EncodedOutput {
  let bytes: Uint8Array;
  let dtype: string;
  if (ArrayBuffer.isView(out)) {
    dtype = out.constructor.name === 'Buffer' ? 'Uint8Array' : out.constructor.name;
    if (!TYPED[dtype]) throw new BadJobError(`the task returned a ${dtype}; return an array or a numeric TypedArray`);
    bytes = new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
  } else {
    dtype = 'msgpack';
    // Records: one Packr per job, so objects of one shape share their keys.
    bytes = new Packr({ moreTypes: true, variableMapSize: true }).pack(Array.from(out, (v) => (v === undefined ? null : v)));
  }
  return { bytes, dtype, count: out.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Checks a result descriptor returned by a worker. */
export function checkResultRef(v: unknown, expectCount: number): ResultRef {
  if (!isObj(v) || v.v !== WIRE_VERSION || typeof v.key !== 'string' || typeof v.dtype !== 'string' || typeof v.sha256 !== 'string'
    || typeof v.bytes !== 'number' || typeof v.count !== 'number') {
    throw new BadJobError(`a chunk-memo worker returned a malformed result descriptor (${JSON.stringify(v)?.slice(0, 200)}); are coordinator and workers the same chunk-memo release?`);
  }
  if (v.count !== expectCount) throw new BadJobError(`a chunk-memo worker returned ${v.count} outputs for ${expectCount} points`);
  return v as unknown as ResultRef;
}

/** Verifies and decodes output bytes fetched from Redis. */
export function decodeOutput(ref: ResultRef, bytes: Buffer | null): JobOutput {
  if (bytes === null) throw new BadJobError(`result key ${ref.key} is gone (expired or deleted)`);
  if (bytes.length !== ref.bytes) throw new BadJobError(`result key ${ref.key} holds ${bytes.length} bytes, the worker wrote ${ref.bytes}`);
  const sum = createHash('sha256').update(bytes).digest('hex');
  if (sum !== ref.sha256) throw new BadJobError(`result key ${ref.key}: SHA-256 mismatch (corrupted in transit or overwritten)`);
  if (ref.dtype === 'msgpack') {
    const out = outUnpackr.unpack(bytes) as unknown;
    if (!Array.isArray(out) || out.length !== ref.count) throw new BadJobError(`result key ${ref.key}: msgpack outputs are not an array of ${ref.count}`);
    return out;
  }
  const C = TYPED[ref.dtype];
  if (!C) throw new BadJobError(`result key ${ref.key}: unknown dtype ${JSON.stringify(ref.dtype)}`);
  if (bytes.length !== ref.count * C.BYTES_PER_ELEMENT) throw new BadJobError(`result key ${ref.key}: ${bytes.length} bytes for ${ref.count} ${ref.dtype} elements`);
  // Copy into an aligned buffer of its own (a Buffer may sit in a shared pool).
  const arr = new C(ref.count);
  new Uint8Array(arr.buffer).set(bytes);
  return arr;
}
