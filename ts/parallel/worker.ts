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

export default async function runJob(job: ExecJob): Promise<JobOutput | WorkerFailure> {
  try {
    await ensureTsLoader();
    const out = await executeJob(job.device === undefined && device !== undefined ? { ...job, device } : job);
    if (!isMainThread && ArrayBuffer.isView(out) && out.byteOffset === 0 && out.byteLength === out.buffer.byteLength && !(out.buffer instanceof SharedArrayBuffer)) {
      return Piscina.move(out as ArrayBufferView) as unknown as JobOutput;
    }
    return out;
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    return { failed: { name: err.name, message: err.message, ...(err.stack ? { stack: err.stack } : {}), ...((err as { code?: unknown }).code !== undefined ? { code: (err as { code?: unknown }).code } : {}) } };
  }
}
