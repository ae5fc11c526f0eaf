/** `apctl tasks list|get|logs|cancel`. */
import type { Command } from 'commander';
import { followTaskLogs } from '../client/follow-logs.js';
import type { PlatformClient } from '../client/platform-client.js';
import { errorText } from '../errors.js';
import { formatTask, formatTaskTable } from '../output/format.js';
import { printRaw, writeOut } from '../output/write.js';
import { addClientFlags, addJsonFlag, clientFrom, parseInteger, type ClientFlags } from './flags.js';

interface ReadFlags extends ClientFlags {
  json?: boolean;
}

export function registerTasksCommand(program: Command): void {
  const tasks = program.command('tasks').description('list, inspect, follow and cancel tasks');

  addJsonFlag(
    addClientFlags(
      tasks
        .command('list')
        .description('tasks, newest first')
        .option('--agent <id>', 'only tasks for this agent')
        .option('--status <status>', 'only tasks in this status (pending, running, succeeded, failed, …)')
        .option('--limit <n>', 'at most this many [platform default]')
        .option('--cursor <cursor>', 'the next page, from a previous list'),
    ),
  ).action(async (f: ReadFlags & { agent?: string; status?: string; limit?: string; cursor?: string }) => {
    const limit = f.limit === undefined ? undefined : parseInteger('--limit', f.limit);
    const { data, raw } = await clientFrom(f).listTasks({
      agent_id: f.agent,
      status: f.status,
      limit,
      cursor: f.cursor,
    });
    if (f.json) return printRaw(raw);
    if (data.tasks.length === 0) process.stderr.write('no tasks\n');
    else process.stdout.write(formatTaskTable(data.tasks));
    if (data.next_cursor) process.stderr.write(`more: apctl tasks list --cursor ${data.next_cursor}\n`);
  });

  addJsonFlag(
    addClientFlags(
      tasks.command('get').description('one task: status, exit code, times, output').argument('<task-id>'),
    ),
  ).action(async (taskId: string, f: ReadFlags) => {
    const { data, raw } = await clientFrom(f).getTask(taskId);
    if (f.json) return printRaw(raw);
    process.stdout.write(formatTask(data));
  });

  addJsonFlag(
    addClientFlags(
      tasks
        .command('logs')
        .description("a task's output: stdout chunks to stdout, stderr chunks to stderr")
        .argument('<task-id>')
        .option('-f, --follow', 'keep following until the task ends')
        .option('--since-seq <n>', 'only chunks after this sequence number', '0'),
    ),
  ).action(async (taskId: string, f: ReadFlags & { follow?: boolean; sinceSeq: string }) => {
    const client = clientFrom(f);
    const since = parseInteger('--since-seq', f.sinceSeq, 0);
    if (f.follow) await followLogs(client, taskId, since, f.json ?? false);
    else await pageLogs(client, taskId, since, f.json ?? false);
  });

  addJsonFlag(
    addClientFlags(
      tasks
        .command('cancel')
        .description('ask the platform to cancel a task (the agent kills its processes)')
        .argument('<task-id>')
        .option('--reason <text>', 'kept with the task'),
    ),
  ).action(async (taskId: string, f: ReadFlags & { reason?: string }) => {
    const { data, raw } = await clientFrom(f).cancelTask(taskId, f.reason);
    if (f.json) return printRaw(raw);
    process.stdout.write(`cancel requested for task ${data.task_id} (status ${data.status})\n`);
  });
}

const PAGE = 1000;

/** Every stored chunk after `since`, page by page. */
async function pageLogs(client: PlatformClient, taskId: string, since: number, json: boolean): Promise<void> {
  for (;;) {
    const { data, raw } = await client.getLogs(taskId, since, PAGE);
    if (json) printRaw(raw);
    else
      for (const l of data.logs)
        await writeOut(l.stream === 'stderr' ? process.stderr : process.stdout, l.output);
    if (data.logs.length < PAGE || data.next_seq <= since) return;
    since = data.next_seq;
  }
}

/** Live output until the task ends; `--json` prints each event's data as one line. */
async function followLogs(
  client: PlatformClient,
  taskId: string,
  since: number,
  json: boolean,
): Promise<void> {
  const end = await followTaskLogs({
    client,
    taskId,
    sinceSeq: since,
    onLog: (l) =>
      json
        ? writeOut(process.stdout, `${JSON.stringify(l)}\n`)
        : writeOut(l.stream === 'stderr' ? process.stderr : process.stdout, l.output),
    onReconnect: (attempt, reason) => {
      if (attempt === 1) {
        process.stderr.write(`apctl: log stream interrupted (${errorText(reason)}); reconnecting\n`);
      }
    },
  });
  if (json) await writeOut(process.stdout, `${JSON.stringify(end)}\n`);
}
