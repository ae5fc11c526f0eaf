/**
 * Reading the journal layout of agents before the append-only log, so that an
 * agent upgraded in place keeps its tasks:
 *
 *   tasks/<task id>.json   {"v":1,"task_id","accepted_at","result"?} per unacknowledged task
 *                          (`_<sha256>.json` for ids that are not plain file names)
 *   acked.log              {"task_id","acked_at"} per line: tombstones
 *
 * The journal imports them into its log at open and then deletes them.
 */
import { readdir, readFile, rename } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';

export const LEGACY_TASKS_DIR = 'tasks';
export const LEGACY_TOMBSTONE_FILE = 'acked.log';

const PLAIN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

export interface LegacyTask {
  taskId: string;
  acceptedAt: number;
  /** The TaskResult's JSON text; undefined while it ran. */
  resultJson?: string;
}

export interface LegacyState {
  /** Whether there was anything of the old layout (then it is to be removed once imported). */
  found: boolean;
  tasks: LegacyTask[];
  /** Acknowledged ids, oldest first, with the time of the ack (ms). */
  tombstones: [string, number][];
  /** Files to delete once their content is safely in the log. */
  files: string[];
}

async function readIfExists(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

export async function readLegacyState(dir: string, log: Logger): Promise<LegacyState> {
  const state: LegacyState = { found: false, tasks: [], tombstones: [], files: [] };

  const ackedFile = path.join(dir, LEGACY_TOMBSTONE_FILE);
  const acked = await readIfExists(ackedFile);
  if (acked !== undefined) {
    state.found = true;
    state.files.push(ackedFile);
    const byId = new Map<string, number>();
    for (const raw of acked.split('\n')) {
      if (raw === '') continue;
      try {
        const parsed = JSON.parse(raw) as { task_id?: unknown; acked_at?: unknown };
        const at = typeof parsed.acked_at === 'string' ? Date.parse(parsed.acked_at) : NaN;
        if (typeof parsed.task_id !== 'string' || Number.isNaN(at)) throw new Error('bad tombstone');
        byId.delete(parsed.task_id);
        byId.set(parsed.task_id, at);
      } catch {
        // A torn last line (crash mid-append): that ack is received again with the re-sent result.
      }
    }
    state.tombstones = [...byId];
  }

  const tasksDir = path.join(dir, LEGACY_TASKS_DIR);
  let names: string[];
  try {
    names = (await readdir(tasksDir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return state;
    throw err;
  }
  state.found = true;
  for (const name of names) {
    if (!name.endsWith('.json')) continue;
    const full = path.join(tasksDir, name);
    state.files.push(full);
    let task: LegacyTask | undefined;
    try {
      const parsed = JSON.parse((await readIfExists(full)) ?? 'null') as {
        task_id?: unknown;
        accepted_at?: unknown;
        result?: unknown;
      } | null;
      if (parsed && typeof parsed.task_id === 'string' && typeof parsed.accepted_at === 'string') {
        const at = Date.parse(parsed.accepted_at);
        task = {
          taskId: parsed.task_id,
          acceptedAt: Number.isNaN(at) ? 0 : at,
          ...(parsed.result === undefined ? {} : { resultJson: JSON.stringify(parsed.result) }),
        };
      }
    } catch {
      task = undefined;
    }
    if (!task) {
      // Writes were atomic, so this is damage from outside. A plain name still
      // says which task it was: treat it as accepted, so it is reported, never re-run.
      const id = name.slice(0, -'.json'.length);
      if (!name.startsWith('_') && PLAIN_ID.test(id)) {
        log.error({ task_id: id, file: full }, 'unreadable journal record; reporting the task as lost');
        task = { taskId: id, acceptedAt: 0 };
      } else {
        log.error({ file: full }, 'unreadable journal record of an unknown task; set aside');
        state.files.pop();
        await rename(full, `${full}.corrupt`).catch(() => undefined);
        continue;
      }
    }
    state.tasks.push(task);
  }
  return state;
}
