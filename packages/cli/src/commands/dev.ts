import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { onShutdownSignal } from '../signals.js';
import { addPlatformFlags, platformOptions, stripUndefined, type ServerFlags } from './server.js';

export function registerDevCommand(program: Command): void {
  addPlatformFlags(
    program
      .command('dev')
      .description('run the platform on the embedded database plus one local agent, in one process'),
  ).action(async (flags: ServerFlags) => {
    // Server-side modules load on use: client commands (run, tasks, ...) start without them.
    const [{ startPlatform }, { startAgent }, { createProcessLogger }] = await Promise.all([
      import('@agent-platform/platform'),
      import('@agent-platform/agent'),
      import('../logger.js'),
    ]);
    const logger = createProcessLogger('dev', flags.logLevel ?? process.env.AP_LOG_LEVEL ?? 'warn');
    const opts = stripUndefined(platformOptions(flags));
    const dataDir = path.resolve(opts.dataDir ?? process.env.AP_DATA_DIR ?? './data');
    const token = devToken(dataDir);
    const platform = await startPlatform({
      ...opts,
      dataDir,
      // One machine, loopback: plaintext is allowed here (DESIGN "Security"); tokens still apply.
      insecure: true,
      bootstrapToken: token,
      // `apctl dev` is for one machine: the embedded database, loopback by default.
      databaseUrl: '',
      grpcListen: opts.grpcListen ?? process.env.AP_GRPC_LISTEN ?? '127.0.0.1:9090',
      httpListen: opts.httpListen ?? process.env.AP_HTTP_LISTEN ?? '127.0.0.1:8080',
      logger: logger.child({ part: 'platform' }),
    });
    const agent = await startAgent({
      servers: [`127.0.0.1:${platform.grpcPort}`],
      stateDir: path.join(dataDir, 'agent'),
      labels: { dev: 'true' },
      insecure: true,
      logger: logger.child({ part: 'agent' }),
    });
    await agent.connection.waitReady(15_000);
    const http = `http://127.0.0.1:${platform.httpPort}`;
    process.stdout.write(
      [
        'agent-platform dev is running',
        `  REST API   ${http}/api/v1/agents`,
        `  OpenAPI    ${http}/api/docs/json`,
        `  gRPC       127.0.0.1:${platform.grpcPort} (agents)`,
        `  local agent ${agent.agentId}`,
        `  admin token ${token}`,
        `              (also in ${path.join(dataDir, 'dev-token')}; export APCTL_TOKEN=$(cat ${path.join(dataDir, 'dev-token')}))`,
        `  data       ${dataDir}`,
        'Press Ctrl-C to stop.',
        '',
      ].join('\n'),
    );
    onShutdownSignal(
      async () => {
        await agent.stop();
        await platform.stop();
        process.stdout.write('stopped\n');
      },
      (m) => logger.warn(m),
    );
  });
}

/** The dev admin token: kept in `<data-dir>/dev-token` (mode 0600) so it survives restarts. */
function devToken(dataDir: string): string {
  const file = path.join(dataDir, 'dev-token');
  if (existsSync(file)) {
    const t = readFileSync(file, 'utf8').trim();
    if (t.length >= 16) return t;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const t = `apt_${randomBytes(32).toString('base64url')}`;
  writeFileSync(file, `${t}\n`, { mode: 0o600 });
  return t;
}
