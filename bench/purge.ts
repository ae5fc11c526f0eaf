/**
 * `npm run bench:purge`: what `--task-retention-days` costs. On a fresh
 * database at 127.0.0.1: `--tasks N` finished tasks created 40 days ago
 * (default 100,000), each with `--lines L` log lines of 80 bytes (default 10)
 * and a 200-byte stdout, plus `--scripts S` shared 8 KiB scripts (default 100)
 * named by one old task each; then one `store.tasks.purge(30)` (the call the
 * platform makes every 10 minutes; it deletes at most 100,000 tasks), timed. Reported: tasks, log lines and
 * scripts deleted, seconds, and tasks per second.
 */
import { createHash, randomUUID } from 'node:crypto';
import { arg, machineCpu, report, round, scratchStore, stealPct } from './support.js';

const TASKS = Number(arg('tasks', '100000'));
const LINES = Number(arg('lines', '10'));
const SCRIPTS = Number(arg('scripts', '100'));

const scratch = await scratchStore('ap_bench_purge');
const { store } = scratch;
try {
  await store.agents.register(
    {
      agentId: 'purge-bench',
      hostname: 'purge-bench',
      os: 'linux',
      arch: 'x64',
      ipAddresses: [],
      version: '1',
      labels: {},
      capacity: 5,
    },
    randomUUID(),
    'bench',
  );
  const t0 = performance.now();
  const q = (text: string, values: unknown[] = []) => store.pool.query(text, values);
  await q(
    `insert into tasks (task_id, agent_id, type, script, args, env, clean_env, working_dir, run_as,
                        timeout_seconds, kill_grace_seconds, limits, delivery_timeout_seconds, status,
                        created_at, delivery_deadline, completed_at, stdout)
     select gen_random_uuid(), 'purge-bench', 'shell', 'echo hello; uptime', '[]', '{}', false, '', '', 30, 5,
            '{}', 60, 'succeeded', now() - interval '40 days' + g * interval '1 ms', now(), now(), repeat('x', 200)
       from generate_series(1, $1::int) g`,
    [Math.max(0, TASKS - SCRIPTS)],
  );
  // Batch tasks whose script is kept once (each script named by one task), last used long ago.
  for (let i = 0; i < SCRIPTS; i++) {
    const script = `# ${String(i).padEnd(8 * 1024, 'x')}\ntrue\n`;
    const hash = createHash('sha256').update(script).digest();
    await q(
      `insert into task_scripts (script_hash, script, last_used_at) values ($1, $2, now() - interval '40 days')`,
      [hash, script],
    );
    await q(
      `insert into tasks (task_id, agent_id, type, script, script_hash, args, env, clean_env, working_dir, run_as,
                          timeout_seconds, kill_grace_seconds, limits, delivery_timeout_seconds, status,
                          created_at, delivery_deadline, completed_at)
       values (gen_random_uuid(), 'purge-bench', 'shell', null, $1, '[]', '{}', false, '', '', 30, 5, '{}', 60,
               'succeeded', now() - interval '40 days', now(), now())`,
      [hash],
    );
  }
  await q(
    `insert into task_logs (task_id, seq, stream, output, ts)
     select t.task_id, g, 'stdout', repeat('y', 80), now() from tasks t cross join generate_series(1, $1::int) g`,
    [LINES],
  );
  await q('analyze');
  const setupS = (performance.now() - t0) / 1000;

  const m0 = machineCpu();
  const t1 = performance.now();
  const gone = await store.tasks.purge(30);
  const secs = (performance.now() - t1) / 1000;
  const steal = round(stealPct(m0, machineCpu()), 0);
  const count = async (table: string) =>
    Number((await store.pool.query<{ n: string }>(`select count(*) as n from ${table}`)).rows[0]?.n);
  const left = await count('tasks');
  const logsLeft = await count('task_logs');
  // One call deletes at most 100 statements of 1,000 tasks; the next call (10 minutes on) the rest.
  const expected = Math.min(TASKS, 100_000);
  if (gone.tasks !== expected || left !== TASKS - expected || (expected === TASKS && logsLeft !== 0))
    throw new Error(
      `purge deleted ${gone.tasks} of ${TASKS} tasks; ${left} tasks, ${logsLeft} log lines left`,
    );

  report(
    `purge: ${TASKS} finished tasks past the retention, ${LINES} log lines each, ${SCRIPTS} shared scripts (hypervisor steal ${steal} %)`,
    ['what', 'measured'],
    [
      ['set-up (not timed)', `${round(setupS, 1)} s`],
      ['tasks deleted', gone.tasks],
      ['log lines deleted (with their tasks)', expected * LINES],
      ['shared scripts deleted', gone.scripts],
      ['purge(30), one call', `${round(secs, 2)} s`],
      ['tasks per second', round(gone.tasks / secs, 0)],
    ],
    {
      bench: 'purge',
      tasks: TASKS,
      lines_per_task: LINES,
      scripts: SCRIPTS,
      tasks_deleted: gone.tasks,
      scripts_deleted: gone.scripts,
      purge_s: round(secs, 3),
      tasks_per_s: round(gone.tasks / secs, 0),
      steal_pct: steal,
    },
  );
} finally {
  await scratch.drop();
}
