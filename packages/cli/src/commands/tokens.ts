/** `apctl tokens create|list|revoke`: API tokens (roles) and join tokens (agent enrollment). */
import type { Command } from 'commander';
type Role = 'viewer' | 'operator' | 'admin';
import { usageError } from '../errors.js';
import { printRaw } from '../output/write.js';
import { renderTable } from '../output/table.js';
import { addClientFlags, addJsonFlag, clientFrom, parseInteger, type ClientFlags } from './flags.js';

const isRole = (r: string | undefined): r is Role => r === 'viewer' || r === 'operator' || r === 'admin';

interface TokenFlags extends ClientFlags {
  json?: boolean;
  join?: boolean;
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86400 };

/** `90`, `90s`, `30m`, `1h`, `7d` → seconds. */
export function parseDuration(flag: string, raw: string): number {
  const m = /^(\d+)\s*([smhd]?)$/i.exec(raw.trim());
  const n = m ? Number(m[1]) * (UNITS[(m[2] || 's').toLowerCase()] ?? NaN) : NaN;
  if (!Number.isSafeInteger(n) || n < 1)
    throw usageError(`${flag} takes a duration like 3600, 30m, 1h or 7d, got ${JSON.stringify(raw)}`);
  return n;
}

interface ApiTokenJson {
  token_id: string;
  name: string;
  role: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
  last_used_at: string | null;
  token?: string;
}
interface JoinTokenJson {
  token_id: string;
  name: string;
  labels: Record<string, string>;
  uses_max: number | null;
  uses: number;
  expires_at: string;
  revoked_at: string | null;
  token?: string;
  ca_fingerprint?: string | null;
}

export function registerTokensCommand(program: Command): void {
  const tokens = program
    .command('tokens')
    .description('API tokens (viewer, operator, admin) and join tokens for enrolling agents');

  addJsonFlag(
    addClientFlags(
      tokens
        .command('create')
        .description('make a token; its secret is printed once')
        .option('--role <role>', 'viewer | operator | admin (API token)')
        .option('--name <name>', 'what the token is for (shown in the audit log)')
        .option('--join', 'a join token for enrolling agents instead of an API token')
        .option('--ttl <duration>', 'lifetime: 3600, 30m, 1h, 7d (join default 1h; API default never)')
        .option('--uses <n>', 'join token: agents it may enroll [1]')
        .option('--labels <k=v,...>', 'join token: labels every agent enrolled with it gets')
        .option(
          '--database-url <url>',
          'create an API token straight in this database (the first admin token); no --server needed',
        ),
    ),
  ).action(
    async (
      f: TokenFlags & {
        role?: string;
        name?: string;
        ttl?: string;
        uses?: string;
        labels?: string;
        databaseUrl?: string;
      },
    ) => {
      const ttl = f.ttl === undefined ? undefined : parseDuration('--ttl', f.ttl);
      if (f.join) {
        if (f.role !== undefined) throw usageError('--role is for API tokens, not --join');
        if (f.databaseUrl !== undefined) throw usageError('--database-url makes API tokens only');
        let labels: Record<string, string>;
        try {
          // Loaded on use, like the platform below: `tokens list` and friends start fast.
          const { parseLabels } = await import('@agent-platform/agent');
          labels = parseLabels(f.labels);
        } catch (err) {
          throw usageError(err instanceof Error ? err.message : String(err));
        }
        const body = {
          ...(f.name ? { name: f.name } : {}),
          ...(ttl !== undefined ? { ttl } : {}),
          ...(f.uses !== undefined ? { uses: parseInteger('--uses', f.uses) } : {}),
          labels,
        };
        const { data, raw } = await clientFrom(f).call<JoinTokenJson>('POST', '/api/v1/join-tokens', body);
        if (f.json) return printRaw(raw);
        process.stdout.write(
          [
            `join token     ${data.token ?? ''}`,
            `ca fingerprint ${data.ca_fingerprint ?? '(none: the platform runs with --insecure)'}`,
            `expires        ${data.expires_at}   uses ${data.uses_max ?? 'unlimited'}   id ${data.token_id}`,
            '',
            'on each host:',
            `  apctl agent --server PLATFORM:9090 --join-token ${data.token ?? ''} --ca-fingerprint ${data.ca_fingerprint ?? ''}`,
            '',
          ].join('\n'),
        );
        return;
      }
      if (!isRole(f.role)) throw usageError('--role must be viewer, operator or admin (or use --join)');
      if (f.uses !== undefined || f.labels !== undefined)
        throw usageError('--uses and --labels are for --join');
      const name = f.name ?? `${f.role}-token`;
      if (f.databaseUrl !== undefined) {
        if (ttl !== undefined) throw usageError('--ttl is not supported with --database-url');
        const [{ createApiTokenInDatabase }, { createProcessLogger }] = await Promise.all([
          import('@agent-platform/platform'),
          import('../logger.js'),
        ]);
        const logger = createProcessLogger('apctl', process.env.AP_LOG_LEVEL ?? 'warn');
        const created = await createApiTokenInDatabase(f.databaseUrl, { name, role: f.role }, logger);
        if (f.json) return printRaw(JSON.stringify(created));
        process.stdout.write(`${created.token}\n`);
        process.stderr.write(
          `token ${created.token_id} (${created.role}, ${created.name}): keep it; it is not shown again\n`,
        );
        return;
      }
      const { data, raw } = await clientFrom(f).call<ApiTokenJson>('POST', '/api/v1/tokens', {
        name,
        role: f.role,
        ...(ttl !== undefined ? { ttl } : {}),
      });
      if (f.json) return printRaw(raw);
      process.stdout.write(`${data.token ?? ''}\n`);
      process.stderr.write(
        `token ${data.token_id} (${data.role}, ${data.name}): keep it; it is not shown again\n`,
      );
    },
  );

  addJsonFlag(
    addClientFlags(
      tokens
        .command('list')
        .description('tokens (never their secrets)')
        .option('--join', 'join tokens instead of API tokens'),
    ),
  ).action(async (f: TokenFlags) => {
    if (f.join) {
      const { data, raw } = await clientFrom(f).call<{ join_tokens: JoinTokenJson[] }>(
        'GET',
        '/api/v1/join-tokens',
      );
      if (f.json) return printRaw(raw);
      process.stdout.write(
        renderTable(
          ['TOKEN ID', 'NAME', 'USES', 'EXPIRES', 'REVOKED', 'LABELS'],
          data.join_tokens.map((t) => [
            t.token_id,
            t.name,
            `${t.uses}/${t.uses_max ?? '∞'}`,
            t.expires_at,
            t.revoked_at ?? '',
            Object.entries(t.labels)
              .map(([k, v]) => `${k}=${v}`)
              .join(','),
          ]),
        ),
      );
      return;
    }
    const { data, raw } = await clientFrom(f).call<{ tokens: ApiTokenJson[] }>('GET', '/api/v1/tokens');
    if (f.json) return printRaw(raw);
    process.stdout.write(
      renderTable(
        ['TOKEN ID', 'NAME', 'ROLE', 'CREATED', 'LAST USED', 'REVOKED'],
        data.tokens.map((t) => [
          t.token_id,
          t.name,
          t.role,
          t.created_at,
          t.last_used_at ?? '',
          t.revoked_at ?? '',
        ]),
      ),
    );
  });

  addJsonFlag(
    addClientFlags(
      tokens
        .command('revoke')
        .description('revoke a token at once (agents already enrolled with a join token keep working)')
        .argument('<token-id>')
        .option('--join', 'a join token'),
    ),
  ).action(async (tokenId: string, f: TokenFlags) => {
    const route = f.join ? '/api/v1/join-tokens/' : '/api/v1/tokens/';
    const { raw } = await clientFrom(f).call('DELETE', route + encodeURIComponent(tokenId));
    if (f.json) return printRaw(raw);
    process.stderr.write(`revoked ${tokenId}\n`);
  });
}
