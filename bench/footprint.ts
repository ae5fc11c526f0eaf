/**
 * `npm run bench:footprint`: one idle real agent process (`apctl agent`, the
 * built bundle) connected to a platform process on the PostgreSQL at
 * 127.0.0.1, heartbeating at the default interval (10 s). Over --seconds
 * (default 60), after a 5 s settle: the agent's RSS (sampled every second) and
 * its CPU (utime + stime from /proc). Goals: <= 50 MB RSS, < 0.5 % of a core.
 *
 * For scale, the same is measured for a bare `node` process that only keeps
 * a timer, in the same run: the floor any Node agent stands on.
 *
 * RSS is split into anonymous memory (V8 heap, malloc) and file-backed pages
 * (mostly the `node` binary's code and data: shared with every other Node
 * process and reclaimable, but counted in RSS). The agent's child processes
 * (its spawn helper) are reported on their own row.
 */
import { readFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { arg, MB, procSample, report, round, startCluster, summarize } from './support.js';

const SECONDS = Number(arg('seconds', '60'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Footprint {
  rss: ReturnType<typeof summarize>;
  anon: ReturnType<typeof summarize>;
  file: ReturnType<typeof summarize>;
  /** RSS of the process's children (the agent's spawn helper), summed. */
  children: ReturnType<typeof summarize>;
  cpuPct: number;
}

/** RssAnon and RssFile of `pid`, bytes, from /proc/PID/status. */
function rssSplit(pid: number): { anon: number; file: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) =>
    Number(new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { anon: kb('RssAnon'), file: kb('RssFile') };
}

/** Summed RSS of the direct children of `pid`, bytes. */
function childrenRss(pid: number): number {
  let kids: string[] = [];
  try {
    kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean);
  } catch {
    return 0;
  }
  let sum = 0;
  for (const kid of kids) {
    try {
      sum += procSample(Number(kid)).rssBytes;
    } catch {
      // gone
    }
  }
  return sum;
}

/** RSS samples every second and the CPU share of `pid` over `seconds`. */
async function watch(pid: number, seconds: number): Promise<Footprint> {
  const rss: number[] = [];
  const anon: number[] = [];
  const file: number[] = [];
  const children: number[] = [];
  const c0 = procSample(pid).cpuSeconds;
  const t0 = performance.now();
  for (let i = 0; i < seconds; i++) {
    await sleep(1000);
    rss.push(procSample(pid).rssBytes);
    const split = rssSplit(pid);
    anon.push(split.anon);
    file.push(split.file);
    children.push(childrenRss(pid));
  }
  const cpu = procSample(pid).cpuSeconds - c0;
  return {
    rss: summarize(rss),
    anon: summarize(anon),
    file: summarize(file),
    children: summarize(children),
    cpuPct: (100 * cpu) / ((performance.now() - t0) / 1000),
  };
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
  const mb = (bytes: number) => round(bytes / MB, 1);
  report(
    `footprint: one idle agent process over ${SECONDS} s of heartbeats (10 s interval)`,
    ['process', 'RSS median MB', 'RSS max MB', 'anon / file MB (median)', 'CPU % of a core', 'goal'],
    [
      [
        `apctl agent (status: ${agentRow.status})`,
        mb(a.rss.p50),
        mb(a.rss.p99),
        `${mb(a.anon.p50)} / ${mb(a.file.p50)}`,
        round(a.cpuPct, 3),
        '<= 50 MB, < 0.5 %',
      ],
      ['its children (spawn helper)', mb(a.children.p50), mb(a.children.p99), '', '', ''],
      [
        'bare node, one timer (floor)',
        mb(b.rss.p50),
        mb(b.rss.p99),
        `${mb(b.anon.p50)} / ${mb(b.file.p50)}`,
        round(b.cpuPct, 3),
        '',
      ],
    ],
    {
      bench: 'footprint',
      seconds: SECONDS,
      agent_status: agentRow.status,
      agent_rss_median_mb: mb(a.rss.p50),
      agent_rss_max_mb: mb(a.rss.p99),
      agent_rss_anon_mb: mb(a.anon.p50),
      agent_rss_file_mb: mb(a.file.p50),
      agent_cpu_pct: round(a.cpuPct, 3),
      agent_children_rss_mb: mb(a.children.p50),
      bare_node_rss_mb: mb(b.rss.p50),
      bare_node_rss_anon_mb: mb(b.anon.p50),
      bare_node_rss_file_mb: mb(b.file.p50),
      bare_node_cpu_pct: round(b.cpuPct, 3),
      goal_rss_mb: 50,
      goal_cpu_pct: 0.5,
    },
  );
} finally {
  if (bare?.pid) bare.kill('SIGKILL');
  await cluster.stop();
}
