/**
 * Per-task cgroups: limits (memory, cpu, processes) and a container that
 * catches every process of a task, including those that called setsid.
 *
 * Probed once per executor. Preference per limit: cgroup v2 where the
 * controller can be delegated, else cgroup v1, else the caller falls back to
 * prlimit. Containment: a v2 cgroup (killed with cgroup.kill) even when v2 has
 * no controllers (this hybrid host), else the v1 pids or memory cgroup.
 * Task cgroup files are written synchronously: cgroupfs calls take microseconds,
 * and a hop through the libuv thread pool per call cost ~0.05 ms each (bench/executor.ts).
 * Task cgroups are nested under the agent's own cgroup in each hierarchy
 * (`<own>/agent-platform/<task>`), so a supervisor's accounting of the agent
 * still covers its tasks.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { mkdir, readFile, readdir, rmdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import { describeError } from './errors.js';
import type { EnforcedLimit, TaskLimits } from './types.js';

type Controller = 'memory' | 'pids' | 'cpu';

/** The cgroups of one task, across hierarchies. */
export interface TaskCgroup {
  /** cgroup.procs files the task's first process must join before it runs the script. */
  readonly procsFiles: readonly string[];
  /**
   * The task's cgroup v2 directory, or null. The spawn helper creates the
   * task's process in it (clone3 CLONE_INTO_CGROUP) instead of writing its
   * cgroup.procs, which waits for an RCU grace period (7-20 ms when migrations
   * are rare); then only `v1ProcsFiles` are written.
   */
  readonly v2Dir: string | null;
  /** The cgroup.procs files of the task's v1 cgroups (the rest of `procsFiles`). */
  readonly v1ProcsFiles: readonly string[];
  /** Limits these cgroups apply. */
  readonly enforced: readonly EnforcedLimit[];
  /**
   * Moves a process into every cgroup of the task (used right after spawn when
   * no wrapper joined them). Synchronous so it lands before the event loop does
   * anything else; a migration takes the kernel's cgroup_threadgroup_rwsem for
   * writing: ~0.1-0.2 ms back to back, 7-20 ms when migrations are rare (an RCU
   * grace period), the largest part of a task's start latency.
   */
  join(pid: number): void;
  /** Sends a signal to every process in the task's containment cgroup. */
  signalAll(signal: NodeJS.Signals): void;
  /** SIGKILLs every process in the containment cgroup until it is empty (bounded by a deadline). */
  killAll(): Promise<void>;
  /** The kernel OOM-killed a process of the task. */
  memoryLimitHit(): boolean;
  /** A fork or clone failed because of the process limit. */
  processLimitHit(): boolean;
  /** Removes the cgroup directories (after killAll). */
  remove(): Promise<void>;
}

/** What the probe found, for logs and docs. */
export interface CgroupCapabilities {
  /** Base directory of the v2 hierarchy for tasks, or null. */
  v2Base: string | null;
  /** Controllers delegated to task cgroups in v2. */
  v2Controllers: Controller[];
  /** v2 cgroups have cgroup.kill (kernel >= 5.14). */
  v2Kill: boolean;
  /** Base directory per v1 controller usable for tasks. */
  v1Bases: Partial<Record<Controller, string>>;
  /** Why a hierarchy or controller is not used, in words. */
  unavailable: string[];
}

/** Creates task cgroups; `create` returns null where the host has no usable cgroups. */
export interface CgroupManager {
  readonly capabilities: CgroupCapabilities;
  /** Which limits cgroups can enforce here. */
  canEnforce(limit: 'memory' | 'cpu' | 'processes'): boolean;
  create(name: string, limits: TaskLimits): Promise<TaskCgroup | null>;
  /** Removes the idle pooled cgroups (containment cgroups kept for reuse). */
  close?(): Promise<void>;
}

/**
 * Containment cgroups of tasks without limits are kept, empty, for the next such
 * task instead of being removed and made again: a cgroup mkdir + rmdir costs
 * ~0.1-0.3 ms of kernel time per task (rmdir takes the cgroup offline). At most
 * this many idle ones are kept; they are named `pool-<random>-<n>`, not after a task.
 */
const CGROUP_POOL_MAX = 32;
const POOL_NAME = /^pool-(\d+)-(\d+)-\d+$/;
/** Numbers pooled cgroups across the managers of one process (tests make several). */
let pooledSerial = 0;

/** A process's start time (clock ticks since boot, /proc/PID/stat field 22), or null if it is gone. */
function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * Removes the idle pooled cgroups of agents that are gone (their pid is dead or
 * now another process). rmdir removes only empty cgroups, so anything still
 * running in one keeps it.
 */
async function sweepDeadPools(base: string, logger: Logger): Promise<void> {
  let names: string[];
  try {
    names = await readdir(base);
  } catch {
    return;
  }
  let removed = 0;
  for (const name of names) {
    const m = POOL_NAME.exec(name);
    if (!m?.[1] || !m[2]) continue;
    if (processStartTime(Number(m[1])) === m[2]) continue;
    try {
      await rmdir(path.join(base, name));
      removed++;
    } catch {
      // not empty, or raced with another agent's sweep
    }
  }
  if (removed > 0) logger.info({ removed, base }, 'removed pooled cgroups of dead agents');
}

const CPU_PERIOD_US = 100_000;

/** A manager that never creates cgroups (hosts without them, and tests of the fallbacks). */
export function createNoCgroupManager(reason: string): CgroupManager {
  return {
    capabilities: { v2Base: null, v2Controllers: [], v2Kill: false, v1Bases: {}, unavailable: [reason] },
    canEnforce: () => false,
    create: () => Promise.resolve(null),
  };
}

interface MountEntry {
  root: string;
  mountPoint: string;
  fsType: string;
  superOptions: string[];
}

function parseMountInfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const fields = left.split(' ');
    const [fsType, , superOpts] = right.split(' ');
    const root = fields[3];
    const mountPoint = fields[4];
    if (!root || !mountPoint || !fsType) continue;
    entries.push({
      root,
      mountPoint: unescapeMount(mountPoint),
      fsType,
      superOptions: (superOpts ?? '').split(','),
    });
  }
  return entries;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Own cgroup path per v1 controller, and the v2 path under key ''. */
function parseProcCgroup(text: string): Map<string, string> {
  const own = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    const controllers = m[2] ?? '';
    const p = m[3] ?? '/';
    if (controllers === '') own.set('', p);
    for (const c of controllers.split(',')) if (c) own.set(c, p);
  }
  return own;
}

/** The directory of a cgroup path inside a mount, accounting for mounts of a sub-tree. */
function cgroupDir(mount: MountEntry, cgroupPath: string): string {
  let rel = cgroupPath;
  if (mount.root !== '/' && (rel === mount.root || rel.startsWith(`${mount.root}/`)))
    rel = rel.slice(mount.root.length);
  return path.join(mount.mountPoint, rel);
}

const LIMIT_FILE: Record<'v1' | 'v2', Record<Controller, string>> = {
  v1: { memory: 'memory.limit_in_bytes', pids: 'pids.max', cpu: 'cpu.cfs_quota_us' },
  v2: { memory: 'memory.max', pids: 'pids.max', cpu: 'cpu.max' },
};

async function probeDir(base: string, check: (dir: string) => Promise<void>): Promise<void> {
  await mkdir(base, { recursive: true });
  const dir = path.join(base, `probe-${process.pid}-${Date.now()}`);
  await mkdir(dir);
  try {
    await check(dir);
  } finally {
    await rmdir(dir).catch(() => undefined);
  }
}

/**
 * Probes the host's cgroups once. Never throws: whatever fails is recorded in
 * `capabilities.unavailable` and not used.
 */
export async function createCgroupManager(logger: Logger): Promise<CgroupManager> {
  const caps: CgroupCapabilities = {
    v2Base: null,
    v2Controllers: [],
    v2Kill: false,
    v1Bases: {},
    unavailable: [],
  };
  let mounts: MountEntry[];
  let own: Map<string, string>;
  try {
    mounts = parseMountInfo(await readFile('/proc/self/mountinfo', 'utf8'));
    own = parseProcCgroup(await readFile('/proc/self/cgroup', 'utf8'));
  } catch (err) {
    return createNoCgroupManager(`cannot read /proc: ${describeError(err)}`);
  }

  const v2Mount = mounts.find((m) => m.fsType === 'cgroup2');
  const v2Own = own.get('');
  if (v2Mount && v2Own !== undefined) {
    const ownDir = cgroupDir(v2Mount, v2Own);
    const base = path.join(ownDir, 'agent-platform');
    try {
      const available = (await readFile(path.join(ownDir, 'cgroup.controllers'), 'utf8')).trim().split(/\s+/);
      await mkdir(base, { recursive: true });
      for (const c of ['memory', 'pids', 'cpu'] as const) {
        if (!available.includes(c)) continue;
        try {
          // Fails with EBUSY when the agent's own cgroup holds processes and is not the root
          // (no internal processes rule); then v2 is used for containment only.
          await writeFile(path.join(ownDir, 'cgroup.subtree_control'), `+${c}`);
          await writeFile(path.join(base, 'cgroup.subtree_control'), `+${c}`);
          caps.v2Controllers.push(c);
        } catch (err) {
          caps.unavailable.push(`cgroup v2 ${c} controller not delegable: ${describeError(err)}`);
        }
      }
      await probeDir(base, async (dir) => {
        caps.v2Kill = existsSync(path.join(dir, 'cgroup.kill'));
        for (const c of caps.v2Controllers) await readFile(path.join(dir, LIMIT_FILE.v2[c]), 'utf8');
      });
      caps.v2Base = base;
      if (caps.v2Controllers.length === 0)
        caps.unavailable.push('cgroup v2 has no memory/pids/cpu controller here');
    } catch (err) {
      caps.v2Controllers = [];
      caps.unavailable.push(`cgroup v2 not writable: ${describeError(err)}`);
    }
  } else {
    caps.unavailable.push('no cgroup v2 mount');
  }

  for (const c of ['memory', 'pids', 'cpu'] as const) {
    if (caps.v2Controllers.includes(c)) continue;
    const mount = mounts.find((m) => m.fsType === 'cgroup' && m.superOptions.includes(c));
    const ownPath = own.get(c);
    if (!mount || ownPath === undefined) {
      caps.unavailable.push(`no cgroup v1 ${c} hierarchy`);
      continue;
    }
    const base = path.join(cgroupDir(mount, ownPath), 'agent-platform');
    try {
      await probeDir(base, async (dir) => {
        const file = path.join(dir, LIMIT_FILE.v1[c]);
        // Write the "unlimited" value back: proves the limit file is writable.
        await writeFile(file, c === 'pids' ? 'max' : '-1');
      });
      caps.v1Bases[c] = base;
    } catch (err) {
      caps.unavailable.push(`cgroup v1 ${c} controller not writable: ${describeError(err)}`);
    }
  }

  logger.info({ cgroups: caps }, 'cgroups probed');
  // Pooled cgroups of agents that died (SIGKILL, crash) would pile up with every restart.
  const poolBase = caps.v2Base ?? caps.v1Bases.pids;
  if (poolBase) await sweepDeadPools(poolBase, logger);
  const pool: { cgroup: TaskCgroup; destroy(): Promise<void> }[] = [];
  // pid + start time: whose pool it is, even after the pid is reused.
  const poolPrefix = `pool-${process.pid}-${processStartTime(process.pid) ?? 0}`;
  let closed = false;
  const giveBack = (cgroup: TaskCgroup, destroy: () => Promise<void>): boolean => {
    if (closed || pool.length >= CGROUP_POOL_MAX) return false;
    pool.push({ cgroup, destroy });
    return true;
  };
  return {
    capabilities: caps,
    canEnforce(limit) {
      const c: Controller = limit === 'processes' ? 'pids' : limit;
      return caps.v2Controllers.includes(c) || caps.v1Bases[c] !== undefined;
    },
    create(name, limits) {
      const limitless = limits.memoryBytes <= 0 && limits.cpuMillicores <= 0 && limits.maxProcesses <= 0;
      if (!limitless) return Promise.resolve(createTaskCgroup(caps, name, limits, logger));
      const reused = pool.pop();
      if (reused) return Promise.resolve(reused.cgroup);
      return Promise.resolve(
        createTaskCgroup(caps, `${poolPrefix}-${++pooledSerial}`, limits, logger, giveBack),
      );
    },
    async close() {
      closed = true;
      const idle = pool.splice(0);
      for (const entry of idle) await entry.destroy();
    },
  };
}

interface Member {
  dir: string;
  version: 1 | 2;
}

function createTaskCgroup(
  caps: CgroupCapabilities,
  name: string,
  limits: TaskLimits,
  logger: Logger,
  /** For a pooled (limitless) cgroup: takes it back instead of removing it; false = remove. */
  giveBack?: (cg: TaskCgroup, destroy: () => Promise<void>) => boolean,
): TaskCgroup | null {
  const members: Member[] = [];
  const enforced: EnforcedLimit[] = [];
  let memoryDir: Member | null = null;
  let pidsDir: Member | null = null;
  const made: string[] = [];
  try {
    if (caps.v2Base) {
      const dir = path.join(caps.v2Base, name);
      mkdirSync(dir);
      made.push(dir);
      const m: Member = { dir, version: 2 };
      members.push(m);
      if (limits.memoryBytes > 0 && caps.v2Controllers.includes('memory')) {
        writeFileSync(path.join(dir, 'memory.max'), String(limits.memoryBytes));
        // Without this the limit would only push the task into swap.
        tryWrite(path.join(dir, 'memory.swap.max'), '0');
        enforced.push({ name: 'memory', mechanism: 'cgroup2', value: limits.memoryBytes });
        memoryDir = m;
      }
      if (limits.maxProcesses > 0 && caps.v2Controllers.includes('pids')) {
        writeFileSync(path.join(dir, 'pids.max'), String(limits.maxProcesses));
        enforced.push({ name: 'processes', mechanism: 'cgroup2', value: limits.maxProcesses });
        pidsDir = m;
      }
      if (limits.cpuMillicores > 0 && caps.v2Controllers.includes('cpu')) {
        writeFileSync(path.join(dir, 'cpu.max'), `${cpuQuotaUs(limits.cpuMillicores)} ${CPU_PERIOD_US}`);
        enforced.push({ name: 'cpu', mechanism: 'cgroup2', value: limits.cpuMillicores });
      }
    }
    const v1 = (c: Controller, write: (dir: string) => void): Member | null => {
      const base = caps.v1Bases[c];
      if (!base) return null;
      const dir = path.join(base, name);
      mkdirSync(dir);
      made.push(dir);
      write(dir);
      const m: Member = { dir, version: 1 };
      members.push(m);
      return m;
    };
    if (limits.memoryBytes > 0 && !memoryDir) {
      memoryDir = v1('memory', (dir) => {
        writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limits.memoryBytes));
        // memsw (memory + swap) must be >= the memory limit, so it is written second.
        if (existsSync(path.join(dir, 'memory.memsw.limit_in_bytes'))) {
          writeFileSync(path.join(dir, 'memory.memsw.limit_in_bytes'), String(limits.memoryBytes));
        }
      });
      if (memoryDir) enforced.push({ name: 'memory', mechanism: 'cgroup1', value: limits.memoryBytes });
    }
    // Without v2, the v1 pids cgroup is also the container that catches setsid escapees,
    // so it is made even when no process limit is asked for.
    const wantPids = limits.maxProcesses > 0 && !pidsDir;
    if (wantPids || (!caps.v2Base && !memoryDir)) {
      const m = v1('pids', (dir) =>
        writeFileSync(path.join(dir, 'pids.max'), wantPids ? String(limits.maxProcesses) : 'max'),
      );
      if (m && wantPids) {
        pidsDir = m;
        enforced.push({ name: 'processes', mechanism: 'cgroup1', value: limits.maxProcesses });
      }
    }
    if (limits.cpuMillicores > 0 && !enforced.some((e) => e.name === 'cpu')) {
      const m = v1('cpu', (dir) => {
        writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
        writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(cpuQuotaUs(limits.cpuMillicores)));
      });
      if (m) enforced.push({ name: 'cpu', mechanism: 'cgroup1', value: limits.cpuMillicores });
    }
  } catch (err) {
    logger.warn({ err: describeError(err), cgroup: name }, 'cannot create task cgroup');
    for (const dir of made.reverse()) tryRmdir(dir);
    return null;
  }
  if (members.length === 0) return null;

  // The container: v2 if present (it has cgroup.kill), else a v1 cgroup that every process joins.
  const container = members.find((m) => m.version === 2) ?? pidsDir ?? memoryDir ?? members[0];
  if (!container) return null;
  const containerProcs = path.join(container.dir, 'cgroup.procs');
  const useKillFile = container.version === 2 && caps.v2Kill;
  // cgroup.kill leaves a mark for good: the kernel (6.18) SIGKILLs a process created in
  // a cgroup (clone3 CLONE_INTO_CGROUP) whose kill count differs from its parent's. Such
  // a cgroup is removed rather than pooled.
  let killFileWritten = false;

  const readPids = (): number[] => {
    try {
      return readFileSync(containerProcs, 'utf8')
        .split('\n')
        .filter((s) => s !== '')
        .map(Number);
    } catch {
      return [];
    }
  };
  const counter = (file: string, key: string): number => {
    try {
      const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(readFileSync(file, 'utf8'));
      return m ? Number(m[1]) : 0;
    } catch {
      return 0;
    }
  };

  const destroy = async (): Promise<void> => {
    for (const m of [...members].reverse()) {
      // A killed process leaves its cgroup a moment after the signal; retry briefly.
      for (let attempt = 0; ; attempt++) {
        try {
          await rmdir(m.dir);
          break;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT') break;
          if (attempt >= 50) {
            logger.warn({ err: describeError(err), cgroup: m.dir }, 'cannot remove task cgroup');
            break;
          }
          await sleep(10);
        }
      }
    }
  };
  let seenEmpty = false;
  const cgroup: TaskCgroup = {
    procsFiles: members.map((m) => path.join(m.dir, 'cgroup.procs')),
    v2Dir: members.find((m) => m.version === 2)?.dir ?? null,
    v1ProcsFiles: members.filter((m) => m.version === 1).map((m) => path.join(m.dir, 'cgroup.procs')),
    enforced,
    join(pid) {
      for (const m of members) {
        try {
          writeFileSync(path.join(m.dir, 'cgroup.procs'), String(pid));
        } catch (err) {
          // ESRCH: the process is already gone, nothing to contain.
          if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
        }
      }
    },
    signalAll(signal) {
      for (const pid of readPids()) signalPid(pid, signal);
    },
    async killAll() {
      // Empty once is empty for good: only a member could put a process in it (our
      // helper starts none in a cgroup that is still a task's).
      if (readPids().length === 0) {
        seenEmpty = true;
        return;
      }
      if (useKillFile) {
        killFileWritten = true;
        tryWrite(path.join(container.dir, 'cgroup.kill'), '1');
      }
      // v1 has no atomic kill: repeat until the cgroup is empty, which also catches
      // processes forked between reading the list and the kill.
      const deadline = Date.now() + 5000;
      for (;;) {
        const pids = readPids();
        if (pids.length === 0) {
          seenEmpty = true;
          return;
        }
        if (Date.now() > deadline) {
          logger.warn({ cgroup: container.dir, pids: pids.length }, 'task cgroup still not empty after kill');
          return;
        }
        for (const pid of pids) signalPid(pid, 'SIGKILL');
        await sleep(5);
      }
    },
    memoryLimitHit() {
      if (!memoryDir) return false;
      if (memoryDir.version === 2) return counter(path.join(memoryDir.dir, 'memory.events'), 'oom_kill') > 0;
      const oomControl = path.join(memoryDir.dir, 'memory.oom_control');
      const kills = counter(oomControl, 'oom_kill');
      if (kills > 0) return true;
      // Kernels before 4.13 have no oom_kill counter; under_oom is the next best sign.
      return counter(oomControl, 'under_oom') > 0;
    },
    processLimitHit() {
      if (!pidsDir) return false;
      return counter(path.join(pidsDir.dir, 'pids.events'), 'max') > 0;
    },
    async remove() {
      // Only an empty cgroup is reused: nothing of the last task may be in the next one's.
      if (giveBack && !killFileWritten && (seenEmpty || readPids().length === 0) && giveBack(cgroup, destroy))
        return;
      await destroy();
    },
  };
  return cgroup;
}

function cpuQuotaUs(millicores: number): number {
  // The kernel refuses quotas under 1 ms.
  return Math.max(1000, Math.round((millicores * CPU_PERIOD_US) / 1000));
}

function signalPid(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // ESRCH: already gone.
  }
}

function tryWrite(file: string, value: string): void {
  try {
    writeFileSync(file, value);
  } catch {
    // optional file (absent on this kernel) or a process already gone
  }
}

function tryRmdir(dir: string): void {
  try {
    rmdirSync(dir);
  } catch {
    // best effort on the error path
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
