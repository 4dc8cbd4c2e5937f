/**
 * Entry of pool workers (worker threads via piscina, child processes via tinypool):
 * runs one job with `executeJob`. A job's own failure comes back as a value
 * (`WorkerFailure`), so a rejected pool task always means the worker itself
 * failed. Typed outputs of a worker thread are transferred, not copied.
 */
import { isMainThread } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { executeJob } from '../task/execute.js';
import type { ExecJob, JobOutput } from '../task/job.js';

/** Several small jobs of one run in one message: what they share, once. */
export interface JobBundle {
  readonly task: ExecJob['task'];
  readonly params: ExecJob['params'];
  readonly axisOrder: ExecJob['axisOrder'];
  readonly device?: string;
  readonly blocks: ReadonlyArray<Pick<ExecJob, 'axes' | 'count' | 'jobIndex' | 'key'>>;
}

/** A job's error as it crosses back from a worker. */
export interface WorkerFailure {
  readonly failed: { name: string; message: string; stack?: string; code?: unknown };
}

const device = process.env.CHUNK_MEMO_DEVICE;
let tsLoader: Promise<void> | null = null;

/** Registers tsx's ESM hooks in this worker once, when the parent runs TypeScript. */
function ensureTsLoader(): Promise<void> {
  const api = process.env.CHUNK_MEMO_TSX_API;
  if (!api) return Promise.resolve();
  return (tsLoader ??= import(api).then((t: { register(): unknown }) => void t.register()));
}

function failure(e: unknown): WorkerFailure {
  const err = e instanceof Error ? e : new Error(String(e));
  const code = (err as { code?: unknown }).code;
  return { failed: { name: err.name, message: err.message, ...(err.stack ? { stack: err.stack } : {}), ...(code !== undefined ? { code } : {}) } };
}

async function one(job: ExecJob): Promise<JobOutput | WorkerFailure> {
  try {
    return await executeJob(job.device === undefined && device !== undefined ? { ...job, device } : job);
  } catch (e) {
    return failure(e);
  }
}

/**
 * Runs one job, or a bundle of small jobs sent in one message (tiny exec
 * chunks would otherwise cost a message each).
 */
export default async function runJob(task: ExecJob | JobBundle): Promise<JobOutput | WorkerFailure | Array<JobOutput | WorkerFailure>> {
  const bundle = 'blocks' in task ? task : null;
  try {
    await ensureTsLoader();
  } catch (e) {
    return bundle ? bundle.blocks.map(() => failure(e)) : failure(e);
  }
  if (bundle) {
    const { blocks, ...shared } = bundle;
    const outs: Array<JobOutput | WorkerFailure> = [];
    for (const b of blocks) outs.push(await one({ ...shared, ...b }));
    return outs;
  }
  const out = await one(task as ExecJob);
  if (!isMainThread && ArrayBuffer.isView(out) && out.byteOffset === 0 && out.byteLength === out.buffer.byteLength && !(out.buffer instanceof SharedArrayBuffer)) {
    return Piscina.move(out as ArrayBufferView) as unknown as JobOutput;
  }
  return out;
}
