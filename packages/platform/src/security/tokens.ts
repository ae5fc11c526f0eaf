/**
 * API and join tokens: 256 bits from the CSPRNG, shown once, stored as SHA-256.
 *
 * Why not bcrypt/scrypt: those slow down guessing of low-entropy secrets
 * (passwords). A 256-bit random token cannot be guessed whatever the hash
 * costs, and a deliberately slow hash would cost ~100 ms of CPU on every API
 * call. SHA-256 also lets the lookup be one indexed equality.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Role } from '../store/index.js';

export const ROLES = ['viewer', 'operator', 'admin'] as const satisfies readonly Role[];
const RANK: Record<Role, number> = { viewer: 1, operator: 2, admin: 3 };

/** Whether `have` includes everything `need` may do (viewer < operator < admin). */
export function roleAllows(have: Role, need: Role): boolean {
  return RANK[have] >= RANK[need];
}

export function isRole(v: unknown): v is Role {
  return typeof v === 'string' && (ROLES as readonly string[]).includes(v);
}

/** Prefixes make a leaked token recognisable (secret scanners, logs). */
export const API_TOKEN_PREFIX = 'apt_';
export const JOIN_TOKEN_PREFIX = 'apj_';

export function generateToken(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export function newTokenId(): string {
  return randomUUID();
}

/** Tokens this platform could have issued: a prefix and 43 base64url characters (or a bootstrap value). */
export function plausibleToken(token: string): boolean {
  return token.length >= 16 && token.length <= 256 && /^[\x21-\x7e]+$/.test(token);
}
