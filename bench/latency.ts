/**
 * `npm run bench:latency`: REST create -> stored result of `true` on one real
 * agent, sequentially, against a bare Node spawn of `sh -c true` measured in
 * the same run. Goal: p50 within 3 ms of the bare spawn.
 *
 * Views of each task:
 * - `client, one call`: what `apctl run` does, `POST /api/v1/tasks?follow=1`,
 *   from the request to the stream's `end` event (the result is stored first);
 * - `client, two calls`: POST, then `GET …/logs?follow=1` to its `end` event;
 * - `stored`: completed_at - created_at as the platform recorded them.
 * Every request goes over kept-alive node:http connections. The kinds alternate
 * with the bare spawns, so a slow stretch of the machine hits them alike.
 */
import {
  bareSpawn,
  getText,
  machineCpu,
  postJson,
  postText,
  report,
  round,
  startCluster,
  stealPct,
  summarize,
} from './support.js';

const N = Number(process.env.BENCH_N ?? 300);
const WARMUP = 30;

interface Sample {
  client: number;
  server: number;
  /** created -> dispatched, dispatched -> started, started -> completed (stored times, ms). */
  phases: [number, number, number];
}

const BODY = (agentId: string) => ({ agent_id: agentId, type: 'shell', script: 'true', timeout: 30 });

async function oneTask(http: string, agentId: string, oneCall: boolean): Promise<Sample> {
  const t0 = performance.now();
  let taskId: string;
  let text: string;
  if (oneCall) {
    text = await postText(`${http}/api/v1/tasks?follow=1`, BODY(agentId));
    taskId = (/"task_id":"([^"]+)"/.exec(text) ?? [])[1] ?? '';
  } else {
    taskId = (await postJson<{ task_id: string }>(`${http}/api/v1/tasks`, BODY(agentId))).task_id;
    text = await getText(`${http}/api/v1/tasks/${taskId}/logs?follow=1`);
  }
  const client = performance.now() - t0;
  if (!text.includes('"status":"succeeded"')) throw new Error(`task did not succeed: ${text.slice(-300)}`);
  const stored = JSON.parse(await getText(`${http}/api/v1/tasks/${taskId}`)) as {
    created_at: string;
    dispatched_at: string;
    started_at: string;
    completed_at: string;
  };
  const [c, d, st, done] = [
    stored.created_at,
    stored.dispatched_at,
    stored.started_at,
    stored.completed_at,
  ].map((t) => Date.parse(t)) as [number, number, number, number];
  return { client, server: done - c, phases: [d - c, st - d, done - st] };
}

const cluster = await startCluster('latency', 1);
try {
  const agentId = cluster.agentIds[0] ?? '';
  for (let i = 0; i < WARMUP; i++) {
    await oneTask(cluster.http, agentId, true);
    await oneTask(cluster.http, agentId, false);
    await bareSpawn();
  }
  const m0 = machineCpu();
  const client: number[] = [];
  const twoCalls: number[] = [];
  const server: number[] = [];
  const bare: number[] = [];
  const phases: [number[], number[], number[]] = [[], [], []];
  for (let i = 0; i < N; i++) {
    const r = await oneTask(cluster.http, agentId, true);
    client.push(r.client);
    server.push(r.server);
    r.phases.forEach((v, j) => phases[j]?.push(v));
    const t0 = performance.now();
    await bareSpawn();
    bare.push(performance.now() - t0);
    twoCalls.push((await oneTask(cluster.http, agentId, false)).client);
  }
  const steal = round(stealPct(m0, machineCpu()), 0);
  const c = summarize(client);
  const c2 = summarize(twoCalls);
  const s = summarize(server);
  const b = summarize(bare);
  report(
    `latency: create -> stored result of \`true\`, one agent, ${N} sequential tasks of each kind (hypervisor steal ${steal} %)`,
    ['what', 'p50 ms', 'p99 ms', 'mean ms'],
    [
      ['bare spawn `sh -c true` (same run)', round(b.p50), round(b.p99), round(b.mean)],
      ['platform, client, one call (POST ?follow=1 -> end)', round(c.p50), round(c.p99), round(c.mean)],
      ['platform, client, two calls (POST, GET follow -> end)', round(c2.p50), round(c2.p99), round(c2.mean)],
      ['platform, stored (completed_at - created_at), one call', round(s.p50), round(s.p99), round(s.mean)],
      ...(['created -> dispatched', 'dispatched -> started', 'started -> completed'] as const).map(
        (what, j) => {
          const p = summarize(phases[j] ?? []);
          return [`  stored ${what}`, round(p.p50), round(p.p99), round(p.mean)];
        },
      ),
      ['client (one call) p50 minus bare p50', round(c.p50 - b.p50), '', ''],
    ],
    {
      bench: 'latency',
      steal_pct: steal,
      n: N,
      bare_spawn_p50_ms: round(b.p50),
      client_p50_ms: round(c.p50),
      client_p99_ms: round(c.p99),
      client_two_calls_p50_ms: round(c2.p50),
      stored_p50_ms: round(s.p50),
      stored_p99_ms: round(s.p99),
      p50_over_bare_ms: round(c.p50 - b.p50),
      goal_p50_over_bare_ms: 3,
    },
  );
} finally {
  await cluster.stop();
}
