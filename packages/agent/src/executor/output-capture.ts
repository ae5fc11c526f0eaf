/**
 * Output capture for one task: raw pipe bytes in; numbered UTF-8 chunks out to
 * the consumer (with backpressure), and a head+tail summary per stream for the
 * result.
 */
import { StringDecoder } from 'node:string_decoder';
import type { Logger } from 'pino';
import { describeError } from './errors.js';
import type { OutputChunk } from './types.js';

export type StreamName = 'stdout' | 'stderr';

/** What the result keeps of one stream. */
export interface StreamSummary {
  text: string;
  bytes: number;
  truncated: boolean;
}

/**
 * Keeps the first budget/2 and the last budget/2 bytes of a stream, copying
 * into its own memory so pipe buffers are never retained.
 */
export class HeadTailBuffer {
  private readonly headLimit: number;
  private readonly tailSize: number;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private tail: Buffer | null = null;
  private tailPos = 0;
  private tailFilled = 0;
  private total = 0;

  constructor(budgetBytes: number) {
    this.headLimit = Math.floor(budgetBytes / 2);
    this.tailSize = Math.max(0, Math.floor(budgetBytes) - this.headLimit);
  }

  get bytes(): number {
    return this.total;
  }

  get truncated(): boolean {
    return this.total > this.headLimit + this.tailSize;
  }

  push(data: Buffer): void {
    this.total += data.length;
    let rest = data;
    if (this.headBytes < this.headLimit) {
      const take = Math.min(rest.length, this.headLimit - this.headBytes);
      this.head.push(Buffer.from(rest.subarray(0, take)));
      this.headBytes += take;
      rest = rest.subarray(take);
    }
    if (rest.length === 0 || this.tailSize === 0) return;
    this.tail ??= Buffer.allocUnsafe(this.tailSize);
    if (rest.length >= this.tailSize) {
      rest.copy(this.tail, 0, rest.length - this.tailSize);
      this.tailPos = 0;
      this.tailFilled = this.tailSize;
      return;
    }
    const first = Math.min(rest.length, this.tailSize - this.tailPos);
    rest.copy(this.tail, this.tailPos, 0, first);
    if (first < rest.length) rest.copy(this.tail, 0, first);
    this.tailPos = (this.tailPos + rest.length) % this.tailSize;
    this.tailFilled = Math.min(this.tailSize, this.tailFilled + rest.length);
  }

  summary(): StreamSummary {
    const head = Buffer.concat(this.head);
    const tail = this.tailBytes();
    if (!this.truncated) {
      return { text: Buffer.concat([head, tail]).toString('utf8'), bytes: this.total, truncated: false };
    }
    // Cut at character boundaries so the summary does not show U+FFFD where the
    // stream itself was valid UTF-8.
    const headText = head.subarray(0, completeUtf8Prefix(head)).toString('utf8');
    const tailText = tail.subarray(continuationPrefix(tail)).toString('utf8');
    const omitted = this.total - head.length - tail.length;
    return {
      text: `${headText}\n[... ${omitted} bytes omitted, ${this.total} bytes in total ...]\n${tailText}`,
      bytes: this.total,
      truncated: true,
    };
  }

  private tailBytes(): Buffer {
    if (!this.tail || this.tailFilled === 0) return Buffer.alloc(0);
    if (this.tailFilled < this.tailSize) return Buffer.from(this.tail.subarray(0, this.tailFilled));
    return Buffer.concat([this.tail.subarray(this.tailPos), this.tail.subarray(0, this.tailPos)]);
  }
}

/** Length of `buf` without a multi-byte character cut off at its end. */
function completeUtf8Prefix(buf: Buffer): number {
  const end = buf.length;
  for (let back = 1; back <= 4 && back <= end; back++) {
    const byte = buf[end - back] ?? 0;
    if ((byte & 0xc0) === 0x80) continue;
    const need = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : byte >= 0xc0 ? 2 : 1;
    return need > back ? end - back : end;
  }
  return end;
}

/** Number of continuation bytes (at most 3) at the start of `buf`. */
function continuationPrefix(buf: Buffer): number {
  let i = 0;
  while (i < 3 && i < buf.length && ((buf[i] ?? 0) & 0xc0) === 0x80) i++;
  return i;
}

/** Splits `text` so the first part is at most `room` UTF-8 bytes, never inside a character. */
export function splitUtf8(text: string, room: number): [string, string] {
  const bytes = Buffer.from(text, 'utf8');
  let cut = Math.min(room, bytes.length);
  while (cut > 0 && ((bytes[cut] ?? 0) & 0xc0) === 0x80) cut--;
  return [bytes.subarray(0, cut).toString('utf8'), bytes.subarray(cut).toString('utf8')];
}

export interface OutputCaptureOptions {
  resultBudgetBytes: number;
  flushIntervalMs: number;
  maxChunkBytes: number;
  onOutput: (chunk: OutputChunk) => void | Promise<void>;
  logger: Logger;
}

/**
 * Turns pipe reads into ordered chunks. Consecutive output of one stream is
 * coalesced into one chunk; output of the other stream first flushes it, so
 * sequence numbers keep the order in which the agent read the two pipes.
 */
export class OutputCapture {
  private readonly decoders = { stdout: new StringDecoder('utf8'), stderr: new StringDecoder('utf8') };
  private readonly buffers: Record<StreamName, HeadTailBuffer>;
  private pending: { stream: StreamName; parts: string[]; bytes: number } | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly outbox: OutputChunk[] = [];
  private delivering = false;
  private seq = 0;

  /** Seq of the last chunk made (0: none). */
  get lastSeq(): number {
    return this.seq;
  }
  private idleWaiters: Array<() => void> = [];

  constructor(private readonly options: OutputCaptureOptions) {
    this.buffers = {
      stdout: new HeadTailBuffer(options.resultBudgetBytes),
      stderr: new HeadTailBuffer(options.resultBudgetBytes),
    };
  }

  /** True while chunks wait for the consumer; the reader should pause until {@link whenIdle}. */
  get busy(): boolean {
    return this.delivering || this.outbox.length > 0;
  }

  /** Total raw bytes read from both streams. */
  get totalBytes(): number {
    return this.buffers.stdout.bytes + this.buffers.stderr.bytes;
  }

  write(stream: StreamName, data: Buffer): void {
    this.buffers[stream].push(data);
    this.append(stream, this.decoders[stream].write(data));
  }

  /** Counts bytes for the result's summary without sending them (output past the task's limit). */
  count(stream: StreamName, data: Buffer): void {
    this.buffers[stream].push(data);
  }

  /** The stream has ended: emit what the decoder still holds (an incomplete character becomes U+FFFD). */
  end(stream: StreamName): void {
    this.append(stream, this.decoders[stream].end());
  }

  /** Emits pending output now. */
  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const pending = this.pending;
    if (!pending) return;
    this.pending = null;
    this.outbox.push({
      seq: ++this.seq,
      stream: pending.stream,
      data: pending.parts.join(''),
      timestamp: new Date(),
    });
    this.pump();
  }

  /** Resolves once every emitted chunk has been delivered. */
  whenIdle(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  summary(stream: StreamName): StreamSummary {
    return this.buffers[stream].summary();
  }

  private append(stream: StreamName, text: string): void {
    if (text.length === 0) return;
    if (this.pending && this.pending.stream !== stream) this.flush();
    let rest = text;
    while (rest.length > 0) {
      this.pending ??= { stream, parts: [], bytes: 0 };
      const room = this.options.maxChunkBytes - this.pending.bytes;
      const size = Buffer.byteLength(rest, 'utf8');
      let part = rest;
      let partBytes = size;
      if (size > room && size === rest.length) {
        // One byte per character: cut by index, no re-encoding.
        part = rest.slice(0, room);
        rest = rest.slice(room);
        partBytes = room;
      } else if (size > room) {
        [part, rest] = splitUtf8(rest, room);
        partBytes = Buffer.byteLength(part, 'utf8');
      } else {
        rest = '';
      }
      if (partBytes > 0) {
        this.pending.parts.push(part);
        this.pending.bytes += partBytes;
      }
      if (this.pending.bytes >= this.options.maxChunkBytes || rest.length > 0) this.flush();
    }
    // The timer starts with the oldest pending byte, so no byte waits longer than flushIntervalMs.
    if (this.pending && !this.timer) {
      this.timer = setTimeout(() => this.flush(), this.options.flushIntervalMs);
    }
  }

  private pump(): void {
    while (!this.delivering && this.outbox.length > 0) {
      const chunk = this.outbox.shift();
      if (!chunk) break;
      let delivery: void | Promise<void>;
      try {
        delivery = this.options.onOutput(chunk);
      } catch (err) {
        this.options.logger.warn({ err: describeError(err), seq: chunk.seq }, 'output consumer threw');
        continue;
      }
      if (isPromiseLike(delivery)) {
        this.delivering = true;
        Promise.resolve(delivery)
          .catch((err: unknown) => {
            this.options.logger.warn({ err: describeError(err), seq: chunk.seq }, 'output consumer rejected');
          })
          .finally(() => {
            this.delivering = false;
            this.pump();
          });
        return;
      }
    }
    if (!this.busy) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const wake of waiters) wake();
    }
  }
}

function isPromiseLike(value: unknown): value is PromiseLike<void> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function';
}
