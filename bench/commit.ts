/**
 * `npm run bench:commit`: what the two statements on a task's path cost from
 * the platform's own store, and how much of it is the synchronous commit
 * (waiting for PostgreSQL's WAL flush) that DESIGN.md's durability asks for.
 *
 * The create (`store.tasks.create`, inserted already dispatched, as when the
 * agent is connected to this process) and the result (`store.tasks.applyResults`)
 * run against two fresh databases on the server at 127.0.0.1, one with
 * `synchronous_commit = on` (the platform's setting for both statements) and one
 * with it off, taking turns call by call so both see the same machine state.
 * Each runs back to back and with an idle gap of `--gap` ms before every call
 * (default 8: about one `bench:latency` task, so PostgreSQL's backend and the
 * disk are idle when the call comes, as on the task path). `select 1` on the same
 * pool is the round-trip floor. Reported: p50 per call, and the flush's share.
 */
import { randomUUID } from 'node:crypto';
import type { Store } from '../packages/platform/src/store/index.js';
import { newTask } from '../test/support/tasks.js';
import {
  arg,
  machineCpu,
  report,
  round,
  scratchStore,
  stealPct,
  succeededResult,
  summarize,
} from './support.js';

const N = Number(arg('calls', '300'));
const GAP = Number(arg('gap', '8'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Side {
  store: Store;
  sessionId: string;
  drop(): Promise<void>;
  /** Tasks created and not yet given a result. */
  open: string[];
}

async function side(sync: 'on' | 'off'): Promise<Side> {
  const scratch = await scratchStore(`ap_bench_commit_${sync}`, { synchronous_commit: sync });
  const store = scratch.store;
  const sessionId = randomUUID();
  await store.agents.register(
    {
      agentId: 'bench-agent',
      hostname: 'bench',
      os: 'linux',
      arch: 'x64',
      ipAddresses: [],
      version: '0',
      labels: {},
      capacity: 1_000_000,
    },
    sessionId,
    'bench-node',
  );
  return { store, sessionId, open: [], drop: () => scratch.drop() };
}

const calls = {
  async 'select 1'(s: Side) {
    await s.store.pool.query('select 1');
  },
  async create(s: Side) {
    const taskId = randomUUID();
    s.open.push(taskId);
    await s.store.tasks.create(newTask(taskId, 'bench-agent'), {
      dispatch: { sessionId: s.sessionId, platformNode: 'bench-node' },
    });
  },
  async result(s: Side) {
    const taskId = s.open.shift();
    if (!taskId) throw new Error('no task left to give a result');
    const changed = await s.store.tasks.applyResults([succeededResult(taskId, 'bench-agent')]);
    if (changed.length !== 1) throw new Error(`result not applied to ${taskId}`);
  },
};
type Call = keyof typeof calls;

const on = await side('on');
const off = await side('off');
const m0 = machineCpu();
/** `${call} ${sync} ${gap}` -> ms per call. */
const samples = new Map<string, number[]>();
try {
  for (const gap of [0, GAP]) {
    for (const call of ['select 1', 'create', 'result'] as Call[]) {
      for (let i = 0; i < N + 20; i++) {
        // Alternating which goes first, so neither always follows the other's flush.
        for (const [name, s] of i % 2 === 0
          ? ([
              ['on', on],
              ['off', off],
            ] as const)
          : ([
              ['off', off],
              ['on', on],
            ] as const)) {
          if (gap > 0) await sleep(gap);
          const t0 = performance.now();
          await calls[call](s);
          const ms = performance.now() - t0;
          if (i < 20) continue; // warm-up: prepared statements, caches
          const key = `${call} ${name} ${gap}`;
          const list = samples.get(key) ?? [];
          list.push(ms);
          samples.set(key, list);
        }
      }
    }
  }
} finally {
  await on.drop();
  await off.drop();
}
const steal = round(stealPct(m0, machineCpu()), 0);
const p50 = (call: Call, sync: 'on' | 'off', gap: number) =>
  round(summarize(samples.get(`${call} ${sync} ${gap}`) ?? []).p50, 3);
const rows: (string | number)[][] = [];
const json: Record<string, unknown> = { bench: 'commit', calls: N, gap_ms: GAP, steal_pct: steal };
for (const gap of [0, GAP]) {
  for (const call of ['select 1', 'create', 'result'] as Call[]) {
    const a = p50(call, 'on', gap);
    const b = p50(call, 'off', gap);
    rows.push([call, gap === 0 ? 'back to back' : `${gap} ms idle before each`, a, b, round(a - b, 3)]);
    const k = `${call.replace(' ', '')}_gap${gap}`;
    json[`${k}_sync_on_p50_ms`] = a;
    json[`${k}_sync_off_p50_ms`] = b;
  }
}
report(
  `commit: the task path's statements from the platform's store, ${N} calls each (hypervisor steal ${steal} %)`,
  ['statement', 'timing', 'synchronous_commit on, p50 ms', 'off, p50 ms', 'the WAL flush (on - off)'],
  rows,
  json,
);
