/**
 * A sandbox thread of `chunk-memo worker`: decodes a job, runs it with
 * `executeJob` and encodes its outputs, so the worker's main thread stays
 * free to renew BullMQ locks while the task computes.
 */
import { parentPort } from 'node:worker_threads';
import { executeJob } from '../task/execute.js';
import { decodeJob, encodeOutput, type JobData } from './wire.js';

export interface SandboxRequest {
  readonly id: number;
  readonly data: JobData;
  readonly device?: string;
}

export type SandboxReply =
  | { readonly type: 'ok'; readonly id: number; readonly bytes: Uint8Array; readonly dtype: string; readonly count: number; readonly sha256: string }
  | { readonly type: 'error'; readonly id: number; readonly name: string; readonly message: string; readonly code?: string };

parentPort!.on('message', async (req: SandboxRequest) => {
  try {
    const out = encodeOutput(await executeJob(decodeJob(req.data, req.device)));
    // Own the bytes in a buffer of their own, then move it (no copy).
    const own = out.bytes.byteOffset === 0 && out.bytes.byteLength === out.bytes.buffer.byteLength && !(out.bytes.buffer instanceof SharedArrayBuffer)
      ? out.bytes
      : out.bytes.slice();
    const reply: SandboxReply = { type: 'ok', id: req.id, bytes: own, dtype: out.dtype, count: out.count, sha256: out.sha256 };
    parentPort!.postMessage(reply, [own.buffer as ArrayBuffer]);
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    const code = (err as { code?: unknown }).code;
    const reply: SandboxReply = { type: 'error', id: req.id, name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
    parentPort!.postMessage(reply);
  }
});
