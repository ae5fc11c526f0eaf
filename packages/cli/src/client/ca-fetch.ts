/**
 * @deprecated Pass `ca` to `createPlatformClient` instead. Kept for callers
 * that still build the client with `{ fetch: createCaFetch(ca) }`: it is now
 * the CLI's own transport (transport.ts, `node:http`/`node:https`, not
 * `fetch`) trusting the platform's own CA (`<data-dir>/tls/ca.crt`) for
 * https URLs; plain http URLs go through the same transport.
 */
import { createTransport, type Transport } from './transport.js';

export function createCaFetch(ca: string | Buffer): Transport {
  return createTransport({ ca });
}
