/** Checks an AgentRegister before anything is written. */
import { isIP } from 'node:net';
import type { AgentRegister } from '@agent-platform/protocol';
import { PlatformError } from '../errors.js';
import type { AgentRegistration } from '../store/index.js';

export const REGISTRATION_LIMITS = {
  agentIdPattern: /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/,
  hostnameMax: 255,
  shortFieldMax: 64,
  ipAddressesMax: 64,
  labelsMax: 64,
  labelKeyPattern: /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,62})$/,
  labelValueMax: 255,
  capacityMax: 10_000,
} as const;

const L = REGISTRATION_LIMITS;

function invalid(message: string): PlatformError {
  return new PlatformError('INVALID_REGISTRATION', message);
}

/** Returns the registration to store, or throws INVALID_REGISTRATION saying what is wrong. */
export function validateRegistration(r: AgentRegister): AgentRegistration {
  if (!L.agentIdPattern.test(r.agentId)) {
    throw invalid('agent_id must be 1-128 characters of letters, digits, ".", "_", ":" or "-"');
  }
  const hostname = r.hostname.trim();
  if (hostname.length === 0) throw invalid('hostname is required');
  // PostgreSQL's text and jsonb hold no NUL character: refused here, not as a failed write.
  if (hostname.includes('\0')) throw invalid('hostname contains a NUL character');
  if (hostname.length > L.hostnameMax) throw invalid(`hostname is longer than ${L.hostnameMax} characters`);
  for (const [name, value] of [
    ['os', r.os],
    ['arch', r.arch],
    ['version', r.version],
  ] as const) {
    if (value.length === 0) throw invalid(`${name} is required`);
    if (value.length > L.shortFieldMax) throw invalid(`${name} is longer than ${L.shortFieldMax} characters`);
    if (value.includes('\0')) throw invalid(`${name} contains a NUL character`);
  }
  if (r.ipAddresses.length > L.ipAddressesMax) throw invalid(`more than ${L.ipAddressesMax} ip_addresses`);
  for (const ip of r.ipAddresses) {
    if (isIP(ip) === 0)
      throw invalid(`ip_addresses: ${JSON.stringify(ip.slice(0, 64))} is not an IP address`);
  }
  const entries = Object.entries(r.labels);
  if (entries.length > L.labelsMax) throw invalid(`more than ${L.labelsMax} labels`);
  for (const [k, v] of entries) {
    if (!L.labelKeyPattern.test(k)) {
      throw invalid(
        `label key ${JSON.stringify(k.slice(0, 80))} must be 1-63 characters of letters, digits, ".", "_", "/" or "-"`,
      );
    }
    if (v.length > L.labelValueMax)
      throw invalid(`label ${k}: value is longer than ${L.labelValueMax} characters`);
    if (v.includes('\0')) throw invalid(`label ${k}: value contains a NUL character`);
  }
  if (!Number.isInteger(r.capacity) || r.capacity < 1 || r.capacity > L.capacityMax) {
    throw invalid(`capacity must be between 1 and ${L.capacityMax}`);
  }
  return {
    agentId: r.agentId,
    hostname,
    os: r.os,
    arch: r.arch,
    ipAddresses: r.ipAddresses,
    version: r.version,
    labels: Object.fromEntries(entries),
    capacity: r.capacity,
  };
}
