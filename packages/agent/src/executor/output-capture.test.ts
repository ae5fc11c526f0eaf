import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { HeadTailBuffer, OutputCapture, splitUtf8 } from './output-capture.js';
import type { OutputChunk } from './types.js';

const logger = pino({ level: 'silent' });

function capture(overrides: Partial<ConstructorParameters<typeof OutputCapture>[0]> = {}): {
  out: OutputCapture;
  chunks: OutputChunk[];
} {
  const chunks: OutputChunk[] = [];
  const out = new OutputCapture({
    resultBudgetBytes: 1024,
    flushIntervalMs: 10_000,
    maxChunkBytes: 64,
    onOutput: (c) => void chunks.push(c),
    logger,
    ...overrides,
  });
  return { out, chunks };
}

test('head+tail keeps everything within the budget, untruncated', () => {
  const buf = new HeadTailBuffer(100);
  buf.push(Buffer.from('a'.repeat(60)));
  buf.push(Buffer.from('b'.repeat(40)));
  assert.deepEqual(buf.summary(), { text: 'a'.repeat(60) + 'b'.repeat(40), bytes: 100, truncated: false });
});

test('head+tail keeps the first and last half of the budget with a marker and the total', () => {
  const buf = new HeadTailBuffer(100);
  const data = Buffer.from(
    Array.from({ length: 1000 }, (_, i) => String.fromCharCode(65 + (i % 26))).join(''),
  );
  // Uneven pieces exercise the ring's wrap-around.
  for (let i = 0; i < data.length; i += 7) buf.push(data.subarray(i, i + 7));
  const s = buf.summary();
  assert.equal(s.bytes, 1000);
  assert.equal(s.truncated, true);
  assert.ok(s.text.startsWith(data.subarray(0, 50).toString()));
  assert.ok(s.text.endsWith(data.subarray(950).toString()));
  assert.match(s.text, /\[\.\.\. 900 bytes omitted, 1000 bytes in total \.\.\.\]/);
});

test('head+tail matches a reference model for any writes', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 64 }),
      fc.array(fc.uint8Array({ maxLength: 50 })),
      (budget, pieces) => {
        const buf = new HeadTailBuffer(budget);
        for (const p of pieces) buf.push(Buffer.from(p));
        const all = Buffer.concat(pieces.map((p) => Buffer.from(p)));
        const s = buf.summary();
        assert.equal(s.bytes, all.length);
        assert.equal(s.truncated, all.length > budget);
        if (!s.truncated) assert.equal(s.text, all.toString('utf8'));
      },
    ),
  );
});

test('head+tail does not cut a multi-byte character in half', () => {
  const buf = new HeadTailBuffer(10);
  buf.push(Buffer.from('€€€€€€€€€€')); // 30 bytes; the 5-byte halves end inside characters
  const s = buf.summary();
  assert.ok(!s.text.includes('\ufffd'), s.text);
  assert.ok(s.text.startsWith('€\n'));
  assert.ok(s.text.endsWith('\n€'));
});

test('splitUtf8 never exceeds the room and never splits a character', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme' }), fc.integer({ min: 0, max: 40 }), (text, room) => {
      const [a, b] = splitUtf8(text, room);
      assert.equal(a + b, text);
      assert.ok(Buffer.byteLength(a) <= room);
    }),
  );
});

test('chunks share one sequence and a stream switch starts a new chunk', () => {
  const { out, chunks } = capture();
  out.write('stdout', Buffer.from('a1'));
  out.write('stdout', Buffer.from('a2'));
  out.write('stderr', Buffer.from('b1'));
  out.write('stdout', Buffer.from('a3'));
  out.flush();
  assert.deepEqual(
    chunks.map((c) => [c.seq, c.stream, c.data]),
    [
      [1, 'stdout', 'a1a2'],
      [2, 'stderr', 'b1'],
      [3, 'stdout', 'a3'],
    ],
  );
});

test('chunks are at most maxChunkBytes of UTF-8 and keep characters whole', () => {
  const { out, chunks } = capture({ maxChunkBytes: 10 });
  const text = 'x€'.repeat(50);
  const bytes = Buffer.from(text);
  // Split the input inside characters too.
  for (let i = 0; i < bytes.length; i += 7) out.write('stdout', bytes.subarray(i, i + 7));
  out.end('stdout');
  out.flush();
  assert.ok(chunks.length > 1);
  for (const c of chunks) assert.ok(Buffer.byteLength(c.data) <= 10, `${Buffer.byteLength(c.data)} bytes`);
  assert.equal(chunks.map((c) => c.data).join(''), text);
});

test('invalid UTF-8 becomes U+FFFD and a character split across reads stays whole', () => {
  const { out, chunks } = capture();
  out.write('stdout', Buffer.from([0x61, 0xff, 0xe2, 0x82]));
  out.write('stdout', Buffer.from([0xac, 0x62]));
  out.end('stdout');
  out.flush();
  assert.equal(chunks.map((c) => c.data).join(''), 'a\ufffd€b');
});

test('pending output is flushed after flushIntervalMs', async () => {
  const { out, chunks } = capture({ flushIntervalMs: 20 });
  out.write('stdout', Buffer.from('tick'));
  assert.equal(chunks.length, 0);
  await new Promise((r) => setTimeout(r, 60));
  assert.deepEqual(
    chunks.map((c) => c.data),
    ['tick'],
  );
});

test('a slow consumer makes the capture busy until its promise resolves, in order', async () => {
  const delivered: number[] = [];
  let release: () => void = () => undefined;
  const { out } = capture({
    maxChunkBytes: 4,
    onOutput: (c) =>
      new Promise<void>((resolve) => {
        delivered.push(c.seq);
        release = resolve;
      }),
  });
  out.write('stdout', Buffer.from('abcdefgh')); // two chunks
  assert.equal(out.busy, true);
  assert.deepEqual(delivered, [1]);
  const idle = out.whenIdle();
  release();
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(delivered, [1, 2]);
  assert.equal(out.busy, true);
  release();
  await idle;
  assert.equal(out.busy, false);
});

test('a throwing consumer does not stop delivery', () => {
  const seen: number[] = [];
  const { out } = capture({
    maxChunkBytes: 2,
    onOutput: (c) => {
      seen.push(c.seq);
      if (c.seq === 1) throw new Error('boom');
    },
  });
  out.write('stdout', Buffer.from('aabb'));
  assert.deepEqual(seen, [1, 2]);
});
