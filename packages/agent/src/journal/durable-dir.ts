/**
 * Crash-safe file replacement in one directory: write a temp file, fsync it,
 * rename it over the target, fsync the directory. After a crash the target is
 * either the old content or the new, never empty or half written.
 *
 * Directory fsyncs are group-committed: every rename that happened before an
 * fsync started is covered by it, so concurrent writers share one.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fsync, open as openCb, writeSync } from 'node:fs';
import { open, readdir, rename, unlink, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import path from 'node:path';

/** Prefix of temp files; anything with it is debris of a crash and removed by {@link DurableDir.removeTempFiles}. */
export const TEMP_PREFIX = '.tmp-';

export interface DurableDir {
  readonly dir: string;
  /** Replaces `name` with `data`; resolves when the new content and the rename are on disk. */
  writeFile(name: string, data: string, options?: { syncDir?: boolean }): Promise<void>;
  /** Resolves when every rename, create or unlink done before the call is on disk. */
  syncDir(): Promise<void>;
  /** Deletes temp files left by a crash mid-write. */
  removeTempFiles(): Promise<void>;
  /** Closes the directory handle kept for fsyncs. */
  close(): Promise<void>;
}

/**
 * Wraps a flush (fsync, fdatasync) so concurrent callers share runs: a caller
 * waits for a run that started after its call, and all callers arriving while a
 * run is in flight share the next one.
 */
export function createGroupCommit(flush: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let next: Promise<void> | undefined;
  const commit = (): Promise<void> => {
    if (!running) {
      running = flush().finally(() => {
        running = undefined;
      });
      return running;
    }
    // The run in flight may have started before the caller's write: it needs the next one.
    next ??= running
      .catch(() => undefined)
      .then(() => {
        next = undefined;
        return commit();
      });
    return next;
  };
  return commit;
}

const fsyncAsync = promisify(fsync);
const openAsync = promisify(openCb);

export function createDurableDir(dir: string): DurableDir {
  // Kept open: opening the directory for every fsync costs two more thread-pool trips.
  let dirHandle: Promise<FileHandle> | undefined;
  const syncDir = createGroupCommit(async () => {
    dirHandle ??= open(dir, 'r');
    await (await dirHandle).sync();
  });

  return {
    dir,
    async writeFile(name, data, options = {}) {
      // Three trips through the thread pool (open, fsync, rename) instead of five:
      // the write into the page cache and the close are done in place. open and
      // rename stay asynchronous: on ext4 they wait for a journal commit in
      // progress (other tasks' fsyncs), which blocked the event loop for
      // milliseconds when tried synchronously.
      const target = path.join(dir, name);
      const temp = path.join(dir, `${TEMP_PREFIX}${randomBytes(6).toString('hex')}-${name}`);
      const fd = await openAsync(temp, 'wx', 0o600);
      try {
        const bytes = Buffer.from(data);
        // A regular file takes it in one write; loop anyway (a signal can cut one short).
        for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off);
        await fsyncAsync(fd);
      } catch (err) {
        closeSync(fd);
        await unlink(temp).catch(() => undefined);
        throw err;
      }
      closeSync(fd);
      await rename(temp, target);
      if (options.syncDir !== false) await syncDir();
    },
    syncDir,
    async close() {
      const handle = dirHandle;
      dirHandle = undefined;
      await (await handle?.catch(() => undefined))?.close();
    },
    async removeTempFiles() {
      for (const name of await readdir(dir)) {
        if (name.startsWith(TEMP_PREFIX)) await unlink(path.join(dir, name)).catch(() => undefined);
      }
    },
  };
}
