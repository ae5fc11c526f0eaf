/**
 * V8 settings of the `apctl agent` process (docs/agent.md "Footprint").
 *
 * An agent spends its life idle, and its JavaScript, when busy, is glue around
 * spawns, file writes and one gRPC stream: the optimizing and baseline
 * compilers buy it no measurable CPU per task, but the first function they
 * compile maps their code into the process for good (~3.5 MB of RSS for
 * TurboFan, ~1 MB for Sparkplug and native regexp code). So the agent runs on
 * the interpreter, and drops the bytecode of functions that did not run since
 * the last full GC (start-up code, mostly; ~0.6 MB) instead of after five,
 * while the agent is idle: see createBytecodeAging.
 *
 * V8 reads these flags when it decides to tier a function up or to flush it,
 * so setting them at run time, before the agent's modules load, is enough: no
 * re-exec, no NODE_OPTIONS. AP_AGENT_V8_FLAGS replaces the list ("" keeps
 * V8's defaults).
 */
import { setFlagsFromString } from 'node:v8';

export const AGENT_V8_FLAGS = [
  '--no-turbofan',
  '--no-maglev',
  '--no-sparkplug',
  '--regexp-interpret-all',
  '--bytecode-old-age=0',
];

/** Applies the agent's V8 flags (or AP_AGENT_V8_FLAGS) and returns them. */
export function applyAgentV8Flags(env: NodeJS.ProcessEnv = process.env): string[] {
  const flags =
    env.AP_AGENT_V8_FLAGS === undefined ? AGENT_V8_FLAGS : env.AP_AGENT_V8_FLAGS.split(/\s+/).filter(Boolean);
  for (const flag of flags) setFlagsFromString(flag);
  return flags;
}

/** While tasks keep coming: V8's default, a function is dropped after five full GCs without a run. */
export const BUSY_BYTECODE_AGE = '--bytecode-old-age=5';
/** Idle again (as at start): dropped at the first full GC it did not run before. */
export const IDLE_BYTECODE_AGE = '--bytecode-old-age=0';

/**
 * Bytecode ageing by how busy the agent is. With `--bytecode-old-age=0` all
 * the time, the full GCs V8's memory reducer runs in a gap of a second or two
 * between tasks dropped the bytecode of the whole task path (Node's stream and
 * buffer internals included), and the next task parsed and compiled ~1,400
 * functions again. So a task request switches to {@link BUSY_BYTECODE_AGE};
 * `idleMs` after the last one, {@link IDLE_BYTECODE_AGE} returns, and the
 * next full GCs give the task path's memory back. Nothing when
 * AP_AGENT_V8_FLAGS chose the flags. `apply` and the timer are for tests.
 */
export function createBytecodeAging(
  env: NodeJS.ProcessEnv = process.env,
  idleMs = 60_000,
  apply: (flag: string) => void = setFlagsFromString,
): { onTaskRequest: () => void; stop: () => void } | undefined {
  if (env.AP_AGENT_V8_FLAGS !== undefined) return undefined;
  let idleTimer: NodeJS.Timeout | undefined;
  const idle = (): void => {
    idleTimer = undefined;
    apply(IDLE_BYTECODE_AGE);
  };
  return {
    onTaskRequest: () => {
      if (idleTimer) idleTimer.refresh();
      else {
        apply(BUSY_BYTECODE_AGE);
        idleTimer = setTimeout(idle, idleMs);
        idleTimer.unref();
      }
    },
    stop: () => {
      clearTimeout(idleTimer);
      idleTimer = undefined;
    },
  };
}
