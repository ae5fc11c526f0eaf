import path from 'node:path';
import { pino, type Logger } from 'pino';
import { defaultWorkDir } from './task-command.js';
import type { TaskExecutorOptions } from './types.js';

/** {@link TaskExecutorOptions} with every default filled in. */
export interface ResolvedExecutorOptions {
  maxConcurrent: number;
  maxQueued: number;
  defaultTimeoutSeconds: number;
  resultBudgetBytes: number;
  flushIntervalMs: number;
  maxChunkBytes: number;
  workDir: string;
  containWithoutLimits: boolean;
  spawnHelper: boolean;
  baseEnv: Readonly<Record<string, string>> | undefined;
  logger: Logger;
}

/** The one place executor defaults live. */
export function resolveExecutorOptions(options: TaskExecutorOptions = {}): ResolvedExecutorOptions {
  const positive = (value: number | undefined, fallback: number, name: string): number => {
    if (value === undefined) return fallback;
    if (!Number.isFinite(value) || value <= 0)
      throw new RangeError(`${name} must be a positive number, got ${value}`);
    return value;
  };
  const maxQueued = options.maxQueued ?? 100;
  if (!Number.isInteger(maxQueued) || maxQueued < 0)
    throw new RangeError(`maxQueued must be >= 0, got ${maxQueued}`);
  return {
    maxConcurrent: positive(options.maxConcurrent, 5, 'maxConcurrent'),
    maxQueued,
    defaultTimeoutSeconds: positive(options.defaultTimeoutSeconds, 3600, 'defaultTimeoutSeconds'),
    resultBudgetBytes: positive(options.resultBudgetBytes, 1024 * 1024, 'resultBudgetBytes'),
    flushIntervalMs: positive(options.flushIntervalMs, 100, 'flushIntervalMs'),
    // Below 4 bytes one character might not fit in a chunk.
    maxChunkBytes: Math.max(4, positive(options.maxChunkBytes, 64 * 1024, 'maxChunkBytes')),
    workDir: options.workDir === undefined ? defaultWorkDir() : path.resolve(options.workDir),
    containWithoutLimits: options.containWithoutLimits ?? true,
    spawnHelper: options.spawnHelper ?? true,
    baseEnv: options.baseEnv,
    logger: options.logger ?? pino({ level: 'silent' }),
  };
}
