/**
 * bullmq and ioredis are optional peer dependencies: only multi-host sweeps
 * need them, so they are imported on first use, with an error that names
 * what to install when they are missing.
 */
import { ChunkMemoError, InvalidOptionError } from '../errors/index.js';

export type BullMQ = typeof import('bullmq');
export interface IORedisModule {
  readonly Redis: typeof import('ioredis').Redis;
}
export type RedisClient = import('ioredis').Redis;

/**
 * Where Redis is: a URL (`redis://[user:password@]host:port[/db]`, `rediss://`
 * for TLS), or ioredis options (`{ host, port, password, username, tls, db }`)
 * passed through unchanged.
 */
export type RedisConnection = string | ({ url?: string } & Record<string, unknown>);

const missing = (pkg: string, e: unknown): ChunkMemoError =>
  new ChunkMemoError(
    'ERR_MISSING_DEPENDENCY',
    `${pkg} is not installed: distributed sweeps (bullmqExecutor, chunk-memo worker) need the optional peer dependencies bullmq and ioredis; run \`npm install bullmq ioredis\``,
    { cause: e },
  );

let bullmq: Promise<BullMQ> | undefined;
let ioredis: Promise<IORedisModule> | undefined;

/** Imports bullmq once; a clear `ERR_MISSING_DEPENDENCY` when it is absent. */
export function loadBullMQ(): Promise<BullMQ> {
  bullmq ??= import('bullmq').then(
    (m) => ((m as { Queue?: unknown }).Queue ? m : (m as unknown as { default: BullMQ }).default),
    (e) => {
      bullmq = undefined;
      throw missing('bullmq', e);
    },
  );
  return bullmq;
}

/** Imports ioredis once; a clear `ERR_MISSING_DEPENDENCY` when it is absent. */
export function loadIORedis(): Promise<IORedisModule> {
  ioredis ??= import('ioredis').then(
    (m) => ({ Redis: (m as { Redis?: IORedisModule['Redis'] }).Redis ?? (m.default as unknown as IORedisModule['Redis']) }),
    (e) => {
      ioredis = undefined;
      throw missing('ioredis', e);
    },
  );
  return ioredis;
}

/** Checks a connection option; returns it as BullMQ takes it. */
export function bullConnection(connection: RedisConnection, where: string): Record<string, unknown> {
  if (typeof connection === 'string') {
    if (!/^rediss?:\/\//i.test(connection)) throw new InvalidOptionError(`${where}: connection must be a redis:// or rediss:// URL or ioredis options (got ${JSON.stringify(connection)})`);
    return { url: connection };
  }
  if (connection === null || typeof connection !== 'object' || Array.isArray(connection)) {
    throw new InvalidOptionError(`${where}: connection must be a redis:// URL or an object of ioredis options ({ host, port, password, tls, ... })`);
  }
  if ('keyPrefix' in connection) throw new InvalidOptionError(`${where}: connection.keyPrefix is not supported (BullMQ refuses it); use the prefix option instead`);
  return connection;
}

/** A plain ioredis client on the same server, for result keys and queries BullMQ has no call for. */
export async function newRedisClient(connection: Record<string, unknown>, name: string): Promise<RedisClient> {
  const { Redis } = await loadIORedis();
  const { url, ...rest } = connection as { url?: string } & Record<string, unknown>;
  const opts = { connectionName: name, maxRetriesPerRequest: 20, ...rest };
  return typeof url === 'string' ? new Redis(url, opts) : new Redis(opts);
}

/** The URL of a connection with its password hidden, for status lines. */
export function describeConnection(connection: Record<string, unknown>): string {
  if (typeof connection.url === 'string') {
    try {
      const u = new URL(connection.url);
      if (u.password) u.password = '***';
      return u.href;
    } catch {
      return 'redis (unparsable URL)';
    }
  }
  const tls = connection.tls ? 'rediss' : 'redis';
  return `${tls}://${String(connection.host ?? '127.0.0.1')}:${String(connection.port ?? 6379)}`;
}
