/**
 * `apctl run` on several agents (`--agent` repeated, or `--label`): one batch
 * call creates a task per agent and streams every task's output and end
 * (`POST /api/v1/tasks/batch?follow=1`); the output is written line by line
 * with the agent's host name in front (as pdsh does), and a summary line per
 * agent ends the run. If that stream drops, each unfinished task is followed
 * on its own from its last seq. Exit code: 0 when every task
 * succeeded, else the highest exit code among them (1 for a task without one).
 * Ctrl-C cancels every task and waits for them to end; a second Ctrl-C exits.
 */
import { followTaskLogs, openFollowed } from '../client/follow-logs.js';
import type { PlatformClient } from '../client/platform-client.js';
import type { CreateTaskBody, LogEntry, TaskEnd } from '../client/types.js';
import { ApiError, errorText } from '../errors.js';
import { flushAndExit, writeOut } from '../output/write.js';
import { taskExitCode } from '../task-exit.js';

export interface RunManyTarget {
  agentIds?: string[];
  label?: string;
}

interface BatchResponse {
  /** hostname: from platforms that send it. */
  tasks: { task_id: string; agent_id: string; hostname?: string; created: boolean }[];
}

/** Buffers a stream's text until whole lines, so lines of two hosts never mix. */
function linePrefixer(prefix: string, out: NodeJS.WritableStream) {
  let pending = '';
  return {
    async write(text: string) {
      pending += text;
      const cut = pending.lastIndexOf('\n');
      if (cut < 0) return;
      const whole = pending.slice(0, cut + 1);
      pending = pending.slice(cut + 1);
      await writeOut(out, whole.replace(/^(?=.)/gm, prefix));
    },
    async end() {
      if (pending) await writeOut(out, `${prefix}${pending}\n`);
      pending = '';
    },
  };
}

export async function runMany(
  client: PlatformClient,
  body: Omit<CreateTaskBody, 'agent_id'>,
  target: RunManyTarget,
  key: string,
): Promise<never> {
  const say = (line: string) => process.stderr.write(`apctl: ${line}\n`);
  // Create the batch and follow it in one call; the first event lists its tasks.
  const batchBody = {
    ...body,
    ...(target.agentIds ? { agent_ids: target.agentIds } : { label: target.label }),
  };
  const { value: tasks, events } = await openFollowed(
    async () => {
      const r = await client.createBatchFollow(batchBody, key);
      return 'json' in r ? { answer: (r.json as BatchResponse).tasks } : r;
    },
    {
      event: 'tasks',
      parse: (data) => {
        const list = (JSON.parse(data) as Partial<BatchResponse>).tasks;
        return Array.isArray(list) ? list : undefined;
      },
    },
  );
  let interrupted = 0;
  const cancelAll = async () => {
    await Promise.all(
      tasks.map((t) =>
        client.cancelTask(t.task_id, 'apctl run interrupted (SIGINT)').catch((err: unknown) => {
          if (!(err instanceof ApiError && err.code === 'TASK_ALREADY_FINISHED'))
            say(`cancel ${t.task_id}: ${errorText(err)}`);
        }),
      ),
    );
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (++interrupted > 1) process.exit(signal === 'SIGINT' ? 130 : 143);
    say(`${signal}: canceling ${tasks.length} tasks; press Ctrl-C again to stop waiting`);
    void cancelAll();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  // Host names for the prefixes (looked up when the platform did not send them); the
  // agent id when the lookup fails.
  const names = new Map<string, string>();
  await Promise.all(
    tasks.map(async (t) => {
      if (t.hostname) return names.set(t.agent_id, t.hostname);
      try {
        names.set(t.agent_id, (await client.getAgent(t.agent_id)).data.hostname);
      } catch {
        names.set(t.agent_id, t.agent_id.slice(0, 8));
      }
    }),
  );
  // Two agents on one host name are told apart by their id.
  const counts = new Map<string, number>();
  for (const n of names.values()) counts.set(n, (counts.get(n) ?? 0) + 1);
  const label = (agentId: string) => {
    const n = names.get(agentId) ?? agentId;
    return (counts.get(n) ?? 0) > 1 ? `${n}/${agentId.slice(0, 8)}` : n;
  };
  const width = Math.max(...tasks.map((t) => label(t.agent_id).length), 1);

  const writers = new Map(
    tasks.map((t) => {
      const prefix = `${label(t.agent_id).padEnd(width)} | `;
      return [
        t.task_id,
        { out: linePrefixer(prefix, process.stdout), err: linePrefixer(prefix, process.stderr) },
      ];
    }),
  );
  const write = (taskId: string, log: Pick<LogEntry, 'stream' | 'output'>) => {
    const w = writers.get(taskId);
    return log.stream === 'stderr' ? w?.err.write(log.output) : w?.out.write(log.output);
  };
  const finished = new Map<string, TaskEnd>();
  const lastSeq = new Map<string, number>();
  if (events) {
    try {
      for await (const ev of events) {
        if (ev.event === 'done') break;
        if (ev.event !== 'log' && ev.event !== 'end') continue;
        const data = JSON.parse(ev.data) as LogEntry & TaskEnd & { task_id: string };
        if (!writers.has(data.task_id) || finished.has(data.task_id)) continue;
        if (ev.event === 'log') {
          if (data.seq <= (lastSeq.get(data.task_id) ?? 0)) continue;
          await write(data.task_id, data);
          lastSeq.set(data.task_id, data.seq);
        } else {
          finished.set(data.task_id, data);
          // Its last line, even without a newline, goes out when it ends.
          await writers.get(data.task_id)?.out.end();
          await writers.get(data.task_id)?.err.end();
        }
      }
    } catch (e) {
      // A drop (or a broken event): each unfinished task is followed on its own below.
      if (finished.size < tasks.length)
        say(`batch stream interrupted (${errorText(e)}); following each task`);
    }
  }
  const ends = await Promise.all(
    tasks.map(async (t): Promise<[string, TaskEnd | Error]> => {
      const w = writers.get(t.task_id);
      try {
        const end =
          finished.get(t.task_id) ??
          (await followTaskLogs({
            client,
            taskId: t.task_id,
            sinceSeq: lastSeq.get(t.task_id) ?? 0,
            onLog: (log) => write(t.task_id, log),
          }));
        await w?.out.end();
        await w?.err.end();
        return [t.agent_id, end];
      } catch (e) {
        return [t.agent_id, e instanceof Error ? e : new Error(String(e))];
      }
    }),
  );
  let code = 0;
  for (const [agentId, end] of ends.sort((x, y) => label(x[0]).localeCompare(label(y[0])))) {
    if (end instanceof Error) {
      say(`${label(agentId)}: ${errorText(end)}`);
      code = Math.max(code, 1);
      continue;
    }
    const r = taskExitCode(end);
    if (end.status !== 'succeeded' || r.code !== 0) {
      say(
        `${label(agentId)}: ${end.status}${end.exit_code !== null ? ` (exit ${end.exit_code})` : ''}${end.error ? `: ${end.error}` : ''}`,
      );
    }
    code = Math.max(code, end.status === 'succeeded' ? r.code : Math.max(1, r.code));
  }
  say(
    `${ends.filter(([, e]) => !(e instanceof Error) && e.status === 'succeeded' && e.exit_code === 0).length}/${tasks.length} succeeded`,
  );
  return flushAndExit(interrupted > 0 ? 130 : code);
}
