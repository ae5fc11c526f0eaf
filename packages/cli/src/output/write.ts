/** Writing to stdout/stderr with backpressure, and exiting without losing buffered output. */
import { once } from 'node:events';

/** Resolves once `stream` can take more: a slow reader of our stdout slows the log follow down. */
export async function writeOut(stream: NodeJS.WritableStream, text: string): Promise<void> {
  if (!stream.write(text)) await once(stream, 'drain');
}

function flush(stream: NodeJS.WritableStream): Promise<void> {
  return new Promise((resolve) => {
    // Writes complete in order: the callback of an empty write runs after every earlier one.
    stream.write('', () => resolve());
  });
}

/** Exits with `code` after stdout and stderr are flushed (pipes may be asynchronous). */
export async function flushAndExit(code: number): Promise<never> {
  await Promise.race([
    Promise.all([flush(process.stdout), flush(process.stderr)]),
    new Promise((r) => setTimeout(r, 2000).unref()),
  ]);
  process.exit(code);
}

/** `--json`: the body exactly as the platform sent it, one document per line. */
export function printRaw(raw: string): void {
  process.stdout.write(raw.endsWith('\n') ? raw : `${raw}\n`);
}

/**
 * A reader that went away (`apctl tasks list | head -1`) ends apctl quietly
 * with 141, as SIGPIPE would end a C program: without this, a pending
 * 'drain' would wait forever, or an unhandled 'error' would print a stack.
 * A task being followed by `apctl run` keeps running on its agent.
 */
export function exitOnBrokenPipe(): void {
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(141);
      throw err;
    });
  }
}
