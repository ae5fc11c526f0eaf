/**
 * PostgreSQL text cannot hold NUL (U+0000): a string with one would fail deep
 * in a query as a 500. Every decoded path parameter, query value and JSON body
 * string is checked once, before validation, and refused with VALIDATION_FAILED.
 */
import type { FastifyInstance } from 'fastify';
import { PlatformError } from '../errors.js';

/** Depth-first search for a string holding NUL; bounded by the body limit already applied. */
function findNul(v: unknown, depth = 0): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (depth > 64 || v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return v.some((x) => findNul(x, depth + 1));
  for (const [k, x] of Object.entries(v)) if (k.includes('\u0000') || findNul(x, depth + 1)) return true;
  return false;
}

export function installInputGuard(app: FastifyInstance): void {
  app.addHook('preValidation', async (req) => {
    for (const [where, v] of [
      ['path', req.params],
      ['query', req.query],
      ['body', req.body],
    ] as const) {
      if (findNul(v)) throw new PlatformError('VALIDATION_FAILED', `${where} contains a NUL character`);
    }
  });
}
