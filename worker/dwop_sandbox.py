"""The task sandbox of the local executor: Linux namespaces around each forked worker.

A run forked by the fork server runs as the dispatcher's user. Without more, its code could read what that
user can: the dispatcher's /proc/<pid>/environ (DATABASE_URL, the storage secret), the storage folder
(every workflow's objects) and the folders of the runs beside it. enter() closes those paths, as
bubblewrap would, with no helper program and no privilege (unprivileged user namespaces):

  1. unshare a user, a mount and a pid namespace, mapping the user's own uid and gid onto themselves (the
     task keeps its uid, so Python and the user's files stay readable);
  2. fork: the run's process becomes the first process of the new pid namespace; the process left outside
     only waits for it, forwarding SIGTERM, SIGINT and SIGHUP, and exits as it did;
  3. mount a fresh /proc, which shows only the run's own processes, and a small read-only tmpfs over each
     hidden folder (the DWOP home: storage, secrets, the database, every run's folder), with only the
     run's own folder bound back in place;
  4. unshare a second user and mount namespace, which locks those mounts: the task cannot unmount them to
     see what is below, nor mount another /proc.

The first process of a pid namespace ignores the signals it has no handler for: the worker, as it does as
a container's first process, stops on SIGTERM through a handler (dwop_main), and on SIGINT through
Python's own; SIGKILL of the process group reaches both processes as before. When the run's process exits,
the kernel kills whatever it left running in its namespace.
"""

import _signal
import os
import select

from dwop_process import forward

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
STOP_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP)
EXIT_SANDBOX_FAILED = 71


class SandboxError(Exception):
    """The sandbox could not be set up; the message says which step failed."""


class Libc:
    """unshare(2) and mount(2) through ctypes, loaded once in the fork server before it forks."""

    def __init__(self):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        self.ctypes = ctypes
        self._unshare = libc.unshare
        self._unshare.argtypes = [ctypes.c_int]
        self._unshare.restype = ctypes.c_int
        self._mount = libc.mount
        self._mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
        self._mount.restype = ctypes.c_int

    def unshare(self, flags, what):
        if self._unshare(flags) != 0:
            self.fail("unshare %s" % what)

    def mount(self, source, target, fstype, flags, data=None):
        encode = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
        if self._mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
            self.fail("mount %s on %s" % (fstype or source or "(remount)", target))

    def fail(self, what):
        errno = self.ctypes.get_errno()
        raise SandboxError("%s: %s" % (what, os.strerror(errno)))


def load():
    """The Libc, or None where ctypes or the calls are missing (off Linux)."""
    try:
        return Libc()
    except (ImportError, AttributeError, OSError):
        return None


def within(path, folder):
    """Whether the (real, absolute) path is the folder or below it."""
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def hidden_roots(paths):
    """The folders to cover: existing absolute folders, none below another of them."""
    roots = sorted({os.path.realpath(p) for p in paths if os.path.isabs(p) and os.path.isdir(p)})
    kept = []
    for root in roots:
        if not any(within(root, k) for k in kept):
            kept.append(root)
    return kept


def needed_by_runs():
    """Folders a run must still read: Python's installation and the worker's own modules."""
    import sys

    folders = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix, os.path.dirname(__file__)}
    return sorted(os.path.realpath(f) for f in folders if f)


def split_hidden(paths):
    """(paths to hide, paths left visible because a run needs what is inside them): a DWOP home that holds
    the Python in use, say, cannot be hidden without breaking every run's imports."""
    needed = needed_by_runs()
    hide, visible = [], []
    for path in paths:
        real = os.path.realpath(path)
        (visible if any(within(f, real) for f in needed) else hide).append(path)
    return hide, visible


def enter(libc, cwd, hide, prctl, die_with_parent):
    """Puts this process (a freshly forked child of the fork server) in the sandbox. Returns in the run's
    process, inside; the process left outside never returns from here."""
    uid, gid = os.getuid(), os.getgid()
    libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID, "user, mount and pid namespaces")
    map_ids(uid, gid)
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid != 0:
        os.close(alive_r)
        wait_outside(pid)  # never returns
    os.close(alive_w)
    die_with_parent(prctl, 0)  # the parent is outside the namespace: getppid() is 0 while it lives
    if select.select([alive_r], [], [], 0)[0]:
        os._exit(EXIT_SANDBOX_FAILED)  # end of file: the process outside died before the line above
    os.close(alive_r)
    cover(libc, os.path.realpath(cwd), hidden_roots(hide))
    libc.unshare(CLONE_NEWUSER | CLONE_NEWNS, "the locking user and mount namespaces")
    map_ids(uid, gid)


def map_ids(uid, gid):
    """Maps the user's uid and gid onto themselves in the user namespace just unshared."""
    write("/proc/self/setgroups", "deny")
    write("/proc/self/uid_map", "%d %d 1" % (uid, uid))
    write("/proc/self/gid_map", "%d %d 1" % (gid, gid))


def write(path, text):
    try:
        fd = os.open(path, os.O_WRONLY)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise SandboxError("write %s: %s" % (path, e.strerror)) from None


def cover(libc, cwd, roots):
    """Mounts a fresh /proc and a read-only tmpfs over each root, keeping cwd (the run's folder) in place."""
    own = os.open(cwd, os.O_PATH | os.O_DIRECTORY)
    libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
    libc.mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for root in roots:
        libc.mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=64k,mode=0755")
        if cwd != root and within(cwd, root):
            os.makedirs(cwd, mode=0o700)
            libc.mount("/proc/self/fd/%d" % own, cwd, None, MS_BIND | MS_REC)
        libc.mount(None, root, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.close(own)


def wait_outside(pid):
    """The process outside the namespace: forwards stop signals to the run's process, waits for it, then
    ends as it ended (its exit code, or killed by the same signal)."""
    try:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)  # the fork server's pipes are not this process's to hold
        os.close(null)
        for signum in STOP_SIGNALS:
            _signal.signal(signum, lambda s, _frame: forward(pid, s))
        status = os.waitpid(pid, 0)[1]
        code = os.waitstatus_to_exitcode(status)
        if code < 0:
            # Killed: die of the same signal, so the fork server reports it as such (a worker killed
            # from outside is an infrastructure loss, not the task's failure).
            if -code not in (_signal.SIGKILL, _signal.SIGSTOP):
                _signal.signal(-code, _signal.SIG_DFL)
            os.kill(os.getpid(), -code)
            code = 128 - code
        os._exit(code)
    finally:
        os._exit(EXIT_SANDBOX_FAILED)


def probe(libc, hide):
    """Whether enter() works here: forks a child that enters the sandbox and exits. Returns None when it
    does, else why not."""
    if libc is None:
        return "ctypes or unshare(2) is not available"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            enter(libc, "/", hide, None, lambda _prctl, _parent: None)
            os._exit(0)
        except BaseException as e:
            os.write(w, str(e).encode("utf-8", "replace")[:500])
            os._exit(EXIT_SANDBOX_FAILED)
    os.close(w)
    why = b""
    while True:
        chunk = os.read(r, 512)
        if not chunk:
            break
        why += chunk
    os.close(r)
    status = os.waitpid(pid, 0)[1]
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return why.decode("utf-8", "replace") or "the probe exited with %s" % os.waitstatus_to_exitcode(status)
