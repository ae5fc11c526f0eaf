/**
 * `npm run bench:workdir`: what a task directory costs on the file system it
 * lives on (docs/decisions/0007). Four processes at once each repeat what the
 * agent and its spawn helper do per task, around a journal append with
 * `fdatasync` (the agent's journal, PostgreSQL's WAL): mkdir the task
 * directory, write the script; unlink it and rmdir the directory. Once under
 * the temp directory and once under the agent's default work directory
 * (a tmpfs where the host has one), with the journal file on disk both times.
 * Prints create and remove times, p50 / p99 / max over all processes.
 */
import { fork } from 'node:child_process';
import {
  closeSync,
  fdatasyncSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  rmdirSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defaultWorkDir, onTmpfs } from '../packages/agent/src/executor/task-command.js';
import { percentile, report, round } from './support.js';

const PROCS = 4;
const ROUNDS = Number(process.env.BENCH_N ?? 300);

if (process.argv[2] === 'worker') {
  const [, , , base = '', journalDir = ''] = process.argv;
  const journal = openSync(path.join(journalDir, `journal-${process.pid}`), 'w');
  const create: number[] = [];
  const remove: number[] = [];
  const line = Buffer.alloc(200, 'x');
  for (let i = 0; i < ROUNDS; i++) {
    const dir = path.join(base, `task-${process.pid}-${i}`);
    const script = path.join(dir, 'script.sh');
    let t = performance.now();
    mkdirSync(dir, { mode: 0o700 });
    writeFileSync(script, 'echo hi\n', { mode: 0o700 });
    create.push(performance.now() - t);
    writeSync(journal, line);
    fdatasyncSync(journal);
    t = performance.now();
    unlinkSync(script);
    rmdirSync(dir);
    remove.push(performance.now() - t);
  }
  closeSync(journal);
  process.send?.({ create, remove }, () => process.exit(0));
} else {
  const self = fileURLToPath(import.meta.url);
  const journalDir = mkdtempSync(path.join(os.tmpdir(), 'bench-workdir-journal-'));
  const places: [string, string][] = [['temp directory', os.tmpdir()]];
  const work = path.dirname(defaultWorkDir());
  if (work !== os.tmpdir()) places.push(['default work directory', work]);
  const rows: (string | number)[][] = [];
  const json: Record<string, unknown> = { bench: 'workdir', processes: PROCS, rounds: ROUNDS };
  try {
    for (const [what, parent] of places) {
      const base = mkdtempSync(path.join(parent, 'bench-workdir-'));
      try {
        const results = await Promise.all(
          Array.from(
            { length: PROCS },
            () =>
              new Promise<{ create: number[]; remove: number[] }>((resolve, reject) => {
                const child = fork(self, ['worker', base, journalDir], { execArgv: process.execArgv });
                child.once('message', (m) => resolve(m as { create: number[]; remove: number[] }));
                child.once('error', reject);
                child.once('exit', (code) => code !== 0 && reject(new Error(`worker exited ${code}`)));
              }),
          ),
        );
        const fsKind = onTmpfs(base) ? 'tmpfs' : 'not tmpfs';
        for (const step of ['create', 'remove'] as const) {
          const all = results.flatMap((r) => r[step]).sort((a, b) => a - b);
          const [p50, p99, max] = [percentile(all, 50), percentile(all, 99), all.at(-1) ?? NaN];
          rows.push([`${what} (${parent}, ${fsKind}): ${step}`, round(p50, 3), round(p99, 2), round(max, 1)]);
          const key = `${what.replaceAll(' ', '_')}_${step}`;
          json[`${key}_p50_ms`] = round(p50, 3);
          json[`${key}_p99_ms`] = round(p99, 2);
          json[`${key}_max_ms`] = round(max, 1);
        }
      } finally {
        rmSync(base, { recursive: true, force: true });
      }
    }
  } finally {
    rmSync(journalDir, { recursive: true, force: true });
  }
  report(
    `workdir: a task directory's create (mkdir + script) and remove (unlink + rmdir), ${PROCS} processes x ${ROUNDS}, each with a journal fdatasync per round`,
    ['where', 'p50 ms', 'p99 ms', 'max ms'],
    rows,
    json,
  );
}
