/** Flag parsers and the flags every client command shares (`--server`, `--token`, `--json`). */
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { createPlatformClient, resolveServer, type PlatformClient } from '../client/platform-client.js';
import { usageError } from '../errors.js';

export interface ClientFlags {
  server?: string;
  token?: string;
  caCert?: string;
}

/** Adds `--server` and `--token`; both per command, so `apctl agent --server` keeps its own meaning. */
export function addClientFlags(cmd: Command): Command {
  return cmd
    .option('--server <url>', 'platform REST URL (env APCTL_SERVER) [http://127.0.0.1:8080]')
    .option('--token <token>', 'API token, sent as a bearer token (env APCTL_TOKEN)')
    .option(
      '--ca-cert <file>',
      "PEM CA to trust for an https --server, e.g. the platform's tls/ca.crt (env APCTL_CA_CERT)",
    );
}

export function addJsonFlag(cmd: Command): Command {
  return cmd.option('--json', "print the API's JSON response as-is");
}

export function clientFrom(flags: ClientFlags, env = process.env): PlatformClient {
  const caFile = flags.caCert ?? (env.APCTL_CA_CERT || undefined);
  let ca: Buffer | undefined;
  if (caFile !== undefined) {
    try {
      ca = readFileSync(caFile);
    } catch (err) {
      throw usageError(
        `cannot read --ca-cert ${caFile}: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
  }
  return createPlatformClient({
    server: resolveServer(flags.server, env),
    token: flags.token ?? (env.APCTL_TOKEN || undefined),
    ca,
  });
}

/** Commander collector for repeatable flags (no default, so help shows none). */
export const collect = (v: string, prev: string[] | undefined): string[] => [...(prev ?? []), v];

/** `K=V` → [K, V]; the value may contain `=`; the key may not be empty. */
export function parseKeyValue(flag: string, raw: string): [string, string] {
  const i = raw.indexOf('=');
  if (i <= 0) throw usageError(`${flag} takes KEY=VALUE, got ${JSON.stringify(raw)}`);
  return [raw.slice(0, i), raw.slice(i + 1)];
}

export function parseEnv(list: string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const item of list) {
    const [k, v] = parseKeyValue('--env', item);
    env[k] = v;
  }
  return env;
}

/** A whole number ≥ `min` (default 1); the platform checks upper bounds. */
export function parseInteger(flag: string, raw: string, min = 1): number {
  const n = /^\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    throw usageError(`${flag} takes a whole number${min > 0 ? ` ≥ ${min}` : ''}, got ${JSON.stringify(raw)}`);
  }
  return n;
}

const BYTE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

/** `1048576`, `512K`, `256M`, `1G` (also `Ki`/`KiB`/`KB`: all powers of 1024) → bytes. */
export function parseBytes(flag: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:ib?|b)?$/i.exec(raw.trim());
  const unit = BYTE_UNITS[(m?.[2] ?? '').toLowerCase()];
  const n = m && unit !== undefined ? Math.round(Number(m[1]) * unit) : NaN;
  if (!Number.isSafeInteger(n) || n < 1) {
    throw usageError(`${flag} takes a size like 512M or 1G, got ${JSON.stringify(raw)}`);
  }
  return n;
}
