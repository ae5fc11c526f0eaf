/**
 * Directory-level durability: a group-committed fsync of a directory (so that
 * a create, rename or unlink in it survives a crash), and removal of temp files
 * left by a crash mid-write.
 */
import { open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

/** Prefix of temp files; anything with it is debris of a crash and removed by {@link DurableDir.removeTempFiles}. */
export const TEMP_PREFIX = '.tmp-';

export interface DurableDir {
  readonly dir: string;
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

export function createDurableDir(dir: string): DurableDir {
  // Kept open: opening the directory for every fsync costs two more thread-pool trips.
  let dirHandle: Promise<FileHandle> | undefined;
  const syncDir = createGroupCommit(async () => {
    dirHandle ??= open(dir, 'r');
    await (await dirHandle).sync();
  });

  return {
    dir,
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
