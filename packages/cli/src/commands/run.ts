/**
 * `apctl run`: create a task, stream its output here as it happens, exit with
 * its exit code.
 *
 *   create and follow in one call (POST ?follow=1, with an Idempotency-Key so a
 *   retried POST makes one task): an SSE stream of the task, its logs, its end
 *     → on a drop, follow logs over SSE (reconnecting from the last seq)
 *     → end event → exit code (see task-exit.ts)
 *
 * Ctrl-C asks the platform to cancel the task once and keeps following until
 * the task has ended, so the remote process is gone when apctl returns;
 * a second Ctrl-C exits at once and leaves the task to the platform.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { followTaskLogs, openFollowed, retryUnreachable } from '../client/follow-logs.js';
import { runMany } from './run-many.js';
import type { PlatformClient } from '../client/platform-client.js';
import type { CreateTaskBody, TaskJson, TaskLimits } from '../client/types.js';
import { ApiError, errorText, isRetryable, usageError } from '../errors.js';
import { flushAndExit, writeOut } from '../output/write.js';
import { EXIT_INTERRUPTED, taskExitCode } from '../task-exit.js';
import {
  addClientFlags,
  clientFrom,
  collect,
  parseBytes,
  parseEnv,
  parseInteger,
  type ClientFlags,
} from './flags.js';

interface RunFlags extends ClientFlags {
  agent?: string[];
  label?: string;
  python?: boolean;
  file?: string;
  timeout?: string;
  deliveryTimeout?: string;
  killGrace?: string;
  env?: string[];
  cleanEnv?: boolean;
  arg?: string[];
  workdir?: string;
  runAs?: string;
  memory?: string;
  cpu?: string;
  maxProcesses?: string;
  maxOutput?: string;
  idempotencyKey?: string;
  detach?: boolean;
}

/** Exit codes for a signal that interrupted `apctl run` itself. */
const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGINT: EXIT_INTERRUPTED, SIGTERM: 143 };

export function registerRunCommand(program: Command): void {
  addClientFlags(
    program
      .command('run')
      .description('run a script on an agent, stream its output, exit with its exit code')
      .argument('[script...]', 'the script, after `--` (several words are joined with spaces)')
      .option('--agent <id>', 'agent to run on; repeat to run on several at once', collect)
      .option('--label <k=v,...>', 'run on every agent with these labels (one task each)')
      .option('--python', 'run the script with python3 instead of sh')
      .option('-f, --file <path>', 'read the script from a file (`-` = stdin)')
      .option('--timeout <seconds>', "kill the script after this long (exit 124) [platform's, 300]")
      .option('--env <KEY=VALUE>', 'environment variable for the script; repeatable', collect)
      .option('--clean-env', "start from an empty environment, not the agent's")
      .option('--arg <value>', 'argument to the script ($1…, sys.argv[1:]); repeatable', collect)
      .option('--workdir <dir>', 'working directory on the agent')
      .option('--run-as <user>', 'user to run as on the agent')
      .option(
        '--delivery-timeout <seconds>',
        "give up (expired) if the agent is not reached in time [platform's, 600]",
      )
      .option('--kill-grace <seconds>', "SIGTERM to SIGKILL on timeout or cancel [platform's, 5]")
      .option('--memory <size>', 'memory limit, e.g. 512M')
      .option('--cpu <millicores>', 'CPU limit in millicores (1000 = one core)')
      .option('--max-processes <n>', 'limit on processes/threads')
      .option('--max-output <size>', 'cap on captured stdout+stderr, e.g. 10M')
      .option('--idempotency-key <key>', 'the same key returns the same task instead of a new one')
      .option('--detach', 'print the task id and exit without following'),
  ).action(async (scriptWords: string[], flags: RunFlags) => {
    const agents = flags.agent ?? [];
    if (agents.length === 0 && flags.label === undefined)
      throw usageError('--agent ID or --label K=V is required');
    if (agents.length > 0 && flags.label !== undefined) throw usageError('give --agent or --label, not both');
    const body = await taskBody(scriptWords, flags);
    const client = clientFrom(flags);
    const key = flags.idempotencyKey ?? randomUUID();
    if (agents.length === 1 && !flags.detach) return runTask(client, body, key, false);
    if (agents.length === 1) return runTask(client, body, key, true);
    if (flags.detach) throw usageError('--detach runs on one --agent');
    const { agent_id: _one, ...rest } = body;
    await runMany(client, rest, agents.length > 0 ? { agentIds: agents } : { label: flags.label }, key);
  });
}

async function readScript(words: string[], file: string | undefined): Promise<string> {
  if (file !== undefined && words.length > 0)
    throw usageError('give the script after `--` or with -f, not both');
  if (file === undefined) {
    if (words.length === 0) throw usageError("no script: apctl run --agent ID -- 'script' (or -f FILE)");
    return words.join(' ');
  }
  try {
    return file === '-' ? await readStdin() : await readFile(file, 'utf8');
  } catch (err) {
    throw usageError(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function taskBody(words: string[], f: RunFlags): Promise<CreateTaskBody> {
  const body: CreateTaskBody = {
    agent_id: f.agent?.[0] ?? '',
    type: f.python ? 'python' : 'shell',
    script: await readScript(words, f.file),
  };
  if (f.timeout !== undefined) body.timeout = parseInteger('--timeout', f.timeout);
  if (f.deliveryTimeout !== undefined)
    body.delivery_timeout = parseInteger('--delivery-timeout', f.deliveryTimeout);
  if (f.killGrace !== undefined) body.kill_grace = parseInteger('--kill-grace', f.killGrace);
  if (f.env) body.env = parseEnv(f.env);
  if (f.cleanEnv) body.clean_env = true;
  if (f.arg) body.args = f.arg;
  if (f.workdir !== undefined) body.working_dir = f.workdir;
  if (f.runAs !== undefined) body.run_as = f.runAs;
  const limits: TaskLimits = {};
  if (f.memory !== undefined) limits.memory_bytes = parseBytes('--memory', f.memory);
  if (f.cpu !== undefined) limits.cpu_millicores = parseInteger('--cpu', f.cpu);
  if (f.maxProcesses !== undefined) limits.max_processes = parseInteger('--max-processes', f.maxProcesses);
  if (f.maxOutput !== undefined) limits.max_output_bytes = parseBytes('--max-output', f.maxOutput);
  if (Object.keys(limits).length > 0) body.limits = limits;
  return body;
}

/**
 * POSTs the task. A request that failed below HTTP may or may not have
 * reached the platform, so it is sent again with the same Idempotency-Key:
 * at most one task is created either way.
 */
async function createTask(client: PlatformClient, body: CreateTaskBody, key: string): Promise<TaskJson> {
  return retryUnreachable(async () => (await client.createTask(body, key)).data);
}

async function runTask(
  client: PlatformClient,
  body: CreateTaskBody,
  key: string,
  detach: boolean,
): Promise<never> {
  const say = (line: string) => process.stderr.write(`apctl: ${line}\n`);
  // Read by the signal handler, which may run before the task exists.
  const state: { taskId?: string } = {};
  let interruptedBy: NodeJS.Signals | undefined;
  let cancelSent = false;

  const cancel = async () => {
    if (cancelSent || state.taskId === undefined) return;
    cancelSent = true;
    for (let attempt = 1; ; attempt++) {
      try {
        await client.cancelTask(state.taskId, `apctl run interrupted (${interruptedBy ?? 'signal'})`);
        return;
      } catch (err) {
        // Finished already: the end event is on its way and tells the rest.
        if (err instanceof ApiError && err.code === 'TASK_ALREADY_FINISHED') return;
        if (!isRetryable(err) || attempt >= 5) {
          say(`cancel failed: ${errorText(err)}`);
          return;
        }
        await new Promise((r) => setTimeout(r, 500 * attempt));
      }
    }
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (interruptedBy !== undefined) {
      say(
        `${signal} again: exiting without waiting${state.taskId ? `; task ${state.taskId} is left to the platform` : ''}`,
      );
      process.exit(SIGNAL_EXIT[signal] ?? 1);
    }
    interruptedBy = signal;
    say(`${signal}: canceling task ${state.taskId ?? '(being created)'}; press Ctrl-C again to stop waiting`);
    void cancel();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  if (detach) {
    const { task_id: taskId } = await createTask(client, body, key);
    process.stdout.write(`${taskId}\n`);
    return flushAndExit(0);
  }
  // Create and follow in one call; the first event names the task.
  const { value: taskId, events: opened } = await openFollowed(
    async () => {
      const r = await client.createTaskFollow(body, key);
      return 'task' in r ? { answer: r.task.task_id } : r;
    },
    {
      event: 'task',
      parse: (data) => {
        const id = (JSON.parse(data) as Partial<TaskJson>).task_id;
        return typeof id === 'string' ? id : undefined;
      },
    },
  );
  state.taskId = taskId;
  // Interrupted while the POST was in flight: cancel now that there is an id.
  if (interruptedBy !== undefined) void cancel();

  // A task for an offline agent waits silently; say so once instead of looking hung.
  const pendingNotice = setTimeout(() => void noticeIfWaiting(client, taskId, say), PENDING_NOTICE_MS);
  pendingNotice.unref();
  const end = await followTaskLogs({
    client,
    taskId,
    opened,
    onLog: async (log) => {
      clearTimeout(pendingNotice);
      await writeOut(log.stream === 'stderr' ? process.stderr : process.stdout, log.output);
    },
    onGap: (from, to) =>
      say(
        `output chunks ${from === to ? from : `${from}-${to}`} of task ${taskId} are missing on the platform`,
      ),
    onReconnect: (attempt, reason) => {
      // One line per outage, not one per attempt.
      if (attempt === 1) {
        say(`log stream interrupted (${errorText(reason)}); reconnecting`);
      }
    },
  });
  clearTimeout(pendingNotice);
  const result = taskExitCode(end);
  if (result.message) say(result.message);
  return flushAndExit(interruptedBy !== undefined ? (SIGNAL_EXIT[interruptedBy] ?? 1) : result.code);
}

const PENDING_NOTICE_MS = 3000;

/** One line when the task is still waiting for its agent; silent on any error (it is only a hint). */
async function noticeIfWaiting(
  client: PlatformClient,
  taskId: string,
  say: (line: string) => void,
): Promise<void> {
  try {
    const task = (await client.getTask(taskId)).data;
    if (task.status !== 'pending') return;
    const agent = (await client.getAgent(task.agent_id)).data;
    say(
      `task ${taskId} is waiting for agent ${task.agent_id} (${agent.status}${agent.status === 'online' ? `, ${agent.running_tasks}/${agent.capacity} tasks running` : ''}); ` +
        `it expires at ${task.delivery_deadline} if not delivered`,
    );
  } catch {
    // a hint only
  }
}
