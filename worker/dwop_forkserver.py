"""The DWOP fork server: `python dwop_worker.py --fork-server`.

Starting Python costs more than the rest of a small task (site, .pth files, the worker's imports). The
fork server pays for that once: for each run it forks a child that becomes a fresh worker process (own
pid, own memory, own session and process group) and runs dwop_main.main(), the same code path as
`python dwop_worker.py`, in ~1-2 ms instead of an interpreter start.

Protocol, one JSON object per line:
  stdin   {"id": "<run id>", "cwd": "/abs/folder", "limits": {"memory", "disk", "processes", "cpuSeconds"}}
          The run's environment is not in the request: the child reads it from <cwd>/.dwop-env (a JSON
          object, mode 0600, written by the executor) and deletes it, so this server never holds a run's
          signed URLs, and no run forked later inherits them in its memory.
  argv    [settings]: {"sandbox": "auto" | "required" | "off", "allow": ["/folder", ...],
          "network": "none" | "internet", "uidBase": n, "uidCount": n} (default off); see dwop_sandbox.py
  stdout  {"ready": <server pid>, "sandbox": "namespaces" | "off", "why": <why off, or null>,
           "network": "none" | "internet" | "host", "networkWhy": <why not internet>?}   once
          {"id": ..., "pid": <child pid>}            after the fork, once the child leads its own group
          {"id": ..., "exit": <code>}                 when the child has exited, or told its exit code
                                                      just before its exit (on a pipe of its own)
          {"id": ..., "signal": <n>}                  when a signal killed the child
          {"id": <id or null>, "error": "<why>"}      for a request that forks nothing (every request,
                                                      when the sandbox is required and cannot be had)
The child forked here is the worker: it stays outside the sandbox (it holds the run's URLs, and is not
dumpable; as root it is forked into a pid namespace of its own, whose first process it is, and which the
body's process is forked into) and only the task body's process enters it (see dwop_sandbox.py); that
process is forked before the worker reads the run's environment, so it never holds the run's URLs either. As
root, each run gets a uid of its own for its body, from uidBase on, held (by a lock file) while the run
lives, and while its spare waits (a spare is forked with its run's uid). The child takes its run's
environment from the env file and keeps it in memory (its own process environment stays the server's; the
body's is the run's, set at its gate); its stdin is /dev/null; its stdout and stderr go to
<cwd>/.dwop-worker.log (appended to, so the order of the worker's writes is kept). The child dies (SIGKILL)
when the server dies, and the task body with it when the run's env has DWOP_DIE_WITH_PARENT=1; with that
variable in the server's own environment, the server dies when its parent does. When its stdin closes, the
server kills every child's process group and exits.

A fork costs more than it seems on some machines (each page the child writes is copied, and a page fault
costs 12-15 us in a paravirtualized guest): so the server keeps SPARES children forked ahead, each of which
has already left the server's session, forked its run's body process and set that one's sandbox up as far as
it can be without the run (namespaces, the system's part of the root, slirp4netns attached; see
dwop_main.Body; without the sandbox, only the fork), and waits on a pipe for its run's request; a request is
handed to the oldest. A spare's preparation takes a few milliseconds of a core (the namespaces, the root's
mounts, slirp4netns): made beside the run just handed over, it slowed that run on a small machine (a chain's
task by ~8 %), so the replacement is forked when a run ends, while the orchestration between two tasks runs,
and at once only when no spare is left. A spare that died is replaced by a fresh fork. While they wait, the
spare and the server each go through their first steps of a run on a made-up one (dwop_main.rehearse,
Server.rehearse): the pages those steps write are copied then, not on the run's path (in a paravirtualized
guest, ~50 faults fewer on the server's answer, ~95 fewer between a spare's request and its downloads).

What is per child: os.environ, cwd, sys.argv (the worker's, as a fresh start has it), signal handlers,
umask, and every module's state, since each child is forked from the server, which runs no task code and
changes no module's state after start. What is the server's: settings an interpreter reads at start from
the environment (PYTHONPATH, PYTHONUNBUFFERED, PYTHONHASHSEED, ...); start the server with the same
PYTHON* variables the runs get. The server is single-threaded, so fork() is safe.
"""

import _json
import _signal
import os
import select
import sys

from dwop_http import write_all
from dwop_main import Body, parse_json, rehearse
from dwop_main import main as worker_main
from dwop_process import die_with_parent, exit_on_stop_signals, load_prctl, read_to_end
import dwop_sandbox

LOG_FILE = ".dwop-worker.log"
ENV_FILE = ".dwop-env"
EXIT_SETUP_FAILED = 70  # the child could not become a worker (its folder vanished, for example)
READ_CHUNK = 65536
MAX_REQUEST = 16 * 1024 * 1024
SPARES = 2  # workers forked ahead (see above)
# A request as the executor writes one, for Server.rehearse (its folder must exist: the root).
REHEARSAL_REQUEST = b'{"id":"rehearsal","cwd":"/","limits":{"memory":1,"disk":1,"processes":1,"cpuSeconds":0}}'


class BadRequest(Exception):
    """A request the server answers with an error line."""


def encode(value):
    return _json.encode_basestring_ascii(value)


def event_line(run_id, key, value):
    """One event of the protocol above, as the bytes of its line."""
    id_json = "null" if run_id is None else encode(run_id)
    value_json = encode(value) if isinstance(value, str) else str(int(value))
    return ('{"id":%s,"%s":%s}\n' % (id_json, key, value_json)).encode("ascii")


def parse_request(line):
    """(id, cwd, limits) of a request line; raises BadRequest naming the id when it could be read."""
    try:
        request = parse_json(line.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRequest(None, "request is not JSON: %s" % e) from None
    if not isinstance(request, dict):
        raise BadRequest(None, "request is not a JSON object")
    run_id = request.get("id")
    if not isinstance(run_id, str) or not run_id:
        raise BadRequest(None, "request has no string id")
    cwd = request.get("cwd")
    if not isinstance(cwd, str) or not os.path.isabs(cwd) or "\0" in cwd:
        raise BadRequest(run_id, "cwd is not an absolute path")
    if not os.path.isdir(cwd):
        raise BadRequest(run_id, "cwd %s is not a directory" % cwd)
    return run_id, cwd, dwop_sandbox.Limits.parse(request.get("limits"))


def read_env(path):
    """The run's environment from its env file, which is deleted; raises ValueError."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        os.unlink(path)
        data = read_to_end(fd)
    finally:
        os.close(fd)
    env = parse_json(data.decode("utf-8"))
    if not isinstance(env, dict):
        raise ValueError("the env file is not a JSON object")
    for name, value in env.items():
        if not name or "=" in name or "\0" in name or not isinstance(value, str) or "\0" in value:
            raise ValueError("env entry %r is not a NAME=value string pair" % (name,))
    return env


class Server:
    def __init__(self, prctl, sandbox):
        self.pid = os.getpid()
        self.prctl = prctl
        self.sandbox = sandbox
        self.by_pid = {}  # child pid -> run id
        self.by_id = {}  # run id -> child pid
        self.uids = {}  # child pid -> the run's uid lease (root's servers in the sandbox only)
        self.pending = b""
        self.spares = []  # (pid, request pipe, ready pipe) of each child forked ahead, the oldest first
        self.done_fds = {}  # child pid -> the read end of the pipe it tells its exit code on (dwop_main.exit_now)
        self.done_pids = {}  # the same, the other way round
        self.told = set()  # children whose end was reported from their pipe: their reap reports nothing
        self.poller = select.poll()
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(self.wakeup_w, False)
        # SIGCHLD must have a Python handler for the C handler to write to the wakeup fd.
        self.initial_sigchld = _signal.getsignal(_signal.SIGCHLD)
        _signal.set_wakeup_fd(self.wakeup_w, warn_on_full_buffer=False)
        _signal.signal(_signal.SIGCHLD, lambda _signum, _frame: None)

    def send(self, run_id, key, value):
        write_all(1, event_line(run_id, key, value))

    def serve(self):
        """Answers requests until stdin closes; then kills every child's group and returns."""
        sandbox = self.sandbox
        ready = {"ready": self.pid, "sandbox": sandbox.mode, "why": sandbox.why, "network": sandbox.network}
        if sandbox.network_why:
            ready["networkWhy"] = sandbox.network_why
        import json  # once, at start; the per-run lines are written by hand

        write_all(1, (json.dumps(ready, separators=(",", ":")) + "\n").encode("ascii"))
        # Objects made so far are the server's for good: a child's collections need not touch (copy) them.
        import gc

        gc.collect()
        gc.freeze()
        self.fork_spares()
        self.poller.register(0, select.POLLIN)
        self.poller.register(self.wakeup_r, select.POLLIN)
        try:
            while True:
                for fd, _ in self.poller.poll():
                    if fd == self.wakeup_r:
                        self.drain_wakeups()
                        if self.reap():
                            self.fork_spares()
                    elif fd in self.done_pids:
                        self.hear_exit(fd)
                    elif fd == 0 and not self.read_requests():
                        return
        except BrokenPipeError:
            return  # nobody reads the events any more
        finally:
            self.kill_all()

    def read_requests(self):
        """Handles the complete lines stdin holds; False at end of file."""
        data = os.read(0, READ_CHUNK)
        if not data:
            return False
        self.pending += data
        while b"\n" in self.pending:
            line, _, self.pending = self.pending.partition(b"\n")
            if line.strip():
                self.handle(line)
        if len(self.pending) > MAX_REQUEST:
            self.pending = b""
            self.send(None, "error", "request longer than %d bytes without a newline" % MAX_REQUEST)
        return True

    def handle(self, line):
        try:
            run_id, cwd, limits = parse_request(line)
            if run_id in self.by_id:
                raise BadRequest(run_id, "run %s is already running" % run_id)
            if self.sandbox.refusal:
                raise BadRequest(run_id, self.sandbox.refusal)
        except BadRequest as e:
            self.send(e.args[0], "error", e.args[1])
            return
        handed = self.hand_to_spare(line)  # with the uid it was forked with (see fork_spare)
        if handed:
            pid = handed[0]
        else:
            try:
                lease = self.sandbox.uid_lease()
            except OSError as e:
                self.send(run_id, "error", "no uid free for the run: %s" % e)
                return
            try:
                pid = self.fork_worker(cwd, lease.uid, limits, lease)
            except (OSError, dwop_sandbox.SandboxError) as e:
                lease.release()
                self.send(run_id, "error", "could not fork the run's worker: %s" % e)
                return
            self.uids[pid] = lease
        self.by_pid[pid] = run_id
        self.by_id[run_id] = pid
        self.send(run_id, "pid", pid)
        if handed:
            # The end of file that starts the spare on its run comes after the answer: woken first, the
            # spare took the CPU from the server, and the answer waited.
            os.close(handed[1])
        if not self.spares:
            self.fork_spares()  # none left for the next request: at once (else when a run ends)

    def rehearse(self):
        """The server's own steps of a request (its line read, its answer written) on a made-up one, while it
        waits for the next: the fork just made shares every page with the spare again, and a page written
        first here is copied now rather than on the next run's path (see dwop_main.rehearse). It covers
        the parse and the answer; the rest of a request's handling (a spare's pipes, the uid's
        bookkeeping) still writes a few pages of its own."""
        run_id, _, _ = parse_request(REHEARSAL_REQUEST)
        event_line(run_id, "pid", self.pid)

    def prepare_body(self, run, close=()):
        """In a child out of the server's session: forks the run's body process ahead, in the sandbox run
        (set up as far as it can be before the run is known; see dwop_main.Body), or outside any sandbox
        when run is None. Forked on the run's path instead (its inputs inline, so no download overlaps it),
        the fork and the child's first pages were a run's largest cost without the sandbox."""
        body = Body(run, self.prctl, close, ahead=True)
        body.started()
        return body

    def fork_worker(self, cwd, uid, limits, lease):
        """Forks a worker for a run now; returns its pid once it leads its own process group."""
        ready_r, ready_w = os.pipe()
        done_r, done_w = os.pipe()
        pid = self.fork_or_close(ready_r, ready_w, done_r, done_w)
        if pid == 0:
            try:
                os.close(ready_r)
                os.close(done_r)
                lease.release()  # the server's to hold, as the other runs' leases below
                self.leave_server(ready_w, done_w)
                run = dwop_sandbox.Run(self.sandbox.settings, uid, limits) if self.sandbox.settings else None
                body = self.prepare_body(run, close=(done_w,)) if run else None
                self.become_worker(cwd, body, done_w)
            finally:
                os._exit(EXIT_SETUP_FAILED)
        os.close(ready_w)
        self.listen_done(pid, done_r, done_w)
        wait_ready(ready_r)
        return pid

    def fork_or_close(self, *pipes):
        """Forks a worker (see Sandbox.fork_worker); closes the pipes made for it when that fails (no process
        left, no pid namespace to be had) and raises."""
        try:
            return self.sandbox.fork_worker()
        except BaseException:
            for fd in pipes:
                os.close(fd)
            raise

    def listen_done(self, pid, done_r, done_w):
        """Watches the pipe on which child pid tells its exit code (its write end is the child's alone)."""
        os.close(done_w)
        # Not blocking: a poll result may name a descriptor closed since (its child reaped) and already
        # reused for a newer child's pipe, which has nothing to say yet.
        os.set_blocking(done_r, False)
        self.done_fds[pid] = done_r
        self.done_pids[done_r] = pid
        self.poller.register(done_r, select.POLLIN)

    def hear_exit(self, fd):
        """A child told its exit code (or closed its pipe): its run's end is reported now, before the kernel
        has torn the process down; its reap then reports nothing more."""
        pid = self.done_pids[fd]
        try:
            said = os.read(fd, 32).strip()
        except BlockingIOError:
            return
        self.forget_done(pid)
        run_id = self.by_pid.get(pid)
        if run_id is None or not said.isdigit():
            return  # a spare, or a child that ended without a word: its reap reports it
        self.told.add(pid)
        self.send(run_id, "exit", int(said))
        self.fork_spares()

    def forget_done(self, pid):
        fd = self.done_fds.pop(pid, None)
        if fd is not None:
            del self.done_pids[fd]
            self.poller.unregister(fd)
            os.close(fd)

    def fork_spares(self):
        """Forks workers ahead, to wait for their requests, until SPARES are waiting (or no uid is free);
        then rehearses, as a fork shares the server's pages again."""
        forked = False
        while len(self.spares) < SPARES and self.fork_spare():
            forked = True
        if forked:
            self.rehearse()

    def fork_spare(self):
        """Forks a worker ahead with the uid its run will have (root's servers in the sandbox: leased now,
        so that neither the lease, a file's lock, nor the parts of the sandbox made for that uid are on a
        run's path); False when no uid is free."""
        try:
            lease = self.sandbox.uid_lease()
        except OSError:
            return False  # a request then forks its worker itself, and says why when none is free still
        request_r, request_w = os.pipe()
        ready_r, ready_w = os.pipe()
        done_r, done_w = os.pipe()
        try:
            pid = self.fork_or_close(request_r, request_w, ready_r, ready_w, done_r, done_w)
        except (OSError, dwop_sandbox.SandboxError) as e:
            lease.release()
            write_all(2, ("dwop-forkserver: could not fork a spare worker: %s\n" % e).encode("utf-8", "replace"))
            return False  # a request then forks its worker itself, and says why it cannot
        if pid == 0:
            try:
                os.close(request_w)
                os.close(ready_r)
                os.close(done_r)
                lease.release()  # the server's to hold
                self.leave_server(ready_w, done_w)
                self.await_run(request_r, done_w, lease.uid)
            finally:
                os._exit(EXIT_SETUP_FAILED)
        os.close(request_r)
        os.close(ready_w)
        self.listen_done(pid, done_r, done_w)
        self.uids[pid] = lease
        self.spares.append((pid, request_w, ready_r))
        return True

    def hand_to_spare(self, line):
        """Gives the request to the oldest spare; returns (its pid, the request pipe for the caller to close,
        which starts the spare on it), or None when there is no live spare."""
        self.reap()  # a spare that died is seen now, rather than handed a request its child may take in
        if not self.spares:
            return None
        pid, request_w, ready_r = self.spares.pop(0)
        try:
            wait_ready(ready_r)  # at once, unless the spare was forked a moment ago
            write_all(request_w, line)
        except OSError:
            os.close(request_w)
            return None  # it died (it is reaped as a child without a run)
        return pid, request_w

    def leave_server(self, ready_w, done_w):
        """In a child: drops what is the server's, leads a session of its own, then closes ready_w. done_w,
        its pipe to the server, tells whether the server is still there once the child dies with it."""
        _signal.set_wakeup_fd(-1)
        _signal.signal(_signal.SIGCHLD, self.initial_sigchld)
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)
        for _, request_w, ready_r in self.spares:
            os.close(request_w)
            os.close(ready_r)
        for lease in self.uids.values():
            lease.release()  # the other runs' leases: the server's to hold
        for fd in self.done_pids:
            os.close(fd)  # the other children's pipes
        os.setsid()
        if os.getpid() == 1:  # as root in the sandbox, the first process of its run's pid namespace
            exit_on_stop_signals()
        die_with_parent(self.prctl, self.pid, done_w)
        os.close(ready_w)
        if self.prctl is not None:
            self.prctl(dwop_sandbox.PR_SET_DUMPABLE, 0)  # it is about to hold the run's signed URLs

    def await_run(self, request_r, done_w, uid):
        """In the spare: prepares the run's body (for uid, in the sandbox as root), waits for its request
        line, then becomes its worker; exits quietly when the server closes the pipe without one."""
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)  # the server's stdin and stdout are not the spare's to hold open
        os.dup2(null, 1)
        os.close(null)
        run = dwop_sandbox.Run(self.sandbox.settings, uid) if self.sandbox.settings else None
        body = self.prepare_body(run, close=(request_r, done_w))
        rehearse()
        parse_request(REHEARSAL_REQUEST)  # its own first parse, as the server rehearses its own
        line = read_to_end(request_r)
        os.close(request_r)
        if not line:
            os._exit(0)
        try:
            _, cwd, limits = parse_request(line)
        except BadRequest as e:
            write_all(2, ("dwop-forkserver: the spare got a bad request: %s\n" % e.args[1]).encode())
            os._exit(EXIT_SETUP_FAILED)
        if run:
            run.limits = limits
        self.become_worker(cwd, body, done_w)

    def become_worker(self, cwd, body, done_w):
        """In the child, out of the server's session: turns it into a fresh worker process for the run in
        cwd, then runs it with its prepared body, telling its exit code on done_w."""
        try:
            os.chdir(cwd)
            env = read_env(ENV_FILE)
            log = os.open(LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.close(null)
            os.close(log)
            sys.argv = sys.argv[:1]
        except BaseException as e:
            try:
                write_all(2, ("dwop-forkserver: the child could not start: %r\n" % e).encode("utf-8", "replace"))
            finally:
                os._exit(EXIT_SETUP_FAILED)
        worker_main(body, done_w, env)  # never returns: it ends with os._exit

    def drain_wakeups(self):
        try:
            while os.read(self.wakeup_r, READ_CHUNK):
                pass
        except BlockingIOError:
            pass

    def reap(self):
        """Reaps the children that ended; True when a run's end was reported here."""
        reported = False
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return reported
            if pid == 0:
                return reported
            run_id = self.by_pid.pop(pid, None)
            self.uids.pop(pid, dwop_sandbox.NO_LEASE).release()
            self.forget_done(pid)
            if pid in self.told:
                self.told.discard(pid)
                del self.by_id[run_id]
                continue  # its end was reported when it told it
            for spare in [s for s in self.spares if s[0] == pid]:
                os.close(spare[1])
                os.close(spare[2])
                self.spares.remove(spare)  # died waiting: replaced when a run ends, or by the next request
            if run_id is None:
                continue
            del self.by_id[run_id]
            code = os.waitstatus_to_exitcode(status)
            if code >= 0:
                self.send(run_id, "exit", code)
            else:
                self.send(run_id, "signal", -code)
            reported = True

    def kill_all(self):
        for _, request_w, _ in self.spares:
            os.close(request_w)  # end of file: the spare exits
        for pid in self.by_pid:
            try:
                os.killpg(pid, _signal.SIGKILL)
            except OSError:
                pass


def wait_ready(ready_r):
    """Until end of file on ready_r: the child leads its own group (so kill(-pid) reaches it), or died."""
    try:
        os.read(ready_r, 1)
    finally:
        os.close(ready_r)


class Sandbox:
    """The sandbox settings of the server's argument (see the protocol above) and what the probe found:
    mode "namespaces" (each run's body in the sandbox: settings set) or "off"; why it is off when it was
    asked for; a refusal for every run when it is required and cannot be had."""

    def __init__(self, argument):
        settings = parse_json(argument) if argument else {}
        wanted = settings.get("sandbox", "off")
        if wanted not in ("auto", "required", "off"):
            raise SystemExit("dwop-forkserver: sandbox must be auto, required or off, not %r" % (wanted,))
        self.settings = None
        self.why = None
        self.refusal = None
        self.uids = None
        if wanted != "off":
            candidate = dwop_sandbox.Settings(
                dwop_sandbox.load(),
                allow=settings.get("allow") or [],
                network=settings.get("network") or "none",
                uid_base=settings.get("uidBase"),  # none given: root's /etc/subuid range, else the default
                uid_count=settings.get("uidCount"),
            )
            self.why = dwop_sandbox.probe(candidate)
            if self.why is None:
                self.settings = candidate
                if os.geteuid() == 0:
                    self.uids = dwop_sandbox.UidPool(candidate.uid_base, candidate.uid_count)
            elif wanted == "required":
                self.refusal = "the task sandbox is required but cannot be set up here: %s" % self.why
        self.mode = "namespaces" if self.settings else "off"
        # What runs reach: "internet" through slirp4netns, "none" in the sandbox, "host" without it.
        self.network = "host" if not self.settings else "internet" if self.settings.internet else "none"
        self.network_why = self.settings.network_why if self.settings else None

    def fork_worker(self):
        """os.fork() for a worker: as root in the sandbox, into a pid namespace of its own (see dwop_sandbox)."""
        return self.settings.fork_worker() if self.settings else os.fork()

    def uid_lease(self):
        """A uid of the run's own (root's servers), or the no-op lease; raises OSError when none is free."""
        return self.uids.lease() if self.uids else dwop_sandbox.NO_LEASE


def serve(argument=None):
    """Runs the fork server until its stdin closes; never returns."""
    prctl = load_prctl()
    if os.environ.get("DWOP_DIE_WITH_PARENT") == "1":
        die_with_parent(prctl, os.getppid())
    Server(prctl, Sandbox(argument)).serve()
    os._exit(0)
