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
 * The task's process is in its cgroups *before exec*, so a task without limits
 * has no window in which it ran outside its containment cgroup, and the agent
 * does not pay a cgroup migration on its event loop. The v2 cgroup is entered
 * at creation: the helper makes the child with the raw clone3 syscall and
 * CLONE_INTO_CGROUP (an fd of the cgroup directory, opened per start and
 * closed right after the clone: pooled cgroups are reused and removed, so no
 * fd is kept). Writing a `cgroup.procs` file instead takes the kernel's
 * cgroup_threadgroup_rwsem for writing, which waits for an RCU grace period:
 * 7-20 ms when migrations are rare (one task every 100 ms), the largest part
 * of a task's start latency. v1 cgroups (limits on a hybrid host) are still
 * joined by the child writing `0` (itself) into their `cgroup.procs`. Where
 * clone3 is refused (kernel < 5.7, seccomp, another architecture, ENOSYS/
 * EINVAL/EPERM/EACCES/E2BIG/EBUSY/EOPNOTSUPP) the helper stops trying (line N)
 * and forks; the child then writes itself into the v2 cgroup's `cgroup.procs`
 * too. Any other clone3 error (a cgroup that is gone) falls back to fork for
 * that one start. Kernel 6.18 also SIGKILLs a clone3 child at birth when its
 * cgroup's cgroup.kill count differs from the parent's: so the clone3 child
 * first writes `+` to the status pipe, and one that dies without it makes the
 * helper fork that start and stop using clone3 (`N killed`). cgroups.ts does
 * not pool a cgroup once cgroup.kill was written to it, so ours never trip it.
 *
 * Protocol (stdin of the helper, one message = `<bytes>\n<payload>`, fields
 * separated by NUL):
 *   S id cwd strict gated dir file uid gid script into njoin join... nargv argv... env...
 *                           start a task process; with `dir`, the child first makes it
 *                           (0700) and writes `script` to `file` (0700), chowned to
 *                           uid:gid unless those are ''; `into` ('' = none) is the
 *                           cgroup v2 directory the child is created in; `join` are
 *                           further cgroup.procs files it writes itself into before exec;
 *                           `gated` = '1': the child stops before it touches the disk (R)
 *                           until G/A
 *   G id                    go: the gated child makes its directory and script and execs
 *                           (answer: P, or F id errno mkdir|write|chdir|exec, or F id 0 gate)
 *   A id                    abort: the gated child _exits without exec (answer: F id 0 gate)
 *   C id                    the agent has opened the pipes
 * Helper to agent (stdout, one line each):
 *   H how                   first line: `clone3` (children are created in their v2
 *                           cgroup) or `fork` (off by argument, architecture or Perl)
 *   N errno|killed          clone3 was refused (or its child killed at birth): from now
 *                           on fork + cgroup.procs write
 *   P id pid outfd errfd how  started: exec succeeded (how: clone3 or fork); read ends of
 *                           its stdout/stderr pipes are the helper's fds outfd/errfd until C
 *                           (the agent opens /proc/<helper>/fd/<n>, a new reader of the same
 *                           pipe). For a gated child: `P id pid - - how`, the pipes went at R.
 *   R id pid outfd errfd how  gated child made and prepared (in its cgroups, own session,
 *                           stdio and environment set), now blocked reading its gate pipe;
 *                           nothing of the task ran or is on disk. Pipes as for P.
 *   F id errno stage        could not start (stage: mkdir, write, join, chdir, exec); nothing ran.
 *                           `F id 0 gate`: a gated child ended without exec (aborted, the
 *                           gate's write end closed, or it died before it was let go)
 *   E id errno              pipe/fork failed
 *   X id code signal        the process exited (code -1 when killed by a signal)
 *
 * The gate (a start with `gated`): the durable journal accept of a task and the
 * making of its process overlap, and still nothing of the task executes before
 * the accept is on disk. The child reads one byte from its gate pipe and goes on
 * (task directory, script, chdir, exec) only on `g`, which the helper writes on
 * G; on A the helper closes the write end, and EOF (or anything but `g`) makes
 * the child `_exit(125)`. The directory and script come after the gate on
 * purpose: made before it, they are more work inside the accept's fsync (and in
 * the ext4 transaction it commits), and that variant measured no gain. Only the helper holds a gate's write end (every child closes
 * those of the other gated children at once, and they are close-on-exec), so a
 * helper that dies, or exits with the agent, aborts every gated child. The child
 * writes `R` to its status pipe when it reaches the gate and `G` when it got `g`:
 * EOF without `G` after a go is a child that died at the gate (killed), not an
 * exec, so P still means exactly "exec succeeded". A gated child that dies before
 * G/A (a cgroup kill) is reaped as `F id 0 gate`. The helper stays a
 * single-threaded select loop: it waits for R (as it waits for the exec of an
 * ungated child) and, after G, for the exec; never for the gate itself.
 *
 * The child allocates nothing before exec. After a fork (or clone3) every page
 * either process writes is a copy-on-write fault, and on a busy virtual machine
 * one fault cost 20-40 µs here: rebuilding %ENV and closing Perl handles in the
 * child took ~70 faults per task. So the helper packs argv and envp for a raw
 * execve(2) before the clone (x86_64 and aarch64; elsewhere, or for a program
 * named without a slash, Perl's exec with %ENV as before), makes its signal set
 * and default action once, and the child works on fds (POSIX::close/open/write).
 * `npm run bench:spawn` measures the helper's and its children's CPU and faults
 * per start.
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
import { trace } from '@agent-platform/protocol';
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
  /** How the spawn helper made it: clone3 into its v2 cgroup, or fork (unset without the helper). */
  via?: 'clone3' | 'fork';
}

export interface SpawnRequest {
  file: string;
  args: string[];
  cwd: string;
  /** Serialized `K=V` entries. */
  env: string[];
  /**
   * A cgroup v2 directory the child is created in (clone3 CLONE_INTO_CGROUP);
   * where clone3 is unavailable the child writes itself into its cgroup.procs
   * before exec, like `joinCgroups`.
   */
  cgroupDir?: string;
  /** Further cgroup.procs files (v1) the child writes itself into before exec. */
  joinCgroups: readonly string[];
  /** A failed join (cgroupDir or joinCgroups) fails the start (limits must hold); else it is ignored. */
  joinStrict: boolean;
  /**
   * The task's directory and script file, made by the child before exec (off the
   * agent's event loop, where they blocked behind ext4 journal commits). The
   * script must not contain NUL (the protocol's separator).
   */
  script?: { dir: string; file: string; content: string; owner: { uid: number; gid: number } | null };
  /** The task's id for the `a-ready` step of AP_TRACE_FILE (a gated child at its gate); not sent to the helper. */
  traceId?: string;
}

/**
 * Where a start failed. `gate`: a gated child ended without exec (aborted, or it
 * died while it waited): nothing of the task ran.
 */
export type SpawnStage = 'mkdir' | 'write' | 'join' | 'chdir' | 'exec' | 'fork' | 'helper' | 'gate';

export type SpawnOutcome = { process: TaskProcess } | { error: NodeJS.ErrnoException; stage: SpawnStage };

export interface Spawner {
  readonly pid: number;
  /**
   * The helper creates children directly in their v2 cgroup (clone3
   * CLONE_INTO_CGROUP); false when disabled, unsupported here, or after the
   * kernel refused it (or killed its child at birth) once.
   */
  readonly cloneIntoCgroup: boolean;
  /**
   * Starts a task process; resolves once its program was executed (or with why not).
   *
   * With `gate`, the child is made and prepared at once (cgroups, session, stdio,
   * environment) but waits until the gate settles: `true` lets it go on (task
   * directory and script, chdir, exec); `false` or a rejection makes it exit
   * without exec, and the start resolves with stage `gate`. If the helper dies meanwhile, the child
   * exits without exec too (stage `helper`). Nothing of the task executes before the
   * gate resolved `true`.
   */
  start(req: SpawnRequest, gate?: PromiseLike<boolean>): Promise<SpawnOutcome>;
  /** True until the helper died or was closed. */
  readonly alive: boolean;
  close(): Promise<void>;
}

const HELPER = String.raw`
use strict; use warnings; use POSIX (); use Fcntl qw(O_RDONLY O_WRONLY O_CREAT O_EXCL O_DIRECTORY);
# %gated: id -> [pid, gate write end (undef once aborted), status read end, how].
my (%kids, %held, %gated);
my $chld = 0;
$SIG{CHLD} = sub { $chld = 1 };
my @ignore = qw(PIPE INT TERM HUP QUIT);
$SIG{$_} = 'IGNORE' for @ignore;
my $arch = (POSIX::uname())[4];
# clone3 (435 in the generic table of x86_64 and aarch64) with CLONE_INTO_CGROUP (1 << 33):
# the child starts in its v2 cgroup, no cgroup.procs write (which waits for an RCU grace period).
my $clone3 = (($ARGV[0] || '') eq 'clone3' && $arch =~ /^(x86_64|aarch64)$/
  && eval { length(pack('Q<', 1)) == 8 }) ? 1 : 0;
# Refusals that hold for every cgroup of ours: the kernel, a seccomp filter, permissions.
my %off = map { $_ => 1 } (POSIX::ENOSYS(), POSIX::EINVAL(), POSIX::E2BIG(), POSIX::EPERM(), POSIX::EACCES(), POSIX::EBUSY(), POSIX::EOPNOTSUPP());
my $allsigs = POSIX::SigSet->new(); $allsigs->fillset(); my $oldsigs = POSIX::SigSet->new();
# Made once here, used by children: every page a child writes before exec is a copy-on-write
# fault (each one costs tens of microseconds on a busy virtual machine), so a child allocates nothing.
my $nosigs = POSIX::SigSet->new(); my $dfl = POSIX::SigAction->new('DEFAULT');
# Perl itself ignores SIGFPE (its exec puts it back; a raw execve does not).
my @ignored = map { POSIX->can("SIG$_")->() } (@ignore, 'FPE');
sysopen(my $devnull, '/dev/null', O_RDONLY) or die "/dev/null: $!";
# execve(2) by number with argv and envp packed in the parent: the child does not rebuild %ENV.
my $execve = { x86_64 => 59, aarch64 => 221 }->{$arch};
$execve = undef unless eval { length(pack('p', 'x')) == 8 };
my $buf = '';
sub out { my $s = shift; my $off = 0; while ($off < length $s) { my $n = syswrite(STDOUT, $s, length($s) - $off, $off); if (!defined $n) { next if $!{EINTR}; exit 0; } $off += $n; } }
out("H " . ($clone3 ? 'clone3' : 'fork') . "\n");
sub reap {
  while ((my $pid = waitpid(-1, POSIX::WNOHANG())) > 0) {
    my $st = $?; my $id = delete $kids{$pid}; next unless defined $id;
    # Died (or was aborted) at its gate: it never execed.
    if (my $g = delete $gated{$id}) { close $g->[1] if $g->[1]; close $g->[2]; out("F $id 0 gate\n"); next; }
    if (($st & 127) == 0) { out("X $id " . ($st >> 8) . " 0\n"); } else { out("X $id -1 " . ($st & 127) . "\n"); }
  }
}
sub nofast { $clone3 = 0; out("N $_[0]\n"); }
# A child made by clone3 in the v2 cgroup $into: its pid, 0 in the child, undef (with $!) when refused.
sub clone_into {
  my $into = shift;
  # An fd, not a handle: the child leaves it to exec (close-on-exec) and frees nothing.
  # (O_CLOEXEC, which Fcntl may not export, is 0x80000 on both architectures clone3 is used on.)
  my $cfd = POSIX::open($into, O_RDONLY | O_DIRECTORY | 0x80000);
  return undef unless defined $cfd;
  my $args = pack('Q<11', 8589934592, 0, 0, 0, POSIX::SIGCHLD(), 0, 0, 0, 0, 0, $cfd);
  # As Perl's fork does: no signal handler of the helper runs in the child.
  POSIX::sigprocmask(POSIX::SIG_BLOCK(), $allsigs, $oldsigs);
  my $pid = syscall(435, $args, 88);
  return 0 if $pid == 0;
  my $errno = $! + 0;
  POSIX::sigprocmask(POSIX::SIG_SETMASK(), $oldsigs);
  POSIX::close($cfd);
  if ($pid < 0) { nofast($errno) if $off{$errno}; $! = $errno; return undef; }
  return $pid;
}
sub start {
  my @f = @_;
  my %t; @t{qw(id cwd strict gated sdir sfile suid sgid script into)} = splice(@f, 0, 10);
  my $nj = shift @f; $t{join} = [splice(@f, 0, $nj)];
  my $na = shift @f; $t{argv} = [splice(@f, 0, $na)]; $t{env} = [@f];
  # Pointers into the strings of %t, which lives until the child has execed or failed.
  if ($execve && index($t{argv}[0], '/') >= 0) {
    $t{argvp} = pack('p*', @{ $t{argv} }, undef); $t{envp} = pack('p*', @{ $t{env} }, undef);
  }
  return if $clone3 && $t{into} ne '' && launch(\%t, 1);
  # Not created in the v2 cgroup: the child writes itself into it, as into the v1 ones.
  unshift(@{ $t{join} }, "$t{into}/cgroup.procs") if $t{into} ne '';
  launch(\%t, 0);
}
# One attempt to start the task; false (nothing answered) when clone3 gave no running child.
sub launch {
  my ($t, $c3) = @_;
  my $id = $t->{id};
  my $gated = $t->{gated} eq '1';
  my ($or, $ow, $er, $ew, $sr, $sw, $gr, $gw);
  # (Pipes made here are close-on-exec, like every fd of Perl's above 2.)
  unless (pipe($or, $ow) && pipe($er, $ew) && pipe($sr, $sw) && (!$gated || pipe($gr, $gw))) { out("E $id " . ($! + 0) . "\n"); return 1; }
  my @readers = grep { defined } ($or, $er, $sr, $gw);
  my $pid = $c3 ? clone_into($t->{into}) : fork();
  if (!defined $pid) {
    my $e = $! + 0; close($_) for grep { defined } ($or, $ow, $er, $ew, $sr, $sw, $gr, $gw);
    return 0 if $c3;
    out("E $id $e\n"); return 1;
  }
  child($t, $c3, \@readers, $ow, $ew, $sw, $gr) if $pid == 0;
  close $ow; close $ew; close $sw; close $gr if $gated;
  # Until the exec (EOF: the write end is close-on-exec), an error, or, gated, R.
  my $err = '';
  for (;;) {
    my $n = sysread($sr, $err, 256, length $err);
    last if defined $n && $n == 0; next if !defined $n && $!{EINTR}; last if !defined $n;
    last if $gated && substr($err, -1) eq 'R';
  }
  if ($c3 && substr($err, 0, 1, '') ne '+') {
    # Killed before it ran: this kernel kills a clone3 child whose cgroup's cgroup.kill
    # count differs from the parent's (kill_seq, 6.18). Fork instead, from now on.
    close $sr; close $gw if $gated; close $or; close $er; waitpid($pid, 0);
    nofast('killed');
    return 0;
  }
  my $how = $c3 ? 'clone3' : 'fork';
  if ($gated && $err eq 'R') {
    # At its gate. The status pipe stays open: after G it tells exec from death.
    $kids{$pid} = $id; $held{$id} = [$or, $er];
    $gated{$id} = [$pid, $gw, $sr, $how];
    out("R $id $pid " . fileno($or) . " " . fileno($er) . " $how\n");
    return 1;
  }
  close $sr; close $gw if $gated;
  if ($err ne '' || $gated) {
    close $or; close $er;
    waitpid($pid, 0);
    # Gated, EOF without R: it died while preparing (killed), before any exec.
    if ($err eq '') { out("F $id 0 gate\n"); return 1; }
    my ($errno, $stage) = split(/ /, $err, 2);
    out("F $id $errno $stage\n");
    return 1;
  }
  $kids{$pid} = $id; $held{$id} = [$or, $er];
  out("P $id $pid " . fileno($or) . " " . fileno($er) . " $how\n");
  return 1;
}
# G: let the gated child exec, then wait for the exec as for an ungated start.
sub go {
  my $id = shift; my $g = $gated{$id};
  return unless $g && $g->[1];
  delete $gated{$id};
  my ($pid, $gw, $sr, $how) = @$g;
  syswrite($gw, 'g'); close $gw;
  my $st = '';
  for (;;) { my $n = sysread($sr, $st, 256, length $st); last if defined $n && $n == 0; next if !defined $n && $!{EINTR}; last if !defined $n; }
  close $sr;
  # Its pipes went to the agent at R (and the helper's copies are closed): no fds here.
  if ($st eq 'G') { out("P $id $pid - - $how\n"); return; }
  # Not execed: the exec failed, or the child had died at the gate (EOF without G).
  # Either way its status pipe is closed, so it is gone or about to be.
  delete $kids{$pid}; waitpid($pid, 0);
  if (substr($st, 0, 1, '') eq 'G') { my ($errno, $stage) = split(/ /, $st, 2); out("F $id $errno $stage\n"); }
  else { out("F $id 0 gate\n"); }
}
# A: close the gate's write end; the child reads EOF and _exits; reap() answers F id 0 gate.
sub abort {
  my $g = $gated{$_[0]};
  return unless $g && $g->[1];
  close $g->[1]; $g->[1] = undef;
}
# The task's process, before exec. After a raw clone3, $$ (and POSIX::getpid) is still
# the helper's pid: nothing here uses it.
# It works on fds (POSIX::close, not close) and objects made by the helper: see $nosigs.
sub child {
  my ($t, $c3, $readers, $ow, $ew, $sw, $gr) = @_;
  syswrite($sw, '+') if $c3;
  POSIX::close(fileno($_)) for @$readers;
  # Only the helper may hold a gate's write end (its EOF aborts that child).
  for my $g (values %gated) { POSIX::close(fileno($g->[1])) if $g->[1]; POSIX::close(fileno($g->[2])); }
  # The helper's ignored signals; its SIGCHLD handler goes at exec.
  POSIX::sigaction($_, $dfl) for @ignored;
  POSIX::sigprocmask(POSIX::SIG_SETMASK(), $nosigs);
  POSIX::setsid();
  # The task's directory and script. Gated, only after go: made before it, they would
  # add to the work during the journal's fsync of the accept (and to the ext4
  # transaction it commits), which measured no gain at all.
  files($t, $sw) unless $gr;
  # "0" moves the writing process.
  for my $p (@{ $t->{join} }) {
    my $fd = POSIX::open($p, O_WRONLY);
    if (defined $fd) { if (!POSIX::write($fd, "0", 1)) { fail($sw, 'join') if $t->{strict}; } POSIX::close($fd); }
    elsif ($t->{strict}) { fail($sw, 'join'); }
  }
  POSIX::dup2(fileno($devnull), 0);
  POSIX::dup2(fileno($ow), 1); POSIX::dup2(fileno($ew), 2);
  if ($gr) {
    # In its cgroups, own session and stdio set; nothing of the task ran
    # and nothing of it is on disk. Go on only on 'g'; EOF (abort, or the helper
    # gone) or anything else ends the child here.
    syswrite($sw, 'R');
    my ($go, $n) = ('');
    do { $n = sysread($gr, $go, 1) } while (!defined $n && $!{EINTR});
    POSIX::_exit(125) unless $n && $go eq 'g';
    syswrite($sw, 'G');
    files($t, $sw);
  }
  chdir($t->{cwd}) or fail($sw, 'chdir');
  syscall($execve, $t->{argv}[0], $t->{argvp}, $t->{envp}) if $t->{argvp};
  if (!$t->{argvp}) {
    %ENV = map { my ($k, $v) = split(/=/, $_, 2); ($k, defined $v ? $v : '') } @{ $t->{env} };
    my @argv = @{ $t->{argv} };
    { no warnings 'exec'; exec { $argv[0] } @argv; }
  }
  fail($sw, 'exec');
}
# The child's error report: errno and stage on the status pipe.
sub fail { my ($sw, $stage) = @_; syswrite($sw, ($! + 0) . " " . $stage); POSIX::_exit(127); }
# The task's directory and script (in the child).
sub files {
  my ($t, $sw) = @_;
  return if $t->{sdir} eq '';
  mkdir($t->{sdir}, 0700) or fail($sw, 'mkdir');
  my $sf = POSIX::open($t->{sfile}, O_WRONLY | O_CREAT | O_EXCL, 0700); fail($sw, 'write') unless defined $sf;
  my $len = length $t->{script}; my $off = 0;
  while ($off < $len) {
    my $n = POSIX::write($sf, $off ? substr($t->{script}, $off) : $t->{script}, $len - $off);
    fail($sw, 'write') unless $n; $off += $n;
  }
  defined POSIX::close($sf) or fail($sw, 'write');
  if ($t->{suid} ne '') { chown($t->{suid}, $t->{sgid}, $t->{sdir}, $t->{sfile}) == 2 or fail($sw, 'write'); }
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
    elsif ($op eq 'G') { go($f[0]); }
    elsif ($op eq 'A') { abort($f[0]); }
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
  traceId: string | undefined;
  resolveStart(outcome: SpawnOutcome): void;
  resolveExit?: (exit: ExitInfo) => void;
  /** The start promise is settled. */
  settled: boolean;
  /** A gated child at its gate (R): its output pipes, already opened (C sent). */
  ready?: { stdout: Readable; stderr: Readable };
  /** Its output pipes could not be opened at R; it was aborted (or, if G went first, is killed at P). */
  openFailure?: NodeJS.ErrnoException;
}

export interface SpawnerOptions {
  /**
   * Create children in their v2 cgroup with clone3 (default: true unless the
   * environment has AP_SPAWN_CLONE3=0); false = fork and write cgroup.procs.
   */
  cloneIntoCgroup?: boolean;
}

/**
 * Starts the helper and checks, with one `echo ok`, that the agent can open the
 * pipes it hands over. Null (use `child_process.spawn`) without Perl or /proc.
 */
export async function createSpawner(logger: Logger, options: SpawnerOptions = {}): Promise<Spawner | null> {
  const perl = await findPerl();
  if (!perl) {
    logger.info('no perl: tasks are started with child_process.spawn');
    return null;
  }
  let helper: ChildProcess;
  try {
    const clone3 = options.cloneIntoCgroup ?? process.env.AP_SPAWN_CLONE3 !== '0';
    helper = spawn(perl, ['-e', HELPER, clone3 ? 'clone3' : 'fork'], { stdio: ['pipe', 'pipe', 'pipe'] });
  } catch (err) {
    logger.warn({ err: describeError(err) }, 'cannot start the spawn helper');
    return null;
  }
  const spawner = wrapHelper(helper, logger);
  try {
    const probe = await spawner.start(
      {
        file: '/bin/sh',
        args: ['-c', 'echo ok'],
        cwd: '/',
        env: ['PATH=/usr/bin:/bin'],
        joinCgroups: [],
        joinStrict: false,
      },
      // The gate is part of the probe: a helper that could not let a child go is unusable.
      Promise.resolve(true),
    );
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
  let cloneIntoCgroup = false;
  let nextId = 0;
  const waiters = new Map<string, Waiter>();
  // Idle, the helper must not keep the agent's event loop alive.
  let outstanding = 0;
  // The helper's process too: after its stdout closed, its exit still has to be
  // seen to end the outstanding starts (a gated start has no pipe of its own yet).
  const hold = () => {
    if (outstanding++ === 0) {
      stdout.ref();
      helper.ref();
    }
  };
  const release = () => {
    if (--outstanding === 0) {
      stdout.unref();
      helper.unref();
    }
  };
  helper.unref();
  stdout.unref();
  stderr.unref();
  stdin.unref();

  stderr.setEncoding('utf8');
  stderr.on('data', (d: string) => logger.warn({ helper_stderr: d.trim() }, 'spawn helper wrote to stderr'));
  stdin.on('error', () => undefined);

  // One write (one syscall) per message: its length in bytes, a newline, the fields.
  const send = (fields: string[]): void => {
    const payload = fields.join('\0');
    stdin.write(`${Buffer.byteLength(payload)}\n${payload}`);
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
    const [kind, id = '', a = '', b = '', c = '', d = ''] = line.split(' ');
    if (kind === 'H') {
      cloneIntoCgroup = id === 'clone3';
      return;
    }
    if (kind === 'N') {
      cloneIntoCgroup = false;
      const why =
        id === 'killed'
          ? 'its child was killed before it ran (kernel cgroup.kill bookkeeping)'
          : describeError(errnoError(Number(id), 'clone3'));
      logger.warn(
        { reason: why },
        'clone3 into a cgroup unusable: tasks now join their cgroup by writing cgroup.procs (slower)',
      );
      return;
    }
    const w = waiters.get(id);
    if (!w) return;
    const settle = (outcome: SpawnOutcome): void => {
      w.settled = true;
      w.resolveStart(outcome);
    };
    const asError = (e: unknown): NodeJS.ErrnoException => (e instanceof Error ? e : new Error(String(e)));
    const open = (): { stdout: Readable; stderr: Readable } | { failure: NodeJS.ErrnoException } => {
      let out: Readable | undefined;
      try {
        out = openPipe(b);
        const err = openPipe(c);
        return { stdout: out, stderr: err };
      } catch (e) {
        out?.destroy();
        return { failure: asError(e) };
      } finally {
        // The helper may close its copies now.
        send(['C', id]);
      }
    };
    switch (kind) {
      case 'R': {
        if (w.traceId !== undefined) trace('a-ready', w.traceId);
        // A gated child waits at its gate: its pipes are opened now, off the path
        // from the gate's opening to the task's start.
        const pipes = open();
        if ('failure' in pipes) {
          w.openFailure = pipes.failure;
          send(['A', id]);
        } else {
          w.ready = pipes;
        }
        return;
      }
      case 'P': {
        const pid = Number(a);
        let out: Readable | undefined;
        let err: Readable | undefined;
        let failure: unknown = w.openFailure;
        if (w.ready) {
          ({ stdout: out, stderr: err } = w.ready);
          w.ready = undefined;
        } else if (failure === undefined) {
          const pipes = open();
          if ('failure' in pipes) failure = pipes.failure;
          else ({ stdout: out, stderr: err } = pipes);
        }
        if (!out || !err) {
          // The process runs but its output cannot be read: stop it (the caller
          // also kills the task's cgroup); its exit just releases the waiter.
          try {
            process.kill(-pid, 'SIGKILL');
          } catch {
            // gone
          }
          w.resolveExit = () => undefined;
          settle({ error: asError(failure), stage: 'helper' });
          return;
        }
        const exited = new Promise<ExitInfo>((resolve) => (w.resolveExit = resolve));
        const via = d === 'clone3' ? 'clone3' : 'fork';
        settle({ process: { pid, stdout: out, stderr: err, exited, via } });
        return;
      }
      case 'X': {
        waiters.delete(id);
        release();
        if (!w.settled) {
          // Not sent by the helper before P (a gated child that dies first is `F id 0 gate`).
          w.ready?.stdout.destroy();
          w.ready?.stderr.destroy();
          settle({ error: errnoError(osConstants.errno.ECANCELED, 'ended before exec'), stage: 'gate' });
        }
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
        // A gated child that did not exec: the pipes opened at R just end.
        w.ready?.stdout.destroy();
        w.ready?.stderr.destroy();
        w.ready = undefined;
        const stage = kind === 'E' ? 'fork' : ((b || 'exec') as SpawnStage);
        if (stage === 'gate') {
          // Aborted (or died waiting): nothing ran. One aborted because its pipes
          // could not be opened reports that.
          settle(
            w.openFailure
              ? { error: w.openFailure, stage: 'helper' }
              : { error: errnoError(osConstants.errno.ECANCELED, 'ended before exec'), stage },
          );
          return;
        }
        const what = stage === 'exec' ? `spawn ${w.file}` : stage;
        settle({ error: errnoError(Number(a), what), stage });
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
      // A gated child exits on its own (its gate's write end closed with the helper).
      w.ready?.stdout.destroy();
      w.ready?.stderr.destroy();
      w.ready = undefined;
      // A start in flight may have forked: the caller kills the task's cgroup.
      w.settled = true;
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
    get cloneIntoCgroup() {
      return cloneIntoCgroup;
    },
    get alive() {
      return alive;
    },
    start(req, gate) {
      if (!alive) {
        const err: NodeJS.ErrnoException = new Error('spawn helper is not running');
        err.code = 'EHELPER';
        return Promise.resolve({ error: err, stage: 'helper' });
      }
      const id = String(++nextId);
      hold();
      return new Promise<SpawnOutcome>((resolveStart) => {
        const w: Waiter = { file: req.file, traceId: req.traceId, resolveStart, settled: false };
        waiters.set(id, w);
        send([
          'S',
          id,
          req.cwd,
          req.joinStrict ? '1' : '0',
          gate ? '1' : '0',
          req.script?.dir ?? '',
          req.script?.file ?? '',
          req.script?.owner ? String(req.script.owner.uid) : '',
          req.script?.owner ? String(req.script.owner.gid) : '',
          req.script?.content ?? '',
          req.cgroupDir ?? '',
          String(req.joinCgroups.length),
          ...req.joinCgroups,
          String(req.args.length + 1),
          req.file,
          ...req.args,
          ...req.env,
        ]);
        // The helper handles its messages in order: G or A may go before R came back.
        // A start already over (failed while preparing, helper gone) needs neither.
        if (gate)
          void Promise.resolve(gate)
            .then(
              (go) => go === true,
              () => false,
            )
            .then((go) => {
              if (waiters.get(id) === w) send([go ? 'G' : 'A', id]);
            });
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
