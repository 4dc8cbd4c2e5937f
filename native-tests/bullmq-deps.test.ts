/**
 * bullmq and ioredis are optional peer dependencies: without them,
 * bullmqExecutor and `chunk-memo worker` fail with an error naming what to
 * install (simulated with module hooks that hide both packages).
 */
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('..', import.meta.url));
const HIDE = new URL('./fixtures/hide-bullmq.mjs', import.meta.url).href;

const node = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', '--import', HIDE, ...args], { cwd: REPO, encoding: 'utf8', timeout: 60_000 });

test('bullmqExecutor without bullmq: ERR_MISSING_DEPENDENCY naming the packages to install', (t) => {
  const script = `
    import { bullmqExecutor } from './ts/executor/bullmq.ts';
    const ex = bullmqExecutor({ connection: 'redis://127.0.0.1:1' });
    const job = { task: { kind: 'module', moduleUrl: 'file:///x.js', exportName: 'f' }, params: {}, axisOrder: ['x'], axes: { x: [1] }, count: 1, jobIndex: 0, key: 'ab' };
    try { await ex.run(job); console.log('no error'); } catch (e) { console.log(e.code + ' ' + e.message); }
    await ex.close();`;
  const r = node(['--input-type=module', '-e', script]);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^ERR_MISSING_DEPENDENCY bullmq is not installed: .*npm install bullmq ioredis/);
});

test('chunk-memo worker without bullmq: one line naming the packages to install, exit 1', (t) => {
  const r = node(['ts/cli/main.ts', 'worker', '--redis', 'redis://127.0.0.1:1']);
  t.is(r.status, 1);
  t.regex(r.stderr, /^chunk-memo: bullmq is not installed: .*npm install bullmq ioredis`?\n$/);
});

test('chunk-memo worker: bad flags are one clear line and exit 1', (t) => {
  const cli = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'ts/cli/main.ts', 'worker', ...args], { cwd: REPO, encoding: 'utf8', timeout: 60_000, env: { ...process.env, CHUNK_MEMO_REDIS_URL: '' } });
  const cases: [string[], RegExp][] = [
    [[], /^chunk-memo: worker: --redis URL is required \(or set CHUNK_MEMO_REDIS_URL\)\n$/],
    [['--redis', 'redis://127.0.0.1:1', '--concurrency', '0'], /^chunk-memo: worker: --concurrency must be a positive integer \(got "0"\)\n$/],
    [['--redis', 'http://x'], /^chunk-memo: chunk-memo worker: connection must be a redis:\/\/ or rediss:\/\/ URL/],
    [['--redis', 'redis://127.0.0.1:1', '--tasks', './no/such/dir'], /^chunk-memo: --tasks \.\/no\/such\/dir: not a directory\n$/],
    [['--redis', 'redis://127.0.0.1:1', '--tls-ca', '/no/such.pem'], /^chunk-memo: worker: --tls-ca \/no\/such\.pem: ENOENT/],
  ];
  for (const [args, want] of cases) {
    const r = cli(args);
    t.is(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, want);
  }
});
