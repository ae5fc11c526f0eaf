/**
 * Ids of tasks whose results the platform acknowledged, so that a request
 * re-sent for one of them is still never run. An append-only file of JSON lines
 * (`{"task_id":"…","acked_at":"…"}`), rewritten without expired entries when the
 * journal opens and on each prune.
 */
import { open, readFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { createGroupCommit, type DurableDir } from './durable-dir.js';

export const TOMBSTONE_FILE = 'acked.log';

export interface TombstoneLogOptions {
  /** Tombstones older than this are dropped, ms. */
  ttlMs: number;
  /** At most this many are kept; the oldest go first. */
  maxEntries: number;
}

export interface TombstoneLog {
  has(taskId: string): boolean;
  readonly size: number;
  /** Records the id; resolves when it is on disk (fdatasync, group-committed). */
  add(taskId: string, at?: Date): Promise<void>;
  /** Drops expired and surplus entries and rewrites the file; returns how many went. */
  prune(now?: Date): Promise<number>;
  close(): Promise<void>;
}

function line(taskId: string, atMs: number): string {
  return `${JSON.stringify({ task_id: taskId, acked_at: new Date(atMs).toISOString() })}\n`;
}

export async function openTombstoneLog(dir: DurableDir, options: TombstoneLogOptions): Promise<TombstoneLog> {
  const file = path.join(dir.dir, TOMBSTONE_FILE);
  // Insertion order = ack order, so the first entries are the oldest.
  const entries = new Map<string, number>();
  let text = '';
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  let malformed = 0;
  for (const raw of text.split('\n')) {
    if (raw === '') continue;
    try {
      const parsed = JSON.parse(raw) as { task_id?: unknown; acked_at?: unknown };
      const at = typeof parsed.acked_at === 'string' ? Date.parse(parsed.acked_at) : NaN;
      if (typeof parsed.task_id !== 'string' || Number.isNaN(at)) throw new Error('bad tombstone');
      entries.delete(parsed.task_id);
      entries.set(parsed.task_id, at);
    } catch {
      // A crash mid-append leaves a partial last line; the ack it recorded was
      // not yet confirmed to anyone, so forgetting it only means a re-sent result.
      malformed++;
    }
  }

  let handle: FileHandle | undefined;
  let chain: Promise<unknown> = Promise.resolve();
  const serial = <T>(fn: () => Promise<T>): Promise<T> => {
    const next = chain.then(fn, fn);
    chain = next.catch(() => undefined);
    return next;
  };
  // Inside `serial` so a prune's rewrite never closes the handle under it.
  const datasync = createGroupCommit(() =>
    serial(async () => {
      await handle?.datasync();
    }),
  );

  const dropExpired = (nowMs: number): number => {
    let dropped = 0;
    for (const [id, at] of entries) {
      if (nowMs - at > options.ttlMs || entries.size > options.maxEntries) {
        entries.delete(id);
        dropped++;
      }
      // Only the age test needs every entry; past the first young one with the
      // count within bounds, the rest are younger still.
      else break;
    }
    return dropped;
  };

  const rewrite = async (): Promise<void> => {
    await handle?.close();
    handle = undefined;
    let out = '';
    for (const [id, at] of entries) out += line(id, at);
    await dir.writeFile(TOMBSTONE_FILE, out);
    handle = await open(file, 'a', 0o600);
  };

  const dropped = dropExpired(Date.now());
  // Also rewrite after a torn last line: appending to it would corrupt the next entry too.
  if (dropped > 0 || malformed > 0 || (text !== '' && !text.endsWith('\n'))) await rewrite();
  else handle = await open(file, 'a', 0o600);

  return {
    has: (taskId) => entries.has(taskId),
    get size() {
      return entries.size;
    },
    async add(taskId, at = new Date()) {
      entries.delete(taskId);
      entries.set(taskId, at.getTime());
      await serial(async () => {
        if (!handle) throw new Error('tombstone log is closed');
        await handle.write(line(taskId, at.getTime()));
      });
      await datasync();
    },
    prune(now = new Date()) {
      return serial(async () => {
        const n = dropExpired(now.getTime());
        if (n > 0) await rewrite();
        return n;
      });
    },
    async close() {
      await serial(async () => {
        await handle?.close();
        handle = undefined;
      });
    },
  };
}
