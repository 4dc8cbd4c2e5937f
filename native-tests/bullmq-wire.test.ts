/**
 * The job and result formats of bullmqExecutor / chunk-memo worker, and the
 * task allow-list of the worker (no Redis needed).
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { TaskAllowList } from '../ts/executor/allow.js';
import { checkJobData, checkResultRef, decodeJob, decodeOutput, encodeJob, encodeOutput, jobIdOf } from '../ts/executor/wire.js';
import type { ExecJob } from '../ts/task/job.js';

const job = (over: Partial<ExecJob> = {}): ExecJob => ({
  task: { kind: 'module', moduleUrl: 'file:///srv/tasks.js', exportName: 'sim' },
  params: { big: 2n ** 70n, small: 5n, n: 2 ** 40, d: new Date(1234), bytes: new Uint8Array([1, 2, 3]), f32: new Float32Array([1.5, -0]), nested: { a: [null, true, 'é'] } },
  axisOrder: ['x', 'y'],
  axes: { x: [1, 2.5], y: ['a', 'b', 'c'] },
  count: 6,
  jobIndex: 3,
  key: 'ab12',
  ...over,
});

test('a job survives JSON with every Value type intact', (t) => {
  const data = JSON.parse(JSON.stringify(encodeJob(job(), 60, 'session'))) as unknown;
  const back = decodeJob(checkJobData(data), 'cuda:0');
  const want = job();
  t.deepEqual(back.params, want.params);
  t.is(typeof back.params.small, 'bigint');
  t.is(typeof back.params.n, 'number');
  t.true(back.params.f32 instanceof Float32Array);
  t.deepEqual(back.axes, want.axes);
  t.deepEqual(back.axisOrder, ['x', 'y']);
  t.is(back.device, 'cuda:0');
  t.is(back.count, 6);
});

test('job ids are deterministic, never integers and free of ":"', (t) => {
  const id = jobIdOf(job({ key: '1234' }));
  t.is(id, jobIdOf(job({ key: '1234' })));
  t.not(id, jobIdOf(job({ key: '1234', task: { kind: 'module', moduleUrl: 'file:///srv/tasks.js', exportName: 'other' } })));
  t.false(id.includes(':'));
  t.false(/^\d+$/.test(id));
  t.false(jobIdOf(job({ key: 'a:b' })).includes(':'));
});

test('only module tasks travel', (t) => {
  t.throws(() => encodeJob(job({ task: { kind: 'local', id: 1 } }), 60, 's'), { message: /exists only in this process/ });
  t.throws(() => encodeJob(job({ task: { kind: 'gpu', source: 'function(){}', options: {} } }), 60, 's'), { message: /carries code/ });
});

test('malformed job data is refused with a reason', (t) => {
  const good = encodeJob(job(), 60, 's');
  t.throws(() => checkJobData(null), { code: 'ERR_BAD_JOB', message: /not an object/ });
  t.throws(() => checkJobData({ ...good, v: 99 }), { message: /format version 99/ });
  t.throws(() => checkJobData({ ...good, count: -1 }), { message: /count must be/ });
  t.throws(() => checkJobData({ ...good, task: { kind: 'gpu' } }), { message: /task must be/ });
  t.throws(() => decodeJob({ ...good, count: 7 }, undefined), { message: /count 7 but the block has 6/ });
  t.throws(() => decodeJob({ ...good, block: Buffer.from([0xc1]).toString('base64') }, undefined), { message: /not msgpack|block must hold/ });
});

test('outputs: typed arrays as raw bytes, arrays as msgpack, both checked by size and SHA-256', (t) => {
  const f = Float64Array.from([0, -0, 5e-324, NaN, Infinity, 1 / 3]);
  const ef = encodeOutput(f);
  t.is(ef.dtype, 'Float64Array');
  t.is(ef.bytes.byteLength, 48);
  const ref = { v: 1, key: 'k', bytes: ef.bytes.byteLength, dtype: ef.dtype, count: 6, sha256: ef.sha256 };
  const back = decodeOutput(checkResultRef(ref, 6), Buffer.from(ef.bytes)) as Float64Array;
  t.true(Buffer.from(back.buffer).equals(Buffer.from(f.buffer)));
  const objs = [{ a: 1, b: 2n }, { a: 2, b: 3n }, null, 'x', new Date(5)];
  const eo = encodeOutput(objs);
  t.is(eo.dtype, 'msgpack');
  const oref = { v: 1, key: 'k', bytes: eo.bytes.byteLength, dtype: 'msgpack', count: 5, sha256: eo.sha256 };
  t.deepEqual(decodeOutput(oref, Buffer.from(eo.bytes)), objs);
  const bad = Buffer.from(eo.bytes);
  bad[3] = bad[3]! ^ 1;
  t.throws(() => decodeOutput(oref, bad), { message: /SHA-256 mismatch/ });
  t.throws(() => decodeOutput(oref, bad.subarray(1)), { message: /holds \d+ bytes/ });
  t.throws(() => decodeOutput(oref, null), { message: /gone/ });
  t.throws(() => checkResultRef(oref, 4), { message: /5 outputs for 4 points/ });
  t.throws(() => checkResultRef({ nope: 1 }, 4), { message: /malformed result descriptor/ });
});

test('allow-list: directories (symlinks resolved), packages rebased onto this host, everything else refused', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'cm-allow-'));
  try {
    const tasks = join(root, 'tasks');
    const outside = join(root, 'outside');
    mkdirSync(tasks);
    mkdirSync(outside);
    writeFileSync(join(tasks, 'a.js'), '');
    writeFileSync(join(outside, 'evil.js'), '');
    symlinkSync(join(outside, 'evil.js'), join(tasks, 'link.js'));
    // This host's copy of package my-tasks, and the coordinator's path to it elsewhere.
    const pkg = join(root, 'host', 'node_modules', 'my-tasks');
    mkdirSync(join(pkg, 'lib'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), '{"name":"my-tasks"}');
    writeFileSync(join(pkg, 'lib', 'sim.js'), '');
    const allow = new TaskAllowList([tasks, 'my-tasks'], join(root, 'host'));
    t.deepEqual(allow.resolve(pathToFileURL(join(tasks, 'a.js')).href), { url: pathToFileURL(join(tasks, 'a.js')).href });
    t.regex((allow.resolve(pathToFileURL(join(tasks, 'link.js')).href) as { refused: string }).refused, /outside the allowed task locations/);
    t.regex((allow.resolve(pathToFileURL(join(tasks, '..', 'outside', 'evil.js')).href) as { refused: string }).refused, /outside/);
    t.regex((allow.resolve('data:text/javascript,export default 1') as { refused: string }).refused, /not a file: URL/);
    t.deepEqual(allow.resolve('file:///home/alice/sweep/node_modules/my-tasks/lib/sim.js'), { url: pathToFileURL(join(pkg, 'lib', 'sim.js')).href });
    t.regex((allow.resolve('file:///home/alice/sweep/node_modules/my-tasks/lib/none.js') as { refused: string }).refused, /not in this host's copy of package my-tasks/);
    t.regex((allow.resolve('file:///home/alice/sweep/node_modules/other/x.js') as { refused: string }).refused, /does not exist on this host/);
    t.regex(new TaskAllowList([], tasks).describe(), /tasks$/);
    t.throws(() => new TaskAllowList(['./nope'], root), { message: /--tasks \.\/nope: not a directory/ });
    t.throws(() => new TaskAllowList(['not-installed-pkg'], root), { message: /neither a directory nor an installed package/ });
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
