/** `apctl agents list|get|revoke`. */
import type { Command } from 'commander';
import { formatAgent, formatAgentTable } from '../output/format.js';
import { printRaw } from '../output/write.js';
import { addClientFlags, addJsonFlag, clientFrom, collect, parseInteger, type ClientFlags } from './flags.js';

interface ReadFlags extends ClientFlags {
  json?: boolean;
}

export function registerAgentsCommand(program: Command): void {
  const agents = program.command('agents').description('the fleet: list and inspect agents');

  addJsonFlag(
    addClientFlags(
      agents
        .command('list')
        .description('agents, ordered by id')
        .option('--status <status>', 'online or offline')
        .option('--label <k=v>', 'only agents with this label (key or key=value); repeatable', collect)
        .option('--limit <n>', 'at most this many [100]')
        .option('--cursor <cursor>', 'the next page, from a previous list'),
    ),
  ).action(async (f: ReadFlags & { status?: string; label?: string[]; limit?: string; cursor?: string }) => {
    const limit = f.limit === undefined ? undefined : parseInteger('--limit', f.limit);
    const { data, raw } = await clientFrom(f).listAgents({
      status: f.status,
      label: f.label,
      limit,
      cursor: f.cursor,
    });
    if (f.json) return printRaw(raw);
    if (data.agents.length === 0) process.stderr.write('no agents\n');
    else process.stdout.write(formatAgentTable(data.agents));
    if (data.next_cursor) process.stderr.write(`more: apctl agents list --cursor ${data.next_cursor}\n`);
  });

  addJsonFlag(
    addClientFlags(
      agents.command('get').description('one agent: facts, labels, connection').argument('<agent-id>'),
    ),
  ).action(async (agentId: string, f: ReadFlags) => {
    const { data, raw } = await clientFrom(f).getAgent(agentId);
    if (f.json) return printRaw(raw);
    process.stdout.write(formatAgent(data));
  });

  addJsonFlag(
    addClientFlags(
      agents
        .command('revoke')
        .description('revoke an agent (admin): its credentials stop working and its stream is ended')
        .argument('<agent-id>'),
    ),
  ).action(async (agentId: string, f: ReadFlags) => {
    const { raw } = await clientFrom(f).call('DELETE', `/api/v1/agents/${encodeURIComponent(agentId)}`);
    if (f.json) return printRaw(raw);
    process.stderr.write(`revoked agent ${agentId}\n`);
  });
}
