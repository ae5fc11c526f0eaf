/**
 * V8 settings of the `apctl agent` process (docs/agent.md "Footprint").
 *
 * An agent spends its life idle, and its JavaScript, when busy, is glue around
 * spawns, file writes and one gRPC stream: the optimizing and baseline
 * compilers buy it no measurable CPU per task, but the first function they
 * compile maps their code into the process for good (~3.5 MB of RSS for
 * TurboFan, ~1 MB for Sparkplug and native regexp code). So the agent runs on
 * the interpreter, and drops the bytecode of functions that did not run since
 * the last full GC (start-up code, mostly; ~0.6 MB) instead of after five.
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
