/** Semantic checks of a new task beyond the REST schema; every failure has a code. */
import { PlatformError } from '../errors.js';
import type { NewTask, TaskLimitsJson } from '../store/index.js';

export const TASK_LIMITS = {
  maxScriptBytes: 1024 * 1024,
  maxTimeoutSeconds: 7 * 24 * 3600,
  defaultTimeoutSeconds: 300,
  maxDeliveryTimeoutSeconds: 7 * 24 * 3600,
  defaultDeliveryTimeoutSeconds: 600,
  maxArgs: 256,
  maxArgBytes: 64 * 1024,
  maxEnv: 256,
  envKeyPattern: /^[A-Za-z_][A-Za-z0-9_]{0,255}$/,
  maxEnvValueBytes: 64 * 1024,
  maxPathBytes: 4096,
  runAsPattern: /^[a-z_][a-z0-9_-]{0,31}\$?$|^[0-9]{1,10}$/,
  maxKillGraceSeconds: 300,
  maxBatchAgents: 1000,
} as const;

export interface CreateTaskInput {
  agent_id: string;
  type: 'shell' | 'python';
  script: string;
  timeout?: number;
  args?: string[];
  env?: Record<string, string>;
  clean_env?: boolean;
  working_dir?: string;
  run_as?: string;
  limits?: Partial<TaskLimitsJson>;
  delivery_timeout?: number;
  kill_grace?: number;
}

const L = TASK_LIMITS;
const bad = (message: string) => new PlatformError('VALIDATION_FAILED', message);

export function validateNewTask(i: CreateTaskInput): Omit<NewTask, 'taskId' | 'idempotencyKey'> {
  if (i.type !== 'shell' && i.type !== 'python') throw bad(`type must be "shell" or "python"`);
  const scriptBytes = Buffer.byteLength(i.script);
  if (scriptBytes === 0 || i.script.trim() === '') throw bad('script must not be empty');
  if (scriptBytes > L.maxScriptBytes) {
    throw new PlatformError(
      'SCRIPT_TOO_LARGE',
      `script is ${scriptBytes} bytes; the limit is ${L.maxScriptBytes}`,
    );
  }
  if (i.script.includes('\u0000')) throw bad('script must not contain NUL characters');
  const timeout = i.timeout ?? L.defaultTimeoutSeconds;
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > L.maxTimeoutSeconds) {
    throw bad(`timeout must be an integer number of seconds between 1 and ${L.maxTimeoutSeconds}`);
  }
  const delivery = i.delivery_timeout ?? L.defaultDeliveryTimeoutSeconds;
  if (!Number.isInteger(delivery) || delivery < 1 || delivery > L.maxDeliveryTimeoutSeconds) {
    throw bad(
      `delivery_timeout must be an integer number of seconds between 1 and ${L.maxDeliveryTimeoutSeconds}`,
    );
  }
  const grace = i.kill_grace ?? 5;
  if (!Number.isInteger(grace) || grace < 1 || grace > L.maxKillGraceSeconds) {
    throw bad(`kill_grace must be between 1 and ${L.maxKillGraceSeconds} seconds`);
  }
  const args = i.args ?? [];
  if (args.length > L.maxArgs) throw bad(`more than ${L.maxArgs} args`);
  for (const a of args) {
    if (Buffer.byteLength(a) > L.maxArgBytes || a.includes('\u0000'))
      throw bad('an arg is too long or contains NUL');
  }
  const env = i.env ?? {};
  const entries = Object.entries(env);
  if (entries.length > L.maxEnv) throw bad(`more than ${L.maxEnv} env variables`);
  for (const [k, v] of entries) {
    if (!L.envKeyPattern.test(k))
      throw bad(`env name ${JSON.stringify(k.slice(0, 64))} is not a valid variable name`);
    if (typeof v !== 'string' || Buffer.byteLength(v) > L.maxEnvValueBytes || v.includes('\u0000')) {
      throw bad(`env ${k}: value must be a string of at most ${L.maxEnvValueBytes} bytes without NUL`);
    }
  }
  const workingDir = i.working_dir ?? '';
  if (Buffer.byteLength(workingDir) > L.maxPathBytes || workingDir.includes('\u0000'))
    throw bad('working_dir is not a valid path');
  if (workingDir !== '' && !workingDir.startsWith('/')) throw bad('working_dir must be an absolute path');
  const runAs = i.run_as ?? '';
  if (runAs !== '' && !L.runAsPattern.test(runAs)) throw bad('run_as must be a user name or a numeric uid');
  const lim = i.limits ?? {};
  const limits: TaskLimitsJson = {
    memory_bytes: lim.memory_bytes ?? 0,
    cpu_millicores: lim.cpu_millicores ?? 0,
    max_processes: lim.max_processes ?? 0,
    max_output_bytes: lim.max_output_bytes ?? 0,
  };
  for (const [k, v] of Object.entries(limits)) {
    if (!Number.isSafeInteger(v) || v < 0)
      throw bad(`limits.${k} must be a non-negative integer (0 = no limit)`);
  }
  if (limits.memory_bytes !== 0 && limits.memory_bytes < 4 * 1024 * 1024)
    throw bad('limits.memory_bytes must be at least 4 MiB');
  return {
    agentId: i.agent_id,
    type: i.type,
    script: i.script,
    args,
    env,
    cleanEnv: i.clean_env ?? false,
    workingDir,
    runAs,
    timeoutSeconds: timeout,
    killGraceSeconds: grace,
    limits,
    deliveryTimeoutSeconds: delivery,
  };
}
