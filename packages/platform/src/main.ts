/**
 * Composition root: config -> store -> gateway -> api.
 *
 *   STARTING ──> RUNNING ──SIGTERM/stop()──> STOPPING ──> STOPPED
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pino, type Logger } from 'pino';
import { parseListen, resolveConfig, type PlatformConfig } from './config.js';
import {
  createStore,
  startEmbeddedPostgres,
  type EmbeddedPostgresHandle,
  type Store,
} from './store/index.js';
import { createAgentGateway, type AgentGateway } from './gateway/index.js';
import { createApiServer, type ApiServer } from './api/index.js';
import { createTaskService, type TaskService } from './tasks/index.js';
import { VERSION } from './version.js';
import { loadOrCreatePki, type Pki } from './security/pki.js';
import { API_TOKEN_PREFIX, generateToken, hashToken, newTokenId } from './security/tokens.js';

export type PlatformState = 'STARTING' | 'RUNNING' | 'STOPPING' | 'STOPPED';

export interface Platform {
  readonly state: PlatformState;
  readonly node: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly store: Store;
  readonly gateway: AgentGateway;
  readonly tasks: TaskService;
  /** The HTTP server (for `inject` in tests). */
  readonly api: ApiServer;
  /** SHA-256 fingerprint of the platform CA; null with --insecure. */
  readonly caFingerprint: string | null;
  /** The CA certificate (PEM) clients and agents trust; null with --insecure. */
  readonly caCertPem: string | null;
  /** Where a first start wrote the initial admin token; null when none was written. */
  readonly adminTokenFile: string | null;
  stop(): Promise<void>;
}

export interface StartPlatformOptions extends Partial<PlatformConfig> {
  logger?: Logger;
}

export async function startPlatform(options: StartPlatformOptions = {}): Promise<Platform> {
  const config = resolveConfig(options);
  const logger = options.logger ?? pino({ level: config.logLevel, base: { service: 'platform' } });
  const node = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
  let state: PlatformState = 'STARTING';
  const setState = (s: PlatformState) => {
    state = s;
    logger.info({ state: s, node }, 'platform state');
  };
  setState('STARTING');

  let embedded: EmbeddedPostgresHandle | undefined;
  let store: Store | undefined;
  let gateway: AgentGateway | undefined;
  let api: ApiServer | undefined;
  let tasks: TaskService | undefined;
  const cleanup = async () => {
    await api?.close().catch((err: unknown) => logger.warn({ err }, 'http close failed'));
    await tasks?.close().catch((err: unknown) => logger.warn({ err }, 'task service close failed'));
    await gateway?.close().catch((err: unknown) => logger.warn({ err }, 'gateway close failed'));
    await store?.close().catch((err: unknown) => logger.warn({ err }, 'store close failed'));
    await embedded?.stop().catch((err: unknown) => logger.warn({ err }, 'embedded postgres stop failed'));
  };

  try {
    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      embedded = await startEmbeddedPostgres({
        dataDir: config.dataDir,
        logger: logger.child({ scope: 'postgres' }),
      });
      databaseUrl = embedded.url;
    }
    store = createStore({ databaseUrl, logger: logger.child({ scope: 'store' }) });
    await store.migrate();

    let pki: Pki | undefined;
    if (config.insecure) {
      logger.warn(
        { insecure: true },
        'INSECURE: plaintext gRPC and HTTP, agents are not authenticated; use only for tests or a trusted loopback',
      );
    } else {
      pki = await loadOrCreatePki({
        dir: config.tlsDir || path.join(config.dataDir, 'tls'),
        sans: config.tlsSans,
        certFile: config.tlsCertFile || undefined,
        keyFile: config.tlsKeyFile || undefined,
        logger: logger.child({ scope: 'pki' }),
      });
    }
    const adminTokenFile = await bootstrapTokens(store, config, logger);

    gateway = createAgentGateway({
      store,
      logger: logger.child({ scope: 'gateway' }),
      platformNode: node,
      heartbeatIntervalSeconds: config.heartbeatIntervalSeconds,
      outboundBudgetBytes: config.outboundBudgetBytes,
      pki,
    });
    tasks = createTaskService({
      store,
      gateway,
      logger: logger.child({ scope: 'tasks' }),
      platformNode: node,
      databaseUrl,
      lostGraceSeconds: config.lostGraceSeconds,
      taskRetentionDays: config.taskRetentionDays,
      purgeIntervalMs: config.purgeIntervalMs,
      pollIntervalMs: config.dispatchPollMs,
      logBudgetBytes: config.logBudgetBytes,
    });
    gateway.setHandlers(tasks.handlers);
    await tasks.start();
    const g = parseListen(config.grpcListen);
    const grpcPort = await gateway.listen(g.host, g.port);

    const gwForApi = gateway;
    api = await createApiServer({
      store,
      tasks,
      logger,
      version: VERSION,
      caFingerprint: pki?.caFingerprint ?? null,
      https: pki ? { key: pki.serverKeyPem, cert: pki.serverCertPem } : undefined,
      onAgentRevoked: (id) => gwForApi.revoke(id),
    });
    const h = parseListen(config.httpListen);
    await api.listen({ host: h.host, port: h.port });
    const addr = api.server.address();
    const httpPort = typeof addr === 'object' && addr ? addr.port : h.port;

    setState('RUNNING');
    logger.info(
      {
        grpc: `${g.host}:${grpcPort}`,
        http: `${pki ? 'https' : 'http'}://${h.host}:${httpPort}`,
        tls: !!pki,
        ca_fingerprint: pki?.caFingerprint,
        embedded_db: !!embedded,
      },
      'platform listening',
    );
    const s = store;
    const gw = gateway;
    const ts = tasks;
    const app = api;
    let stopping: Promise<void> | undefined;
    return {
      get state() {
        return state;
      },
      node,
      grpcPort,
      httpPort,
      store: s,
      gateway: gw,
      tasks: ts,
      api: app,
      caFingerprint: pki?.caFingerprint ?? null,
      caCertPem: pki?.caCertPem ?? null,
      adminTokenFile,
      stop() {
        stopping ??= (async () => {
          setState('STOPPING');
          await cleanup();
          setState('STOPPED');
        })();
        return stopping;
      },
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/**
 * AP_BOOTSTRAP_TOKEN, when set, is an admin token (created if missing). With
 * no token at all in the database, a first admin token is made and written to
 * `<dataDir>/admin-token` (mode 0600); its path is logged, never the token.
 */
async function bootstrapTokens(store: Store, config: PlatformConfig, logger: Logger): Promise<string | null> {
  if (config.bootstrapToken) {
    await store.tokens.ensureApi({
      tokenId: newTokenId(),
      name: 'bootstrap',
      role: 'admin',
      hash: hashToken(config.bootstrapToken),
      createdBy: 'AP_BOOTSTRAP_TOKEN',
    });
    return null;
  }
  if ((await store.tokens.countApi()) > 0) return null;
  const token = generateToken(API_TOKEN_PREFIX);
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  const file = path.resolve(config.dataDir, 'admin-token');
  await writeFile(file, `${token}\n`, { mode: 0o600 });
  await store.tokens.createApi({
    tokenId: newTokenId(),
    name: 'initial-admin',
    role: 'admin',
    hash: hashToken(token),
    createdBy: 'first start',
  });
  logger.warn({ file }, 'created the first admin API token; it is in this file');
  return file;
}
