/** Worker thread of the pool: runs jobs with `executeJob`, replies `{ type: 'ok' | 'error' }`. */
import { parentPort } from 'node:worker_threads';
import { executeJob } from './execute.js';
import type { ExecJob } from './job.js';

parentPort!.on('message', async (msg: { id: number; job: ExecJob }) => {
  try {
    const out = await executeJob(msg.job);
    const transfer = ArrayBuffer.isView(out) && out.byteOffset === 0 && out.byteLength === out.buffer.byteLength && !(out.buffer instanceof SharedArrayBuffer) ? [out.buffer as ArrayBuffer] : [];
    parentPort!.postMessage({ type: 'ok', id: msg.id, out }, transfer);
  } catch (e) {
    const err = e instanceof Error ? { name: e.name, message: e.message, stack: e.stack, code: (e as { code?: unknown }).code } : { name: 'Error', message: String(e) };
    parentPort!.postMessage({ type: 'error', id: msg.id, error: err });
  }
});
