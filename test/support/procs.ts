/**
 * Real processes for end-to-end tests: the built `apctl` bundle, started the
 * way an operator starts it. Every process started here is killed by pid when
 * the test ends (see `ProcessGroup.killAll`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AUTH_HEADERS, TEST_PROCESS_ENV } from './security.js';

export const ROOT = path.resolve(new URL('../..', import.meta.url).pathname);
export const APCTL = path.join(ROOT, 'packages/cli/dist/apctl.mjs');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

const tempDirs: string[] = [];

/**
 * A fresh directory under the system's temp dir, removed when this process
 * exits (state dirs, journals, databases' data: a bench run made dozens).
 * AP_KEEP_TEMP=1 keeps them, to look at after a failure.
 */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `ap-${prefix}-`));
  if (tempDirs.push(dir) === 1 && process.env.AP_KEEP_TEMP !== '1') {
    process.once('exit', () => {
      for (const d of tempDirs) {
        try {
          rmSync(d, { recursive: true, force: true });
        } catch {
          // a process of the test still writing there: left behind
        }
      }
    });
  }
  return dir;
}

export interface Proc {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything the process wrote to stderr (its log), for failure messages. */
  log(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export class ProcessGroup {
  private readonly procs = new Set<Proc>();

  /** Starts `apctl args...`; `nodeArgs` go to node itself (e.g. --cpu-prof). */
  start(args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []): Proc {
    const child = spawn(process.execPath, [...nodeArgs, APCTL, ...args], {
      cwd: ROOT,
      // Plaintext and a known admin token unless the test says otherwise (see security.ts).
      env: { ...process.env, AP_LOG_LEVEL: 'info', ...TEST_PROCESS_ENV, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let err = '';
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.length > 200_000) err = err.slice(-100_000);
    });
    child.stdout?.on('data', () => undefined);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    if (child.pid === undefined) throw new Error('spawn failed');
    const proc: Proc = { child, pid: child.pid, log: () => err, exited };
    this.procs.add(proc);
    void exited.then(() => this.procs.delete(proc));
    return proc;
  }

  /**
   * `apctl server` on 127.0.0.1 with the given ports and database (plaintext and
   * the harness token, from the defaults above); `heartbeatSeconds` shortens liveness.
   */
  startPlatform(o: {
    grpcPort: number;
    httpPort: number;
    databaseUrl: string;
    heartbeatSeconds?: number;
  }): Proc {
    return this.start(
      [
        'server',
        '--grpc-listen',
        `127.0.0.1:${o.grpcPort}`,
        '--http-listen',
        `127.0.0.1:${o.httpPort}`,
        ...(o.heartbeatSeconds === undefined ? [] : ['--heartbeat-interval', String(o.heartbeatSeconds)]),
      ],
      { DATABASE_URL: o.databaseUrl },
    );
  }

  async killAll(): Promise<void> {
    const waits: Promise<unknown>[] = [];
    for (const p of this.procs) {
      try {
        process.kill(p.pid, 'SIGCONT');
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      waits.push(p.exited);
    }
    await Promise.all(waits);
  }
}

/** Polls `fn` until it returns a truthy value or the time is up. */
export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | null | false>,
  timeoutMs = 15_000,
  everyMs = 100,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < until) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`,
  );
}

export async function getJson<T = unknown>(url: string): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { headers: AUTH_HEADERS });
  return { status: res.status, body: (await res.json()) as T };
}

/** True when the platform at `httpBase` answers /healthz with 200. */
export async function platformHealthy(httpBase: string): Promise<boolean> {
  try {
    return (await fetch(`${httpBase}/healthz`)).ok;
  } catch {
    return false;
  }
}
