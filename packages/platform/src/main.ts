/**
 * Composition root: config -> store -> gateway -> api.
 *
 *   STARTING ──> RUNNING ──SIGTERM/stop()──> STOPPING ──> STOPPED
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
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

export type PlatformState = 'STARTING' | 'RUNNING' | 'STOPPING' | 'STOPPED';

export interface Platform {
  readonly state: PlatformState;
  readonly node: string;
  readonly grpcPort: number;
  readonly httpPort: number;
  readonly store: Store;
  readonly gateway: AgentGateway;
  readonly tasks: TaskService;
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

    gateway = createAgentGateway({
      store,
      logger: logger.child({ scope: 'gateway' }),
      platformNode: node,
      heartbeatIntervalSeconds: config.heartbeatIntervalSeconds,
    });
    tasks = createTaskService({
      store,
      gateway,
      logger: logger.child({ scope: 'tasks' }),
      platformNode: node,
      databaseUrl,
      lostGraceSeconds: config.lostGraceSeconds,
    });
    gateway.setHandlers(tasks.handlers);
    await tasks.start();
    const g = parseListen(config.grpcListen);
    const grpcPort = await gateway.listen(g.host, g.port);

    api = await createApiServer({ store, tasks, logger, version: VERSION });
    const h = parseListen(config.httpListen);
    await api.listen({ host: h.host, port: h.port });
    const addr = api.server.address();
    const httpPort = typeof addr === 'object' && addr ? addr.port : h.port;

    setState('RUNNING');
    logger.info(
      { grpc: `${g.host}:${grpcPort}`, http: `${h.host}:${httpPort}`, embedded_db: !!embedded },
      'platform listening',
    );
    const s = store;
    const gw = gateway;
    const ts = tasks;
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
