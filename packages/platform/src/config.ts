/** Platform configuration: every option, its default, and where it comes from. */
export interface PlatformConfig {
  /** postgres:// URL; empty = embedded PostgreSQL under dataDir. Env DATABASE_URL. */
  databaseUrl: string;
  /** Directory for the embedded database and platform state. Env AP_DATA_DIR; default ./data. */
  dataDir: string;
  /** gRPC listen address for agents. Env AP_GRPC_LISTEN; default 0.0.0.0:9090. */
  grpcListen: string;
  /** HTTP listen address for REST. Env AP_HTTP_LISTEN; default 0.0.0.0:8080. */
  httpListen: string;
  /** Seconds between agent heartbeats; 3 missed = offline. Env AP_HEARTBEAT_INTERVAL; default 10. */
  heartbeatIntervalSeconds: number;
  /** pino level. Env AP_LOG_LEVEL; default info. */
  logLevel: string;
  /** Seconds an agent may be offline before its running tasks become lost. Env AP_LOST_GRACE; default 300. */
  lostGraceSeconds: number;
  /**
   * Days a finished task is kept (with its logs) after it was created; 0 keeps
   * every task. Purged every `purgeIntervalMs`. Env AP_TASK_RETENTION_DAYS; default 0.
   */
  taskRetentionDays: number;
  /** Milliseconds between purges when taskRetentionDays is set; default 10 minutes. Not read from the environment. */
  purgeIntervalMs: number;
  /**
   * Milliseconds between dispatch polls, the guarantee behind NOTIFY and the
   * in-process wake-ups; default 1,000. Not read from the environment: tests set
   * it high to prove dispatch never waits for the poll.
   */
  dispatchPollMs: number;
  /**
   * Bytes of task logs stored per task; later chunks are dropped and the task is
   * marked `logs_dropped`. Default 32 MiB. Not read from the environment.
   */
  logBudgetBytes: number;
  /**
   * Bytes of large task requests (64 KiB and more) the gateway has written to
   * agents' streams that are not yet on their sockets, all agents together;
   * further large requests wait in their agent's order. Bounds the memory of
   * one script fanned out to many agents. Default 32 MiB. Not read from the
   * environment.
   */
  outboundBudgetBytes: number;
  /**
   * Plaintext gRPC and HTTP, agents identified by the id they send, no enrollment.
   * For tests and trusted loopback only; logged loudly. Env AP_INSECURE=1; default false.
   */
  insecure: boolean;
  /** Where the platform CA and server certificate live. Env AP_TLS_DIR; default <dataDir>/tls. */
  tlsDir: string;
  /** Server certificate chain (PEM) to use instead of the generated one. Env AP_TLS_CERT. */
  tlsCertFile: string;
  /** Its private key (PEM). Env AP_TLS_KEY. */
  tlsKeyFile: string;
  /** Extra DNS names / IPs for the generated server certificate. Env AP_TLS_SAN (comma-separated). */
  tlsSans: string[];
  /**
   * An admin API token to accept (created at start if missing), for automation
   * and tests. Env AP_BOOTSTRAP_TOKEN; default none.
   */
  bootstrapToken: string;
}

export const DEFAULT_CONFIG: PlatformConfig = {
  databaseUrl: '',
  dataDir: './data',
  grpcListen: '0.0.0.0:9090',
  httpListen: '0.0.0.0:8080',
  heartbeatIntervalSeconds: 10,
  logLevel: 'info',
  lostGraceSeconds: 300,
  taskRetentionDays: 0,
  purgeIntervalMs: 10 * 60 * 1000,
  dispatchPollMs: 1000,
  logBudgetBytes: 32 * 1024 * 1024,
  outboundBudgetBytes: 32 * 1024 * 1024,
  insecure: false,
  tlsDir: '',
  tlsCertFile: '',
  tlsKeyFile: '',
  tlsSans: [],
  bootstrapToken: '',
};

const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());

/** Fills defaults from the environment, then from DEFAULT_CONFIG; explicit values win. */
export function resolveConfig(
  explicit: Partial<PlatformConfig>,
  env: NodeJS.ProcessEnv = process.env,
): PlatformConfig {
  const num = (v: string | undefined) => (v === undefined || v === '' ? undefined : Number(v));
  const c: PlatformConfig = {
    databaseUrl: explicit.databaseUrl ?? env.DATABASE_URL ?? DEFAULT_CONFIG.databaseUrl,
    dataDir: explicit.dataDir ?? env.AP_DATA_DIR ?? DEFAULT_CONFIG.dataDir,
    grpcListen: explicit.grpcListen ?? env.AP_GRPC_LISTEN ?? DEFAULT_CONFIG.grpcListen,
    httpListen: explicit.httpListen ?? env.AP_HTTP_LISTEN ?? DEFAULT_CONFIG.httpListen,
    heartbeatIntervalSeconds:
      explicit.heartbeatIntervalSeconds ??
      num(env.AP_HEARTBEAT_INTERVAL) ??
      DEFAULT_CONFIG.heartbeatIntervalSeconds,
    logLevel: explicit.logLevel ?? env.AP_LOG_LEVEL ?? DEFAULT_CONFIG.logLevel,
    lostGraceSeconds: explicit.lostGraceSeconds ?? num(env.AP_LOST_GRACE) ?? DEFAULT_CONFIG.lostGraceSeconds,
    taskRetentionDays:
      explicit.taskRetentionDays ?? num(env.AP_TASK_RETENTION_DAYS) ?? DEFAULT_CONFIG.taskRetentionDays,
    purgeIntervalMs: explicit.purgeIntervalMs ?? DEFAULT_CONFIG.purgeIntervalMs,
    dispatchPollMs: explicit.dispatchPollMs ?? DEFAULT_CONFIG.dispatchPollMs,
    logBudgetBytes: explicit.logBudgetBytes ?? DEFAULT_CONFIG.logBudgetBytes,
    outboundBudgetBytes: explicit.outboundBudgetBytes ?? DEFAULT_CONFIG.outboundBudgetBytes,
    insecure: explicit.insecure ?? (truthy(env.AP_INSECURE) || DEFAULT_CONFIG.insecure),
    tlsDir: explicit.tlsDir ?? env.AP_TLS_DIR ?? DEFAULT_CONFIG.tlsDir,
    tlsCertFile: explicit.tlsCertFile ?? env.AP_TLS_CERT ?? DEFAULT_CONFIG.tlsCertFile,
    tlsKeyFile: explicit.tlsKeyFile ?? env.AP_TLS_KEY ?? DEFAULT_CONFIG.tlsKeyFile,
    tlsSans:
      explicit.tlsSans ??
      (env.AP_TLS_SAN
        ? env.AP_TLS_SAN.split(',')
            .map((x) => x.trim())
            .filter(Boolean)
        : DEFAULT_CONFIG.tlsSans),
    bootstrapToken: explicit.bootstrapToken ?? env.AP_BOOTSTRAP_TOKEN ?? DEFAULT_CONFIG.bootstrapToken,
  };
  if (c.bootstrapToken !== '' && (c.bootstrapToken.length < 16 || !/^[\x21-\x7e]+$/.test(c.bootstrapToken))) {
    throw new Error('the bootstrap token must be at least 16 printable characters without spaces');
  }
  if (!Number.isInteger(c.lostGraceSeconds) || c.lostGraceSeconds < 1) {
    throw new Error(`lost grace must be an integer number of seconds >= 1, got ${c.lostGraceSeconds}`);
  }
  if (!Number.isInteger(c.taskRetentionDays) || c.taskRetentionDays < 0) {
    throw new Error(
      `task retention must be a whole number of days >= 0 (0 keeps every task), got ${c.taskRetentionDays}`,
    );
  }
  if (!Number.isFinite(c.heartbeatIntervalSeconds) || c.heartbeatIntervalSeconds < 1) {
    throw new Error(`heartbeat interval must be a number of seconds >= 1, got ${c.heartbeatIntervalSeconds}`);
  }
  parseListen(c.grpcListen);
  parseListen(c.httpListen);
  return c;
}

/** Parses HOST:PORT (IPv6 as [::1]:PORT). */
export function parseListen(addr: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new Error(`listen address must be HOST:PORT, got ${JSON.stringify(addr)}`);
  return { host: m[1] ?? (m[2] || '0.0.0.0'), port };
}
