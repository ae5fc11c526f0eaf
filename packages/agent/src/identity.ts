/** The agent's stable identity and the facts it registers with. */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

/**
 * Returns the agent id kept in `<stateDir>/agent-id`, creating it on first
 * start. Written to a temporary file and renamed, so a crash never leaves a
 * half-written id.
 */
export async function loadOrCreateAgentId(stateDir: string): Promise<string> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const file = path.join(stateDir, 'agent-id');
  if (existsSync(file)) {
    const id = (await readFile(file, 'utf8')).trim();
    if (id.length > 0) return id;
  }
  const id = randomUUID();
  const tmp = `${file}.${process.pid}.tmp`;
  await writeFile(tmp, `${id}\n`, { mode: 0o600 });
  await rename(tmp, file);
  return id;
}

/** Non-loopback addresses first; loopback only when the host has nothing else. */
export function hostIpAddresses(): string[] {
  const all = Object.values(os.networkInterfaces()).flatMap((list) => list ?? []);
  const external = all.filter((a) => !a.internal).map((a) => a.address.split('%')[0] ?? a.address);
  const chosen = external.length > 0 ? external : all.map((a) => a.address);
  return [...new Set(chosen)].slice(0, 64);
}

/** Parses `k=v,k2=v2` into labels; throws on an entry without `=`. */
export function parseLabels(spec: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!spec) return out;
  for (const part of spec.split(',')) {
    if (part.trim() === '') continue;
    const i = part.indexOf('=');
    if (i <= 0) throw new Error(`label ${JSON.stringify(part)} must be key=value`);
    out[part.slice(0, i).trim()] = part.slice(i + 1).trim();
  }
  return out;
}
