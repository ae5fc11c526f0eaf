/**
 * A reader for `text/event-stream` (the WHATWG server-sent events format),
 * hand-written over a response body so the CLI needs no EventSource package.
 * The format is lines of `field: value`; a blank line ends an event; lines
 * starting with `:` are comments (`: ping`). We keep `event`, `data` and
 * `id`; `retry` is ignored because reconnecting is the caller's business
 * (it resumes by `since_seq`, not by `Last-Event-ID`).
 */

export interface SseEvent {
  /** `message` when the event named none. */
  event: string;
  /** The `data:` lines of the event joined with `\n`. */
  data: string;
  id: string | undefined;
}

/** Incremental parser: feed text as it arrives, get the events it completed. */
export class SseParser {
  private buffer = '';
  private started = false;
  private eventType = '';
  private dataLines: string[] = [];
  private lastId: string | undefined;

  push(text: string): SseEvent[] {
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    this.buffer += text;
    const events: SseEvent[] = [];
    let start = 0;
    for (;;) {
      let end = -1;
      let next = -1;
      for (let i = start; i < this.buffer.length; i++) {
        const c = this.buffer.charCodeAt(i);
        if (c === 0x0a) {
          end = i;
          next = i + 1;
          break;
        }
        if (c === 0x0d) {
          // A CR at the very end may be the first half of CRLF: wait for more.
          if (i + 1 === this.buffer.length) break;
          end = i;
          next = this.buffer.charCodeAt(i + 1) === 0x0a ? i + 2 : i + 1;
          break;
        }
      }
      if (end < 0) break;
      const ev = this.line(this.buffer.slice(start, end));
      if (ev) events.push(ev);
      start = next;
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  private line(line: string): SseEvent | undefined {
    if (line === '') {
      const ev =
        this.dataLines.length > 0
          ? { event: this.eventType || 'message', data: this.dataLines.join('\n'), id: this.lastId }
          : undefined;
      this.eventType = '';
      this.dataLines = [];
      return ev;
    }
    if (line.startsWith(':')) return undefined;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.eventType = value;
    else if (field === 'data') this.dataLines.push(value);
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
    return undefined;
  }
}

/**
 * Yields the events of an event-stream body until it ends. An event not
 * terminated by a blank line when the body ends is dropped, as the format
 * requires: a cut connection must not deliver half an event. Leaving the
 * loop early (end event, abort) closes the body, which stops the download.
 */
export async function* readSse(body: AsyncIterable<Uint8Array>): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  const decoder = new TextDecoder('utf-8');
  for await (const chunk of body) yield* parser.push(decoder.decode(chunk, { stream: true }));
  yield* parser.push(decoder.decode());
}
