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
