/** `apctl`: the one command for the platform, the agent, and the people using them. */
import { Command, CommanderError } from 'commander';
import { VERSION } from '@agent-platform/platform';
import { registerServerCommand } from './commands/server.js';
import { registerAgentCommand } from './commands/agent.js';
import { registerDevCommand } from './commands/dev.js';

export function buildProgram(): Command {
  const program = new Command('apctl')
    .description('agent-platform: run scripts on fleets of hosts')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  registerServerCommand(program);
  registerAgentCommand(program);
  registerDevCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) process.exit(err.exitCode);
    process.stderr.write(`apctl: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
