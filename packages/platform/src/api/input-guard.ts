/**
 * PostgreSQL text cannot hold NUL (U+0000): a string with one would fail deep
 * in a query as a 500. Every decoded path parameter, query value and JSON body
 * string is checked once, before validation, and refused with VALIDATION_FAILED.
 *
 * Numeric query parameters must be plain decimal numbers: Ajv's type coercion
 * turns `1e309` or `Infinity` into Infinity, which passes `integer` (and, here,
 * `maximum`), and PostgreSQL then refuses it as a bigint: a 500. Found by the
 * hostile-input property test.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { PlatformError } from '../errors.js';

/** Depth-first search for a string holding NUL; bounded by the body limit already applied. */
function findNul(v: unknown, depth = 0): boolean {
  if (typeof v === 'string') return v.includes('\u0000');
  if (depth > 64 || v === null || typeof v !== 'object') return false;
  if (Array.isArray(v)) return v.some((x) => findNul(x, depth + 1));
  for (const [k, x] of Object.entries(v)) if (k.includes('\u0000') || findNul(x, depth + 1)) return true;
  return false;
}

const DECIMAL = /^[+-]?\d{1,15}(\.\d{1,15})?$/;

/** Query parameters the route's schema declares numeric whose raw value is not a plain decimal. */
function badNumber(req: FastifyRequest): string | undefined {
  const schema = req.routeOptions.schema?.querystring as
    { properties?: Record<string, { type?: unknown }> } | undefined;
  const props = schema?.properties;
  const query = req.query as Record<string, unknown> | undefined;
  if (!props || !query) return undefined;
  for (const [k, def] of Object.entries(props)) {
    if (def.type !== 'integer' && def.type !== 'number') continue;
    const raw = query[k];
    for (const v of Array.isArray(raw) ? raw : [raw]) {
      if (typeof v === 'string' && !DECIMAL.test(v.trim())) return k;
    }
  }
  return undefined;
}

export function installInputGuard(app: FastifyInstance): void {
  app.addHook('preValidation', async (req) => {
    const bad = badNumber(req);
    if (bad !== undefined)
      throw new PlatformError('VALIDATION_FAILED', `query parameter ${bad} must be a number`);
    for (const [where, v] of [
      ['path', req.params],
      ['query', req.query],
      ['body', req.body],
    ] as const) {
      if (findNul(v)) throw new PlatformError('VALIDATION_FAILED', `${where} contains a NUL character`);
    }
  });
}
