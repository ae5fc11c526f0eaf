import path from 'node:path';
import type { Command } from 'commander';
import { startPlatform } from '@agent-platform/platform';
import { startAgent } from '@agent-platform/agent';
import { createProcessLogger } from '../logger.js';
import { onShutdownSignal } from '../signals.js';
import { addPlatformFlags, platformOptions, stripUndefined, type ServerFlags } from './server.js';

export function registerDevCommand(program: Command): void {
  addPlatformFlags(
    program
      .command('dev')
      .description('run the platform on the embedded database plus one local agent, in one process'),
  ).action(async (flags: ServerFlags) => {
    const logger = createProcessLogger('dev', flags.logLevel ?? process.env.AP_LOG_LEVEL ?? 'warn');
    const opts = stripUndefined(platformOptions(flags));
    const dataDir = path.resolve(opts.dataDir ?? process.env.AP_DATA_DIR ?? './data');
    const platform = await startPlatform({
      ...opts,
      dataDir,
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
