/**
 * One record of the journal's log: a line of JSON, readable with `jq`, that
 * carries its own checksums.
 *
 *   {"op":"accept","seq":7,"id":"<task id>","at":1764322000000,"h":"<crc>",
 *    ["r":<TaskResult JSON>,]  (op "complete" only)
 *    "t":["accept",7,"<task id>",1764322000000,"<crc>"],"c":"<crc>"}
 *
 * - `c`: CRC-32 of everything before `,"c":`. A line whose `c` does not match
 *   (torn by a crash mid-append, or damaged) is not trusted as a whole.
 * - `h`: CRC-32 of the head (`{"op":…,"seq":…,"id":…,"at":…`). The trailer `t`
 *   repeats the head's fields and `h`, so a damaged line still tells which task
 *   and which step it recorded when either end of it is intact: see
 *   {@link salvage}.
 * - `seq`: the journal's event number, increasing across files and compactions
 *   (compaction copies records with their numbers). For each task id the event
 *   with the highest `seq` is its state, whatever the order files are read in.
 * - `at`: ms since the epoch: accepted, completed or acknowledged at.
 */
import { crc32 as nodeCrc32 } from 'node:zlib';

export type Op = 'accept' | 'complete' | 'ack';

export interface RecordHead {
  op: Op;
  seq: number;
  id: string;
  at: number;
}

/** Bytes of `,"c":"xxxxxxxx"}` at the end of every line (before the newline). */
const TAIL_BYTES = 16;
const NEWLINE = 0x0a;

let tableCrc: ((data: Buffer | string) => number) | undefined;
/** CRC-32 (zlib's); a table-driven fallback for Node releases before 20.15. */
export function crc32(data: Buffer | string): number {
  if (typeof nodeCrc32 === 'function') return nodeCrc32(data);
  if (!tableCrc) {
    const table = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      table[n] = c >>> 0;
    }
    tableCrc = (d) => {
      const bytes = typeof d === 'string' ? Buffer.from(d) : d;
      let c = 0xffffffff;
      for (const b of bytes) c = (table[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
      return (c ^ 0xffffffff) >>> 0;
    };
  }
  return tableCrc(data);
}

const hex = (n: number) => n.toString(16).padStart(8, '0');

/**
 * The record as a line (with its newline). `resultJson` is the TaskResult's
 * protobuf JSON, serialized; only for op "complete".
 */
export function encodeRecord(r: RecordHead, resultJson?: string): Buffer {
  const id = JSON.stringify(r.id);
  const head = `{"op":"${r.op}","seq":${r.seq},"id":${id},"at":${r.at}`;
  const h = hex(crc32(head));
  const body =
    resultJson === undefined
      ? `${head},"h":"${h}","t":["${r.op}",${r.seq},${id},${r.at},"${h}"]`
      : `${head},"h":"${h}","r":${resultJson},"t":["${r.op}",${r.seq},${id},${r.at},"${h}"]`;
  return Buffer.from(`${body},"c":"${hex(crc32(body))}"}\n`);
}

// The head and the trailer. An id is a JSON string: no raw quote, backslash or newline inside.
const HEAD =
  /\{"op":"(accept|complete|ack)","seq":(-?\d{1,16}),"id":("(?:[^"\\\n]|\\.)*"),"at":(-?\d{1,16}),"h":"([0-9a-f]{8})"/y;
const TRAILER =
  /,"t":\["(accept|complete|ack)",(-?\d{1,16}),("(?:[^"\\\n]|\\.)*"),(-?\d{1,16}),"([0-9a-f]{8})"\]/y;

/** The head at `pos` of `text` (HEAD or TRAILER), if its `h` checks out. */
function verifiedHead(re: RegExp, text: string, pos: number): RecordHead | undefined {
  re.lastIndex = pos;
  const m = re.exec(text);
  if (!m) return undefined;
  const [, op, seq, idJson, at, h] = m as unknown as [string, Op, string, string, string, string];
  if (hex(crc32(`{"op":"${op}","seq":${seq},"id":${idJson},"at":${at}`)) !== h) return undefined;
  let id: unknown;
  try {
    id = JSON.parse(idJson);
  } catch {
    return undefined;
  }
  if (typeof id !== 'string') return undefined;
  return { op, seq: Number(seq), id, at: Number(at) };
}

/** A line of the log: intact (`head` set), or damaged (`head` undefined). */
export interface ScannedLine {
  /** Offset of the line in the buffer, and its length with the newline (without, for a last line that has none). */
  off: number;
  len: number;
  head?: RecordHead;
}

/**
 * Splits `buf` into lines and checks each one. A line's head is parsed from its
 * first bytes only: a result is not parsed here.
 */
export function* scanLines(buf: Buffer): Generator<ScannedLine> {
  let off = 0;
  while (off < buf.length) {
    const nl = buf.indexOf(NEWLINE, off);
    const end = nl === -1 ? buf.length : nl;
    const len = (nl === -1 ? end : end + 1) - off;
    yield { off, len, head: nl === -1 ? undefined : checkLine(buf, off, end) };
    off += len;
  }
}

function checkLine(buf: Buffer, start: number, end: number): RecordHead | undefined {
  const bodyEnd = end - TAIL_BYTES;
  if (bodyEnd <= start) return undefined;
  // `,"c":"` + 8 hex digits + `"}`
  if (
    buf.toString('latin1', bodyEnd, bodyEnd + 6) !== ',"c":"' ||
    buf[end - 2] !== 0x22 ||
    buf[end - 1] !== 0x7d
  )
    return undefined;
  const c = Number.parseInt(buf.toString('latin1', bodyEnd + 6, bodyEnd + 14), 16);
  if (c !== crc32(buf.subarray(start, bodyEnd))) return undefined;
  // The head is short unless the id is long; read more only then.
  let head = parseHead(buf.toString('utf8', start, Math.min(end, start + 256)));
  if (!head && end - start > 256) head = parseHead(buf.toString('utf8', start, end));
  return head;
}

function parseHead(text: string): RecordHead | undefined {
  HEAD.lastIndex = 0;
  const m = HEAD.exec(text);
  if (!m) return undefined;
  const [, op, seq, idJson, at] = m as unknown as [string, Op, string, string, string];
  return { op, seq: Number(seq), id: JSON.parse(idJson) as string, at: Number(at) };
}

/**
 * The records still identifiable in damaged bytes: every head or trailer whose
 * own checksum holds. Two lines run together (a lost newline), a line cut short
 * (a crash mid-append) or bytes overwritten in the middle of a line all leave at
 * least one end of each record readable. Lost is only a record damaged at both ends.
 */
export function salvage(bytes: Buffer): RecordHead[] {
  // latin1 keeps one char per byte; ids are compared after re-decoding below.
  const text = bytes.toString('latin1');
  const found = new Map<string, RecordHead>();
  const tryAt = (re: RegExp, pos: number) => {
    // Re-decode the candidate as UTF-8 so non-ASCII ids come out right.
    const end = Math.min(text.length, pos + 8192);
    const candidate = bytes.toString('utf8', pos, end);
    const head = verifiedHead(re, candidate, 0);
    if (head) found.set(`${head.seq}\n${head.op}\n${head.id}`, head);
  };
  for (let i = text.indexOf('{"op":"'); i !== -1; i = text.indexOf('{"op":"', i + 1)) tryAt(HEAD, i);
  for (let i = text.indexOf(',"t":["'); i !== -1; i = text.indexOf(',"t":["', i + 1)) tryAt(TRAILER, i);
  return [...found.values()];
}

/** The TaskResult JSON of an intact "complete" line (a whole line, as written). */
export function resultOfLine(line: Buffer): unknown {
  const end = line[line.length - 1] === NEWLINE ? line.length - 1 : line.length;
  if (checkLine(line, 0, end)?.op !== 'complete') throw new Error('journal record damaged');
  return (JSON.parse(line.toString('utf8', 0, end)) as { r?: unknown }).r;
}
