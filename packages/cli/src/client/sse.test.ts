import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser, readSse, type SseEvent } from './sse.js';

/** A body as the transport delivers it: chunks, then the end. */
async function* bodyOf(chunks: (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  const enc = new TextEncoder();
  for (const ch of chunks) yield typeof ch === 'string' ? enc.encode(ch) : ch;
}

async function collect(body: AsyncIterable<Uint8Array>): Promise<SseEvent[]> {
  const out: SseEvent[] = [];
  for await (const ev of readSse(body)) out.push(ev);
  return out;
}

test('named events with JSON data, comments skipped', () => {
  const p = new SseParser();
  const evs = p.push(': ping\n\nevent: log\ndata: {"seq":1}\n\nevent: end\ndata: {"status":"succeeded"}\n\n');
  assert.deepEqual(
    evs.map((e) => [e.event, e.data]),
    [
      ['log', '{"seq":1}'],
      ['end', '{"status":"succeeded"}'],
    ],
  );
});

test('an event split at every byte boundary parses the same', () => {
  const text = 'event: log\r\ndata: {"output":"a: b"}\r\nid: 7\r\n\r\ndata:x\ndata: y\n\n';
  const whole = new SseParser().push(text);
  const p = new SseParser();
  const pieces: SseEvent[] = [];
  for (const ch of text) pieces.push(...p.push(ch));
  assert.deepEqual(pieces, whole);
  assert.deepEqual(whole, [
    { event: 'log', data: '{"output":"a: b"}', id: '7' },
    { event: 'message', data: 'x\ny', id: '7' },
  ]);
});

test('CR alone ends a line, and a CR then LF in the next chunk is one line end', () => {
  const p = new SseParser();
  const data = (t: string) => p.push(t).map((e) => e.data);
  assert.deepEqual(data('data: a\r'), []);
  assert.deepEqual(data('\n\r'), []);
  // The pending CR followed by a non-LF was a blank line on its own.
  assert.deepEqual(data('data: b\r'), ['a']);
  assert.deepEqual(data('\n'), []);
  assert.deepEqual(data('\r\n'), ['b']);
});

test('a multi-byte character split across chunks is decoded whole', async () => {
  const bytes = new TextEncoder().encode('event: log\ndata: {"output":"héllo ✓"}\n\n');
  const cut = bytes.indexOf(0xc3) + 1;
  const evs = await collect(bodyOf([bytes.slice(0, cut), bytes.slice(cut)]));
  assert.equal(evs.length, 1);
  assert.equal((JSON.parse(evs[0]?.data ?? '') as { output: string }).output, 'héllo ✓');
});

test('an event cut off by the end of the stream is not delivered', async () => {
  const evs = await collect(bodyOf(['event: log\ndata: {"seq":1}\n\nevent: log\ndata: {"seq":2}\n']));
  assert.deepEqual(
    evs.map((e) => e.data),
    ['{"seq":1}'],
  );
});

test('a leading byte-order mark is ignored and a field without a colon has an empty value', () => {
  const evs = new SseParser().push('\ufeffevent: end\ndata\n\n');
  assert.deepEqual(evs, [{ event: 'end', data: '', id: undefined }]);
});

test('leaving early closes the body', async () => {
  let closed = false;
  async function* body(): AsyncGenerator<Uint8Array> {
    try {
      yield new TextEncoder().encode('event: end\ndata: {}\n\n');
      yield new TextEncoder().encode('event: log\ndata: {}\n\n');
    } finally {
      closed = true;
    }
  }
  for await (const ev of readSse(body())) {
    assert.equal(ev.event, 'end');
    break;
  }
  assert.equal(closed, true);
});
