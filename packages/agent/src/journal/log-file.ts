/**
 * One file of the journal's append-only log, kept open. Records are appended in
 * place (a write into the page cache, no thread-pool trip); making them durable
 * is one `fdatasync` through the thread pool, group-committed: every append made
 * before a run started is covered by it, so concurrent tasks share runs.
 */
import { close, fdatasync, ftruncateSync, open, read, write, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { createGroupCommit } from './durable-dir.js';

/** The file operations of the log; replaceable for tests. */
export interface JournalIo {
  /** Synchronous write at the end of the file (the fd is O_APPEND); bytes written. */
  writeSync(fd: number, buf: Buffer, off: number, len: number): number;
  fdatasync(fd: number): Promise<void>;
}

export const defaultIo: JournalIo = {
  writeSync: (fd, buf, off, len) => writeSync(fd, buf, off, len),
  fdatasync: promisify(fdatasync),
};

const openAsync = promisify(open);
const closeAsync = promisify(close);
const readAsync = promisify(read);
const writeAsync = promisify(write);

/** Where a record is: its file, offset and length (with the newline). */
export interface Loc {
  file: LogFile;
  off: number;
  len: number;
}

export class LogFile {
  /** Bytes in the file (all appends so far). */
  size: number;
  /** An append or flush failed: the file's tail may hold a torn record; compact away from it. */
  failed = false;
  private readonly sync: () => Promise<void>;
  private busy = 0;
  private idle: (() => void) | undefined;
  private closed = false;

  private constructor(
    public path: string,
    readonly gen: number,
    readonly fd: number,
    size: number,
    private readonly io: JournalIo,
  ) {
    this.size = size;
    this.sync = createGroupCommit(() => this.io.fdatasync(this.fd));
  }

  /** Opens `path` for appending and reading (`flags` 'a+' or, for a new file, 'ax+'). */
  static async open(path: string, gen: number, size: number, io: JournalIo, flags = 'a+'): Promise<LogFile> {
    return new LogFile(path, gen, await openAsync(path, flags, 0o600), size, io);
  }

  /**
   * Appends `buf` (whole records) in place and returns where it went. On an
   * error nothing of it stays in the file (cut back), or the file is marked
   * {@link failed}.
   */
  append(buf: Buffer): Loc {
    if (this.closed) throw new Error(`journal log ${this.path} is closed`);
    const off = this.size;
    let done = 0;
    try {
      // A regular file takes it in one write; loop anyway (a signal can cut one short).
      while (done < buf.length) done += this.io.writeSync(this.fd, buf, done, buf.length - done);
    } catch (err) {
      if (done > 0) {
        try {
          ftruncateSync(this.fd, off);
        } catch {
          this.failed = true;
          this.size = off + done;
        }
      }
      throw err;
    }
    this.size = off + buf.length;
    return { file: this, off, len: buf.length };
  }

  /**
   * Appends `buf` through the thread pool, for large writes that should not
   * hold the event loop (a compaction's snapshot, into a file nobody else
   * writes yet).
   */
  async appendAsync(buf: Buffer): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const { bytesWritten } = await writeAsync(this.fd, buf, done, buf.length - done, null);
      done += bytesWritten;
    }
    this.size += buf.length;
  }

  /** Resolves when every append made before the call is on disk. */
  flush(): Promise<void> {
    return this.track(
      this.sync().catch((err: unknown) => {
        // After a failed fdatasync the kernel may have dropped the pages: what
        // is on disk is unknown. The journal moves to a new file.
        this.failed = true;
        throw err;
      }),
    );
  }

  /** Reads `len` bytes at `off`. */
  async read(off: number, len: number): Promise<Buffer> {
    if (this.closed) throw new Error(`journal log ${this.path} is closed`);
    const buf = Buffer.allocUnsafe(len);
    let done = 0;
    await this.track(
      (async () => {
        while (done < len) {
          const { bytesRead } = await readAsync(this.fd, buf, done, len - done, off + done);
          if (bytesRead === 0) throw new Error(`journal log ${this.path}: short read`);
          done += bytesRead;
        }
      })(),
    );
    return buf;
  }

  /** Waits for reads and flushes in flight, then closes the fd. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.busy > 0) await new Promise<void>((r) => (this.idle = r));
    await closeAsync(this.fd);
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.busy++;
    const done = () => {
      if (--this.busy === 0) this.idle?.();
    };
    p.then(done, done);
    return p;
  }
}
