import type { Command } from 'commander';
import { onShutdownSignal } from '../signals.js';

export interface ServerFlags {
  grpcListen?: string;
  httpListen?: string;
  dataDir?: string;
  databaseUrl?: string;
  heartbeatInterval?: string;
  lostGrace?: string;
  taskRetentionDays?: string;
  logLevel?: string;
  insecure?: boolean;
  tlsDir?: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsSan?: string;
}

export function addPlatformFlags(cmd: Command): Command {
  return cmd
    .option('--grpc-listen <host:port>', 'gRPC address for agents (env AP_GRPC_LISTEN) [0.0.0.0:9090]')
    .option('--http-listen <host:port>', 'HTTP address for REST (env AP_HTTP_LISTEN) [0.0.0.0:8080]')
    .option('--data-dir <dir>', 'data directory for the embedded database (env AP_DATA_DIR) [./data]')
    .option('--log-level <level>', 'trace|debug|info|warn|error (env AP_LOG_LEVEL) [info]');
}

export function platformOptions(flags: ServerFlags) {
  return {
    grpcListen: flags.grpcListen,
    httpListen: flags.httpListen,
    dataDir: flags.dataDir,
    databaseUrl: flags.databaseUrl,
    heartbeatIntervalSeconds:
      flags.heartbeatInterval === undefined ? undefined : Number(flags.heartbeatInterval),
    lostGraceSeconds: flags.lostGrace === undefined ? undefined : Number(flags.lostGrace),
    taskRetentionDays: flags.taskRetentionDays === undefined ? undefined : Number(flags.taskRetentionDays),
    insecure: flags.insecure,
    tlsDir: flags.tlsDir,
    tlsCertFile: flags.tlsCert,
    tlsKeyFile: flags.tlsKey,
    tlsSans: flags.tlsSan
      ?.split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  };
}

export function registerServerCommand(program: Command): void {
  addPlatformFlags(
    program.command('server').description('run the platform (gRPC for agents, REST for people)'),
  )
    .option(
      '--database-url <url>',
      'PostgreSQL URL (env DATABASE_URL); empty = embedded PostgreSQL in --data-dir',
    )
    .option(
      '--heartbeat-interval <seconds>',
      'seconds between agent heartbeats (env AP_HEARTBEAT_INTERVAL) [10]',
    )
    .option(
      '--lost-grace <seconds>',
      'seconds an agent may stay offline before its in-flight tasks become lost (env AP_LOST_GRACE) [300]',
    )
    .option(
      '--task-retention-days <days>',
      'delete finished tasks and their logs this many days after they were created; 0 keeps them (env AP_TASK_RETENTION_DAYS) [0]',
    )
    .option(
      '--insecure',
      'plaintext gRPC and HTTP, agents unauthenticated: tests and trusted loopback only (env AP_INSECURE=1)',
    )
    .option('--tls-dir <dir>', 'platform CA and server certificate (env AP_TLS_DIR) [<data-dir>/tls]')
    .option(
      '--tls-cert <file>',
      'server certificate chain (PEM) instead of the generated one (env AP_TLS_CERT)',
    )
    .option('--tls-key <file>', 'its private key (PEM) (env AP_TLS_KEY)')
    .option('--tls-san <names>', 'extra DNS names/IPs for the generated server certificate (env AP_TLS_SAN)')
    .action(async (flags: ServerFlags) => {
      // Server-side modules load on use: client commands (run, tasks, ...) start without them.
      const [{ startPlatform }, { createProcessLogger }] = await Promise.all([
        import('@agent-platform/platform'),
        import('../logger.js'),
      ]);
      const logger = createProcessLogger('platform', flags.logLevel);
      const platform = await startPlatform({ ...stripUndefined(platformOptions(flags)), logger });
      if (platform.adminTokenFile)
        process.stderr.write(`first start: an admin API token was written to ${platform.adminTokenFile}\n`);
      if (platform.caFingerprint)
        process.stderr.write(`platform CA fingerprint (agents pin it): ${platform.caFingerprint}\n`);
      onShutdownSignal(
        () => platform.stop(),
        (m) => logger.info(m),
      );
    });
}

export function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
