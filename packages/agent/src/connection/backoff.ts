/**
 * Capped exponential backoff with full jitter (AWS architecture blog,
 * "Exponential Backoff And Jitter"): after the n-th consecutive failure wait a
 * uniformly random time in [0, min(cap, base * 2^n)], but at least `min`, so a
 * fleet that lost its platform at one instant does not return at one instant.
 */
export interface BackoffOptions {
  /** Milliseconds of the first ceiling; default 500. */
  baseMs?: number;
  /** Largest ceiling, milliseconds; default 30,000. */
  capMs?: number;
  /** Smallest wait, milliseconds; default 100. */
  minMs?: number;
}

export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const base = options.baseMs ?? 500;
  const cap = options.capMs ?? 30_000;
  const min = options.minMs ?? 100;
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 30));
  return Math.max(min, Math.floor(random() * ceiling));
}
