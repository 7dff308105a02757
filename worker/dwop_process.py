"""Child processes of the worker: the task body (forked, no second interpreter) and pip (forked, exec'd).

The parent tees each child's stdout and stderr to file descriptors as the bytes arrive, and forwards
SIGTERM to the child, so stopping the worker stops the task.
"""

import _signal
import builtins
import os
import select
import sys
import time

from dwop_source import print_exception, read_source

CHUNK = 256 * 1024
PR_SET_PDEATHSIG = 1
EXIT_NOT_STARTED = 70
BODY_KEEPS = ("DWOP_ATTEMPT",)  # the one DWOP_* variable a task body sees: which attempt it is


_prctl = []  # what load_prctl found, once: the fork server's forks have it already


def load_prctl():
    """prctl(2) through ctypes' C core (the ctypes package costs ~4 ms to import); None off Linux. Loaded
    once per process (and its forks): making the function's classes costs a forked worker ~30 page faults."""
    if not _prctl:
        _prctl.append(find_prctl())
    return _prctl[0]


def find_prctl():
    try:
        import _ctypes

        class Int(_ctypes._SimpleCData):
            _type_ = "i"

        class Function(_ctypes.CFuncPtr):
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = Int

        class Libc:
            _handle = _ctypes.dlopen(None, os.RTLD_NOW)

        return Function(("prctl", Libc))
    except (ImportError, AttributeError, OSError, TypeError):
        pass
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, AttributeError, OSError):
        return None


def die_with_parent(prctl, parent_pid, parent_reads=None):
    """Asks for SIGKILL when the parent dies, then exits if it is already gone (the race prctl leaves).
    The parent of the first process of a pid namespace is outside it, and getppid() says 0 whether it
    lives or not: parent_reads, a pipe whose other end only the parent holds, tells instead (it has no
    reader left once the parent is gone); without it, the check is left to the caller."""
    if prctl is None:
        return
    prctl(PR_SET_PDEATHSIG, _signal.SIGKILL)
    parent = os.getppid()
    if parent == 0 and parent_reads is not None:
        poller = select.poll()
        poller.register(parent_reads, 0)  # POLLERR, which is always asked for: no reader
        gone = bool(poller.poll(0))
    else:
        gone = parent not in (parent_pid, 0)
    if gone:
        os._exit(EXIT_NOT_STARTED)


def fork_child(run, close_fds, prctl):
    """Forks a child that runs run() (which must not return) with its stdout and stderr on
    pipes; returns (pid, stdout's read end, stderr's read end), for wait_child."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    parent = os.getpid()
    try:
        pid = os.fork()
    except BaseException:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    if pid == 0:
        in_child(run, out_w, err_w, {out_r, err_r, *close_fds}, prctl, parent)
    os.close(out_w)
    os.close(err_w)
    return pid, out_r, err_r


def wait_child(child, out_sinks, err_sinks, told=None, watch=None, later=None, start=None):
    """Copies a fork_child's stdout and stderr to the sinks until it exits, forwarding SIGTERM to it;
    returns (exit status, killing signal or None, whether it is left to reap), with 128+N as the status for
    signal N.

    told: a pipe on which the child itself (the body's process, run_script) writes the status it is about
    to exit with. Read from there, the run's end does not wait for the kernel to tear the process down (~1
    ms here), and the child is left to reap. The child's own code could write there first: it can only make
    its own run end sooner, as closing its stdout and exiting would. Without a word on it (the child was
    killed, exited on its own, or closed it) its exit is waited for as without told.

    watch: {fd: handler} of other file descriptors to serve meanwhile (see pump).
    later: (when, call): call() once, if the child still runs at time.monotonic() when (see pump).
    start: called once SIGTERM is forwarded, to let a child waiting for it go (the body's Job): a stop
    signal the child sends this process at once is then passed back to it. Before, the first process of a
    pid namespace (the sandbox's worker) exited on it, with no result (exit_on_stop_signals)."""
    pid, out_r, err_r = child
    previous = _signal.signal(_signal.SIGTERM, lambda signum, _frame: forward(pid, signum))
    # The first process of a pid namespace (the sandbox's worker, as root) is given every orphan in it.
    previous_chld = _signal.signal(_signal.SIGCHLD, lambda *_: reap_orphans(pid)) if os.getpid() == 1 else None
    unreaped = False
    try:
        if start is not None:
            start()
        status = pump(pid, out_r, err_r, out_sinks, err_sinks, told, watch, later)
        if isinstance(status, Told):
            status, unreaped = status.status, True
            forward(pid, _signal.SIGKILL)  # it said it exits: nothing of it goes on (had it lied)
    except BaseException:
        forward(pid, _signal.SIGKILL)
        os.waitpid(pid, 0)
        raise
    finally:
        _signal.signal(_signal.SIGTERM, previous)
        if previous_chld is not None:
            _signal.signal(_signal.SIGCHLD, previous_chld)
        os.close(out_r)
        os.close(err_r)
    code = os.waitstatus_to_exitcode(status)
    return (code, None, unreaped) if code >= 0 else (128 - code, -code, unreaped)


class Told:
    """A wait status the child told on its told pipe (see wait_child), not the kernel's."""

    def __init__(self, code):
        self.status = code << 8


def tell_exit(told, status):
    """In the child, just before it exits with status: tells it on told (see wait_child)."""
    if told is not None:
        try:
            os.write(told, b"%d" % status)
        except OSError:
            pass  # the worker is gone, or the body closed it: its exit is waited for instead


def reap_orphans(child):
    """Reaps the processes that were orphaned to this one (the first of its pid namespace) and have ended,
    until none is left or the next is child, its own, which its caller waits for. Its other children
    (slirp4netns) are not waited for by anyone else."""
    while True:
        try:
            ended = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return
        if ended is None or ended.si_pid == child:
            return
        try:
            os.waitpid(ended.si_pid, os.WNOHANG)
        except ChildProcessError:
            pass


def abandon_child(child):
    """Kills a fork_child that is not to run, and reaps it."""
    pid, out_r, err_r = child
    forward(pid, _signal.SIGKILL)
    os.waitpid(pid, 0)
    os.close(out_r)
    os.close(err_r)


STOP_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)
# What a fresh interpreter has (the fork server imports this module as it starts): a body gets them back,
# whatever its worker set; SIGTERM ends it, as the worker forwards a stop.
FRESH_HANDLERS = {signum: _signal.getsignal(signum) or _signal.SIG_DFL for signum in STOP_SIGNALS}
FRESH_HANDLERS[_signal.SIGTERM] = _signal.SIG_DFL


def on_stop_signals(handler):
    """From now on handler(signum, frame) takes SIGTERM, SIGINT and SIGHUP."""
    for signum in STOP_SIGNALS:
        _signal.signal(signum, handler)


def exit_on_stop_signals():
    """For the first process of a pid namespace (a container's, or its run's as the sandbox's worker as
    root), which the kernel spares every signal it has no handler for: SIGTERM, SIGINT and SIGHUP end it
    (and its exit, the namespace's other processes)."""
    on_stop_signals(lambda signum, _frame: os._exit(128 + signum))


def forward(pid, signum):
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def in_child(run, out_w, err_w, close_fds, prctl, parent):
    try:
        for signum, handler in FRESH_HANDLERS.items():
            _signal.signal(signum, handler)
        die_with_parent(prctl, parent)  # the setting does not survive fork
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        for fd in {null, out_w, err_w, *close_fds}:
            os.close(fd)
        run()
    except BaseException as e:
        try:
            os.write(2, ("dwop-worker: in the child process: %r\n" % e).encode("utf-8", "replace"))
        finally:
            os._exit(EXIT_NOT_STARTED)
    finally:
        os._exit(EXIT_NOT_STARTED)


def pump(pid, out_r, err_r, out_sinks, err_sinks, told=None, watch=None, later=None):
    """Copies the child's stdout and stderr to their sinks as they arrive; returns its wait status, or a
    Told when the child told it (see wait_child).
    Meanwhile each file descriptor of watch that is ready is given to its handler(fd, poll events), which
    returns {fd: handler} to watch from then on, or {fd: None} to stop watching one; and later, when given
    as (when, call), has call() made once the child still runs at time.monotonic() when: what only a long
    run needs (a thread that ships its log live) costs a short one nothing.

    Ends when the child exits (seen through a pidfd where there is one, or its word on told),
    so a grandchild that keeps the pipes open does not hold the worker.
    """
    sinks = {out_r: list(out_sinks), err_r: list(err_sinks)}
    poller = select.poll()
    for fd in sinks:
        os.set_blocking(fd, False)
        poller.register(fd, select.POLLIN)
    pidfd = None
    try:
        pidfd = os.pidfd_open(pid)
        poller.register(pidfd, select.POLLIN)
    except (AttributeError, OSError):
        pass
    if told is not None:
        poller.register(told, select.POLLIN)
    handlers = {}

    def serve(changes):
        for fd, handler in changes.items():
            if handler is None:
                poller.unregister(fd)
                handlers.pop(fd)
            else:
                poller.register(fd, select.POLLIN)
                handlers[fd] = handler

    serve(watch or {})
    open_fds = set(sinks)
    exited = False
    said = None
    while open_fds and not exited:
        if later is not None and time.monotonic() >= later[0]:
            later[1]()
            later = None
        timeout = None if later is None else max(0, int((later[0] - time.monotonic()) * 1000) + 1)
        for fd, events in poller.poll(timeout):
            if fd in handlers:
                serve(handlers[fd](fd, events))
            elif fd == pidfd:
                exited = True
            elif fd == told:
                # Written whole just before the child's exit (a few bytes are one write); anything else,
                # end of file without a word included, leaves its exit to be waited for.
                word = os.read(told, 16)
                poller.unregister(told)
                if word.isdigit() and int(word) < 256:
                    said, exited = int(word), True
            elif fd in open_fds and not copy_available(fd, sinks[fd], once=True):
                poller.unregister(fd)
                open_fds.discard(fd)
    for fd in sorted(open_fds):
        copy_available(fd, sinks[fd], once=False)
    if pidfd is not None:
        os.close(pidfd)
    if said is not None:
        return Told(said)
    return os.waitpid(pid, 0)[1]


def reap_child(child):
    """Reaps a fork_child whose status wait_child read from its told pipe."""
    try:
        os.waitpid(child[0], 0)
    except ChildProcessError:
        pass


def copy_available(fd, sinks, once):
    """Reads what the pipe holds (one read when once) and writes it to every sink (a file descriptor, or
    an object with write(data)); False at end of file."""
    while True:
        try:
            data = os.read(fd, CHUNK)
        except BlockingIOError:
            return True
        if not data:
            return False
        for sink in list(sinks):
            if not isinstance(sink, int):
                sink.write(data)
                continue
            try:
                write_all(sink, data)
            except OSError:
                if sink > 2:
                    raise
                sinks.remove(sink)  # nobody reads the worker's own stdout or stderr any more
        if once:
            return True


def read_to_end(fd):
    """Every byte fd gives until end of file."""
    chunks = []
    while True:
        chunk = os.read(fd, CHUNK)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# --- the task body, in the forked child -------------------------------------------------------------


def run_script(path, deps, failed=None, told=None):
    """Runs path as `python path` would, in this (forked) process, then exits with its status; calls
    failed(the exception or None) first when the status is not 0, and tells the status on told last (see
    wait_child). The process's stdio is made unbuffered beforehand (unbuffered_stdio), while it waits for
    its run."""
    for name in [k for k in os.environ if k.startswith("DWOP_") and k not in BODY_KEEPS]:
        del os.environ[name]
    sys.argv = [path]
    sys.path[0] = os.getcwd()
    if deps:
        sys.path.insert(1, deps)
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, (deps, os.environ.get("PYTHONPATH"))))
        if any(name.endswith(".pth") for name in os.listdir(deps)):
            import site

            site.addsitedir(deps)  # already on sys.path, so this only processes its .pth files
    status, error = execute_main(path)
    # What interpreter shutdown does: wait for non-daemon threads, then run atexit callbacks.
    if "threading" in sys.modules:
        try:
            sys.modules["threading"]._shutdown()
        except BaseException:
            pass
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            status = status or 120  # what CPython exits with when the final flush fails
    if status != 0 and failed is not None:
        try:
            failed(error)
        except BaseException:
            pass
    tell_exit(told, status)
    os._exit(status)


def unbuffered_stdio():
    """What `python -u` gives: each print reaches the worker at once, so the live log is live and stdout
    and stderr lines arrive in the order they were written."""
    import _io

    for fd, name, errors in ((1, "stdout", "strict"), (2, "stderr", "backslashreplace")):
        old = getattr(sys, name)
        flush_quietly(old)
        encoding = getattr(old, "encoding", None) or "utf-8"
        raw = _io.FileIO(fd, "w", closefd=False)
        setattr(sys, name, _io.TextIOWrapper(raw, encoding=encoding, errors=errors, write_through=True))


def execute_main(path):
    """Executes path as the __main__ module (what runpy.run_path does, without importing runpy and
    importlib.util, ~5 ms), compiled as its workflow file (dwop_source); returns (the exit status, the
    exception that ended it or None)."""
    main = type(sys)("__main__")
    main.__file__ = path
    main.__cached__ = None
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    source = None
    try:
        source = read_source(path)
        code = source.compile()
        exec(code, main.__dict__)
        return 0, None
    except SystemExit as e:
        return exit_status(e.code), None
    except BaseException as e:
        flush_quietly(sys.stdout)  # so the traceback ends the log, as its reader expects
        tb = e.__traceback__.tb_next if e.__traceback__ else None  # this frame is not the user's
        print_exception(e.with_traceback(tb), tb, source)
        return 1, e


def exit_status(code):
    """The process status for SystemExit(code), as CPython computes it."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    flush_quietly(sys.stdout)
    try:
        print(code, file=sys.stderr)
    except BaseException:
        pass
    return 1


def flush_quietly(stream):
    try:
        stream.flush()
    except BaseException:
        pass
