import type { Command } from 'commander';
import { onShutdownSignal } from '../signals.js';

interface AgentFlags {
  server: string[];
  labels?: string;
  stateDir: string;
  workDir?: string;
  capacity: string;
  heartbeatInterval?: string;
  logLevel?: string;
  insecure?: boolean;
  joinToken?: string;
  caFingerprint?: string;
  caFile?: string;
  tlsServerName?: string;
}

export function registerAgentCommand(program: Command): void {
  program
    .command('agent')
    .description('run the agent: connect to the platform and run the tasks it sends')
    .option(
      '--server <host:port>',
      'platform gRPC address; repeat or comma-separate for fail-over (env AP_SERVER)',
      (v: string, prev: string[]) => [...prev, ...v.split(',').filter(Boolean)],
      [] as string[],
    )
    .option('--labels <k=v,...>', 'labels to register with (env AP_LABELS)')
    .option(
      '--state-dir <dir>',
      'where the agent keeps its id and journal (env AP_STATE_DIR)',
      process.env.AP_STATE_DIR ?? './agent-state',
    )
    .option(
      '--work-dir <dir>',
      "where each task gets its own directory, the task's working directory unless it names one (env AP_WORK_DIR) [a tmpfs when there is one: <tmp>/agent-platform-tasks if the temp directory is one, else /dev/shm/agent-platform-tasks]",
    )
    .option('--capacity <n>', 'tasks run at once (env AP_CAPACITY)', process.env.AP_CAPACITY ?? '5')
    .option('--heartbeat-interval <seconds>', "override the platform's heartbeat interval")
    .option('--log-level <level>', 'trace|debug|info|warn|error (env AP_LOG_LEVEL) [info]')
    .option('--join-token <token>', 'first start: enroll with this join token (env AP_JOIN_TOKEN)')
    .option('--ca-fingerprint <sha256>', 'first start: the platform CA to pin (env AP_CA_FINGERPRINT)')
    .option('--ca-file <file>', 'first start: the platform CA certificate to pin (env AP_CA_FILE)')
    .option(
      '--tls-server-name <name>',
      "check the platform's certificate for this name (env AP_TLS_SERVER_NAME)",
    )
    .option('--insecure', 'plaintext, no identity; the platform must run with --insecure (env AP_INSECURE=1)')
    .action(async (flags: AgentFlags) => {
      const servers =
        flags.server.length > 0 ? flags.server : (process.env.AP_SERVER ?? '').split(',').filter(Boolean);
      if (servers.length === 0) throw new Error('--server HOST:PORT is required (or AP_SERVER)');
      const capacity = Number(flags.capacity);
      if (!Number.isInteger(capacity) || capacity < 1)
        throw new Error(`--capacity must be a positive integer, got ${flags.capacity}`);
      // Before the agent's modules load, so nothing of them is ever compiled by an optimizing tier.
      const { applyAgentV8Flags, createBytecodeAging } = await import('../agent-runtime.js');
      const v8Flags = applyAgentV8Flags();
      // Server-side modules load on use: client commands (run, tasks, ...) start without them.
      const [{ parseLabels, startAgent }, { createProcessLogger }] = await Promise.all([
        import('@agent-platform/agent'),
        import('../logger.js'),
      ]);
      const logger = createProcessLogger('agent', flags.logLevel);
      logger.debug({ v8_flags: v8Flags }, 'V8 flags for a small idle footprint');
      const env = process.env;
      const insecure = flags.insecure ?? /^(1|true|yes|on)$/i.test(env.AP_INSECURE ?? '');
      if (insecure) logger.warn({ insecure: true }, 'INSECURE: plaintext connection, no agent identity');
      const aging = createBytecodeAging();
      const agent = await startAgent({
        insecure,
        joinToken: flags.joinToken ?? (env.AP_JOIN_TOKEN || undefined),
        caFingerprint: flags.caFingerprint ?? (env.AP_CA_FINGERPRINT || undefined),
        caFile: flags.caFile ?? (env.AP_CA_FILE || undefined),
        tlsServerName: flags.tlsServerName ?? (env.AP_TLS_SERVER_NAME || undefined),
        servers,
        stateDir: flags.stateDir,
        executor: { workDir: flags.workDir ?? (env.AP_WORK_DIR || undefined) },
        labels: parseLabels(flags.labels ?? process.env.AP_LABELS),
        capacity,
        heartbeatIntervalSeconds:
          flags.heartbeatInterval === undefined ? undefined : Number(flags.heartbeatInterval),
        logger,
        onTaskRequest: aging?.onTaskRequest,
      });
      onShutdownSignal(
        () => {
          aging?.stop();
          return agent.stop();
        },
        (m) => logger.info(m),
      );
    });
}
