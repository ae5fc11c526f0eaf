/** Opaque pagination cursors: base64url of a JSON value. */
import { PlatformError } from '../errors.js';

export function encodeCursor(value: string): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

export function decodeCursor(cursor: string): string {
  try {
    const v: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (typeof v === 'string' && !v.includes('\u0000')) return v;
  } catch {
    // fall through
  }
  throw new PlatformError('INVALID_CURSOR', 'cursor is not one this server issued');
}
