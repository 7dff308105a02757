"""The DWOP fork server: `python dwop_worker.py --fork-server`.

Starting Python costs more than the rest of a small task (site, .pth files, the worker's imports). The
fork server pays for that once: for each run it forks a child that becomes a fresh worker process (own
pid, own memory, own session and process group) and runs dwop_main.main(), the same code path as
`python dwop_worker.py`, in ~1-2 ms instead of an interpreter start.

Protocol, one JSON object per line:
  stdin   {"id": "<run id>", "cwd": "/abs/folder", "limits": {"memory", "disk", "processes", "cpuSeconds"},
           "inline": true?}
          The run's environment is not in the request: the child reads it from <cwd>/.dwop-env (a JSON
          object, mode 0600, written by the executor) and deletes it, so this server never holds a run's
          signed URLs, and no run forked later inherits them in its memory. "inline": every file of the run
          (its code, its inputs) comes in that environment, nothing is downloaded into cwd: in the sandbox,
          the body's /work is then a folder of its own, which it sets up while the worker reads the
          environment (see dwop_gate); a worker whose environment asks for a download then fails the run.
  argv    [settings]: {"sandbox": "auto" | "required" | "off", "allow": ["/folder", ...],
          "network": "none" | "internet", "uidBase": n, "uidCount": n, "rootTemplate": "/folder"} (default
          off); see dwop_sandbox.py. rootTemplate: a folder of the server's, made if missing, that the system's
          part of every run's root is built on once, by the zygote (dwop_sandbox.build_template)
  stdout  {"ready": <server pid>, "zygote": <its zygote's pid>, "sandbox": "namespaces" | "off",
           "why": <why off, or null>, "network": "none" | "internet" | "host",
           "networkWhy": <why not internet>?}  once
          {"id": ..., "pid": <child pid>}            after the fork, once the child leads its own group
          {"id": ..., "exit": <code>}                 when the child has exited, or told its exit code
                                                      just before its exit (on a pipe of its own)
          {"id": ..., "signal": <n>}                  when a signal killed the child
          {"id": <id or null>, "error": "<why>"}      for a request that forks nothing (every request,
                                                      when the sandbox is required and cannot be had)
The child forked here is the worker: it stays outside the sandbox (it holds the run's URLs, and is not
dumpable; in the sandbox it is forked into a pid namespace of its own, whose first process it is, and which
the body's process is forked into: dwop_sandbox.Settings.fork_worker) and only the task body's process
enters it (see dwop_sandbox.py); that process is forked before the worker reads the run's environment, so it
never holds the run's URLs either. As root, each run gets a uid of its own for its body, from uidBase on,
held (by a lock file) while the run lives, and while its spare waits (a spare is forked with its run's uid).
The child takes its run's environment from the env file and keeps it in memory (its own process environment
stays the server's; the body's is the run's, set at its gate); its stdin is /dev/null; its stdout and stderr
go to <cwd>/.dwop-worker.log (appended to, so the order of the worker's writes is kept). The child dies
(SIGKILL) when the server dies, and the task body with it when the run's env has DWOP_DIE_WITH_PARENT=1;
with that variable in the server's own environment, the server dies when its parent does. When its stdin
closes, the server kills every child's process group and exits.

A fork costs more than it seems on some machines (each page the child writes is copied, and a page fault
costs 12-40 us in a paravirtualized guest): so the server keeps SPARES children forked ahead, each of which
has already left the server's session, forked its run's body process and set that one's sandbox up as far as
it can be without the run (namespaces, the system's part of the root, the network's trap; see
dwop_main.Body; without the sandbox, only the fork), and waits on a pipe for its run's request; a request is
handed to the oldest. The spares are forked by the zygote, a copy of the server made as it starts, which
passes each spare's pipes to the server over a socket, reaps the spares and tells the server how each ended:
the server forks no spare itself, so its pages stay its own (a fork shares them with the child again, and
each is copied at the server's next write of it) and it answers a request while a spare is forked. Only when
no spare is left does the server fork a worker itself. A spare's preparation takes a few milliseconds of a
core (the namespaces, the root's mounts): made beside the run just handed over, it slowed that
run on a small machine (a chain's task by ~8 %), so the replacement is asked for when a run ends, while the
orchestration between two tasks runs, and at once only when no spare is left. A spare that died is replaced
by a fresh fork. While they wait, the spare goes through its first steps of a run on a made-up one
(dwop_main.rehearse), and the server through its own after it forked a worker itself (Server.rehearse): the
pages those steps write are copied then, not on the run's path (in a paravirtualized guest, ~50 faults fewer
on the server's answer, ~95 fewer between a spare's request and its downloads).

What is per child: os.environ, cwd, sys.argv (the worker's, as a fresh start has it), signal handlers,
umask, and every module's state, since each child is forked from the server, which runs no task code and
changes no module's state after start. What is the server's: settings an interpreter reads at start from
the environment (PYTHONPATH, PYTHONUNBUFFERED, PYTHONHASHSEED, ...); start the server with the same
PYTHON* variables the runs get. The server is single-threaded, so fork() is safe.
"""

import _json
import _signal
import _socket
import os
import select
import struct
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
SPARE_FDS = struct.Struct("3i")  # a spare's pipes the zygote passes to the server: request, ready, done
# A request as the executor writes one, for Server.rehearse (its folder must exist: the root).
REHEARSAL_REQUEST = (
    b'{"id":"rehearsal","cwd":"/","limits":{"memory":1,"disk":1,"processes":1,"cpuSeconds":0},"inline":true}'
)


class ZygoteGone(Exception):
    """The zygote died: the server cannot fork spares any more, and ends (its runs are reported lost)."""


def reaped():
    """(pid, wait status) of each ended child of this process, reaped now."""
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        yield pid, status


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
    """(id, cwd, limits, inline) of a request line; raises BadRequest naming the id when it could be read."""
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
    inline = request.get("inline", False)
    if not isinstance(inline, bool):
        raise BadRequest(run_id, "inline is not true or false")
    return run_id, cwd, dwop_sandbox.Limits.parse(request.get("limits")), inline


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
        self.zygote = None  # (pid, socket) of the process that forks the spares (start_zygote)
        self.asked = []  # the uid leases of the spares asked of the zygote and not yet had, oldest first
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
        """Answers requests until stdin closes; then kills every child's group and returns the server's exit
        code (not 0 when it could not go on)."""
        import json  # once, at start; the per-run lines are written by hand

        # Objects made so far are the server's for good: a child's collections need not touch (copy) them.
        import gc

        gc.collect()
        gc.freeze()
        self.start_zygote()
        sandbox = self.sandbox
        ready = {"ready": self.pid, "zygote": self.zygote[0], "sandbox": sandbox.mode, "why": sandbox.why}
        ready["network"] = sandbox.network
        if sandbox.network_why:
            ready["networkWhy"] = sandbox.network_why
        write_all(1, (json.dumps(ready, separators=(",", ":")) + "\n").encode("ascii"))
        self.fork_spares()
        self.poller.register(0, select.POLLIN)
        self.poller.register(self.wakeup_r, select.POLLIN)
        self.poller.register(self.zygote[1].fileno(), select.POLLIN)
        try:
            while True:
                for fd, _ in self.poller.poll():
                    if fd == self.wakeup_r:
                        self.drain_wakeups()
                        if self.reap():
                            self.fork_spares()
                    elif fd in self.done_pids:
                        self.hear_exit(fd)
                    elif fd == self.zygote[1].fileno():
                        if self.hear_zygote():
                            self.fork_spares()
                    elif fd == 0 and not self.read_requests():
                        return 0
        except BrokenPipeError:
            return 0  # nobody reads the events any more
        except ZygoteGone:
            write_all(2, b"dwop-forkserver: the zygote that forks the spare workers died; the server stops\n")
            return EXIT_SETUP_FAILED
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
            run_id, cwd, limits, inline = parse_request(line)
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
                pid = self.fork_worker(cwd, lease.uid, limits, lease, inline)
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
        else:
            self.rehearse()  # the server forked: its pages are shared again
        if not self.spares and not self.asked:
            self.fork_spares()  # none left or on its way for the next request: at once (else when a run ends)

    def rehearse(self):
        """The server's own steps of a request (its line read, its answer written) on a made-up one, after it
        forked a worker itself (no spare was there): the fork just made shares every page with the worker
        again, and a page written first here is copied now rather than on the next run's path (see
        dwop_main.rehearse). It covers the parse and the answer; the rest of a request's handling (a spare's
        pipes, the uid's bookkeeping) still writes a few pages of its own."""
        run_id, _, _, _ = parse_request(REHEARSAL_REQUEST)
        event_line(run_id, "pid", self.pid)

    def prepare_body(self, run, close=()):
        """In a child out of the server's session: forks the run's body process ahead, in the sandbox run
        (set up as far as it can be before the run is known; see dwop_main.Body), or outside any sandbox
        when run is None. Forked on the run's path instead (its inputs inline, so no download overlaps it),
        the fork and the child's first pages were a run's largest cost without the sandbox."""
        body = Body(run, self.prctl, close, ahead=True)
        body.started()
        return body

    def fork_worker(self, cwd, uid, limits, lease, inline):
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
                self.become_worker(cwd, body, done_w, inline)
            finally:
                os._exit(EXIT_SETUP_FAILED)
        os.close(ready_w)
        os.close(done_w)
        self.listen_done(pid, done_r)
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

    def listen_done(self, pid, done_r):
        """Watches the pipe on which child pid tells its exit code (its write end is the child's alone)."""
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
        """Asks the zygote for spares until SPARES are waiting or on their way (or no uid is free)."""
        while len(self.spares) + len(self.asked) < SPARES:
            try:
                lease = self.sandbox.uid_lease()
            except OSError:
                return  # a request then forks its worker itself, and says why when none is free still
            try:
                self.zygote[1].send(b"spare -" if lease.uid is None else b"spare %d" % lease.uid)
            except OSError:
                lease.release()
                return  # the zygote is gone: its reap ends the server
            self.asked.append(lease)

    def start_zygote(self):
        """Forks the zygote: a copy of the server as it starts, which forks each spare when asked (a spare is
        forked with the uid its run will have: root's servers in the sandbox lease it first, so that
        neither the lease, a file's lock, nor the parts of the sandbox made for that uid are on a run's
        path), reaps them and tells the server both over a socket. A fork leaves the forking process's
        pages shared with the child, each copied again at its next write: the zygote writes few, and the
        server, which forks no spare itself, keeps its own pages and answers a request while a spare is
        forked. In a paravirtualized guest, the fork and the writes after it took the server 7-9 ms of CPU
        at each run's end, and the next run's request waited for them (7.3 ms at the median)."""
        server_end, zygote_end = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            try:
                server_end.close()
                self.serve_as_zygote(zygote_end)
            finally:
                os._exit(EXIT_SETUP_FAILED)
        zygote_end.close()
        # Not blocking: a poll result may be stale, its message taken since (hear_zygote_while).
        server_end.setblocking(False)
        self.zygote = (pid, server_end)

    def serve_as_zygote(self, sock):
        """In the zygote: forks a spare for each uid the server asks, reaps them, and tells the server of
        each ("spare <pid>" with its pipes, "failed <why>", "ended <pid> <wait status>"); exits when the
        server's end of the socket closes, and dies with the server."""
        server = self.pid
        self.pid = os.getpid()  # what its children die with (leave_server)
        null = os.open(os.devnull, os.O_RDWR)
        os.dup2(null, 0)  # the server's stdin and stdout are not the zygote's to hold open
        os.dup2(null, 1)
        os.close(null)
        die_with_parent(self.prctl, server)
        os.close(self.wakeup_r)
        os.close(self.wakeup_w)
        self.wakeup_r, self.wakeup_w = os.pipe()  # its own: the server's tells the server of its children
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(self.wakeup_w, False)
        _signal.set_wakeup_fd(self.wakeup_w, warn_on_full_buffer=False)
        self.zygote = (None, sock)  # closed by each spare (leave_server)
        if self.sandbox.template:
            try:
                settings = self.sandbox.settings
                dwop_sandbox.build_template(settings.libc, settings, self.sandbox.template)
            except (OSError, dwop_sandbox.SandboxError) as e:
                dwop_sandbox.no_template(e)
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN)
        poller.register(self.wakeup_r, select.POLLIN)
        try:
            while True:
                for fd, _ in poller.poll():
                    if fd == self.wakeup_r:
                        self.drain_wakeups()
                        for pid, status in reaped():
                            sock.send(b"ended %d %d" % (pid, status))
                        continue
                    asked = sock.recv(64).split()
                    if not asked:
                        return  # the server closed its end
                    try:
                        pid, fds = self.fork_spare(None if asked[1] == b"-" else int(asked[1]))
                    except (OSError, dwop_sandbox.SandboxError) as e:
                        sock.send(b"failed " + str(e).encode("utf-8", "replace")[:1000])
                        continue
                    passed = (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, SPARE_FDS.pack(*fds))
                    sock.sendmsg([b"spare %d" % pid], [passed])
                    for fd in fds:
                        os.close(fd)
        except OSError:
            return  # the server is gone

    def fork_spare(self, uid):
        """In the zygote: forks a worker ahead with its run's uid, which waits for its request (await_run);
        returns its pid and the server's ends of its pipes (request, ready, done)."""
        request_r, request_w = os.pipe()
        ready_r, ready_w = os.pipe()
        done_r, done_w = os.pipe()
        pid = self.fork_or_close(request_r, request_w, ready_r, ready_w, done_r, done_w)
        if pid == 0:
            try:
                os.close(request_w)
                os.close(ready_r)
                os.close(done_r)
                self.leave_server(ready_w, done_w)
                self.await_run(request_r, done_w, uid)
            finally:
                os._exit(EXIT_SETUP_FAILED)
        os.close(request_r)
        os.close(ready_w)
        os.close(done_w)
        return pid, (request_w, ready_r, done_r)

    def hear_zygote(self):
        """Takes what the zygote says (see serve_as_zygote); True when a run's end was reported here."""
        try:
            message, ancillary, _, _ = self.zygote[1].recvmsg(1100, _socket.CMSG_SPACE(SPARE_FDS.size))
        except BlockingIOError:
            return False
        except OSError:
            raise ZygoteGone() from None
        if not message:
            raise ZygoteGone()
        kind, _, rest = message.partition(b" ")
        if kind == b"spare":
            pid = int(rest)
            passed = ancillary[0][2] if ancillary else b""
            if len(passed) < SPARE_FDS.size:  # not received (no descriptor free here): the spare, its
                self.asked.pop(0).release()  # request pipe's end of file seen, exits unstarted
                for fd in struct.unpack("%di" % (len(passed) // 4), passed[: len(passed) // 4 * 4]):
                    os.close(fd)
                return False
            request_w, ready_r, done_r = SPARE_FDS.unpack(passed[: SPARE_FDS.size])
            self.listen_done(pid, done_r)
            self.uids[pid] = self.asked.pop(0)
            self.spares.append((pid, request_w, ready_r))
        elif kind == b"failed":
            self.asked.pop(0).release()
            write_all(2, b"dwop-forkserver: could not fork a spare worker: " + rest + b"\n")
        elif kind == b"ended":
            pid, status = (int(word) for word in rest.split())
            return self.ended(pid, status)
        return False

    def hear_zygote_while(self, wanted, timeout):
        """Takes the zygote's words as they come, while wanted() and the next comes within timeout seconds."""
        sock = self.zygote[1].fileno()
        while wanted() and select.select([sock], [], [], timeout)[0]:
            if self.hear_zygote():
                self.fork_spares()

    def hand_to_spare(self, line):
        """Gives the request to the oldest spare; returns (its pid, the request pipe for the caller to close,
        which starts the spare on it), or None when there is no live spare."""
        self.reap()  # a spare that died is seen now, rather than handed a request its child may take in
        self.hear_zygote_while(lambda: True, 0)  # likewise one the zygote reaped
        # None is there but one is on its way: it is forked already, and sooner ready than a worker forked now.
        self.hear_zygote_while(lambda: not self.spares and self.asked, 1.0)
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
        for lease in [*self.uids.values(), *self.asked]:
            lease.release()  # the other runs' leases: the server's to hold
        if self.zygote:
            self.zygote[1].close()
        for fd in self.done_pids:
            os.close(fd)  # the other children's pipes
        os.setsid()
        if os.getpid() == 1:  # in the sandbox, the first process of its run's pid namespace
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
            _, cwd, limits, inline = parse_request(line)
        except BadRequest as e:
            write_all(2, ("dwop-forkserver: the spare got a bad request: %s\n" % e.args[1]).encode())
            os._exit(EXIT_SETUP_FAILED)
        if run:
            run.limits = limits
        self.become_worker(cwd, body, done_w, inline)

    def become_worker(self, cwd, body, done_w, inline):
        """In the child, out of the server's session: turns it into a fresh worker process for the run in
        cwd, then runs it with its prepared body, telling its exit code on done_w. A sandboxed body of an
        inline run is told at once that it runs without the folder: it finishes its root meanwhile."""
        if inline and body and body.sandbox:
            body.place(None)
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
        """Reaps the server's own children that ended (the zygote, a worker forked for a request when no spare
        was there); True when a run's end was reported here."""
        reported = False
        for pid, status in reaped():
            if self.zygote and pid == self.zygote[0]:
                raise ZygoteGone()
            reported = self.ended(pid, status) or reported
        return reported

    def ended(self, pid, status):
        """Child pid ended with status (reaped here or by the zygote); True when its run's end is reported
        here."""
        run_id = self.by_pid.pop(pid, None)
        self.uids.pop(pid, dwop_sandbox.NO_LEASE).release()
        self.forget_done(pid)
        if pid in self.told:
            self.told.discard(pid)
            del self.by_id[run_id]
            return False  # its end was reported when it told it
        for spare in [s for s in self.spares if s[0] == pid]:
            os.close(spare[1])
            os.close(spare[2])
            self.spares.remove(spare)  # died waiting: replaced when a run ends, or by the next request
        if run_id is None:
            return False
        del self.by_id[run_id]
        code = os.waitstatus_to_exitcode(status)
        if code >= 0:
            self.send(run_id, "exit", code)
        else:
            self.send(run_id, "signal", -code)
        return True

    def kill_all(self):
        if self.zygote:
            self.zygote[1].close()  # end of file: the zygote exits
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
        # An empty folder the template of the runs' root is mounted on, in the zygote's own mount namespace
        # (dwop_sandbox.build_template); on the machine it stays empty.
        template = settings.get("rootTemplate")
        self.template = None
        if template is not None and self.settings:
            self.template = dwop_sandbox.template_folder(template if isinstance(template, str) else "")
        self.mode = "namespaces" if self.settings else "off"
        # What runs reach: "internet" through slirp4netns, "none" in the sandbox, "host" without it.
        self.network = "host" if not self.settings else "internet" if self.settings.internet else "none"
        self.network_why = self.settings.network_why if self.settings else None

    def fork_worker(self):
        """os.fork() for a worker: in the sandbox, into a pid namespace of its own (see dwop_sandbox)."""
        return self.settings.fork_worker() if self.settings else os.fork()

    def uid_lease(self):
        """A uid of the run's own (root's servers), or the no-op lease; raises OSError when none is free."""
        return self.uids.lease() if self.uids else dwop_sandbox.NO_LEASE


def serve(argument=None):
    """Runs the fork server until its stdin closes; never returns."""
    prctl = load_prctl()
    if os.environ.get("DWOP_DIE_WITH_PARENT") == "1":
        die_with_parent(prctl, os.getppid())
    os._exit(Server(prctl, Sandbox(argument)).serve())
