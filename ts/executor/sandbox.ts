/**
 * The sandbox of `chunk-memo worker`: one worker thread per concurrency
 * slot. Tasks compute there, so the process's main thread keeps renewing
 * BullMQ job locks however long a job runs. A thread that dies fails its
 * job (BullMQ retries it per its attempts) and is replaced.
 */
import { Worker } from 'node:worker_threads';
import type { JobData } from './wire.js';
import type { SandboxReply, SandboxRequest } from './sandbox-thread.js';

/** The encoded outputs of a job computed in the sandbox. */
export interface SandboxResult {
  readonly bytes: Uint8Array;
  readonly dtype: string;
  readonly count: number;
  readonly sha256: string;
}

/** An error thrown by a task in the sandbox (name and code kept). */
export class SandboxError extends Error {
  constructor(name: string, message: string, readonly code?: string) {
    super(message);
    this.name = name;
  }
}

interface Slot {
  worker: Worker;
  busy: { id: number; resolve: (r: SandboxResult) => void; reject: (e: Error) => void } | null;
}

const fromSource = import.meta.url.endsWith('.ts');
const threadUrl = new URL(fromSource ? './sandbox-thread.ts' : './sandbox-thread.js', import.meta.url);

function newThread(): Worker {
  if (!fromSource) return new Worker(threadUrl);
  // From TypeScript sources (tests, tsx): register tsx in the thread first
  // (Node 20 applies no loader hooks to a worker's entry file).
  const tsx = import.meta.resolve('tsx/esm/api');
  return new Worker(`import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(threadUrl.href)}); })`, { eval: true });
}

/** A fixed set of sandbox threads; `run` takes a free one (the BullMQ worker never asks for more than `size` at once). */
export class Sandbox {
  private readonly slots: Slot[] = [];
  private nextId = 1;
  private closed = false;

  constructor(readonly size: number, private readonly device?: string) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const slot: Slot = { worker: newThread(), busy: null };
    slot.worker.on('message', (m: SandboxReply) => {
      const b = slot.busy;
      if (!b || b.id !== m.id) return;
      slot.busy = null;
      if (m.type === 'ok') b.resolve({ bytes: m.bytes, dtype: m.dtype, count: m.count, sha256: m.sha256 });
      else b.reject(new SandboxError(m.name, m.message, m.code));
    });
    const died = (why: string): void => {
      const b = slot.busy;
      slot.busy = null;
      const i = this.slots.indexOf(slot);
      if (i >= 0 && !this.closed) this.slots[i] = this.spawn();
      b?.reject(new SandboxError('WorkerDiedError', `the task's sandbox thread ${why}`));
    };
    slot.worker.on('error', (e) => died(`crashed (${e.message})`));
    slot.worker.on('exit', (code) => {
      if (!this.closed) died(`exited with code ${code}`);
    });
    return slot;
  }

  /** Computes a job in a free thread. */
  run(data: JobData): Promise<SandboxResult> {
    const slot = this.slots.find((s) => !s.busy);
    if (this.closed) return Promise.reject(new SandboxError('ClosedError', 'the worker is shutting down'));
    if (!slot) return Promise.reject(new SandboxError('Error', 'no free sandbox thread (more jobs than --concurrency)'));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      slot.busy = { id, resolve, reject };
      const req: SandboxRequest = { id, data, ...(this.device !== undefined ? { device: this.device } : {}) };
      slot.worker.postMessage(req);
    });
  }

  /** Terminates the threads (a running job fails). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map(async (s) => {
      const b = s.busy;
      s.busy = null;
      await s.worker.terminate();
      b?.reject(new SandboxError('ClosedError', 'the worker shut down while the job ran'));
    }));
  }
}
