/**
 * A small worker-thread pool: one job per worker at a time, a FIFO queue,
 * and a dead worker fails its job (never silently) and is replaced.
 */
import { Worker } from 'node:worker_threads';
import type { ExecJob } from './job.js';

interface Pending {
  job: ExecJob;
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  current: (Pending & { id: number }) | null;
}

const fromSource = import.meta.url.endsWith('.ts');
const workerUrl = new URL(fromSource ? './worker.ts' : './worker.js', import.meta.url);
// Running from TypeScript sources (tests, tsx): the worker registers the tsx
// loader before importing its .ts entry (Node 20 does not apply loader hooks
// to a worker's entry file).
function newWorker(): Worker {
  if (!fromSource) return new Worker(workerUrl);
  const tsx = import.meta.resolve('tsx/esm/api');
  const code = `import(${JSON.stringify(tsx)}).then((t) => { t.register(); return import(${JSON.stringify(workerUrl.href)}); })`;
  return new Worker(code, { eval: true });
}

/** Error raised when a worker thread exits while running a job. */
export class WorkerDiedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WorkerDiedError';
  }
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly queue: Pending[] = [];
  private nextId = 1;
  private closed = false;

  constructor(readonly size: number) {
    for (let i = 0; i < size; i++) this.slots.push(this.spawn());
  }

  private spawn(): Slot {
    const slot: Slot = { worker: newWorker(), current: null };
    // Idle workers do not keep the process alive; busy ones do.
    slot.worker.unref();
    slot.worker.on('message', (m: { type: 'ok' | 'error'; id: number; out?: unknown; error?: { name: string; message: string; stack?: string; code?: unknown } }) => {
      const cur = slot.current;
      if (!cur || cur.id !== m.id) return;
      slot.current = null;
      slot.worker.unref();
      if (m.type === 'ok') cur.resolve(m.out);
      else {
        const e = new Error(m.error!.message);
        e.name = m.error!.name;
        if (m.error!.stack) e.stack = m.error!.stack;
        if (m.error!.code !== undefined) (e as Error & { code?: unknown }).code = m.error!.code;
        cur.reject(e);
      }
      this.pump();
    });
    const onDeath = (why: string): void => {
      const cur = slot.current;
      slot.current = null;
      const i = this.slots.indexOf(slot);
      if (!this.closed && i >= 0) this.slots[i] = this.spawn();
      if (cur) cur.reject(new WorkerDiedError(`worker thread ${why} while computing exec chunk ${cur.job.jobIndex}`));
      this.pump();
    };
    slot.worker.on('error', (e) => onDeath(`failed (${e.message})`));
    slot.worker.on('exit', (code) => {
      if (!this.closed) onDeath(`exited with code ${code}`);
    });
    return slot;
  }

  /** Threads of the pool (tests terminate one to simulate a crash). */
  get threads(): Worker[] {
    return this.slots.map((s) => s.worker);
  }

  run(job: ExecJob): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.queue.push({ job, resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    for (const slot of this.slots) {
      if (this.queue.length === 0) return;
      if (slot.current) continue;
      const p = this.queue.shift()!;
      const id = this.nextId++;
      slot.current = { ...p, id };
      slot.worker.ref();
      slot.worker.postMessage({ id, job: p.job });
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.slots.map((s) => s.worker.terminate()));
  }

  get isClosed(): boolean {
    return this.closed;
  }
}

// Pools shared by runParallel calls of this process, by size: a sweep script
// that calls runParallel many times pays the worker start-up once. Idle
// workers are unref'd, so they never keep the process alive.
const shared = new Map<number, WorkerPool>();

/** The process-wide pool of `size` worker threads. */
export function sharedPool(size: number): WorkerPool {
  let p = shared.get(size);
  if (!p || p.isClosed) {
    p = new WorkerPool(size);
    shared.set(size, p);
  }
  return p;
}

/**
 * Terminates the worker threads kept by `runParallel` (they are reused
 * across calls and never keep the process alive; call this to free them
 * early, e.g. after changing a task module on disk).
 */
export async function closeWorkerPools(): Promise<void> {
  const pools = [...shared.values()];
  shared.clear();
  await Promise.all(pools.map((p) => p.close()));
}
