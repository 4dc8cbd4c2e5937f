/**
 * `npm run bench:peers`: the workloads W1–W6 through chunk-memo (this
 * library), through the Python peers (PyPI chunk-memo 0.1.5 and
 * joblib.Memory, driven by bench/peers/peers.py) and beside the physical
 * limits (a raw LMDB read loop of the same bytes and a memcpy of them).
 *
 * Runs alternate (ours, chunk_memo, joblib, ours, ...) for every workload, so
 * a burst of load on the machine hits all three alike; the table shows
 * medians. Rewrites the "peers" section of BENCHMARKS.md (full runs only).
 *
 * Options:
 *   --quick       n = 200, 1 repetition, BENCHMARKS.md untouched (smoke run)
 *   --reps N      repetitions per workload and implementation (default 3)
 *   --no-peers    ours only (peers shown as skipped)
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { ChunkCache, defineTask, run, runParallel, type ChunkFn } from '../ts/index.js';
import { busy, busyWork, floats, objects } from './tasks.js';
import { fmt, writeSection } from './lib.js';

// ---------------------------------------------------------------- options

const argv = process.argv.slice(2);
const quick = argv.includes('--quick');
const noPeers = argv.includes('--no-peers');
const repsAt = argv.indexOf('--reps');
const repsArg = repsAt >= 0 ? Number(argv[repsAt + 1]) : undefined;
if (repsArg !== undefined && !(Number.isInteger(repsArg) && repsArg >= 1)) {
  console.error('bench:peers: --reps needs a positive integer');
  process.exit(2);
}
const N = quick ? 200 : 1000;
const CHUNK = N / 10; // 10 x 10 = 100 memo chunks
const FINE = N / 100; // 100 x 100 = 10,000 memo chunks (W4)
const REPS = repsArg ?? (quick ? 1 : 3);
const N2 = N + Math.max(1, Math.floor(N / 10)); // W5: axis a grows by 10%
const W6_A = 40;
const W6_B = 50;
const W6_CHUNK = 10;
const W6_WORKERS = 2;
const W4_SAMPLES = 5;

const TMP = resolve('.bench-tmp');
const PEER_TMP = join(TMP, 'peers');
const PY = join(resolve(process.env.BENCH_VENV ?? '.bench-venv'), 'bin', 'python'); // setup.sh honours BENCH_VENV too
const PEERS = ['chunk_memo', 'joblib'] as const;
type Peer = (typeof PEERS)[number];

mkdirSync(TMP, { recursive: true });
const OURS_TMP = mkdtempSync(join(TMP, 'ours-'));
let rootSeq = 0;
const newRoot = (label: string): string => join(OURS_TMP, `${label}-${rootSeq++}`);
const dropRoot = (root: string): void => rmSync(root, { recursive: true, force: true });

const range = (n: number, from = 0): number[] => Array.from({ length: n - from }, (_, i) => from + i);
const median = (xs: number[]): number => {
  const s = [...xs].sort((p, q) => p - q);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const log = (s: string): void => console.log(s);
const fail = (msg: string): never => {
  throw new Error(`bench:peers: ${msg}`);
};

// ---------------------------------------------------------------- peers

interface PeerRecord {
  ms: number | null;
  alt_ms?: number;
  executed?: number | null;
  points?: number;
  ok?: boolean;
  note?: string;
  version?: string;
  python?: string;
  error?: string;
  ms_serial?: number;
  ms_parallel?: number;
  speedup?: number;
  point_ms?: number;
  iters?: number;
  chunks?: number;
  cached_chunks?: number;
  expected_new?: number;
}

let peersSkipped: string | null = null;
/** CPU cores ours' parallel W6 runs obtained (process CPU time / wall time). */
const w6cores: number[] = [];

/** Runs setup.sh; returns null when the peers can run, else the reason. */
function setupPeers(): string | null {
  if (noPeers) return '--no-peers';
  log('bench:peers: preparing the Python peers (bash bench/peers/setup.sh) ...');
  const r = spawnSync('bash', ['bench/peers/setup.sh'], { encoding: 'utf8', stdio: ['ignore', 'inherit', 'pipe'], timeout: 15 * 60_000 });
  if (r.stderr) process.stderr.write(r.stderr);
  if (r.error) return `setup.sh could not run: ${r.error.message}`;
  if (r.status !== 0) {
    const last = r.stderr.split('\n').map((l) => l.trim()).filter(Boolean).pop();
    return `setup.sh exited ${r.status ?? r.signal}${last ? `: ${last}` : ''}`;
  }
  if (!existsSync(PY)) return `setup.sh succeeded but ${PY} is missing`;
  return null;
}

/** The last stdout line that parses as a JSON object (peers.py prints one; be lenient). */
function lastJson(stdout: string): PeerRecord | null {
  const lines = stdout.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!.trim();
    if (!line.startsWith('{')) continue;
    try {
      const v: unknown = JSON.parse(line);
      if (v && typeof v === 'object' && !Array.isArray(v)) return v as PeerRecord;
    } catch {
      /* not JSON: keep looking */
    }
  }
  return null;
}

function runPeer(peer: Peer, workload: string, extra: string[] = []): PeerRecord {
  const args = ['bench/peers/peers.py', '--workload', workload, '--peer', peer, '--tmp', PEER_TMP, '--n', String(N), '--chunk', String(CHUNK), ...extra];
  const r = spawnSync(PY, args, { encoding: 'utf8', maxBuffer: 256 * 2 ** 20, timeout: 30 * 60_000 });
  const rec = lastJson(r.stdout ?? '');
  const lastErr = (r.stderr ?? '').split('\n').map((l) => l.trim()).filter(Boolean).pop();
  if (!rec) {
    const why = r.error ? r.error.message : `exit ${r.status ?? r.signal}, no JSON on stdout${lastErr ? `; stderr: ${lastErr}` : ''}`;
    return { ms: null, error: why };
  }
  if (rec.error === undefined && r.status !== 0) rec.error = `exit ${r.status ?? r.signal}${lastErr ? `: ${lastErr}` : ''}`;
  if (rec.ok === false && rec.error === undefined) rec.error = 'output check failed (ok: false)';
  return rec;
}

// ---------------------------------------------------------------- ours

const GRID = { params: { bench: 'peers' }, axisValues: { a: range(N), b: range(N) }, chunkSpec: { a: CHUNK, b: CHUNK } };
const open = (root: string, chunk = CHUNK): ChunkCache => ChunkCache.open({ ...GRID, root, chunkSpec: { a: chunk, b: chunk } });

function checkObjects(out: unknown, as: number[], bs: number[]): void {
  const arr = out as Array<{ a: number; b: number; v: number }>;
  if (!Array.isArray(arr) || arr.length !== as.length * bs.length) fail(`expected ${as.length * bs.length} outputs, got ${(arr as unknown[])?.length}`);
  const step = Math.max(1, Math.floor(arr.length / 997));
  for (let k = 0; k < arr.length; k += step) {
    const a = as[Math.floor(k / bs.length)]!;
    const b = bs[k % bs.length]!;
    const o = arr[k]!;
    if (o.a !== a || o.b !== b || o.v !== a * 0.5 + b) fail(`output ${k} is ${JSON.stringify(o)}, expected a=${a} b=${b}`);
  }
}

function checkFloats(out: unknown, as: number[], bs: number[]): void {
  const arr = out as Float64Array;
  if (!(arr instanceof Float64Array) || arr.length !== as.length * bs.length) fail(`expected a Float64Array of ${as.length * bs.length}`);
  for (let k = 0; k < arr.length; k += 97) {
    const a = as[Math.floor(k / bs.length)]!;
    const b = bs[k % bs.length]!;
    if (arr[k] !== a * 0.5 + b) fail(`float output ${k} is ${arr[k]}, expected ${a * 0.5 + b}`);
  }
}

type Kind = 'objects' | 'floats';
const fnOf = (kind: Kind): ChunkFn => (kind === 'objects' ? objects : floats) as ChunkFn;
const check = (kind: Kind, out: unknown, as: number[], bs: number[]): void => (kind === 'objects' ? checkObjects : checkFloats)(out, as, bs);
const SUB = range(N).filter((i) => i % 10 === 0);

async function fill(root: string, kind: Kind, chunk = CHUNK): Promise<void> {
  const cache = open(root, chunk);
  const r = await run(cache, fnOf(kind));
  if (r.diagnostics.executedPoints !== N * N) fail(`filling ${root}: executed ${r.diagnostics.executedPoints}`);
  cache.close();
}

async function oursW1(kind: Kind): Promise<number> {
  const root = newRoot(`w1-${kind}`);
  const t = performance.now();
  const cache = open(root);
  const r = await run(cache, fnOf(kind));
  const ms = performance.now() - t;
  if (r.diagnostics.executedPoints !== N * N) fail(`W1 executed ${r.diagnostics.executedPoints} of ${N * N}`);
  check(kind, r.output, range(N), range(N));
  cache.close();
  dropRoot(root);
  return ms;
}

async function oursW2(root: string, kind: Kind): Promise<number> {
  const t = performance.now();
  const cache = open(root);
  const r = await run(cache, fnOf(kind));
  const ms = performance.now() - t;
  if (r.diagnostics.executedPoints !== 0) fail(`W2 executed ${r.diagnostics.executedPoints} points on a warm cache`);
  check(kind, r.output, range(N), range(N));
  cache.close();
  return ms;
}

async function oursW3(root: string, kind: Kind): Promise<number> {
  const t = performance.now();
  const cache = open(root);
  const view = cache.select({ indices: { a: { step: 10 }, b: { step: 10 } } });
  const r = await run(view, fnOf(kind));
  const ms = performance.now() - t;
  if (r.diagnostics.executedPoints !== 0) fail(`W3 executed ${r.diagnostics.executedPoints} points on a warm cache`);
  check(kind, r.output, SUB, SUB);
  cache.close();
  return ms;
}

/** Median of W4_SAMPLES status calls on a fresh handle (the peers get --repeat W4_SAMPLES). */
function oursW4(root: string, chunk: number): number {
  const cache = open(root, chunk);
  let st = cache.status();
  const ms = median(Array.from({ length: W4_SAMPLES }, () => {
    const t = performance.now();
    st = cache.status();
    return performance.now() - t;
  }));
  const chunks = (N / chunk) ** 2;
  if (st.totalChunks !== chunks || st.cachedPoints !== N * N || st.cached.length !== chunks) {
    fail(`W4 status: ${st.totalChunks} chunks, ${st.cached.length} cached, ${st.cachedPoints} cached points`);
  }
  cache.close();
  return ms;
}

async function oursW5(): Promise<{ ms: number; executed: number }> {
  const root = newRoot('w5');
  await fill(root, 'objects'); // untimed: a warm cache of its own (extending rewrites its axes)
  const t = performance.now();
  const cache = open(root);
  const ext = cache.extendAxisValues({ a: range(N2, N) });
  const r = await run(ext, objects as ChunkFn);
  const ms = performance.now() - t;
  checkObjects(r.output, range(N2), range(N));
  ext.close();
  cache.close();
  dropRoot(root);
  return { ms, executed: r.diagnostics.executedPoints };
}

/** Iterations of `busyWork` for ~1 ms; the fastest of 7 trials, so a burst of load does not shrink the work. */
function calibrateBusy(): number {
  let iters = 20_000;
  for (;;) {
    const t = performance.now();
    for (let i = 0; i < 20; i++) busyWork(i, i, iters);
    if ((performance.now() - t) / 20 > 0.5) break;
    iters *= 2;
  }
  const per = Math.min(...Array.from({ length: 7 }, () => {
    const t = performance.now();
    for (let i = 0; i < 20; i++) busyWork(i, i, iters);
    return (performance.now() - t) / 20;
  }));
  return Math.round(iters / per);
}

/** CPU time of this process (all threads) over wall time: the cores it actually got. */
function coresDuring<T>(f: () => Promise<T>): Promise<{ r: T; ms: number; cores: number }> {
  const c0 = process.cpuUsage();
  const t = performance.now();
  return f().then((r) => {
    const ms = performance.now() - t;
    const c = process.cpuUsage(c0);
    return { r, ms, cores: (c.user + c.system) / 1000 / ms };
  });
}

async function oursW6(iters: number): Promise<{ serial: number; parallel: number; coresSerial: number; coresParallel: number }> {
  const grid = { params: { iters }, axisValues: { a: range(W6_A), b: range(W6_B) }, chunkSpec: { a: W6_CHUNK, b: W6_CHUNK } };
  const task = defineTask(new URL('./tasks.js', import.meta.url), 'busy');
  const rs = newRoot('w6-serial');
  const rp = newRoot('w6-parallel');
  let cs!: ChunkCache;
  let cp!: ChunkCache;
  const S = await coresDuring(async () => {
    cs = ChunkCache.open({ root: rs, ...grid });
    return run(cs, busy);
  });
  const P = await coresDuring(async () => {
    cp = ChunkCache.open({ root: rp, ...grid });
    return runParallel(cp, task, { workers: W6_WORKERS });
  });
  const s = S.r;
  const p = P.r;
  for (const [label, d, out] of [['serial', s.diagnostics, s.output], ['parallel', p.diagnostics, p.output]] as const) {
    if (d.executedPoints !== W6_A * W6_B) fail(`W6 ${label} executed ${d.executedPoints}`);
    if ((out as unknown[]).length !== W6_A * W6_B) fail(`W6 ${label} returned ${(out as unknown[]).length} outputs`);
  }
  cs.close();
  cp.close();
  dropRoot(rs);
  dropRoot(rp);
  return { serial: S.ms, parallel: P.ms, coresSerial: S.cores, coresParallel: P.cores };
}

// ---------------------------------------------------------------- results

interface Cell {
  ms: number[];
  recs: PeerRecord[];
}
const results = new Map<string, Record<'ours' | Peer, Cell>>();
function cell(workload: string, who: 'ours' | Peer): Cell {
  let w = results.get(workload);
  if (!w) {
    w = { ours: { ms: [], recs: [] }, chunk_memo: { ms: [], recs: [] }, joblib: { ms: [], recs: [] } };
    results.set(workload, w);
  }
  return w[who];
}

/** One workload, REPS times, alternating ours / chunk_memo / joblib. */
async function alternate(key: string, label: string, ours: (() => Promise<number> | number) | null, peer: ((p: Peer) => PeerRecord) | null): Promise<void> {
  for (let rep = 0; rep < REPS; rep++) {
    const parts: string[] = [];
    if (ours) {
      const ms = await ours();
      cell(key, 'ours').ms.push(ms);
      parts.push(`ours ${fmt(ms)} ms`);
    }
    if (peer && !peersSkipped) {
      for (const p of PEERS) {
        const rec = peer(p);
        const c = cell(key, p);
        c.recs.push(rec);
        if (rec.ms !== null && rec.error === undefined) c.ms.push(rec.ms);
        parts.push(`${p} ${rec.error ? `FAILED (${rec.error})` : rec.ms === null ? `n/a${rec.alt_ms !== undefined ? ` (alt ${fmt(rec.alt_ms)} ms)` : ''}` : `${fmt(rec.ms)} ms`}`);
      }
    }
    log(`${label} [rep ${rep + 1}/${REPS}]: ${parts.join(', ')}`);
  }
}

// ---------------------------------------------------------------- main

const loadStart = loadavg()[0]!;
const autogroup = (): boolean => {
  try {
    return readFileSync('/proc/sys/kernel/sched_autogroup_enabled', 'utf8').trim() === '1';
  } catch {
    return false;
  }
};

async function main(): Promise<void> {
  peersSkipped = setupPeers();
  if (peersSkipped) log(`bench:peers: Python peers skipped: ${peersSkipped}. Continuing with chunk-memo (ours) only.`);
  log(`bench:peers: n = ${N} (axes a = b = range(${N})), memo chunks ${CHUNK}x${CHUNK}, ${REPS} rep(s), alternating ours / chunk_memo / joblib${quick ? ' [--quick]' : ''}`);
  const peerIf = (fn: (p: Peer) => PeerRecord) => (peersSkipped ? null : fn);

  // W1 cold, fresh root each rep (the peers' W1 leaves their warm cache behind).
  await alternate('W1', 'W1 cold', () => oursW1('objects'), peerIf((p) => runPeer(p, 'W1')));

  // Warm caches of ours (untimed).
  const warm = newRoot('warm-objects');
  await fill(warm, 'objects');
  const warmFine = newRoot('warm-fine');
  await fill(warmFine, 'objects', FINE);

  await alternate('W2', 'W2 warm', () => oursW2(warm, 'objects'), peerIf((p) => runPeer(p, 'W2')));
  await alternate('W3', 'W3 subset 1%', () => oursW3(warm, 'objects'), peerIf((p) => runPeer(p, 'W3')));
  await alternate('W4c', `W4 status ${(N / CHUNK) ** 2} chunks`, () => oursW4(warm, CHUNK), peerIf((p) => runPeer(p, 'W4', ['--repeat', String(W4_SAMPLES)])));
  await alternate('W4f', `W4 status ${(N / FINE) ** 2} chunks`, () => oursW4(warmFine, FINE), peerIf((p) => runPeer(p, 'W4', ['--chunk', String(FINE), '--repeat', String(W4_SAMPLES)])));
  const w5exec: number[] = [];
  await alternate('W5', 'W5 extend', async () => {
    const r = await oursW5();
    w5exec.push(r.executed);
    return r.ms;
  }, peerIf((p) => runPeer(p, 'W5')));
  const iters = calibrateBusy();
  const w6s: number[] = [];
  await alternate('W6', 'W6 parallel', async () => {
    const r = await oursW6(iters);
    w6s.push(r.serial);
    w6cores.push(r.coresParallel);
    log(`  ours W6 serial ${fmt(r.serial)} ms (${r.coresSerial.toFixed(2)} cores used), parallel ${fmt(r.parallel)} ms (${r.coresParallel.toFixed(2)} cores used), speed-up ${(r.serial / r.parallel).toFixed(2)}x`);
    return r.parallel;
  }, peerIf((p) => runPeer(p, 'W6')));
  cell('W6s', 'ours').ms.push(...w6s);

  // Typed variant (ours only; the peers have no typed-array path).
  await alternate('W1t', 'W1 cold, Float64Array', () => oursW1('floats'), null);
  const warmT = newRoot('warm-floats');
  await fill(warmT, 'floats');
  await alternate('W2t', 'W2 warm, Float64Array', () => oursW2(warmT, 'floats'), null);
  await alternate('W3t', 'W3 subset, Float64Array', () => oursW3(warmT, 'floats'), null);

  // Ceilings: the raw LMDB read loop over the same records, and a memcpy of that many bytes.
  const ceil = (root: string) => {
    const cache = open(root);
    const core = cache._core;
    const [records, bytes] = core.store.scanRecords(core.idBytes) as [number, number, number];
    const scan = median(Array.from({ length: 5 }, () => {
      const t = performance.now();
      core.store.scanRecords(core.idBytes);
      return performance.now() - t;
    }));
    const src = Buffer.alloc(bytes, 7);
    const dst = Buffer.alloc(bytes);
    const copy = median(Array.from({ length: 5 }, () => {
      const t = performance.now();
      src.copy(dst);
      return performance.now() - t;
    }));
    cache.close();
    return { records, bytes, scan, copy };
  };
  const ceilObj = ceil(warm);
  const ceilT = ceil(warmT);

  report(iters, w5exec, ceilObj, ceilT);
}

// ---------------------------------------------------------------- report

interface Ceil {
  records: number;
  bytes: number;
  scan: number;
  copy: number;
}

function report(iters: number, w5exec: number[], ceilObj: Ceil, ceilT: Ceil): void {
  const med = (key: string, who: 'ours' | Peer): number | null => {
    const c = results.get(key)?.[who];
    return c && c.ms.length ? median(c.ms) : null;
  };
  const recs = (key: string, who: Peer): PeerRecord[] => results.get(key)?.[who].recs ?? [];
  const skippedCell = peersSkipped ? 'skipped' : null;
  const peerCell = (key: string, p: Peer): string => {
    if (skippedCell) return skippedCell;
    const m = med(key, p);
    const rs = recs(key, p);
    if (m !== null) return fmt(m);
    if (rs.some((r) => r.error)) return 'failed';
    const alt = rs.map((r) => r.alt_ms).filter((x): x is number => typeof x === 'number');
    return alt.length ? `n/a (alt ${fmt(median(alt))})` : 'n/a';
  };
  const ratio = (key: string, p: Peer): number | null => {
    const o = med(key, 'ours');
    if (o === null || skippedCell) return null;
    let m = med(key, p);
    if (m === null) {
      const alt = recs(key, p).map((r) => r.alt_ms).filter((x): x is number => typeof x === 'number');
      if (!alt.length) return null;
      m = median(alt);
    }
    return m / o;
  };
  const ratioCell = (key: string, p: Peer): string => {
    if (skippedCell) return skippedCell;
    const r = ratio(key, p);
    if (r === null) return 'n/a';
    const alt = med(key, p) === null;
    const word = r >= 1 ? `${r >= 10 ? r.toFixed(0) : r.toFixed(2)}x faster` : `${(1 / r).toFixed(2)}x slower`;
    return `${word}${alt ? ' (vs alt)' : ''}`;
  };
  const atLeast = (got: number | null, want: number, unit = 'x'): string => {
    if (got === null) return skippedCell ? 'n/a (peer skipped)' : 'n/a';
    if (got >= want) return `yes (${got.toFixed(got >= 10 ? 0 : 2)}${unit})`;
    return `**no**: ${got.toFixed(2)}${unit}, ${(want - got).toFixed(2)}${unit} (${(((want - got) / want) * 100).toFixed(0)}%) short`;
  };

  const rows: string[][] = [];
  const row = (key: string, label: string, target: string, met: string) =>
    rows.push([label, med(key, 'ours') === null ? 'n/a' : fmt(med(key, 'ours')!), peerCell(key, 'chunk_memo'), peerCell(key, 'joblib'), ratioCell(key, 'chunk_memo'), ratioCell(key, 'joblib'), target, met]);

  const pts = (N * N).toLocaleString('en-US');
  row('W1', `W1 cold: ${pts} points computed + stored`, '≥ 5x vs chunk_memo', atLeast(ratio('W1', 'chunk_memo'), 5));
  row('W2', `W2 warm: load all ${pts} outputs`, '≥ 20x vs chunk_memo', atLeast(ratio('W2', 'chunk_memo'), 20));
  row('W3', 'W3 subset: every 10th a and b (1%)', '≥ 20x vs chunk_memo', atLeast(ratio('W3', 'chunk_memo'), 20));
  row('W4c', `W4 status, ${((N / CHUNK) ** 2).toLocaleString('en-US')} chunks`, '', '');
  const w4f = med('W4f', 'ours');
  const fineChunks = (N / FINE) ** 2;
  row('W4f', `W4 status, ${fineChunks.toLocaleString('en-US')} chunks`, '< 50 ms', w4f === null ? 'n/a' : w4f < 50 ? `yes (${fmt(w4f)} ms)` : `**no**: ${fmt(w4f)} ms, ${fmt(w4f - 50)} ms (${(((w4f - 50) / 50) * 100).toFixed(0)}%) over`);
  const newPts = (N2 - N) * N;
  const exOk = w5exec.length > 0 && w5exec.every((e) => e === newPts);
  const peerExec = (p: Peer) => [...new Set(recs('W5', p).map((r) => r.executed).filter((x) => typeof x === 'number'))].map((x) => x!.toLocaleString('en-US')).join('/') || 'n/a';
  row('W5', `W5 extend a by 10% (+${newPts.toLocaleString('en-US')} new points)`, `executes exactly ${newPts.toLocaleString('en-US')}`,
    exOk ? `yes (executed ${newPts.toLocaleString('en-US')}; chunk_memo ${skippedCell ? 'skipped' : peerExec('chunk_memo')}, joblib ${skippedCell ? 'skipped' : peerExec('joblib')})` : `**no**: executed ${[...new Set(w5exec)].join('/')}, expected ${newPts}`);

  // W6: serial, parallel, speed-up.
  const peerW6 = (p: Peer, f: 'ms_serial' | 'ms_parallel' | 'speedup'): number | null => {
    const xs = recs('W6', p).filter((r) => !r.error).map((r) => r[f]).filter((x): x is number => typeof x === 'number');
    return xs.length ? median(xs) : null;
  };
  const oursSerial = med('W6s', 'ours');
  const oursPar = med('W6', 'ours');
  const oursSpeed = (() => {
    const s = results.get('W6s')?.ours.ms ?? [];
    const p = results.get('W6')?.ours.ms ?? [];
    return s.length && s.length === p.length ? median(s.map((x, i) => x / p[i]!)) : null;
  })();
  const w6cell = (v: number | null, unit: 'ms' | 'x') => (skippedCell ? skippedCell : v === null ? 'failed' : unit === 'ms' ? fmt(v) : `${v.toFixed(2)}x`);
  const w6ratio = (p: Peer, f: 'ms_serial' | 'ms_parallel', ours: number | null) => {
    if (skippedCell) return skippedCell;
    const v = peerW6(p, f);
    if (v === null || ours === null) return 'n/a';
    return v >= ours ? `${(v / ours).toFixed(2)}x faster` : `${(ours / v).toFixed(2)}x slower`;
  };
  const w6pts = (W6_A * W6_B).toLocaleString('en-US');
  rows.push([`W6 serial: ${w6pts} points × ~1 ms, chunks 10x10`, oursSerial === null ? 'n/a' : fmt(oursSerial), w6cell(peerW6('chunk_memo', 'ms_serial'), 'ms'), w6cell(peerW6('joblib', 'ms_serial'), 'ms'), w6ratio('chunk_memo', 'ms_serial', oursSerial), w6ratio('joblib', 'ms_serial', oursSerial), '', '']);
  rows.push([`W6 parallel, ${W6_WORKERS} workers`, oursPar === null ? 'n/a' : fmt(oursPar), w6cell(peerW6('chunk_memo', 'ms_parallel'), 'ms'), w6cell(peerW6('joblib', 'ms_parallel'), 'ms'), w6ratio('chunk_memo', 'ms_parallel', oursPar), w6ratio('joblib', 'ms_parallel', oursPar), '', '']);
  rows.push(['W6 speed-up, parallel over serial', oursSpeed === null ? 'n/a' : `${oursSpeed.toFixed(2)}x`, w6cell(peerW6('chunk_memo', 'speedup'), 'x'), w6cell(peerW6('joblib', 'speedup'), 'x'), '—', '—', '≥ 1.8x', `${atLeast(oursSpeed, 1.8)}${w6cores.length ? ` (parallel runs got ${median(w6cores).toFixed(2)} of ${W6_WORKERS} cores)` : ''}`]);

  const typed = (key: string, label: string) => rows.push([label, med(key, 'ours') === null ? 'n/a' : fmt(med(key, 'ours')!), 'n/a', 'n/a', 'n/a', 'n/a', '', '']);
  typed('W1t', 'W1 cold, typed (Float64Array outputs)');
  typed('W2t', 'W2 warm, typed');
  typed('W3t', 'W3 subset 1%, typed');

  const head = ['workload', 'ours (median ms)', 'chunk_memo 0.1.5', 'joblib', 'ours vs chunk_memo', 'ours vs joblib', 'target', 'met?'];
  const tbl = [head, head.map(() => '---'), ...rows].map((c) => `| ${c.join(' | ')} |`).join('\n');

  // Ceilings.
  const mb = (b: number) => (b / 2 ** 20).toFixed(1);
  const w2 = med('W2', 'ours');
  const w3 = med('W3', 'ours');
  const w2t = med('W2t', 'ours');
  const w3t = med('W3t', 'ours');
  const times = (x: number | null, y: number) => (x === null ? 'n/a' : `${(x / y).toFixed(1)}x`);
  const ceilings = [
    `- **W2 (objects)** reads ${mb(ceilObj.bytes)} MB in ${ceilObj.records} records in ${w2 === null ? 'n/a' : fmt(w2)} ms; the raw LMDB read loop over the same records takes ${fmt(ceilObj.scan, 2)} ms and a memcpy of that many bytes ${fmt(ceilObj.copy, 2)} ms. W2 is ${times(w2, ceilObj.scan)} the read loop and ${times(w2, ceilObj.copy)} the memcpy: the rest is decoding ${pts} JS objects (msgpack) and building the output array.`,
    `- **W3 (objects)** needs 1% of the points but every one of the ${ceilObj.records} chunks holds some, so its bytes are bounded by the same ${mb(ceilObj.bytes)} MB: W3 takes ${w3 === null ? 'n/a' : fmt(w3)} ms = ${times(w3, ceilObj.scan)} the full read loop (${fmt(ceilObj.scan, 2)} ms); a memcpy of 1% of the bytes takes ~${fmt(ceilObj.copy / 100, 3)} ms.`,
    `- **W2 typed (Float64Array)** reads ${mb(ceilT.bytes)} MB in ${ceilT.records} records in ${w2t === null ? 'n/a' : fmt(w2t)} ms; read loop ${fmt(ceilT.scan, 2)} ms, memcpy ${fmt(ceilT.copy, 2)} ms (${times(w2t, ceilT.scan)} the read loop, ${times(w2t, ceilT.copy)} the memcpy). W3 typed: ${w3t === null ? 'n/a' : fmt(w3t)} ms = ${times(w3t, ceilT.scan)} the full read loop.`,
  ].join('\n');

  // Notes.
  const peerMeta = (p: Peer) => {
    const r = [...results.values()].flatMap((w) => w[p].recs).find((x) => x.version);
    return r ? `${p} ${r.version} (Python ${r.python})` : p;
  };
  const w6point = (p: Peer) => {
    const xs = recs('W6', p).map((r) => r.point_ms).filter((x): x is number => typeof x === 'number');
    return xs.length ? `${median(xs).toFixed(2)} ms` : 'n/a';
  };
  const oursPoint = oursSerial === null ? 'n/a' : `${(oursSerial / (W6_A * W6_B)).toFixed(2)} ms (serial time / points)`;
  const failures = [...results.entries()].flatMap(([k, w]) => PEERS.flatMap((p) => w[p].recs.filter((r) => r.error).map((r) => `${k} ${p}: ${r.error}`)));
  const notes = [
    `- Medians of ${REPS} repetition(s) per implementation, runs alternating ours / chunk_memo / joblib within each workload; "Nx faster" = peer median / ours median. Times are wall-clock ms of the timed part only: for ours and the peers alike W1, W2, W3 and W5 include opening the cache, W4 times only the status call (median of ${W4_SAMPLES} calls per run, \`--repeat ${W4_SAMPLES}\` for the peers), W6 includes worker start-up for the peers in every run and for ours in the first repetition only (ours keeps its worker pool across \`runParallel\` calls in one process, as a sweep script would; \`npm run bench\` reports the first call separately: 1.70x there). Each peer run is a separate Python process (\`bench/peers/peers.py\`, process start-up not timed); ours run in one Node process.`,
    `- Peers: ${peersSkipped ? `**skipped: ${peersSkipped}**` : `${peerMeta('chunk_memo')}; ${peerMeta('joblib')}`}.`,
    '- **joblib** has no grid abstraction: it is used the way a joblib user would, one `Memory.cache` call per memo chunk (args: the chunk\'s a and b value tuples), and subsets are served by loading whole chunks and slicing. It has **no status/plan API**: its W4 cell is the closest substitute (a loop of `check_call_in_cache` over every chunk, marked "alt"). It cannot extend an axis either: W5 re-issues the per-chunk calls over the extended grid (old chunks hit, new ones run).',
    '- **chunk_memo 0.1.5** rewrites `chunks_index.json` after every chunk (W1 is O(chunks²)); a warm load re-hashes every item (sha256 of its repr) to rebuild each chunk; its `run_parallel` maps single points through a ProcessPoolExecutor and stores only at the end. Neither peer has a typed-array output path, so the Float64Array rows are ours only (n/a).',
    `- W5: the extension adds exactly one new bin of a, so a correct planner runs only the ${newPts.toLocaleString('en-US')} new points; executed: ours ${[...new Set(w5exec)].map((x) => x.toLocaleString('en-US')).join('/')}${skippedCell ? '' : `, chunk_memo ${peerExec('chunk_memo')}, joblib ${peerExec('joblib')}`}.`,
    `- W6: the point function burns ~1 ms calibrated per runtime (ours: \`busy\` with ${iters.toLocaleString('en-US')} iterations, ${oursPoint}; Python: float loop, chunk_memo ${skippedCell ? 'skipped' : w6point('chunk_memo')}, joblib ${skippedCell ? 'skipped' : w6point('joblib')} per point), so the serial rows compare per-point overhead plus slightly different per-point cost. Ours parallel: \`runParallel(cache, defineTask(tasks.js, 'busy'), { workers: ${W6_WORKERS} })\` (worker threads, exec chunks of 64 points); the machine has only ${cpus().length} cores, so any background load eats directly into the speed-up: ours' parallel runs obtained a median of ${w6cores.length ? median(w6cores).toFixed(2) : 'n/a'} cores (process CPU time / wall time; ${W6_WORKERS}.0 would be an idle machine). With Linux autogroup scheduling${autogroup() ? ' (enabled here)' : ''}, a busy neighbouring session caps this process near one core whatever its thread count, and then no parallel runner can reach 1.8x.`,
    `- Machine load: 1-minute load average ${loadStart.toFixed(1)} at the start and ${loadavg()[0]!.toFixed(1)} at the end, on ${cpus().length} cores (other processes may have been running; W6 parallel is the most sensitive).`,
    ...(failures.length ? [`- Peer failures: ${failures.join('; ')}`] : []),
  ].join('\n');

  const repro = `Reproduce: \`npm run bench:peers\` (sets up \`.bench-venv\` with \`bash bench/peers/setup.sh\` if needed; Python peers are skipped with a message if that fails; several minutes). Options: \`--reps N\` (default 3), \`--quick\` (n = 200, 1 rep, does not write this file), \`--no-peers\`. One peer run by hand: \`.bench-venv/bin/python bench/peers/peers.py --workload W2 --peer chunk_memo --tmp .bench-tmp/peers\` (see bench/peers/README.md).`;

  log(`\n${tbl}\n\nCeilings:\n${ceilings}\n\nNotes:\n${notes}\n`);
  const body = `Axes a = b = range(${N}), point output \`{a, b, v: a*0.5+b}\`, memo chunks ${CHUNK}x${CHUNK} (W4 also ${FINE}x${FINE}); W6: a = range(${W6_A}), b = range(${W6_B}), chunks ${W6_CHUNK}x${W6_CHUNK}.\n\n${tbl}\n\n### Ceilings\n\n${ceilings}\n\n### Notes\n\n${notes}\n\n${repro}\n`;
  if (!quick) {
    writeSection('peers', 'Side by side with the peers and the physical limits (`npm run bench:peers`)', body);
    log('bench:peers: wrote the "peers" section of BENCHMARKS.md');
  } else {
    writeFileSync(join(TMP, 'peers-quick.md'), body);
    log(`bench:peers: --quick: BENCHMARKS.md untouched (report in ${join(TMP, 'peers-quick.md')})`);
  }
  writeFileSync(join(TMP, `peers-results${quick ? '-quick' : ''}.json`), JSON.stringify(Object.fromEntries(results), null, 1));
}

try {
  await main();
} finally {
  rmSync(OURS_TMP, { recursive: true, force: true });
}
