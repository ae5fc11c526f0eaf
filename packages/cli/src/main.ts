/** `apctl`: the one command for the platform, the agent, and the people using them. */
import { Command, CommanderError } from 'commander';
import { VERSION } from './version.js';
import { registerServerCommand } from './commands/server.js';
import { registerAgentCommand } from './commands/agent.js';
import { registerDevCommand } from './commands/dev.js';
import { registerRunCommand } from './commands/run.js';
import { registerTasksCommand } from './commands/tasks.js';
import { registerAgentsCommand } from './commands/agents.js';
import { registerTokensCommand } from './commands/tokens.js';
import { describeError } from './errors.js';
import { exitOnBrokenPipe, flushAndExit } from './output/write.js';

export function buildProgram(): Command {
  const program = new Command('apctl')
    .description('agent-platform: run scripts on fleets of hosts')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride();
  registerServerCommand(program);
  registerAgentCommand(program);
  registerDevCommand(program);
  registerRunCommand(program);
  registerTasksCommand(program);
  registerAgentsCommand(program);
  registerTokensCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  const program = buildProgram();
  exitOnBrokenPipe();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    // --help and --version arrive here with exit code 0; every other commander error is a usage error.
    if (err instanceof CommanderError) process.exit(err.exitCode === 0 ? 0 : 2);
    const { line, exitCode } = describeError(err);
    process.stderr.write(`${line}\n`);
    await flushAndExit(exitCode);
  }
}
