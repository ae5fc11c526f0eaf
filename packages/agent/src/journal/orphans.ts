/**
 * Finding the processes of a task whose agent died. The executor does not expose
 * a task's pid, and a recorded pid could belong to someone else after a reboot,
 * so the runner marks every task's environment with {@link TASK_ID_ENV}: every
 * descendant inherits it (even one that escaped the process group with setsid),
 * and /proc/PID/environ shows it to the same user or root.
 */
import { readdir, readFile } from 'node:fs/promises';

/** Environment variable carrying the task id into every process of a task. */
export const TASK_ID_ENV = 'AGENT_PLATFORM_TASK_ID';

const MARKER = `${TASK_ID_ENV}=`;

/** Pids whose environment marks them as part of one of `taskIds`. Empty where there is no /proc. */
export async function findTaskProcesses(taskIds: ReadonlySet<string>): Promise<Map<number, string>> {
  const found = new Map<number, string>();
  if (taskIds.size === 0) return found;
  let entries: string[];
  try {
    entries = await readdir('/proc');
  } catch {
    return found;
  }
  for (const entry of entries) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid <= 1 || pid === process.pid) continue;
    let environ: string;
    try {
      environ = await readFile(`/proc/${pid}/environ`, 'utf8');
    } catch {
      continue; // gone, or another user's process we may not read
    }
    const variable = environ.split('\0').find((e) => e.startsWith(MARKER));
    if (variable === undefined) continue;
    const id = variable.slice(MARKER.length);
    if (taskIds.has(id)) found.set(pid, id);
  }
  return found;
}

/**
 * SIGKILLs every process marked with one of `taskIds`, scanning again until none
 * is left (a process may fork while we scan) or `maxRounds` passes. Best effort.
 * @returns the pids that were signalled.
 */
export async function killTaskProcesses(taskIds: ReadonlySet<string>, maxRounds = 5): Promise<number[]> {
  const killed: number[] = [];
  for (let round = 0; round < maxRounds; round++) {
    const found = await findTaskProcesses(taskIds);
    let signalled = 0;
    for (const pid of found.keys()) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
        signalled++;
      } catch {
        // Already gone, or not ours to kill.
      }
    }
    if (signalled === 0) break;
    // Let the kernel turn them into zombies (their environ reads empty) before rescanning.
    await new Promise((r) => setTimeout(r, 20));
  }
  return killed;
}
