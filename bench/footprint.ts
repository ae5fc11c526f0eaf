/**
 * `npm run bench:footprint`: one idle real agent process (`apctl agent`, the
 * built bundle) connected to a platform process on the PostgreSQL at
 * 127.0.0.1, heartbeating at the default interval (10 s). Over --seconds
 * (default 60), after a 5 s settle: the agent's RSS (sampled every second) and
 * its CPU (utime + stime from /proc). Goals: <= 50 MB RSS, < 0.5 % of a core.
 *
 * For scale, the same is measured for a bare `node` process that only keeps
 * a timer, in the same run: the floor any Node agent stands on.
 */
import { spawn } from 'node:child_process';
import { MB, procSample, report, round, startCluster, summarize } from './support.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? def) : def;
}
const SECONDS = Number(arg('seconds', '60'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Footprint {
  rss: ReturnType<typeof summarize>;
  cpuPct: number;
}

/** RSS samples every second and the CPU share of `pid` over `seconds`. */
async function watch(pid: number, seconds: number): Promise<Footprint> {
  const rss: number[] = [];
  const c0 = procSample(pid).cpuSeconds;
  const t0 = performance.now();
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    rss.push(procSample(pid).rssBytes);
  }
  const cpu = procSample(pid).cpuSeconds - c0;
  return { rss: summarize(rss), cpuPct: (100 * cpu) / ((performance.now() - t0) / 1000) };
}

const cluster = await startCluster('footprint', 1);
let bare: ReturnType<typeof spawn> | undefined;
try {
  const agent = cluster.agents[0];
  if (!agent) throw new Error('no agent');
  bare = spawn(process.execPath, ['-e', 'setInterval(() => {}, 10000)'], { stdio: 'ignore' });
  const barePid = bare.pid ?? 0;
  await sleep(5000);
  const [a, b] = await Promise.all([watch(agent.pid, SECONDS), watch(barePid, SECONDS)]);
  const agentRow = (await (await fetch(`${cluster.http}/api/v1/agents/${cluster.agentIds[0]}`)).json()) as {
    status: string;
  };
  report(
    `footprint: one idle agent process over ${SECONDS} s of heartbeats (10 s interval)`,
    ['process', 'RSS median MB', 'RSS max MB', 'CPU % of a core', 'goal'],
    [
      [
        `apctl agent (status: ${agentRow.status})`,
        round(a.rss.p50 / MB, 1),
        round(a.rss.p99 / MB, 1),
        round(a.cpuPct, 3),
        '<= 50 MB, < 0.5 %',
      ],
      [
        'bare node, one timer (floor)',
        round(b.rss.p50 / MB, 1),
        round(b.rss.p99 / MB, 1),
        round(b.cpuPct, 3),
        '',
      ],
    ],
    {
      bench: 'footprint',
      seconds: SECONDS,
      agent_status: agentRow.status,
      agent_rss_median_mb: round(a.rss.p50 / MB, 1),
      agent_rss_max_mb: round(a.rss.p99 / MB, 1),
      agent_cpu_pct: round(a.cpuPct, 3),
      bare_node_rss_mb: round(b.rss.p50 / MB, 1),
      bare_node_cpu_pct: round(b.cpuPct, 3),
      goal_rss_mb: 50,
      goal_cpu_pct: 0.5,
    },
  );
} finally {
  if (bare?.pid) bare.kill('SIGKILL');
  await cluster.stop();
}
