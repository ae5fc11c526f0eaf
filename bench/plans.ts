/**
 * `npm run bench:plans`: the batched started and result statements of the
 * platform's store (markStarted, applyResults) where their plans can go wrong
 * (docs/performance.md, session 6; RESULT_FROM_STATES in store/tasks.ts).
 *
 * 1. A queue table with stale statistics: `--finished` finished tasks (default
 *    30,000) analyzed, then `--inflight` tasks in flight (default 10,000, over
 *    2,000 agents) that the statistics do not know of (autovacuum off for the
 *    table, so they stay stale for the run), cached plans forced generic (as a
 *    named statement's plan becomes after five runs). One markStarted of
 *    `--batch` marks (default 5,000), then one applyResults of as many results.
 * 2. One mark and one result at a time (the task path's case) against tables
 *    of 1,000 to 30,000 tasks, default plan cache mode: 200 calls per size.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { arg, report, round, scratchStore, succeededResult, summarize } from './support.js';

const FINISHED = Number(arg('finished', '30000'));
const INFLIGHT = Number(arg('inflight', '10000'));
const BATCH = Number(arg('batch', '5000'));
const SIZES = [1000, 3000, 10000, 30000];

/** Inserts `n` tasks in `status`, spread over `agents`; their ids and agents. */
async function insertTasks(
  c: pg.Client,
  n: number,
  status: string,
  agents: string[],
): Promise<{ taskId: string; agentId: string }[]> {
  const rows = Array.from({ length: n }, (_, i) => ({
    taskId: randomUUID(),
    agentId: agents[i % agents.length] ?? '',
  }));
  if (n === 0) return rows;
  await c.query(
    `insert into tasks (task_id, agent_id, type, script, args, env, clean_env, working_dir, run_as,
                        timeout_seconds, kill_grace_seconds, limits, delivery_timeout_seconds, status,
                        delivery_deadline, dispatched_at)
     select t, a, 'shell', 'true', '[]', '{}', false, '', '', 30, 5, '{}', 3600, $3,
            now() + interval '1 hour', now()
       from unnest($1::uuid[], $2::text[]) as x(t, a)`,
    [rows.map((r) => r.taskId), rows.map((r) => r.agentId), status],
  );
  return rows;
}

async function insertAgents(c: pg.Client, n: number): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `bench-${i}`);
  await c.query(
    `insert into agents (agent_id, hostname, os, arch, ip_addresses, version, labels, capacity, status, last_seen_at)
     select a, 'bench', 'linux', 'x64', '{}', '0', '{}', 5, 'online', now() from unnest($1::text[]) as a`,
    [ids],
  );
  return ids;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

const rows: (string | number)[][] = [];
const json: Record<string, unknown> = {
  bench: 'plans',
  finished: FINISHED,
  inflight: INFLIGHT,
  batch: BATCH,
};

// 1. Stale statistics, generic plans, a large batch.
{
  const s = await scratchStore('ap_bench_plans_stale', { plan_cache_mode: 'force_generic_plan' });
  const c = new pg.Client(s.url);
  await c.connect();
  try {
    await c.query('alter table tasks set (autovacuum_enabled = false)');
    const agents = await insertAgents(c, 2000);
    await insertTasks(c, FINISHED, 'succeeded', agents);
    await c.query('analyze tasks');
    const batch = (await insertTasks(c, INFLIGHT, 'dispatched', agents)).slice(0, BATCH);
    let started = 0;
    let applied = 0;
    const startedMs = await timed(async () => {
      const marks = batch.map((t) => ({ ...t, at: new Date() }));
      started = (await s.store.tasks.markStarted(marks)).length;
    });
    const resultsMs = await timed(async () => {
      applied = (await s.store.tasks.applyResults(batch.map((t) => succeededResult(t.taskId, t.agentId))))
        .length;
    });
    if (started !== batch.length || applied !== batch.length)
      throw new Error(`marked ${started}, applied ${applied} of ${batch.length}`);
    const what = `${BATCH} at once; ${FINISHED} finished + ${INFLIGHT} in flight, stale statistics, generic plans`;
    rows.push([`markStarted, ${what}`, round(startedMs, 1)], [`applyResults, ${what}`, round(resultsMs, 1)]);
    json.stale_mark_started_ms = round(startedMs, 1);
    json.stale_apply_results_ms = round(resultsMs, 1);
  } finally {
    await c.end();
    await s.drop();
  }
}

// 2. One at a time, growing table.
{
  const s = await scratchStore('ap_bench_plans_sizes');
  const c = new pg.Client(s.url);
  await c.connect();
  try {
    const agents = await insertAgents(c, 1);
    let size = 0;
    for (const target of SIZES) {
      await insertTasks(c, target - size, 'succeeded', agents);
      size = target;
      await c.query('analyze tasks');
      const open = await insertTasks(c, 200, 'dispatched', agents);
      size += open.length;
      const started: number[] = [];
      const results: number[] = [];
      for (const t of open) {
        started.push(await timed(() => s.store.tasks.markStarted([{ ...t, at: new Date() }])));
        results.push(await timed(() => s.store.tasks.applyResults([succeededResult(t.taskId, t.agentId)])));
      }
      const [a, b] = [summarize(started).p50, summarize(results).p50];
      rows.push(
        [`markStarted, one mark, table of ${target}`, round(a, 3)],
        [`applyResults, one result, table of ${target}`, round(b, 3)],
      );
      json[`one_mark_started_p50_ms_${target}`] = round(a, 3);
      json[`one_apply_result_p50_ms_${target}`] = round(b, 3);
    }
  } finally {
    await c.end();
    await s.drop();
  }
}

report(
  'plans: the batched started and result statements where their plans can go wrong',
  ['statement', 'ms (one call; p50 of 200 for one at a time)'],
  rows,
  json,
);
