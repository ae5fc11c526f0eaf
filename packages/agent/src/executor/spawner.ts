/**
 * A small pre-started helper process that forks and execs tasks for the agent.
 *
 * Why: Node's `child_process.spawn` forks the whole agent process (libuv uses
 * fork(), not vfork/posix_spawn, on Linux), and a fork costs in proportion to
 * the parent's mapped memory: ~0.6 ms of agent CPU at 60 MB RSS, ~1.5-2 ms at
 * the ~100-130 MB a busy agent has, half of the agent's CPU per `true` task.
 * A Perl helper of ~5 MB forks in a fraction of that, on its own thread of
 * execution, and the agent's event loop only exchanges two short messages.
 *
 * The helper also joins the child to the task's cgroups *in the child, before
 * exec*, so a task without limits no longer has the window in which it ran
 * outside its containment cgroup, and the agent no longer pays the cgroup
 * migration (~0.1-0.4 ms, blocking) on its event loop.
 *
 * Protocol (stdin of the helper, one message = `<bytes>\n<payload>`, fields
 * separated by NUL):
 *   S id cwd strict dir file uid gid script njoin join... nargv argv... env...
 *                                                          start a task process; with `dir`, the
 *                                                          child first makes it (0700) and writes
 *                                                          `script` to `file` (0700), chowned to
 *                                                          uid:gid unless those are ''
 *   C id                                                   the agent has opened the pipes
 * Helper to agent (stdout, one line each):
 *   P id pid outfd errfd    started; read ends of its stdout/stderr pipes are the
 *                           helper's fds outfd/errfd until C (the agent opens
 *                           /proc/<helper>/fd/<n>, a new reader of the same pipe)
 *   F id errno stage        could not start (stage: mkdir, write, join, chdir, exec); nothing ran
 *   E id errno              pipe/fork failed
 *   X id code signal        the process exited (code -1 when killed by a signal)
 *
 * The helper ignores SIGINT/SIGTERM/SIGHUP/SIGQUIT (a Ctrl-C to the agent's
 * process group must not take the tasks' exit statuses with it) and exits when
 * its stdin closes, i.e. with the agent; tasks then run on as orphans exactly as
 * with a dead agent (the journal finds them by their environment marker).
 * The child gets every signal disposition back to default and an empty mask.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as fsConstants, openSync, closeSync } from 'node:fs';
import { access } from 'node:fs/promises';
import net from 'node:net';
import { constants as osConstants } from 'node:os';
import type { Readable } from 'node:stream';
import type { Logger } from 'pino';
import { describeError } from './errors.js';

/** How a task's main process ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
  error: NodeJS.ErrnoException | null;
}

/** A started task process, from either way of starting one. */
export interface TaskProcess {
  pid: number;
  stdout: Readable;
  stderr: Readable;
  exited: Promise<ExitInfo>;
}

export interface SpawnRequest {
  file: string;
  args: string[];
  cwd: string;
  /** Serialized `K=V` entries. */
  env: string[];
  /** cgroup.procs files the child writes its pid to before exec. */
  joinCgroups: readonly string[];
  /** A failed join fails the start (limits must hold); else it is ignored. */
  joinStrict: boolean;
  /**
   * The task's directory and script file, made by the child before exec (off the
   * agent's event loop, where they blocked behind ext4 journal commits). The
   * script must not contain NUL (the protocol's separator).
   */
  script?: { dir: string; file: string; content: string; owner: { uid: number; gid: number } | null };
}

export type SpawnStage = 'mkdir' | 'write' | 'join' | 'chdir' | 'exec' | 'fork' | 'helper';

export type SpawnOutcome = { process: TaskProcess } | { error: NodeJS.ErrnoException; stage: SpawnStage };

export interface Spawner {
  readonly pid: number;
  start(req: SpawnRequest): Promise<SpawnOutcome>;
  /** True until the helper died or was closed. */
  readonly alive: boolean;
  close(): Promise<void>;
}

const HELPER = String.raw`
use strict; use warnings; use POSIX (); use Fcntl qw(O_WRONLY O_CREAT O_EXCL);
my (%kids, %held);
my $chld = 0;
$SIG{CHLD} = sub { $chld = 1 };
$SIG{$_} = 'IGNORE' for qw(PIPE INT TERM HUP QUIT);
my $buf = '';
sub out { my $s = shift; my $off = 0; while ($off < length $s) { my $n = syswrite(STDOUT, $s, length($s) - $off, $off); if (!defined $n) { next if $!{EINTR}; exit 0; } $off += $n; } }
sub reap {
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    my $st = $?; my $id = delete $kids{$pid}; next unless defined $id;
    if (($st & 127) == 0) { out("X $id " . ($st >> 8) . " 0\n"); } else { out("X $id -1 " . ($st & 127) . "\n"); }
  }
}
sub start {
  my @f = @_;
  my ($id, $cwd, $strict, $sdir, $sfile, $suid, $sgid, $script, $nj) = splice(@f, 0, 9);
  my @join = splice(@f, 0, $nj);
  my $na = shift @f; my @argv = splice(@f, 0, $na); my @env = @f;
  my ($or, $ow, $er, $ew, $sr, $sw);
  unless (pipe($or, $ow) && pipe($er, $ew) && pipe($sr, $sw)) { out("E $id " . ($! + 0) . "\n"); return; }
  my $pid = fork();
  if (!defined $pid) { out("E $id " . ($! + 0) . "\n"); return; }
  if ($pid == 0) {
    close $or; close $er; close $sr;
    $SIG{$_} = 'DEFAULT' for qw(CHLD PIPE INT TERM HUP QUIT);
    POSIX::sigprocmask(POSIX::SIG_SETMASK(), POSIX::SigSet->new());
    POSIX::setsid();
    my $fail = sub { syswrite($sw, ($! + 0) . " " . $_[0]); POSIX::_exit(127); };
    if ($sdir ne '') {
      mkdir($sdir, 0700) or $fail->('mkdir');
      sysopen(my $sf, $sfile, O_WRONLY | O_CREAT | O_EXCL, 0700) or $fail->('write');
      my $off = 0;
      while ($off < length $script) { my $n = syswrite($sf, $script, length($script) - $off, $off); $fail->('write') unless defined $n; $off += $n; }
      close($sf) or $fail->('write');
      if ($suid ne '') { chown($suid, $sgid, $sdir, $sfile) == 2 or $fail->('write'); }
    }
    for my $p (@join) {
      my $fh;
      if (open($fh, '>', $p)) { if (!syswrite($fh, "$$")) { $fail->('join') if $strict; } close $fh; }
      elsif ($strict) { $fail->('join'); }
    }
    chdir($cwd) or $fail->('chdir');
    open(STDIN, '<', '/dev/null');
    POSIX::dup2(fileno($ow), 1); POSIX::dup2(fileno($ew), 2);
    %ENV = map { my ($k, $v) = split(/=/, $_, 2); ($k, defined $v ? $v : '') } @env;
    { no warnings 'exec'; exec { $argv[0] } @argv; }
    $fail->('exec');
  }
  close $ow; close $ew; close $sw;
  my $err = '';
  for (;;) { my $n = sysread($sr, $err, 256, length $err); last if defined $n && $n == 0; next if !defined $n && $!{EINTR}; last if !defined $n; }
  close $sr;
  if ($err ne '') {
    close $or; close $er;
    waitpid($pid, 0);
    my ($errno, $stage) = split(/ /, $err, 2);
    out("F $id $errno $stage\n");
    return;
  }
  $kids{$pid} = $id; $held{$id} = [$or, $er];
  out("P $id $pid " . fileno($or) . " " . fileno($er) . "\n");
}
for (;;) {
  if ($chld) { $chld = 0; reap(); }
  my $rin = ''; vec($rin, 0, 1) = 1;
  # SIGCHLD interrupts select (EINTR); the timeout only covers one that lands
  # between the flag check above and the select call.
  my $ready = select(my $rout = $rin, undef, undef, %kids ? 0.05 : undef);
  next if $ready <= 0;
  my $n = sysread(STDIN, $buf, 65536, length $buf);
  if (!defined $n) { next if $!{EINTR}; last; }
  last if $n == 0;
  for (;;) {
    my $nl = index($buf, "\n"); last if $nl < 0;
    my $len = substr($buf, 0, $nl); last if length($buf) < $nl + 1 + $len;
    my @f = split(/\0/, substr($buf, $nl + 1, $len), -1);
    substr($buf, 0, $nl + 1 + $len) = '';
    my $op = shift @f;
    if ($op eq 'S') { start(@f); }
    elsif ($op eq 'C') { close($_) for @{ delete $held{$f[0]} || [] }; }
  }
}
`;

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));
const SIGNAL_NAMES = new Map<number, NodeJS.Signals>(
  Object.entries(osConstants.signals).map(([k, v]) => [v, k as NodeJS.Signals]),
);

function errnoError(errno: number, what: string): NodeJS.ErrnoException {
  const code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
  const err: NodeJS.ErrnoException = new Error(`${what} ${code}`);
  err.code = code;
  err.errno = -errno;
  return err;
}

async function findPerl(): Promise<string | null> {
  for (const file of ['/usr/bin/perl', '/bin/perl', '/usr/local/bin/perl']) {
    try {
      await access(file, fsConstants.X_OK);
      return file;
    } catch {
      // next
    }
  }
  return null;
}

interface Waiter {
  file: string;
  resolveStart(outcome: SpawnOutcome): void;
  resolveExit?: (exit: ExitInfo) => void;
}

/**
 * Starts the helper and checks, with one `true`, that the agent can open the
 * pipes it hands over. Null (use `child_process.spawn`) without Perl or /proc.
 */
export async function createSpawner(logger: Logger): Promise<Spawner | null> {
  const perl = await findPerl();
  if (!perl) {
    logger.info('no perl: tasks are started with child_process.spawn');
    return null;
  }
  let helper: ChildProcess;
  try {
    helper = spawn(perl, ['-e', HELPER], { stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    logger.warn({ err: describeError(err) }, 'cannot start the spawn helper');
    return null;
  }
  const spawner = wrapHelper(helper, logger);
  try {
    const probe = await spawner.start({
      file: '/bin/sh',
      args: ['-c', 'echo ok'],
      cwd: '/',
      env: ['PATH=/usr/bin:/bin'],
      joinCgroups: [],
      joinStrict: false,
    });
    if ('error' in probe) throw probe.error;
    let out = '';
    probe.process.stdout.on('data', (d: Buffer) => (out += d.toString()));
    probe.process.stderr.resume();
    const [exit] = await Promise.all([
      probe.process.exited,
      new Promise((resolve) => probe.process.stdout.once('close', resolve)),
    ]);
    if (exit.code !== 0 || out !== 'ok\n')
      throw new Error(`probe: exit ${exit.code ?? exit.signal ?? '?'}, output ${JSON.stringify(out)}`);
    return spawner;
  } catch (err) {
    logger.warn(
      { err: describeError(err) },
      'spawn helper unusable: tasks are started with child_process.spawn',
    );
    await spawner.close();
    return null;
  }
}

function wrapHelper(helper: ChildProcess, logger: Logger): Spawner {
  // The helper's pipes are net.Sockets (which can be unref'd), typed as plain streams.
  const stdin = helper.stdin as net.Socket | null;
  const stdout = helper.stdout as net.Socket | null;
  const stderr = helper.stderr as net.Socket | null;
  if (!stdin || !stdout || !stderr || helper.pid === undefined) throw new Error('spawn helper has no pipes');
  const helperPid = helper.pid;
  let alive = true;
  let nextId = 0;
  const waiters = new Map<string, Waiter>();
  // Idle, the helper must not keep the agent's event loop alive.
  let outstanding = 0;
  const hold = () => {
    if (outstanding++ === 0) stdout.ref();
  };
  const release = () => {
    if (--outstanding === 0) stdout.unref();
  };
  helper.unref();
  stdout.unref();
  stderr.unref();
  stdin.unref();

  stderr.setEncoding('utf8');
  stderr.on('data', (d: string) => logger.warn({ helper_stderr: d.trim() }, 'spawn helper wrote to stderr'));
  stdin.on('error', () => undefined);

  const send = (fields: string[]): void => {
    const payload = Buffer.from(fields.join('\0'));
    stdin.write(`${payload.length}\n`);
    stdin.write(payload);
  };

  const openPipe = (fd: string): Readable => {
    const own = openSync(`/proc/${helperPid}/fd/${fd}`, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
    try {
      return new net.Socket({ fd: own, readable: true, writable: false });
    } catch (err) {
      closeSync(own);
      throw err;
    }
  };

  const onLine = (line: string): void => {
    const [kind, id = '', a = '', b = '', c = ''] = line.split(' ');
    const w = waiters.get(id);
    if (!w) return;
    switch (kind) {
      case 'P': {
        const pid = Number(a);
        let out: Readable | undefined;
        let err: Readable | undefined;
        let failure: unknown;
        try {
          out = openPipe(b);
          err = openPipe(c);
        } catch (e) {
          failure = e;
          out?.destroy();
        }
        // The helper may close its copies now.
        send(['C', id]);
        if (!out || !err) {
          // The process runs but its output cannot be read: stop it (the caller
          // also kills the task's cgroup); its exit just releases the waiter.
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            // gone
          }
          w.resolveExit = () => undefined;
          const e =
            failure instanceof Error ? (failure as NodeJS.ErrnoException) : new Error(String(failure));
          w.resolveStart({ error: e, stage: 'helper' });
          return;
        }
        const exited = new Promise<ExitInfo>((resolve) => (w.resolveExit = resolve));
        w.resolveStart({ process: { pid, stdout: out, stderr: err, exited } });
        return;
      }
      case 'X': {
        waiters.delete(id);
        release();
        const code = Number(a);
        const sig = Number(b);
        w.resolveExit?.(
          code >= 0
            ? { code, signal: null, error: null }
            : { code: null, signal: SIGNAL_NAMES.get(sig) ?? 'SIGKILL', error: null },
        );
        return;
      }
      case 'F':
      case 'E': {
        waiters.delete(id);
        release();
        const stage = kind === 'E' ? 'fork' : ((b || 'exec') as SpawnStage);
        const what = stage === 'exec' ? `spawn ${w.file}` : stage;
        w.resolveStart({ error: errnoError(Number(a), what), stage });
        return;
      }
      default:
        logger.warn({ line }, 'unexpected line from the spawn helper');
    }
  };

  let buf = '';
  stdout.setEncoding('utf8');
  stdout.on('data', (d: string) => {
    buf += d;
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      onLine(line);
    }
  });

  let exitedResolve!: () => void;
  const helperGone = new Promise<void>((resolve) => (exitedResolve = resolve));
  const onGone = (why: string): void => {
    if (!alive && waiters.size === 0) return exitedResolve();
    alive = false;
    const err: NodeJS.ErrnoException = new Error(`spawn helper ${why}`);
    err.code = 'EHELPER';
    for (const [id, w] of waiters) {
      waiters.delete(id);
      // A start in flight may have forked: the caller kills the task's cgroup.
      w.resolveStart({ error: err, stage: 'helper' });
      w.resolveExit?.({ code: null, signal: null, error: err });
    }
    outstanding = 0;
    exitedResolve();
  };
  // 'close', not 'exit': exit lines still in the pipe are read first, so a task
  // that finished just before the helper died keeps its real exit status.
  helper.once('close', (code, signal) => {
    if (alive) logger.warn({ code, signal }, 'spawn helper exited');
    onGone(`exited (${signal ?? code ?? '?'})`);
  });
  helper.once('error', (err) => {
    logger.warn({ err: describeError(err) }, 'spawn helper failed');
    onGone(`failed: ${describeError(err)}`);
  });

  return {
    pid: helperPid,
    get alive() {
      return alive;
    },
    start(req) {
      if (!alive) {
        const err: NodeJS.ErrnoException = new Error('spawn helper is not running');
        err.code = 'EHELPER';
        return Promise.resolve({ error: err, stage: 'helper' });
      }
      const id = String(++nextId);
      hold();
      return new Promise<SpawnOutcome>((resolveStart) => {
        waiters.set(id, { file: req.file, resolveStart });
        send([
          'S',
          id,
          req.cwd,
          req.joinStrict ? '1' : '0',
          req.script?.dir ?? '',
          req.script?.file ?? '',
          req.script?.owner ? String(req.script.owner.uid) : '',
          req.script?.owner ? String(req.script.owner.gid) : '',
          req.script?.content ?? '',
          String(req.joinCgroups.length),
          ...req.joinCgroups,
          String(req.args.length + 1),
          req.file,
          ...req.args,
          ...req.env,
        ]);
      });
    },
    async close() {
      if (!alive) return;
      alive = false;
      // Keep the event loop up until the helper has gone.
      helper.ref();
      stdin.end();
      const timer = setTimeout(() => helper.kill('SIGKILL'), 2000);
      timer.unref();
      await helperGone;
      clearTimeout(timer);
    },
  };
}
