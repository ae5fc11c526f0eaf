/** Token creation straight on the database, for the first admin token of `apctl server`. */
import type { Logger } from 'pino';
import { createStore, type Role } from '../store/index.js';
import { API_TOKEN_PREFIX, generateToken, hashToken, newTokenId } from './tokens.js';

export interface CreatedToken {
  token_id: string;
  name: string;
  role: Role;
  token: string;
}

/**
 * Creates an API token directly in the database at `databaseUrl` (migrating it
 * first). Whoever can reach the database is already all-powerful; this only
 * saves them writing SQL.
 */
export async function createApiTokenInDatabase(
  databaseUrl: string,
  t: { name: string; role: Role },
  logger: Logger,
): Promise<CreatedToken> {
  const store = createStore({ databaseUrl, logger, maxConnections: 1 });
  try {
    await store.migrate();
    const token = generateToken(API_TOKEN_PREFIX);
    const row = await store.tokens.createApi({
      tokenId: newTokenId(),
      name: t.name,
      role: t.role,
      hash: hashToken(token),
      createdBy: 'apctl tokens create --database-url',
    });
    return { token_id: row.token_id, name: row.name, role: row.role, token };
  } finally {
    await store.close();
  }
}
