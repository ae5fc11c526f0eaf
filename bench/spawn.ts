/**
 * `npm run bench:spawn`: what one task start costs through the agent's spawn
 * helper (packages/agent/src/executor/spawner.ts), against a bare Node `spawn`
 * of the same `sh -c true` measured in the same run, one at a time.
 *
 * Per start: wall time; CPU of this (the agent's) process; CPU and minor page
 * faults of the helper itself and of its children (the task processes, from
 * the helper's cutime/cstime and cminflt in /proc). Copy-on-write faults after
 * each fork are what the helper's design minimises: on a busy virtual machine
 * one fault costs tens of microseconds. `--n N` (default 300) starts per round,
 * three rounds; medians of the rounds are printed.
 */
import { pino } from 'pino';
import { createSpawner } from '../packages/agent/src/executor/spawner.js';
import { bareSpawn as bare, CLK_TCK, procStat, report, round } from './support.js';

const i = process.argv.indexOf('--n');
const N = i >= 0 ? Number(process.argv[i + 1]) : 300;
const ROUNDS = 3;

interface Stat {
  minflt: number;
  cminflt: number;
  /** ms */
  cpu: number;
  /** ms, of reaped children */
  childCpu: number;
}
function stat(pid: number): Stat {
  const st = procStat(pid);
  const ms = 1000 / CLK_TCK;
  return {
    minflt: st.minflt,
    cminflt: st.cminflt,
    cpu: (st.utime + st.stime) * ms,
    childCpu: (st.cutime + st.cstime) * ms,
  };
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

const env = Object.entries(process.env).map(([k, v]) => `${k}=${v ?? ''}`);
const spawner = await createSpawner(pino({ level: 'silent' }));
if (!spawner) throw new Error('no usable spawn helper (perl, /proc): nothing to measure');

async function viaHelper(): Promise<void> {
  const o = await spawner!.start({
    file: '/bin/sh',
    args: ['-c', 'true'],
    cwd: '/',
    env,
    joinCgroups: [],
    joinStrict: false,
  });
  if ('error' in o) throw o.error;
  const closed = (s: NodeJS.ReadableStream) => new Promise((r) => s.once('close', r));
  o.process.stdout.resume();
  o.process.stderr.resume();
  await Promise.all([o.process.exited, closed(o.process.stdout), closed(o.process.stderr)]);
}

interface Round {
  wall: number;
  agentCpu: number;
  agentFaults: number;
  helperCpu: number;
  helperFaults: number;
  childCpu: number;
  childFaults: number;
}
async function measure(start: () => Promise<void>, helperPid: number | null): Promise<Round> {
  const h0 = helperPid ? stat(helperPid) : null;
  const s0 = stat(process.pid);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  for (let k = 0; k < N; k++) await start();
  const wall = performance.now() - t0;
  const c = process.cpuUsage(c0);
  const s1 = stat(process.pid);
  const h1 = helperPid ? stat(helperPid) : null;
  const per = (x: number) => x / N;
  return {
    wall: per(wall),
    agentCpu: per((c.user + c.system) / 1000),
    agentFaults: per(s1.minflt - s0.minflt),
    helperCpu: h0 && h1 ? per(h1.cpu - h0.cpu) : 0,
    helperFaults: h0 && h1 ? per(h1.minflt - h0.minflt) : 0,
    // Bare: the children are this process's own.
    childCpu: h0 && h1 ? per(h1.childCpu - h0.childCpu) : per(s1.childCpu - s0.childCpu),
    childFaults: h0 && h1 ? per(h1.cminflt - h0.cminflt) : per(s1.cminflt - s0.cminflt),
  };
}

for (let k = 0; k < 30; k++) {
  await viaHelper();
  await bare();
}
const helperRounds: Round[] = [];
const bareRounds: Round[] = [];
for (let r = 0; r < ROUNDS; r++) {
  helperRounds.push(await measure(viaHelper, spawner.pid));
  bareRounds.push(await measure(bare, null));
}
await spawner.close();

const med = (rs: Round[]): Round => {
  const keys = Object.keys(rs[0]!) as (keyof Round)[];
  return Object.fromEntries(keys.map((k) => [k, round(median(rs.map((x) => x[k])), 2)])) as unknown as Round;
};
const h = med(helperRounds);
const b = med(bareRounds);
const total = (x: Round) => round(x.agentCpu + x.helperCpu + x.childCpu, 2);
report(
  `spawn: \`sh -c true\`, one at a time (${N} per round, medians of ${ROUNDS} rounds)`,
  ['how', 'wall ms', 'CPU ms: caller / helper / children = total', 'faults: caller / helper / children'],
  [
    [
      'bare Node `spawn`',
      b.wall,
      `${b.agentCpu} / - / ${b.childCpu} = ${total(b)}`,
      `${b.agentFaults} / - / ${b.childFaults}`,
    ],
    [
      'spawn helper',
      h.wall,
      `${h.agentCpu} / ${h.helperCpu} / ${h.childCpu} = ${total(h)}`,
      `${h.agentFaults} / ${h.helperFaults} / ${h.childFaults}`,
    ],
  ],
  {
    bench: 'spawn',
    n: N,
    rounds: ROUNDS,
    bare: { ...b, totalCpu: total(b) },
    helper: { ...h, totalCpu: total(h) },
    cpu_ratio: round(total(h) / total(b), 2),
  },
);
