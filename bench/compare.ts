/**
 * `npm run bench:compare -- --hosts 1,10,50`: `echo hi` on N hosts, in one run,
 * three ways:
 *
 *   platform  N real agent processes (bench/support.ts startCluster) on this
 *             machine; one task per agent, wall time until every result is
 *             stored and its output read. Measured from a warm client (a
 *             long-running caller: API user, web UI: one batch call with
 *             follow=1 that streams every task to its end) and as the command a person
 *             types, `apctl run --agent ID ... -- 'echo hi'`, a fresh process
 *             per run (as pdsh and ansible are).
 *   pdsh      `pdsh -R ssh -f N -w 127.0.0.[2-N+1] echo hi`, plain ssh (cold)
 *             and with ssh ControlMaster connections kept open (warm).
 *   ansible   `ansible all -i <inventory> -m command -a 'echo hi' -f N`,
 *             pipelining on; cold (no ssh connection kept) and warm
 *             (ControlPersist, after a first run opened the connections).
 *   floor     N `sh -c 'echo hi'` started at once by a `sh` loop and nothing
 *             else (bareFloor): the least time any tool that runs the script
 *             in a process per host can take when the N hosts share this
 *             machine. "time / floor" is the largest ratio any tool could
 *             reach here; a goal above it cannot be met on this machine.
 *
 * pdsh and ansible reach N loopback aliases (127.0.0.2 ...) through sshd
 * processes started here: bound to those aliases only (sshd listens on at most
 * 16 addresses, so one sshd per 16 hosts), on a spare port, with a throwaway
 * host key and client key in a temp dir, torn down by pid at the end. Missing
 * tools are installed from Debian's packages (apt-get update once, then
 * apt-get install -y); a tool that cannot be installed is reported and skipped.
 * Nothing under ~/.ssh or /etc/ssh is touched; /run/sshd (sshd's privilege
 * separation directory) is created if missing and removed again. The sessions
 * get an empty HOME (SetEnv), so the time of root's ~/.bashrc, which bash
 * sources for every `ssh host cmd`, is not counted as the tools' time.
 *
 * `--tools platform,pdsh,ansible` picks what runs (default all), `--runs R`.
 * Each cell is the median of --runs runs (default 5); within a round every
 * tool runs once, in turn, so that all share the machine's state of the moment. Goals at N = 50: >= 10x
 * faster than pdsh, >= 50x faster than Ansible.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { APCTL, freePort, tempDir, waitFor } from '../test/support/procs.js';
import { TEST_ADMIN_TOKEN } from '../test/support/security.js';
import {
  arg,
  machineCpu,
  stealPct,
  postText,
  procStat,
  report,
  round,
  startCluster,
  summarize,
  type Cluster,
} from './support.js';

const HOSTS = arg('hosts', '1,10,50').split(',').map(Number);
const RUNS = Number(arg('runs', '5'));
const TOOLS = new Set(arg('tools', 'platform,pdsh,ansible').split(','));
const MAX = Math.max(...HOSTS);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const median = (xs: number[]) => summarize(xs).p50;

/** Runs a command; resolves with wall ms, exit code and output. */
function timed(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ ms: number; code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ ms: performance.now() - t0, code, out }));
  });
}

// ---------------------------------------------------------------- installation

/** Installs the Debian packages behind missing commands; returns why a tool is unavailable, per tool. */
function ensureTools(): Map<string, string> {
  const need: [tool: string, bin: string, pkg: string][] = [
    ['sshd', '/usr/sbin/sshd', 'openssh-server'],
    ['pdsh', 'pdsh', 'pdsh'],
    ['ansible', 'ansible', 'ansible'],
  ];
  const have = (bin: string) => spawnSync('sh', ['-c', `command -v ${bin}`]).status === 0;
  const missing = need.filter(([, bin]) => !have(bin));
  const unavailable = new Map<string, string>();
  if (missing.length === 0) return unavailable;
  for (const [, , pkg] of missing) {
    const policy = spawnSync('apt-cache', ['policy', pkg], { encoding: 'utf8' });
    const candidate = /Candidate:\s*(\S+)/.exec(policy.stdout ?? '')?.[1] ?? '(none)';
    console.error(`${pkg}: not installed, apt candidate ${candidate}`);
  }
  const installable = missing.map(([, , pkg]) => pkg);
  console.error(`installing ${installable.join(' ')} from Debian's packages ...`);
  const update = spawnSync('apt-get', ['update', '-qq'], { encoding: 'utf8' });
  if (update.status !== 0) console.error(`apt-get update failed: ${(update.stderr ?? '').slice(-300)}`);
  for (const [tool, bin, pkg] of missing) {
    const r = spawnSync('apt-get', ['install', '-y', '-qq', pkg], {
      encoding: 'utf8',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
    if (r.status !== 0 || !have(bin)) {
      const why = `${pkg} could not be installed: ${(r.stderr || r.stdout || '').trim().split('\n').slice(-2).join(' ')}`;
      console.error(why);
      unavailable.set(tool, why);
    }
  }
  return unavailable;
}

// ---------------------------------------------------------------- ssh rig

/** Every process below `pid`, from /proc (children before their own children are not guaranteed). */
function descendants(pid: number): number[] {
  const kids = new Map<number, number[]>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const { ppid } = procStat(Number(e));
      kids.set(ppid, [...(kids.get(ppid) ?? []), Number(e)]);
    } catch {
      // exited meanwhile
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const c of kids.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

/** ssh control sockets the tools left in the rig's directory. */
function controlSockets(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isSocket()) out.push(p);
    else if (e.isDirectory()) out.push(...controlSockets(p));
  }
  return out;
}

interface SshRig {
  dir: string;
  port: number;
  sshConfig: string;
  stop(): Promise<void>;
}

const alias = (i: number) => `127.0.0.${i + 2}`;

async function startSshRig(hosts: number): Promise<SshRig> {
  const dir = tempDir('compare-ssh');
  const port = await freePort();
  const q = (...a: string[]) => execFileSync('ssh-keygen', ['-q', ...a], { stdio: 'ignore' });
  q('-t', 'ed25519', '-N', '', '-f', path.join(dir, 'host_key'));
  q('-t', 'ed25519', '-N', '', '-f', path.join(dir, 'client_key'));
  writeFileSync(path.join(dir, 'authorized_keys'), readFileSync(path.join(dir, 'client_key.pub')));
  const hostPub = readFileSync(path.join(dir, 'host_key.pub'), 'utf8')
    .trim()
    .split(' ')
    .slice(0, 2)
    .join(' ');
  writeFileSync(
    path.join(dir, 'known_hosts'),
    Array.from({ length: hosts }, (_, i) => `[${alias(i)}]:${port} ${hostPub}\n`).join(''),
  );
  const sshConfig = path.join(dir, 'ssh_config');
  writeFileSync(
    sshConfig,
    [
      'Host *',
      '  User root',
      `  Port ${port}`,
      `  IdentityFile ${dir}/client_key`,
      '  IdentitiesOnly yes',
      `  UserKnownHostsFile ${dir}/known_hosts`,
      '  GlobalKnownHostsFile /dev/null',
      '  StrictHostKeyChecking yes',
      '  UpdateHostKeys no',
      '  BatchMode yes',
      '  LogLevel ERROR',
      '',
    ].join('\n'),
  );
  const home = path.join(dir, 'home');
  mkdirSync(home, { mode: 0o700 });
  const createdPrivsep = !existsSync('/run/sshd');
  if (createdPrivsep) mkdirSync('/run/sshd', { mode: 0o755 });
  // sshd listens on at most 16 addresses: one sshd per 16 aliases.
  const sshds: { pid: number; exited: Promise<void> }[] = [];
  for (let g = 0; g * 16 < hosts; g++) {
    const addrs = Array.from({ length: Math.min(16, hosts - g * 16) }, (_, i) => alias(g * 16 + i));
    const conf = path.join(dir, `sshd_config_${g}`);
    writeFileSync(
      conf,
      [
        `Port ${port}`,
        ...addrs.map((a) => `ListenAddress ${a}`),
        `HostKey ${dir}/host_key`,
        `PidFile ${dir}/sshd_${g}.pid`,
        `AuthorizedKeysFile ${dir}/authorized_keys`,
        'PermitRootLogin prohibit-password',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'UsePAM no',
        'StrictModes no',
        // pdsh and ansible open N connections at once; the default 10:30:100 drops some.
        'MaxStartups 1000',
        'MaxSessions 1000',
        'UseDNS no',
        // The remote shell is root's bash, which sources ~/.bashrc even for `ssh host cmd`
        // (Debian builds bash with SSH_SOURCE_BASHRC). Root's ~/.bashrc on a workstation
        // may start tools (pyenv init took over a second per login here, under load);
        // a managed host's does not. An empty HOME measures ssh itself.
        `SetEnv HOME=${home}`,
        'LogLevel ERROR',
        '',
      ].join('\n'),
    );
    const child = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<void>((r) => child.on('close', () => r()));
    if (!child.pid) throw new Error('sshd did not start');
    sshds.push({ pid: child.pid, exited });
    void exited.then(() => {
      if (err) console.error(`sshd ${g}: ${err.trim().slice(-300)}`);
    });
  }
  const stop = async () => {
    // ControlPersist masters (pdsh warm, ansible warm) are ssh processes of their own: ask each to exit.
    for (const sock of controlSockets(dir))
      spawnSync('ssh', ['-O', 'exit', '-o', `ControlPath=${sock}`, 'x'], { stdio: 'ignore' });
    // Then the sshd processes: per-connection children first (they outlive their listener), then listeners.
    const pids = sshds.flatMap((s) => [...descendants(s.pid), s.pid]);
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        // gone
      }
    }
    await Promise.all(sshds.map((s) => Promise.race([s.exited, sleep(3000)])));
    if (createdPrivsep) rmSync('/run/sshd', { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(
      'sshd answering on every alias',
      async () => {
        const last = alias(hosts - 1);
        const r = await timed('ssh', ['-F', sshConfig, alias(0), 'true']);
        const r2 = await timed('ssh', ['-F', sshConfig, last, 'true']);
        return r.code === 0 && r2.code === 0;
      },
      15_000,
      200,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { dir, port, sshConfig, stop };
}

// ---------------------------------------------------------------- the tools

async function pdshRun(rig: SshRig, n: number, warm: boolean): Promise<number> {
  const sshArgs = [`-F ${rig.sshConfig}`, '-x'];
  if (warm)
    sshArgs.push('-o ControlMaster=auto', '-o ControlPersist=120', `-o ControlPath=${rig.dir}/pdsh-%C`);
  const range = n === 1 ? alias(0) : `127.0.0.[2-${n + 1}]`;
  const r = await timed('pdsh', ['-R', 'ssh', '-f', String(n), '-w', range, 'echo', 'hi'], {
    PDSH_SSH_ARGS: `${sshArgs.join(' ')} -l%u %h`,
  });
  const got = r.out.split('\n').filter((l) => /: hi$/.test(l) || l === 'hi').length;
  if (r.code !== 0 || got !== n)
    throw new Error(`pdsh on ${n}: exit ${r.code}, ${got} answers: ${r.out.slice(-400)}`);
  return r.ms;
}

function ansibleSetup(
  rig: SshRig,
  n: number,
): { inventory: string; env: (warm: boolean, run: number) => Record<string, string> } {
  const inventory = path.join(rig.dir, `inventory_${n}.ini`);
  writeFileSync(
    inventory,
    [
      '[bench]',
      ...Array.from({ length: n }, (_, i) => alias(i)),
      '[bench:vars]',
      `ansible_port=${rig.port}`,
      'ansible_user=root',
      `ansible_ssh_private_key_file=${rig.dir}/client_key`,
      'ansible_python_interpreter=/usr/bin/python3',
      '',
    ].join('\n'),
  );
  const home = path.join(rig.dir, 'ansible-home');
  mkdirSync(home, { recursive: true });
  return {
    inventory,
    env(warm, run) {
      const cfg = path.join(rig.dir, `ansible_${warm ? 'warm' : 'cold'}_${n}_${run}.cfg`);
      const persist = warm
        ? `-o ControlMaster=auto -o ControlPersist=120s`
        : // Cold: no connection survives a run.
          `-o ControlMaster=no`;
      writeFileSync(
        cfg,
        [
          '[defaults]',
          `forks = ${n}`,
          'host_key_checking = False',
          'retry_files_enabled = False',
          'interpreter_python = /usr/bin/python3',
          `local_tmp = ${home}/tmp`,
          `remote_tmp = ${home}/remote`,
          '[ssh_connection]',
          'pipelining = True',
          `ssh_args = -F ${rig.sshConfig} ${persist}`,
          `control_path_dir = ${rig.dir}/cp-${warm ? 'warm' : `cold-${run}`}`,
          '',
        ].join('\n'),
      );
      return { ANSIBLE_CONFIG: cfg, ANSIBLE_HOME: home, ANSIBLE_NOCOLOR: '1' };
    },
  };
}

async function ansibleRun(rig: SshRig, n: number, warm: boolean, run: number): Promise<number> {
  const { inventory, env } = ansibleSetup(rig, n);
  const r = await timed(
    'ansible',
    ['all', '-i', inventory, '-f', String(n), '-m', 'command', '-a', 'echo hi'],
    env(warm, run),
  );
  const got = (r.out.match(/CHANGED \| rc=0 >>\s*\nhi/g) ?? []).length;
  if (r.code !== 0 || got !== n)
    throw new Error(`ansible on ${n}: exit ${r.code}, ${got} answers: ${r.out.slice(-400)}`);
  return r.ms;
}

/**
 * What an API user does: one batch call that creates a task per host and
 * streams them all to their ends (`POST /api/v1/tasks/batch?follow=1`, as
 * `apctl run` on many agents does), in this (warm) process.
 */
async function platformWarm(cluster: Cluster, n: number): Promise<{ ms: number; storedMs: number }> {
  const t0 = performance.now();
  const text = await postText(`${cluster.http}/api/v1/tasks/batch?follow=1`, {
    agent_ids: cluster.agentIds.slice(0, n),
    type: 'shell',
    script: 'echo hi',
    timeout: 30,
  });
  const events = text
    .split('\n\n')
    .filter((e) => e.startsWith('event: '))
    .map((e) => ({ event: /^event: (\w+)/.exec(e)?.[1], data: /\ndata: (.*)$/m.exec(e)?.[1] ?? '' }));
  const ends = events
    .filter((e) => e.event === 'end')
    .map((e) => JSON.parse(e.data) as { task_id: string; status: string });
  const his = events.filter((e) => e.event === 'log' && e.data.includes('"output":"hi\\n"')).length;
  if (
    ends.length !== n ||
    ends.some((e) => e.status !== 'succeeded') ||
    his !== n ||
    events.at(-1)?.event !== 'done'
  )
    throw new Error(`batch did not succeed on ${n}: ${text.slice(-300)}`);
  const ids = ends.map((e) => e.task_id);
  const ms = performance.now() - t0;
  // What the platform itself took: first created_at to last completed_at, as stored.
  const rows = await Promise.all(
    ids.map(
      async (id) =>
        (await (await fetch(`${cluster.http}/api/v1/tasks/${id}`)).json()) as {
          created_at: string;
          completed_at: string;
        },
    ),
  );
  const storedMs =
    Math.max(...rows.map((r) => Date.parse(r.completed_at))) -
    Math.min(...rows.map((r) => Date.parse(r.created_at)));
  return { ms, storedMs };
}

/**
 * What a person types, as with pdsh and ansible: `apctl run --agent ID ... -- 'echo hi'`
 * (one `--agent` per host: the same batch call as `--label`), a fresh process
 * per run, until every host's output is printed and the command exits.
 */
async function platformCold(cluster: Cluster, n: number): Promise<number> {
  const ids = cluster.agentIds.slice(0, n);
  const r = await timed(
    process.execPath,
    [APCTL, 'run', ...ids.flatMap((id) => ['--agent', id]), '--', 'echo hi'],
    { APCTL_SERVER: cluster.http, APCTL_TOKEN: TEST_ADMIN_TOKEN },
  );
  if (r.code !== 0) throw new Error(`apctl run failed (exit ${r.code}): ${r.out.slice(-400)}`);
  const his = r.out.split('\n').filter((l) => /(^|\s)hi$/.test(l)).length;
  if (his !== n) throw new Error(`apctl run printed ${his} of ${n} answers: ${r.out.slice(-400)}`);
  return r.ms;
}

/**
 * The floor: N `sh -c 'echo hi'` processes started at once by the smallest
 * launcher there is (a `sh` loop, ~1 MB to fork, against ~100 MB for this Node
 * process), their output read through one pipe, nothing else: no network, no
 * agent, nothing stored. Every tool here runs the script in a process of its
 * own on each of the N hosts, and the N hosts share this machine's two cores,
 * so none can finish in less. The launcher's own start (the same loop with no
 * child, in the same round) is taken off, which only lowers the floor.
 */
async function bareFloor(n: number): Promise<number> {
  const loop = (count: number) =>
    timed('sh', ['-c', `i=0; while [ "$i" -lt ${count} ]; do sh -c 'echo hi' & i=$((i+1)); done; wait`]);
  const empty = await loop(0);
  const full = await loop(n);
  const his = full.out.split('\n').filter((l) => l === 'hi').length;
  if (full.code !== 0 || his !== n)
    throw new Error(`bare floor printed ${his} of ${n} answers: ${full.out.slice(-200)}`);
  return Math.max(0, full.ms - empty.ms);
}

// ---------------------------------------------------------------- main

type Tool =
  | 'bare'
  | 'platform_stored'
  | 'platform_warm'
  | 'platform_cold'
  | 'pdsh_cold'
  | 'pdsh_warm'
  | 'ansible_cold'
  | 'ansible_warm';
const LABELS: Record<Tool, string> = {
  bare: "floor: N `sh -c 'echo hi'` started at once by a `sh` loop, no tool",
  platform_stored: 'platform, as stored (first created_at -> last completed_at)',
  platform_warm: 'platform, warm client (one batch REST call, follow=1)',
  platform_cold: 'platform, `apctl run --agent ... -- echo hi` (fresh process per run)',
  pdsh_cold: 'pdsh -R ssh, plain ssh',
  pdsh_warm: 'pdsh -R ssh, ssh ControlMaster kept open',
  ansible_cold: 'ansible ad-hoc, pipelining, no ControlPersist',
  ansible_warm: 'ansible ad-hoc, pipelining + ControlPersist (warm)',
};
const results = new Map<Tool, Map<number, number>>();
const record = (t: Tool, n: number, ms: number[]) => {
  if (!results.has(t)) results.set(t, new Map());
  results.get(t)?.set(n, median(ms));
};
const skipped: string[] = [];

const unavailable = ensureTools();
// Whatever else runs on this machine skews every number: measure it first.
const m0 = machineCpu();
await sleep(2000);
const m1 = machineCpu();
const otherLoad = round((100 * (m1.busy - m0.busy)) / (m1.total - m0.total), 0);
for (const t of ['pdsh', 'ansible']) if (!TOOLS.has(t)) unavailable.set(t, `${t}: not asked for (--tools)`);
if (!TOOLS.has('pdsh') && !TOOLS.has('ansible')) unavailable.set('sshd', 'sshd: not needed');
for (const [, why] of unavailable) skipped.push(why);
// The tools take turns within every round, so that they share the machine's
// state: its speed drifts by 2x within minutes and hypervisor steal comes and
// goes (run one after the other, the platform once had 30 % steal against the
// ssh tools' 15 %). Steal over the whole run is reported.
const mRun = machineCpu();
const cluster = TOOLS.has('platform') ? await startCluster('compare', MAX) : undefined;
let rig: SshRig | undefined;
/** Runs an ssh tool; its first failure is reported and stops the ssh tools, not the bench. */
const viaSsh = async (what: (rig: SshRig) => Promise<number>): Promise<number | undefined> => {
  if (!rig) return undefined;
  try {
    return await what(rig);
  } catch (err) {
    skipped.push(`ssh tools: ${err instanceof Error ? err.message : String(err)}`);
    await rig.stop();
    rig = undefined;
    return undefined;
  }
};
try {
  if (!unavailable.has('sshd')) {
    try {
      rig = await startSshRig(MAX);
    } catch (err) {
      skipped.push(`ssh tools: ${err instanceof Error ? err.message : String(err)}`);
    }
  } else skipped.push('pdsh and ansible need sshd');
  const pdsh = !unavailable.has('pdsh');
  const ansible = !unavailable.has('ansible');
  for (const n of HOSTS) {
    // Warm-ups: the platform's first batch; pdsh once plain and once opening
    // its ControlMaster connections; Ansible opening its persistent ones.
    if (cluster) await platformWarm(cluster, n);
    if (pdsh) {
      await viaSsh((r) => pdshRun(r, n, false));
      await viaSsh((r) => pdshRun(r, n, true));
    }
    if (ansible) await viaSsh((r) => ansibleRun(r, n, true, 0));
    const samples = new Map<Tool, number[]>();
    const add = (t: Tool, ms: number | undefined) => {
      if (ms !== undefined) samples.set(t, [...(samples.get(t) ?? []), ms]);
    };
    for (let r = 0; r < RUNS; r++) {
      add('bare', await bareFloor(n));
      if (cluster) {
        const w = await platformWarm(cluster, n);
        add('platform_warm', w.ms);
        add('platform_stored', w.storedMs);
        add('platform_cold', await platformCold(cluster, n));
      }
      if (pdsh) {
        add('pdsh_cold', await viaSsh((rg) => pdshRun(rg, n, false)));
        add('pdsh_warm', await viaSsh((rg) => pdshRun(rg, n, true)));
      }
      if (ansible) {
        add('ansible_cold', await viaSsh((rg) => ansibleRun(rg, n, false, r)));
        add('ansible_warm', await viaSsh((rg) => ansibleRun(rg, n, true, 0)));
      }
    }
    for (const [t, ms] of samples) if (ms.length === RUNS) record(t, n, ms);
  }
} finally {
  await cluster?.stop();
  await rig?.stop();
}
const steal = round(stealPct(mRun, machineCpu()), 0);

for (const s of skipped) console.error(`skipped: ${s}`);
const rows: (string | number)[][] = [];
const json: Record<string, unknown> = {
  bench: 'compare',
  runs: RUNS,
  hosts: HOSTS,
  machine_busy_before_pct: otherLoad,
  steal_pct: steal,
};
for (const [tool, byN] of results) {
  rows.push([LABELS[tool], ...HOSTS.map((n) => (byN.has(n) ? round(byN.get(n) ?? NaN, 0) : '-'))]);
  for (const [n, ms] of byN) json[`${tool}_${n}_ms`] = round(ms, 1);
}
const ratio = (a: Tool, b: Tool, n: number) => {
  const x = results.get(a)?.get(n);
  const y = results.get(b)?.get(n);
  return x !== undefined && y !== undefined ? round(x / y, 1) : null;
};
for (const n of HOSTS) {
  for (const other of ['pdsh_cold', 'pdsh_warm', 'ansible_cold', 'ansible_warm'] as Tool[]) {
    for (const p of ['platform_warm', 'platform_cold', 'bare'] as Tool[]) {
      const r = ratio(other, p, n);
      if (r !== null) json[`${other}_over_${p}_${n}`] = r;
    }
  }
}
for (const other of ['pdsh_cold', 'pdsh_warm', 'ansible_cold', 'ansible_warm'] as Tool[]) {
  const cells = HOSTS.map((n) => {
    const w = ratio(other, 'platform_warm', n);
    const c = ratio(other, 'platform_cold', n);
    return w === null ? '-' : `${w}x / ${c}x`;
  });
  if (results.has(other))
    rows.push([`${other.replace('_', ' ')} time / platform time (warm / cold client)`, ...cells]);
}
// The best ratio any tool that starts a process per host could reach on this
// machine: a goal above it cannot be met here, whatever the platform does.
for (const other of ['pdsh_cold', 'pdsh_warm', 'ansible_cold', 'ansible_warm'] as Tool[]) {
  if (results.has(other))
    rows.push([
      `${other.replace('_', ' ')} time / floor time (the most any tool could reach here)`,
      ...HOSTS.map((n) => {
        const r = ratio(other, 'bare', n);
        return r === null ? '-' : `${r}x`;
      }),
    ]);
}
report(
  `compare: \`echo hi\` on N hosts, median wall ms of ${RUNS} runs, the tools taking turns in every round (machine ${otherLoad} % busy before; hypervisor steal ${steal} % during the run)`,
  ['what', ...HOSTS.map((n) => `N = ${n}`)],
  rows,
  { ...json, goal_pdsh_ratio_at_50: 10, goal_ansible_ratio_at_50: 50, skipped },
);
