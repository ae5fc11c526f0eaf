import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { pino } from 'pino';
import { TaskRequest, TaskStatus, TaskType, type AgentMessage } from '@agent-platform/protocol';
import { createTaskJournal, startAgent } from './index.js';

const roots: string[] = [];
after(async () => {
  for (const r of roots) await rm(r, { recursive: true, force: true });
});

/** True while the process exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

test('stop() leaves no task process behind and journals the canceled result for the next start', async () => {
  const root = await mkdtemp(path.join(os.tmpdir(), 'agent-test-'));
  roots.push(root);
  const stateDir = path.join(root, 'state');
  const pidFile = path.join(root, 'sleep.pid');
  // No platform listens here: the connection keeps backing off, the task layer works regardless.
  const agent = await startAgent({
    servers: ['127.0.0.1:1'],
    stateDir,
    insecure: true,
    logger: pino({ level: 'silent' }),
    executor: { workDir: path.join(root, 'work') },
    stopAckTimeoutMs: 0,
  });
  const sent: AgentMessage[] = [];
  const link = {
    send: (m: AgentMessage) => sent.push(m) > 0,
    drain: () => Promise.resolve(),
  };
  // Stands in for a session: the platform's messages arrive through the runner's handlers.
  agent.runner.onReady(link);
  agent.runner.onMessage(
    {
      message: {
        $case: 'taskRequest',
        value: TaskRequest.fromPartial({
          taskId: 't-stop',
          type: TaskType.TASK_TYPE_SHELL,
          script: `trap '' TERM; sleep 300 & echo $! > ${pidFile}; wait`,
          killGrace: 1,
        }),
      },
    },
    link,
  );
  let sleepPid = 0;
  const deadline = Date.now() + 15_000;
  while (sleepPid === 0 && Date.now() < deadline) {
    try {
      sleepPid = Number(readFileSync(pidFile, 'utf8')) || 0;
    } catch {
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  assert.ok(alive(sleepPid));
  assert.equal(agent.runner.runningTasks(), 1);

  await agent.stop();
  assert.equal(alive(sleepPid), false, 'the whole task is gone when stop() resolves');
  const result = sent.find((m) => m.message?.$case === 'taskResult');
  assert.equal(
    result?.message?.$case === 'taskResult' && result.message.value.status,
    TaskStatus.TASK_STATUS_CANCELED,
  );

  // Not acknowledged: the next start has it to re-send, and does not call it lost.
  const journal = await createTaskJournal({ dir: path.join(stateDir, 'journal') });
  assert.deepEqual(journal.lost, []);
  assert.equal((await journal.result('t-stop'))?.status, TaskStatus.TASK_STATUS_CANCELED);
  await journal.close();
});
