/**
 * Turning a TaskSpec into something to exec: the user, the environment, the
 * script file and the interpreter. Every failure here is a TaskSetupError whose
 * message is the result's `error` text.
 */
import { execFile } from 'node:child_process';
import {
  accessSync,
  chownSync,
  readFileSync,
  realpathSync,
  constants as fsConstants,
  mkdirSync,
  rmdirSync,
  statfsSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { access, chmod, lstat, mkdir, readFile, rm, rmdir, stat, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { TaskSpec } from './types.js';

const execFileAsync = promisify(execFile);

/** A task that cannot start; `exitCode` is -1, or 127/126 for a missing/unusable interpreter. */
export class TaskSetupError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = -1,
  ) {
    super(message);
    this.name = 'TaskSetupError';
  }
}

/** The PATH of a clean environment (the one sudo's secure_path uses). */
export const CLEAN_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface TaskUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

let agentUserCache: TaskUser | null = null;

/** The user the agent runs as (looked up once; it does not change while the agent runs). */
export function agentUser(): TaskUser {
  if (!agentUserCache) {
    const info = os.userInfo();
    agentUserCache = {
      name: info.username,
      uid: info.uid,
      gid: info.gid,
      home: info.homedir,
      shell: info.shell ?? '/bin/sh',
    };
  }
  return agentUserCache;
}

function parsePasswdLine(line: string): TaskUser | null {
  const [name, , uid, gid, , home, shell] = line.trim().split(':');
  if (!name || uid === undefined || gid === undefined) return null;
  return { name, uid: Number(uid), gid: Number(gid), home: home ?? '/', shell: shell || '/bin/sh' };
}

/**
 * Looks a user up by name or uid through NSS (`getent`), falling back to
 * /etc/passwd where getent is missing.
 */
export async function lookupUser(nameOrUid: string): Promise<TaskUser> {
  try {
    const { stdout } = await execFileAsync('getent', ['passwd', nameOrUid], { timeout: 10_000 });
    const user = parsePasswdLine(stdout.split('\n')[0] ?? '');
    if (user) return user;
  } catch (err) {
    // getent exits 2 for "no such key"; anything else (ENOENT) means try the file.
    if ((err as { code?: unknown }).code === 2) throw new TaskSetupError(`unknown user: ${nameOrUid}`);
  }
  const passwd = await readFile('/etc/passwd', 'utf8').catch(() => '');
  for (const line of passwd.split('\n')) {
    const user = parsePasswdLine(line);
    if (user && (user.name === nameOrUid || String(user.uid) === nameOrUid)) return user;
  }
  throw new TaskSetupError(`unknown user: ${nameOrUid}`);
}

/** The user to run as, or null for the agent's own user. Refuses when the agent is not root. */
export async function resolveRunAs(runAs: string): Promise<TaskUser | null> {
  if (runAs === '') return null;
  const me = agentUser();
  if (runAs === me.name || runAs === String(me.uid)) return null;
  if (me.uid !== 0) {
    throw new TaskSetupError(
      `run_as ${runAs} needs the agent to run as root; it runs as ${me.name} (uid ${me.uid})`,
    );
  }
  return lookupUser(runAs);
}

/** A plain copy of process.env (reading a plain object is far cheaper than process.env). */
export function snapshotEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  return env;
}

/**
 * The task's environment: the agent's (`base`, default process.env now; or a
 * minimal one when `cleanEnv`), then the run-as user's identity and the clean
 * PATH, then `spec.env`, which wins.
 */
export function buildEnv(
  spec: TaskSpec,
  user: TaskUser | null,
  base?: Readonly<Record<string, string>>,
): Record<string, string> {
  let env: Record<string, string>;
  if (spec.cleanEnv) {
    env = { PATH: CLEAN_PATH };
    const lang = base ? base.LANG : process.env.LANG;
    if (lang) env.LANG = lang;
  } else {
    env = base ? { ...base } : snapshotEnv();
  }
  if (spec.cleanEnv || user) {
    const who = user ?? agentUser();
    // The agent's PATH may hold directories only the agent's user can read
    // (e.g. root's ~/.pyenv); like sudo's secure_path, another user gets the clean one.
    if (user) env.PATH = CLEAN_PATH;
    env.HOME = who.home;
    env.USER = who.name;
    env.LOGNAME = who.name;
    env.SHELL = who.shell;
  }
  // Python block-buffers a piped stdout; operators expect lines as they are printed.
  if (spec.type === 'python') env.PYTHONUNBUFFERED = '1';
  Object.assign(env, spec.env);
  return env;
}

/** The interpreter of a `#!` line: the path and at most one argument, as Linux reads it. */
export function parseShebang(script: string): { interpreter: string; arg: string | null } | null {
  if (!script.startsWith('#!')) return null;
  const end = script.indexOf('\n');
  const line = (end === -1 ? script.slice(2) : script.slice(2, end)).replace(/\r$/, '').trim();
  if (line === '') return null;
  const m = /^(\S+)(?:\s+(.*))?$/.exec(line);
  if (!m?.[1]) return null;
  return { interpreter: m[1], arg: m[2]?.trim() || null };
}

async function checkExecutable(file: string): Promise<void> {
  try {
    await access(file, fsConstants.X_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR')
      throw new TaskSetupError(`interpreter not found: ${file}`, 127);
    throw new TaskSetupError(`interpreter not executable: ${file} (${code ?? 'error'})`, 126);
  }
}

async function findInPath(name: string, envPath: string): Promise<string | null> {
  for (const dir of envPath.split(':')) {
    if (dir === '') continue;
    const candidate = path.join(dir, name);
    try {
      await access(candidate, fsConstants.X_OK);
      if ((await stat(candidate)).isFile()) return candidate;
    } catch {
      // not here
    }
  }
  return null;
}

/** argv for running the script file: shebang interpreter, /bin/sh, or python3 from the task's PATH. */
export async function interpreterCommand(
  spec: TaskSpec,
  scriptFile: string,
  env: Record<string, string>,
): Promise<string[]> {
  if (spec.type === 'python') {
    const envPath = env.PATH ?? CLEAN_PATH;
    const python = await findInPath('python3', envPath);
    if (!python) throw new TaskSetupError(`interpreter not found: python3 (PATH=${envPath})`, 127);
    return [python, scriptFile, ...spec.args];
  }
  // The shebang is parsed here rather than left to execve so that a missing
  // interpreter gets its own error instead of an ENOENT that looks like a missing script.
  const shebang = parseShebang(spec.script);
  if (!shebang) return ['/bin/sh', scriptFile, ...spec.args];
  if (!path.isAbsolute(shebang.interpreter)) {
    throw new TaskSetupError(
      `interpreter not found: ${shebang.interpreter} (a #! path must be absolute)`,
      127,
    );
  }
  await checkExecutable(shebang.interpreter);
  return [shebang.interpreter, ...(shebang.arg ? [shebang.arg] : []), scriptFile, ...spec.args];
}

/**
 * Makes the executor's work directory: owned by the agent's user, not a
 * symlink (it usually sits in world-writable /tmp), mode 0711 so a run-as user
 * can reach its own task directory without listing the others.
 */
export async function ensureWorkDir(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o711 });
  const st = await lstat(dir);
  if (!st.isDirectory() || st.uid !== os.userInfo().uid) {
    throw new TaskSetupError(`work directory ${dir} is not a directory owned by the agent`);
  }
  if ((st.mode & 0o777) !== 0o711) await chmod(dir, 0o711);
}

/**
 * A fresh per-task directory holding the script file (mode 0700); chowned to
 * the run-as user. Synchronous: three small syscalls cost less than three hops
 * through the thread pool (bench/executor.ts). `name` must be unique.
 */
export function writeScript(
  workDir: string,
  name: string,
  spec: TaskSpec,
  user: TaskUser | null,
): { dir: string; scriptFile: string } {
  const { dir, scriptFile } = scriptPath(workDir, name, spec);
  mkdirSync(dir, { mode: 0o700 });
  writeFileSync(scriptFile, spec.script, { mode: 0o700 });
  if (user) {
    chownSync(dir, user.uid, user.gid);
    chownSync(scriptFile, user.uid, user.gid);
  }
  return { dir, scriptFile };
}

/** Where a task's directory and script file go. */
export function scriptPath(
  workDir: string,
  name: string,
  spec: TaskSpec,
): { dir: string; scriptFile: string } {
  const dir = path.join(workDir, name);
  return { dir, scriptFile: path.join(dir, spec.type === 'python' ? 'script.py' : 'script.sh') };
}

/** statfs(2) f_type of tmpfs (linux/magic.h). */
const TMPFS_MAGIC = 0x01021994;

/** Whether `dir` is on a tmpfs (false when it cannot be told, e.g. it does not exist). */
export function onTmpfs(dir: string): boolean {
  try {
    return statfsSync(dir).type === TMPFS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * The options of the mount that holds `dir` (an absolute, resolved path), from
 * a /proc/self/mounts text: of the mount points that contain it, the longest,
 * and of equal ones the last mounted. Empty when none is found.
 */
export function mountOptions(dir: string, mounts: string): string[] {
  let best = '';
  let options: string[] = [];
  for (const line of mounts.split('\n')) {
    const fields = line.split(' ');
    if (fields.length < 4) continue;
    // Spaces, tabs, newlines and backslashes in a mount point are octal escapes.
    const point = (fields[1] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) =>
      String.fromCharCode(parseInt(o, 8)),
    );
    const contains = point === '/' || dir === point || dir.startsWith(`${point}/`);
    if (contains && point.length >= best.length) {
      best = point;
      options = (fields[3] ?? '').split(',');
    }
  }
  return options;
}

/**
 * The default work directory: `<tmp>/agent-platform-tasks` when the temp
 * directory is a tmpfs, else `/dev/shm/agent-platform-tasks` when that is a
 * tmpfs this user can write to and not mounted `noexec` where the temp
 * directory is not, else under the temp directory. On a journaling file system
 * a task directory's mkdir and rmdir wait behind every fsync of the host
 * (PostgreSQL's, the agent's journal); on tmpfs they take microseconds
 * (docs/decisions/0007).
 */
export function defaultWorkDir(tmp: string = os.tmpdir(), shm = '/dev/shm'): string {
  const here = path.join(tmp, 'agent-platform-tasks');
  if (onTmpfs(tmp) || !onTmpfs(shm)) return here;
  try {
    accessSync(shm, fsConstants.W_OK | fsConstants.X_OK);
  } catch {
    return here; // not writable for this user
  }
  let mounts = '';
  try {
    mounts = readFileSync('/proc/self/mounts', 'utf8');
  } catch {
    // unknown: no reason to stay
  }
  const noexec = (dir: string): boolean => {
    try {
      return mountOptions(realpathSync(dir), mounts).includes('noexec');
    } catch {
      return false;
    }
  };
  // A task may build and run a program in its working directory.
  if (noexec(shm) && !noexec(tmp)) return here;
  return path.join(shm, 'agent-platform-tasks');
}

/**
 * Removes a task directory. The common case (only the script left) is two
 * syscalls. `sync` (a work directory on tmpfs, ~10 µs) makes them here: through
 * the thread pool they would cost more CPU on the event loop (two submissions,
 * two completions, two thread wake-ups). On a journaling file system an rmdir
 * can wait tens of milliseconds behind other processes' fsyncs, so there they
 * go through the thread pool and never stall the event loop.
 */
export async function removeTaskDir(dir: string, scriptFile: string, sync: boolean): Promise<void> {
  try {
    if (sync) {
      unlinkSync(scriptFile);
      rmdirSync(dir);
    } else {
      await unlink(scriptFile);
      await rmdir(dir);
    }
  } catch {
    // The script left files behind (or removed its own): the general way.
    await rm(dir, { recursive: true, force: true });
  }
}

/** Checks an explicit working directory before spawn, whose ENOENT would not say which path is missing. */
export async function checkWorkingDir(dir: string): Promise<void> {
  try {
    if (!(await stat(dir)).isDirectory())
      throw new TaskSetupError(`working directory is not a directory: ${dir}`);
  } catch (err) {
    if (err instanceof TaskSetupError) throw err;
    throw new TaskSetupError(`working directory not found: ${dir}`);
  }
}

/** A name safe for file and cgroup paths. */
export function safeName(taskId: string): string {
  const cleaned = taskId.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
  return cleaned === '' || cleaned.startsWith('.') ? `task${cleaned}` : cleaned;
}
