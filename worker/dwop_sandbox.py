"""The task sandbox of the local executor: an allow-list around each task body, built from namespaces.

The worker (the process that holds the run's signed URLs) stays outside: it downloads the code and inputs
into the run's folder, and uploads the output and the log when the body has ended. Only the process that
runs the body (and pip, when there are requirements) enters the sandbox:

  1. unshare a mount, network, IPC and UTS namespace (the pid namespace, and a normal user's user
     namespace, are the worker's: see 2);
  2. the worker itself is the first process (the init) of the run's pid namespace: the fork server forked it
     into a new one (Settings.fork_worker), and the process it forks for the body is in it, with no process
     of the run's between the two. It reaps what is orphaned to it while the body runs, and kills what the
     body left when it ends (Run.after_run). As root the worker stays in the machine's other namespaces (no
     user namespace is needed, and the body gets a uid of its own); a normal user cannot make a pid
     namespace without a user namespace, so a normal user's worker is in the run's user namespace too,
     which maps the user's uid onto 1000 and owns nothing but the run's namespaces;
  3. build a new root on a tmpfs: read-only binds of /usr, the /lib folders, what /etc holds that programs
     need (the dynamic loader's cache, certificates, time zones, ...) and Python's own folders; a minimal
     /dev; a fresh /proc;
  4. bring up a loopback of the run's own: the network namespace has no route to the host's loopback or
     any other network ("none"), or reaches the internet through slirp4netns with the host's loopback and
     the private ranges closed ("internet");
  5. (all of the above can be done before the run is known: the fork server's spare worker does it while
     it waits for a request, and the gate hands the run over; see dwop_gate.py) add the run's part: its
     user in /etc/passwd, the run's folder at /work as an overlay whose writable layer is a tmpfs of the
     run's disk limit (which also holds /tmp and /dev/shm); then pivot_root into it, so nothing else of
     the machine (the user's home, the DWOP checkout and home, .env, every other run) is there to be seen,
     even by absolute path;
  6. set the run's limits (rlimits: data memory, processes, CPU time, file size) and drop every privilege:
     as root, switch to the run's own uid (setresuid clears the capabilities); as a normal user, clear the
     capabilities the user namespace gave (capset); no new privileges either way.

When the first process of the pid namespace exits, the kernel kills whatever the body left running in it.
"""

import _signal
import errno
import os
import resource  # here, not in Limits.apply: its import is on a run's path there (~0.1 ms)
import select
import stat

import dwop_network
from dwop_process import read_to_end

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS  # a run's own, beside its pid (and user)
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_RELATIME = 1 << 21
MNT_DETACH = 2
ST_NOEXEC, ST_NOATIME, ST_NODIRATIME, ST_RELATIME = 8, 1024, 2048, 4096
PR_SET_DUMPABLE = 4
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE = 47, 2
CAP_NET_ADMIN, CAP_SYS_ADMIN = 12, 21
SYSCALLS = {"x86_64": {"pivot_root": 155, "clone": 56}, "aarch64": {"pivot_root": 41, "clone": 220}}
EXIT_SANDBOX_FAILED = 71
INSIDE_UID = 1000  # what a normal user's uid becomes inside its user namespace
# Root's runs get uids from here (after systemd's container range, below 2^31) unless /etc/subuid gives
# root a range of its own.
DEFAULT_UID_BASE = 0x70000000
DEFAULT_UID_COUNT = 65536
WORK = "/work"
MAX_COPY = 1 << 20  # /etc files up to this size are copied into a run's root rather than bound

# What of the machine a run sees, read-only. Symbolic links are copied as links (/bin -> usr/bin).
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = (
    "alternatives", "ca-certificates", "ca-certificates.conf", "debian_version", "gai.conf", "group",
    "host.conf",
    "hostname", "hosts", "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "localtime", "mime.types",
    "nsswitch.conf", "os-release", "passwd", "pki", "protocols", "pip.conf", "python3", "resolv.conf", "services",
    "ssl", "timezone", "xdg",
)  # fmt: skip
DEVICES = ("null", "zero", "full", "random", "urandom")


class SandboxError(Exception):
    """The sandbox could not be set up; the message says which step failed."""


class Libc:
    """unshare(2), mount(2), umount2(2), pivot_root(2) and capset(2) through ctypes, loaded once in the fork
    server before it forks."""

    def __init__(self):
        import ctypes

        syscalls = SYSCALLS.get(os.uname().machine)
        if syscalls is None:
            raise OSError("no pivot_root syscall number for %s" % os.uname().machine)
        libc = ctypes.CDLL(None, use_errno=True)
        self.ctypes = ctypes
        self.pivot_root_nr = syscalls["pivot_root"]
        self.clone_nr = syscalls["clone"]
        # clone(2) with the interpreter's lock held throughout (a PyDLL call), as os.fork() makes it.
        self._clone = ctypes.PyDLL(None, use_errno=True).syscall
        self._clone.restype = ctypes.c_long
        self.python = ctypes.pythonapi
        self._unshare = libc.unshare
        self._unshare.argtypes = [ctypes.c_int]
        self._mount = libc.mount
        self._mount.argtypes = [ctypes.c_char_p] * 3 + [ctypes.c_ulong, ctypes.c_char_p]
        self._umount2 = libc.umount2
        self._umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self._syscall = libc.syscall
        self._setns = libc.setns
        self._setns.argtypes = [ctypes.c_int, ctypes.c_int]
        self._capset = libc.capset
        self._capget = libc.capget
        self._prctl = libc.prctl
        self._prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

    def fork_into(self, flags, what):
        """os.fork() into new namespaces (clone(2) with flags): with CLONE_NEWPID the child is the first
        process of its pid namespace, where unshare(2) would leave the caller outside it and need a process
        more a run. The interpreter is told of the fork as os.fork() tells it (its locks, its threads' state,
        the at-fork hooks). Unlike glibc's fork(), the child's libc still holds its parent's thread id, which
        only raise(3), abort(3) and pthread_kill(3) use: the child (a normal user's worker) calls none of them
        (signal.raise_signal, os.abort); os.kill(), os.fork(), os.posix_spawn() and os._exit() are safe, and
        processes it forks in turn have their own."""
        c = self.ctypes
        self.python.PyOS_BeforeFork()
        pid = self._clone(c.c_long(self.clone_nr), c.c_ulong(flags | _signal.SIGCHLD), None, None, None, None)
        if pid == 0:
            self.python.PyOS_AfterFork_Child()
            return 0
        errno = c.get_errno()
        self.python.PyOS_AfterFork_Parent()
        if pid < 0:
            raise SandboxError("clone %s: %s" % (what, os.strerror(errno)))
        return pid

    def unshare(self, flags, what):
        if self._unshare(flags) != 0:
            self.fail("unshare %s" % what)

    def mount(self, source, target, fstype, flags, data=None):
        encode = lambda s: None if s is None else os.fsencode(s)  # noqa: E731
        if self._mount(encode(source), encode(target), encode(fstype), flags, encode(data)) != 0:
            self.fail("mount %s on %s" % (fstype or source or "(remount)", target))

    def setns(self, fd, nstype, what):
        if self._setns(fd, nstype) != 0:
            self.fail("setns %s" % what)

    def umount(self, target):
        if self._umount2(os.fsencode(target), MNT_DETACH) != 0:
            self.fail("umount %s" % target)

    def pivot_root(self):
        """pivot_root(".", "."): the old root ends up below the new one, then is detached."""
        c = self.ctypes
        if self._syscall(c.c_long(self.pivot_root_nr), c.c_char_p(b"."), c.c_char_p(b".")) != 0:
            self.fail("pivot_root")
        self.umount(".")

    def prctl(self, option, value, what, arg3=0):
        if self._prctl(option, value, arg3, 0, 0) != 0:
            self.fail(what)

    def drop_capabilities(self):
        """Clears every capability set (version 3 header, two zeroed data blocks)."""
        c = self.ctypes
        header = (c.c_uint32 * 2)(0x20080522, 0)
        data = (c.c_uint32 * 6)()
        if self._capset(c.byref(header), c.byref(data)) != 0:
            self.fail("capset")

    def keep_across_exec(self, caps):
        """Makes caps (numbers below 32, held now) ambient: kept by what this process executes next, which
        as a user other than root would lose them (capabilities(7))."""
        c = self.ctypes
        header = (c.c_uint32 * 2)(0x20080522, 0)
        data = (c.c_uint32 * 6)()  # effective, permitted, inheritable: the low 32 bits, then the high
        if self._capget(c.byref(header), c.byref(data)) != 0:
            self.fail("capget")
        for cap in caps:
            data[2] |= 1 << cap
        if self._capset(c.byref(header), c.byref(data)) != 0:
            self.fail("capset")
        for cap in caps:
            self.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, "prctl(PR_CAP_AMBIENT_RAISE)", arg3=cap)

    def fail(self, what):
        errno = self.ctypes.get_errno()
        raise SandboxError("%s: %s" % (what, os.strerror(errno)))


def load():
    """The Libc, or None where ctypes or the calls are missing (off Linux, an unknown architecture)."""
    try:
        return Libc()
    except (ImportError, AttributeError, OSError):
        return None


class Limits:
    """What one run may use. Sizes in bytes, CPU in seconds; 0 for no limit."""

    def __init__(self, memory=0, disk=1 << 30, processes=256, cpu_seconds=0):
        self.memory = memory
        self.disk = disk
        self.processes = processes
        self.cpu_seconds = cpu_seconds

    @classmethod
    def parse(cls, value):
        if not isinstance(value, dict):
            return cls()
        number = lambda name, default: value.get(name) if isinstance(value.get(name), int) else default  # noqa: E731
        return cls(
            memory=max(0, number("memory", 0)),
            disk=max(1 << 20, number("disk", 1 << 30)),
            processes=max(0, number("processes", 256)),
            cpu_seconds=max(0, number("cpuSeconds", 0)),
        )

    def apply(self):
        """Sets the limits on this process; its children inherit them."""
        pairs = [(resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, self.disk)]
        if self.memory:
            pairs.append((resource.RLIMIT_DATA, self.memory))
        if self.processes:
            pairs.append((resource.RLIMIT_NPROC, self.processes))
        for which, value in pairs:
            resource.setrlimit(which, (value, value))
        if self.cpu_seconds:
            # SIGXCPU at the soft limit ends the body; the hard limit (SIGKILL) catches one that ignores it.
            _signal.signal(_signal.SIGXCPU, _signal.SIG_DFL)
            resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 5))


class Run:
    """One run's sandbox: the machine-wide settings, the uid it runs as (root's servers only: a uid of the
    run's own), its limits, and the folder it works in. The last three may be left out when the sandbox is
    prepared before the run is known: the gate given to enter() hands them over (a Job)."""

    def __init__(self, settings, uid=None, limits=None, folder=None):
        self.settings = settings
        self.uid = uid
        self.limits = limits or Limits()
        self.folder = folder
        self.handshake = None
        self.attached = False
        self.slirp = None
        self.namespaces = None  # the worker's: the run's network namespace, (net,)
        self.trap_ends = None  # the worker's and the body's ends of the socket the listener is passed on
        self.listener = None  # the worker's: the body's trap of its first IPv4 or IPv6 socket
        self.mounts_held = False  # see hold_mounts

    def enter(self, gate=None):
        """Puts this process (the body's, which the worker forked) in the sandbox; raises SandboxError (or
        OSError) naming the step that failed. Returns inside, with its cwd at /work. gate(), when given, is
        called once everything but the run's own part is set up (the namespaces, the system's part of the
        root, the network attached) and returns the run's Place (see dwop_gate): its uid, limits and folder,
        or no folder when every file of the run comes in its Job, the body's /work then a folder of its own;
        so all of that is done before the run is even asked for. Without a gate, the Run's own uid, limits
        and folder are used."""
        libc = self.settings.libc
        privileged = self.settings.privileged
        if self.trap_ends:
            os.close(self.trap_ends[0])
        # The worker is the first process of this pid namespace (Settings.fork_worker): this process is the
        # body's already, with no init of its own to fork.
        if not self.settings.apart():
            raise SandboxError("the run's worker is not the first process of a pid namespace of its own")
        libc.unshare(NAMESPACES, "mount, network and IPC namespaces")
        if privileged or not self.handshake:
            self.network_unshared()
        else:
            # A normal user's worker opens the run's network namespace through /proc/<pid>/ns, for
            # slirp4netns, which only a dumpable process lets it do: dumpable for the handshake only, as it
            # holds the worker's memory (not yet the run's).
            libc.prctl(PR_SET_DUMPABLE, 1, "prctl(PR_SET_DUMPABLE)")
            self.network_unshared()
            self.wait_for_network()
            libc.prctl(PR_SET_DUMPABLE, 0, "prctl(PR_SET_DUMPABLE)")
        os.setsid()  # the run's own session: its kill(0, ...) reaches none of the processes outside
        # In this mount namespace (a bind's source must be), before /tmp is covered: the folder may be there.
        folder = None if gate else open_folder(self.folder, None)
        below_tmp = os.open("/tmp", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC) if gate else None
        build_system_root(libc, self.settings)
        # The run's user, when its uid is known already (a normal user's always is; root's spares are
        # forked with their run's).
        ahead = self.uid if privileged else INSIDE_UID
        if ahead is not None:
            add_user(libc, self.settings, ahead)
        loopback_up()
        if self.settings.internet:
            dwop_network.close_private_routes(self.settings.networks)
        self.wait_for_network()
        if self.trap_ends:  # this process and every one it starts; only the worker keeps the listener
            listener = self.settings.trap.install()
            dwop_network.send_fd(self.trap_ends[1], listener)
            os.close(listener)
        if gate:
            place = gate()
            self.uid, self.limits = place.uid, place.limits
            folder = open_folder(place.folder, below_tmp) if place.folder is not None else None
            os.close(below_tmp)
        uid = self.uid if privileged else INSIDE_UID
        if uid is None:
            raise SandboxError("no uid of its own for the run (root's runs get one from the fork server)")
        if uid != ahead:
            add_user(libc, self.settings, uid)
        finish_root(libc, folder, self.limits.disk)
        self.limits.apply()
        self.drop_privileges(libc, privileged)
        libc.prctl(PR_SET_DUMPABLE, 1, "prctl(PR_SET_DUMPABLE)")  # its own /proc/self stays its own
        self.own_environment()

    def own_environment(self):
        """The variables the sandbox sets in the body's environment (again after the run's replaced it)."""
        os.environ["HOME"] = WORK
        os.environ["TMPDIR"] = "/tmp"
        os.environ["USER"] = os.environ["LOGNAME"] = "dwop"

    # The internet setting: once the child has unshared the namespaces, the worker opens the run's network
    # namespace (a normal user's child is dumpable then) while the child builds the root. Where
    # the kernel can trap a call for a listener (settings.trap), the child then traps its first
    # IPv4 or IPv6 socket and passes the listener to the worker, which attaches slirp4netns when that
    # call comes (network_watch); elsewhere the worker attaches it at once, and the body starts once it
    # is attached. before_fork() makes the two pipes of that handshake and the socket of the listener,
    # after_fork(pid) is the worker's half, network_unshared() and wait_for_network() the child's,
    # after_run() stops slirp4netns.
    def before_fork(self):
        internet = self.settings.internet
        self.handshake = (os.pipe(), os.pipe()) if internet else None
        self.trap_ends = dwop_network.socket_pair() if internet and self.settings.trap else None
        self.slirp = self.namespaces = self.listener = None

    def after_fork(self, pid):
        if self.trap_ends:
            os.close(self.trap_ends[1])
        if not self.handshake:
            return
        (unshared_r, unshared_w), (attached_r, attached_w) = self.handshake
        os.close(unshared_w)
        os.close(attached_r)
        try:
            if os.read(unshared_r, 1) == b"u":  # end of file: the child died before its unshare
                self.hold_mounts(pid)
                self.hold_namespaces(pid)
                if not self.trap_ends:
                    self.attach()
                os.write(attached_w, b"a")
        except BrokenPipeError:
            pass  # the child died first; its end is reported as the child's
        finally:
            os.close(unshared_r)
            os.close(attached_w)

    def hold_namespaces(self, pid):
        """In the worker: opens the network namespace of its child pid, which slirp4netns joins through it,
        whenever it is started."""
        net = os.open("/proc/%d/ns/net" % self.machine_pid(pid), os.O_RDONLY | os.O_CLOEXEC)
        self.namespaces = (net,)

    def attach(self):
        """In the worker: slirp4netns into the run's network namespace, once. A normal user's worker is in
        the run's user namespace, which owns that network namespace: slirp4netns, which it executes as a
        user other than root there, keeps the capabilities it needs to join it and make its device."""
        if self.slirp is None:
            if not self.settings.privileged:
                self.settings.libc.keep_across_exec((CAP_SYS_ADMIN, CAP_NET_ADMIN))
            self.slirp = dwop_network.Slirp(self.settings.slirp, *self.namespaces)

    def network_watch(self):
        """In the worker, while the body runs: what it serves for the run's network (dwop_process.pump), the
        socket the body's listener comes on. {} when slirp4netns is attached at once, or not at all."""
        return {self.trap_ends[0]: self.take_listener} if self.trap_ends and self.namespaces else {}

    def take_listener(self, fd, events):
        self.listener = dwop_network.receive_fd(fd) if events & select.POLLIN else None
        os.close(fd)
        self.trap_ends = None
        return {fd: None, **({self.listener: self.answer} if self.listener is not None else {})}

    def answer(self, fd, events):
        """A call the body's trap holds: slirp4netns is attached (the first time), then the call goes on."""
        if not events & select.POLLIN:
            return {fd: None}  # no process of the run's is left to make one
        call = dwop_network.next_trapped(fd)
        if call is not None:
            try:
                self.attach()
            except OSError as e:
                raise SandboxError("the run's network could not be attached: %s" % e) from None
            dwop_network.let_go(fd, call)
        return {}

    def machine_pid(self, pid):
        """The pid of this worker's child pid as the machine's /proc names it (slirp4netns and the worker
        look there): the worker is the first process of the run's pid namespace, and the pid its fork gave
        is the namespace's own (the body is 2)."""
        pidfd = os.pidfd_open(pid)
        try:
            fd = os.open("/proc/self/fdinfo/%d" % pidfd, os.O_RDONLY | os.O_CLOEXEC)
            try:
                info = read_to_end(fd)
            finally:
                os.close(fd)
        finally:
            os.close(pidfd)
        for line in info.splitlines():
            if line.startswith(b"Pid:"):
                return int(line.split()[1])
        raise SandboxError("no pid of the run's body in /proc")

    def hold_mounts(self, pid):
        """In the worker: holds the mount namespace of its child pid (the run's, once the child unshared it)
        open until the worker exits. Its last process's exit would otherwise tear it down (unmount the
        root's few dozen mounts, waiting out an RCU grace period: 0.3-1.3 ms here), and the worker waits for
        that exit before it reports the run's end; held, it goes when the worker exits, after the report.
        A normal user's worker may open it only while the child is dumpable: during the network's
        handshake (after_fork), which the setting none does not have; root's, at any time."""
        if self.mounts_held:
            return
        try:
            os.open("/proc/%d/ns/mnt" % self.machine_pid(pid), os.O_RDONLY | os.O_CLOEXEC)  # closed by its exit
            self.mounts_held = True
        except (OSError, SandboxError):
            pass  # the child died setting up (its notes say how), or a normal user's without the handshake

    def after_run(self):
        """In the worker, once the body has ended: stops slirp4netns; the worker being the first process of
        the run's pid namespace, kills whatever the body left running there, as an init's exit would (in no
        other namespace: the worker's own must not be the machine's)."""
        if self.slirp:
            self.slirp.stop()
        for fd in (*(self.namespaces or ()), self.listener, *(self.trap_ends or ())[:1]):
            if fd is not None:
                os.close(fd)
        self.namespaces = self.listener = self.trap_ends = None
        if os.getpid() == 1 and self.settings.apart():
            try:
                os.kill(-1, _signal.SIGKILL)
            except ProcessLookupError:
                pass  # nothing was left

    def network_unshared(self):
        if not self.handshake:
            return
        (unshared_r, unshared_w), (_, attached_w) = self.handshake
        os.close(unshared_r)
        os.close(attached_w)
        os.write(unshared_w, b"u")
        os.close(unshared_w)

    def wait_for_network(self):
        if not self.handshake or self.attached:
            return
        attached_r = self.handshake[1][0]
        attached = os.read(attached_r, 1) == b"a"
        os.close(attached_r)
        if not attached:
            raise SandboxError("the run's network could not be attached (slirp4netns)")
        self.attached = True

    def drop_privileges(self, libc, privileged):
        if privileged:
            os.setgroups([])
            os.setresgid(self.uid, self.uid, self.uid)
            os.setresuid(self.uid, self.uid, self.uid)  # from root to another uid: capabilities cleared
        else:
            libc.drop_capabilities()
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, "prctl(PR_SET_NO_NEW_PRIVS)")
        libc.prctl(PR_SET_DUMPABLE, 0, "prctl(PR_SET_DUMPABLE)")


def map_ids(uid, gid, inside=(INSIDE_UID, INSIDE_UID)):
    """Maps the user's uid and gid onto inside's (INSIDE_UID for both by default) in the user namespace this
    process just entered."""
    write("/proc/self/setgroups", "deny")
    write("/proc/self/uid_map", "%d %d 1" % (inside[0], uid))
    write("/proc/self/gid_map", "%d %d 1" % (inside[1], gid))


def map_ids_or_exit(settings, whose, inside=(INSIDE_UID, INSIDE_UID)):
    """map_ids of the server's user, in a process that just entered a user namespace it cannot leave: one
    that cannot have them (whose: the zygote's, a worker's) says why on stderr and exits."""
    try:
        # A process that is not dumpable cannot write its own id maps (its /proc/self files belong to root).
        settings.libc.prctl(PR_SET_DUMPABLE, 1, "prctl(PR_SET_DUMPABLE)")
        map_ids(*settings.own_ids, inside=inside)
    except BaseException as e:
        os.write(2, ("dwop-forkserver: %s user namespace: %s\n" % (whose, e)).encode("utf-8", "replace"))
        os._exit(EXIT_SANDBOX_FAILED)


def write(path, text):
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise SandboxError("write %s: %s" % (path, e.strerror)) from None


ROOT, SCRATCH, LOWER = "/tmp/root", "/tmp/scratch", "/tmp/lower"
RUN_FILES = ("/etc/passwd", "/etc/group")  # written for each run, which has a user of its own
# The places of a run's root that are its own (a fresh tmpfs, its /dev, its /proc, its /work): no folder of
# the machine inside one of them can be shown to a run, but for one below /tmp, which is shown inside the
# run's own /tmp (SHOWN_IN_TMP).
RUN_OWN = ("/tmp", "/dev", "/proc", WORK)
SHOWN_IN_TMP = "/tmp"


def open_folder(folder, below_tmp):
    """The run's folder (an absolute path) as an O_PATH descriptor, to bind. below_tmp, when given, is
    what /tmp was before build_system_root covered it: a folder below /tmp is looked up from there."""
    try:
        if below_tmp is not None and folder.startswith("/tmp/"):
            return os.open(folder[len("/tmp/") :], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC, dir_fd=below_tmp)
        return os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise SandboxError("open the run's folder %s" % folder) from None


def build_system_root(libc, settings):
    """Builds the part of a run's root that is the same for every run at ROOT (in this process's own mount
    namespace): the system read-only and /dev (a recursive bind of the template, where the zygote built
    one: see build_template; else built here on a tmpfs of its own), a fresh /proc, the run's /etc/passwd and
    /etc/group (add_user writes them), and the scratch tmpfs (/tmp, /dev/shm and the folders of /work's
    writable layer), whose size finish_root sets, with the folders below /tmp runs are shown in its /tmp.
    finish_root adds the run's part."""
    # Before /tmp is covered: a source, or the template, may be there.
    if settings.template:
        template = os.open(settings.template, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    else:
        sources = open_sources(settings)
    in_tmp = open_sources(settings, in_tmp=True)
    libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
    libc.mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")
    for path in (ROOT, SCRATCH, LOWER):
        os.mkdir(path, 0o755)
    # A mount of its own, so pivot_root can take it as it is (no bind of the whole tree onto itself).
    if settings.template:
        try:
            libc.mount("/proc/self/fd/%d" % template, ROOT, None, MS_BIND | MS_REC)
        finally:
            os.close(template)
    else:
        libc.mount("tmpfs", ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
        build_system_part(libc, sources, ROOT)
    # Only the run's own processes: as root its pid namespace's first process is the worker (another uid).
    libc.mount("proc", ROOT + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
    # The run's user and group lists: files of this process's /tmp, rewritten in place by add_user. The
    # root below may be the template, which every run shares: nothing of a run's is written in it.
    for path in RUN_FILES:
        own = "/tmp/" + os.path.basename(path)
        os.close(os.open(own, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        fd = os.open(own, os.O_PATH | os.O_CLOEXEC)
        try:
            bind(libc, fd, ROOT + path, read_only=True)
        finally:
            os.close(fd)
    libc.mount("tmpfs", SCRATCH, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755")  # sized by finish_root
    for name, mode in (("upper", 0o755), ("work", 0o700), ("tmp", 0o1777), ("shm", 0o1777)):
        os.mkdir(os.path.join(SCRATCH, name), mode)
        os.chmod(os.path.join(SCRATCH, name), mode)
    libc.mount(SCRATCH + "/tmp", ROOT + "/tmp", None, MS_BIND)
    libc.mount(SCRATCH + "/shm", ROOT + "/dev/shm", None, MS_BIND)
    # The machine's folders below /tmp that runs are shown: read-only at their own paths inside the run's /tmp
    # (the folders above them made there, root's, as /tmp's are), which nothing else of the machine's is in.
    for path, source in in_tmp.items():
        place(libc, source, ROOT + path)


def build_system_part(libc, sources, root):
    """At root (a fresh tmpfs): the system read-only (sources, see open_sources), /dev, and what the run's
    own mounts go on: /work, /tmp, /proc, /etc/passwd and /etc/group."""
    for path, source in sources.items():
        place(libc, source, root + path)
    os.mkdir(root + WORK, 0o755)
    os.mkdir(root + "/tmp", 0o1777)
    build_dev(libc, root)
    os.mkdir(root + "/proc", 0o555)
    os.makedirs(root + "/etc", 0o755, exist_ok=True)
    for path in RUN_FILES:
        os.close(os.open(root + path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))


def build_template(libc, settings, folder):
    """In the fork server's zygote, once: the system's part of every run's root (build_system_part) on a
    tmpfs mounted on folder (empty, the user's own) in a mount namespace of the zygote's own, which the
    spares it forks, and their bodies, are in. A run's body then binds it whole (one recursive bind) where
    it built it piece by piece (some 40 mounts, copies and links: ~1.5 ms of CPU a run here). The template
    is a snapshot of the sources scanned at the server's start, as the pieces were; the machine's mounts
    made later still reach the zygote's namespace (a slave of the machine's where that one is shared).

    A normal user cannot make a mount namespace without a user namespace: the zygote enters one of its
    own, its ids mapped onto themselves, so the workers it clones into their runs' user namespaces
    (Settings.fork_worker) nest theirs in it; the capabilities it has there are over its own namespaces
    only. Once it has unshared that user namespace, the zygote cannot go back: a failure to map its ids
    ends it (the server then stops, saying so), where any other failure here leaves each run to build its
    root."""
    if settings.privileged:
        libc.unshare(CLONE_NEWNS, "a mount namespace")
    else:
        libc.unshare(CLONE_NEWUSER | CLONE_NEWNS, "a user and a mount namespace")
        map_ids_or_exit(settings, "the zygote's", inside=settings.own_ids)
    libc.mount(None, "/", None, MS_REC | MS_SLAVE)
    # Read-only whole, its /dev too: every run shares it, and no bind of a run's can be made writable again.
    libc.mount("tmpfs", folder, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,mode=0755")
    build_system_part(libc, open_sources(settings), folder)
    libc.mount(None, folder + "/dev", None, MS_REMOUNT | MS_NOSUID | MS_NOEXEC | MS_RDONLY, "size=64k,mode=0755")
    libc.mount(None, folder, None, MS_REMOUNT | MS_NOSUID | MS_NODEV | MS_RDONLY, "size=16m,mode=0755")
    # Root's bodies bind mounts of a namespace of root's: nothing to check.
    if not settings.privileged and not template_bindable(settings, folder):
        raise SandboxError("a run's namespaces cannot bind it (each run builds its root)")
    settings.template = folder


def template_bindable(settings, folder):
    """Whether a normal user's body, in a worker's namespaces (Settings.fork_worker), can bind the template as
    build_system_root does: it binds mounts of the zygote's user namespace, which a kernel's rules on such
    mounts could refuse, and every run would then fail its set-up."""
    libc = settings.libc
    pid = settings.fork_worker()
    if pid == 0:
        code = EXIT_SANDBOX_FAILED
        try:
            libc.unshare(CLONE_NEWNS, "a mount namespace")
            # In this namespace (a bind's source must be), before /tmp is covered: the folder may be there.
            template = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            libc.mount(None, "/", None, MS_REC | MS_PRIVATE)
            libc.mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "size=64k")
            os.mkdir(ROOT)
            libc.mount("/proc/self/fd/%d" % template, ROOT, None, MS_BIND | MS_REC)
            code = 0 if os.path.isdir(ROOT + "/usr") else EXIT_SANDBOX_FAILED
        finally:
            os._exit(code)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def add_user(libc, settings, uid):
    """The run's user in the root build_system_root made (named dwop, for tools that look it up), and the
    writable layer of /work its own."""
    own = {
        "/etc/passwd": settings.passwd["passwd"] + "dwop:x:%d:%d:dwop task:/work:/bin/sh\n" % (uid, uid),
        "/etc/group": settings.passwd["group"] + "dwop:x:%d:\n" % uid,
    }
    for path, text in own.items():
        write("/tmp/" + os.path.basename(path), text)  # the file bound there (build_system_root)
    os.chown(os.path.join(SCRATCH, "upper"), uid, uid)


def finish_root(libc, folder, disk):
    """Adds the run's part to the root build_system_root made (and add_user), pivots into it and ends with
    the cwd at /work: the scratch tmpfs's size (the run's disk limit), and its folder (the descriptor
    folder, closed here) as the overlay's lower layer; without a folder (every file of the run came in its
    Job), /work is the scratch's writable folder alone. The folder is mounted last: files written below an
    overlay's lower folder once it is mounted need not show through."""
    libc.mount(None, SCRATCH, None, MS_REMOUNT | MS_NOSUID | MS_NODEV, "size=%d" % disk)
    if folder is None:
        libc.mount(SCRATCH + "/upper", ROOT + WORK, None, MS_BIND)
    else:
        place(libc, ("dir", folder), LOWER)
        overlay = "lowerdir=%s,upperdir=%s/upper,workdir=%s/work" % (LOWER, SCRATCH, SCRATCH)
        libc.mount("overlay", ROOT + WORK, "overlay", MS_NOSUID | MS_NODEV, overlay)
    os.chdir(ROOT)
    libc.pivot_root()
    os.chdir("/")
    libc.mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    os.chdir(WORK)


def open_sources(settings, in_tmp=False):
    """{path: (kind, what)} of the system's part of the root (in_tmp: of the folders below /tmp, which each
    run's own /tmp shows instead), read before /tmp is covered (a source may be below it): a link with its
    target, a folder or file as an O_PATH descriptor to bind, a small /etc file as its bytes to copy (a mount
    each would cost more); with the internet setting, /etc/resolv.conf names slirp4netns's resolver."""
    replaced = {}
    if settings.internet:
        replaced["/etc/resolv.conf"] = "nameserver %s\n" % dwop_network.GATEWAY_DNS
    sources = {}
    for path, kind, target in settings.sources:
        if path in RUN_FILES or within(path, SHOWN_IN_TMP) != in_tmp:
            continue
        try:
            if path in replaced:
                sources[path] = ("copy", replaced[path].encode())
            elif kind == "link":
                sources[path] = ("link", target)
            elif kind == "copy":
                sources[path] = ("copy", target)
            else:
                sources[path] = (kind, open_as_scanned(path))
        except OSError:
            pass
    return sources


def open_as_scanned(path):
    """An O_PATH descriptor of path (real and absolute when scanned), only where it still leads there:
    one of its folders replaced by a link since (by whoever owns it; below /tmp, anyone's) would have this
    process, root's as it builds the root, bind what the link leads to into a run. Raises OSError."""
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    if os.readlink("/proc/self/fd/%d" % fd) != path:
        os.close(fd)
        raise OSError(errno.ELOOP, "no longer where it was scanned", path)
    return fd


def place(libc, source, target):
    """Recreates a source at target in the new root: a link as the same link, a folder or file as a
    read-only bind."""
    kind, what = source
    os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
    if kind == "link":
        os.symlink(what, target)
        return
    if kind == "copy":
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, what)
        finally:
            os.close(fd)
        return
    if kind == "dir":
        os.makedirs(target, 0o755, exist_ok=True)
    else:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT, 0o644))
    try:
        bind(libc, what, target, read_only=True)
    finally:
        os.close(what)


def bind(libc, fd, target, read_only):
    """Binds what fd refers to onto target; read-only keeps the flags the source's mount has locked."""
    source = "/proc/self/fd/%d" % fd
    libc.mount(source, target, None, MS_BIND)
    if read_only:
        libc.mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | locked_flags(target))


def locked_flags(path):
    """The flags a remount must keep: nosuid and nodev always, noexec and atime as the mount has them."""
    have = os.statvfs(path).f_flag
    flags = MS_NOSUID | MS_NODEV
    flags |= MS_NOEXEC if have & ST_NOEXEC else 0
    flags |= MS_NOATIME if have & ST_NOATIME else 0
    flags |= MS_NODIRATIME if have & ST_NODIRATIME else 0
    flags |= MS_RELATIME if have & ST_RELATIME else 0
    return flags


def build_dev(libc, root):
    """A /dev with the harmless devices and the usual links; build_system_root puts /dev/shm on the run's
    scratch tmpfs."""
    dev = root + "/dev"
    os.mkdir(dev, 0o755)
    libc.mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for name in DEVICES:
        os.close(os.open(dev + "/" + name, os.O_WRONLY | os.O_CREAT, 0o666))
        libc.mount("/dev/" + name, dev + "/" + name, None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1")):
        os.symlink(target, dev + "/" + name)
    os.symlink("/proc/self/fd/2", dev + "/stderr")
    os.mkdir(dev + "/shm", 0o1777)


def loopback_up():
    """Brings up the network namespace's own loopback (SIOCSIFFLAGS on lo: up, running)."""
    import _socket
    import fcntl
    import sys

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        request = b"lo".ljust(16, b"\0") + (0x1 | 0x8 | 0x40).to_bytes(2, sys.byteorder) + bytes(22)
        fcntl.ioctl(sock.fileno(), 0x8914, request)
    except OSError as e:
        raise SandboxError("bring up the loopback: %s" % e.strerror) from None
    finally:
        sock.close()


class Settings:
    """The server-wide sandbox settings: the Libc, the extra folders runs may read, whether runs reach the
    internet ("internet" where slirp4netns is there, else "none", with network_why saying why), and the
    uid range of root's runs (uid_base, uid_count; see UidPool)."""

    def __init__(self, libc, allow=(), network="none", uid_base=None, uid_count=None):
        self.libc = libc
        self.allow = [os.path.abspath(p) for p in allow if isinstance(p, str) and os.path.isabs(p)]
        self.slirp = dwop_network.find_slirp()
        self.internet = network == "internet" and self.slirp is not None
        # slirp4netns attached at a run's first socket (Run.answer); None: as a run is set up
        self.trap = dwop_network.SocketTrap.load(libc) if self.internet and libc is not None else None
        self.network_why = "slirp4netns is not installed" if network == "internet" and not self.internet else None
        self.networks = dwop_network.host_networks() if self.internet else []
        self.sources = scan(self.visible())
        self.passwd = {name: read_etc(name) for name in ("passwd", "group")}
        self.unshowable = unshowable(python_folders(), self.allow)  # why runs cannot have a root, or None
        warm_up()
        subordinate = subordinate_range("/etc/subuid") if uid_base is None else None
        self.uid_base, self.uid_count = subordinate or (uid_base or DEFAULT_UID_BASE, uid_count or DEFAULT_UID_COUNT)
        # As root, each worker is the first process of its run's pid namespace (see fork_worker); this
        # process's own, which no run's body may be in.
        self.privileged = os.geteuid() == 0
        self.own_ids = (os.getuid(), os.getgid())  # what a normal user's runs map their uid 1000 onto
        self.pid_namespace = pid_namespace()
        self.template = None  # the folder of the root's system part, in the zygote's spares (build_template)

    def apart(self):
        """Whether this process is in a pid namespace other than the one these settings were made in."""
        return pid_namespace() != self.pid_namespace

    def fork_worker(self):
        """os.fork() for a run's worker: the child is the first process of a pid namespace of its own, which
        it forks the run's body into (Run.enter): it is the namespace's init, its stop signals and orphans
        its own, and its exit ends whatever the body left there. So no process of the run stands between
        the worker and the body. This process stays in its own namespaces.

        As root, the pid namespace is the only new one. A normal user cannot make a pid namespace without a
        user namespace: the worker is cloned into both (Libc.fork_into), the run's user namespace, where
        the user's uid and gid are INSIDE_UID. Its capabilities there reach only what that namespace owns:
        the pid namespace and the namespaces the body unshares. The body drops every one of them before its
        run; it cannot reach the worker's memory (the worker is not dumpable, and its memory belongs to the
        machine's user namespace) nor see it (/proc hides what it cannot read)."""
        if not self.privileged:
            pid = self.libc.fork_into(CLONE_NEWUSER | CLONE_NEWPID, "into a user and a pid namespace")
            if pid == 0:
                map_ids_or_exit(self, "the worker's")
            return pid
        own = os.open("/proc/self/ns/pid", os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.libc.unshare(CLONE_NEWPID, "a pid namespace")
            pid = -1
            try:
                pid = os.fork()
            finally:
                if pid != 0:
                    self.libc.setns(own, CLONE_NEWPID, "its own pid namespace")
        finally:
            os.close(own)
        return pid

    def visible(self):
        """The paths a run sees read-only: the system's, Python's own folders, the operator's extras."""
        etc = ["/etc/" + name for name in ETC]
        wanted = [p for p in list(SYSTEM) + etc if os.path.lexists(p)]
        for path in sorted(os.path.realpath(p) for p in python_folders() | set(self.allow) if p):
            if os.path.exists(path) and not any(within(path, w) for w in wanted if os.path.isdir(w)):
                wanted.append(path)
        return wanted


def python_folders():
    """The folders of the Python in use, which every run's root shows."""
    import sys

    python = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    python.add(os.path.dirname(os.path.realpath(sys.executable)))
    return python


def unshowable(python, allow):
    """Why a run's root cannot show one of the folders it must (python's, the allowed ones): one inside a
    place the run has its own of (RUN_OWN), but for a folder below /tmp (shown inside the run's own); None
    when every one can be shown."""
    for what, paths in (("the Python in use", python), ("an allowed folder", allow)):
        for path in sorted(os.path.realpath(p) for p in paths if p):
            own = next((place for place in RUN_OWN if within(path, place)), None)
            if own and not (own == SHOWN_IN_TMP and path != SHOWN_IN_TMP):
                return "%s, %s, is inside %s, which each sandboxed run has its own of: it cannot be shown to runs" % (
                    what,
                    path,
                    own,
                )
    return None


def pid_namespace():
    """This process's pid namespace (its inode)."""
    return os.stat("/proc/self/ns/pid").st_ino


def subordinate_range(path):
    """(start, count) of this user's first range in /etc/subuid, or None."""
    import pwd

    uid = os.geteuid()
    try:
        names = {str(uid), pwd.getpwuid(uid).pw_name}
    except KeyError:
        names = {str(uid)}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                parts = line.strip().split(":")
                if len(parts) == 3 and parts[0] in names and parts[1].isdigit() and parts[2].isdigit():
                    return int(parts[1]), int(parts[2])
    except OSError:
        pass
    return None


class Lease:
    """A run's uid, held by a lock on a file named after it until release()."""

    def __init__(self, uid, fd):
        self.uid = uid
        self.fd = fd

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


NO_LEASE = Lease(None, None)


class UidPool:
    """Hands each run of a root server a uid no other run holds, across every fork server of the machine:
    a uid is held by an exclusive lock on /run/dwop-uids/<uid> (a folder only root can enter)."""

    def __init__(self, base, count):
        self.base = base
        self.count = count
        self.next = 0
        self.folder = "/run/dwop-uids" if os.access("/run", os.W_OK) else "/tmp/dwop-uids-0"
        os.makedirs(self.folder, 0o700, exist_ok=True)
        if os.lstat(self.folder).st_uid != 0 or os.path.islink(self.folder):
            raise OSError("%s is not root's own folder" % self.folder)
        os.chmod(self.folder, 0o700)

    def lease(self):
        import fcntl

        for i in range(self.count):
            uid = self.base + (self.next + i) % self.count
            fd = os.open("%s/%d" % (self.folder, uid), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.next = (self.next + i + 1) % self.count
            return Lease(uid, fd)
        raise OSError("all %d uids from %d are in use" % (self.count, self.base))


def warm_up():
    """Imports in the fork server what each run's sandbox uses, so no run pays for it."""
    import _socket  # noqa: F401
    import fcntl  # noqa: F401
    import resource  # noqa: F401
    import struct  # noqa: F401


def read_etc(name):
    """/etc/<name> without the lines of a user or group named dwop ("" when it cannot be read)."""
    try:
        with open("/etc/" + name, "r", encoding="utf-8", errors="replace") as f:
            return "".join(entry for entry in f if not entry.startswith("dwop:"))
    except OSError:
        return ""


def scan(paths):
    """[(path, kind, link target or bytes)] of the paths a run sees, looked at once, when the server starts:
    kind "link", "dir", "file" (to bind) or "copy" (a small file of /etc, its bytes copied into each
    run's root)."""
    found = []
    for path in paths:
        if os.path.islink(path):
            found.append((path, "link", os.readlink(path)))
        elif os.path.isdir(path):
            found.append((path, "dir", None))
        elif path.startswith("/etc/") and os.path.getsize(path) <= MAX_COPY:
            with open(path, "rb") as f:
                found.append((path, "copy", f.read()))
        else:
            found.append((path, "file", None))
    return found


def within(path, folder):
    """Whether the (real, absolute) path is the folder or below it."""
    folder = folder.rstrip("/")
    return path == folder or path.startswith(folder + "/")


def probe(settings):
    """Whether a run can enter the sandbox here: a child enters it, as a worker's would, in a folder of
    its own, and exits. Returns None when it can, else why not. With the internet setting the probe
    attaches slirp4netns too; only when that fails does a second probe, without the trap of the first
    socket (settings.trap None), tell whether runs get slirp4netns as they are set up, and a third,
    without it, whether they get no network (settings.internet off, network_why set) or no sandbox. (One
    probe where two ran: 30 ms of every fork server's start, a pyenv Python on a slow machine.)"""
    if settings.unshowable:
        return settings.unshowable
    if settings.libc is None:
        return "ctypes, unshare(2) or pivot_root(2) is not available here"
    folder = private_folder("dwop-probe-")
    os.chmod(folder, 0o755)
    internet = settings.internet
    try:
        if internet:
            network_why = probe_in(settings, folder)
            if network_why is None:
                return None
            if settings.trap:
                # The trap (a seccomp listener: one under a runtime that holds one itself is refused) may be
                # what failed: slirp4netns attached to every run as it is set up, then.
                settings.trap = None
                if probe_in(settings, folder) is None:
                    return None
            settings.internet = False
        why = probe_in(settings, folder)
        if why is None and internet:
            settings.network_why = "slirp4netns failed: %s" % network_why
        return why
    finally:
        os.rmdir(folder)


def template_folder(path):
    """The folder given for build_template (absolute), made when missing (its parent must be there), or None,
    said on stderr, when it cannot be had or is not a folder of this user's alone (a link, say, or one others
    may write to): each run then builds its root's system part itself."""
    try:
        if not os.path.isabs(path):
            raise OSError("not an absolute path")
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        st = os.lstat(path)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise OSError("not a folder of this user's alone")
        return path
    except OSError as e:
        no_template("%s: %s" % (path, e))
    return None


def no_template(why):
    """Says on stderr that the runs' root template could not be had (each run then builds its root)."""
    message = "dwop-forkserver: no template of the runs' root (each run builds it): %s\n" % why
    os.write(2, message.encode("utf-8", "replace"))


def private_folder(prefix):
    """A new folder of this user's alone (mode 0700) in the temporary folder ($TMPDIR, else /tmp). Not
    tempfile.mkdtemp: tempfile imports random, whose reseed after each fork every run would then pay."""
    parent = os.environ.get("TMPDIR") or "/tmp"
    while True:
        folder = os.path.join(parent, prefix + os.urandom(6).hex())
        try:
            os.mkdir(folder, 0o700)
            return folder
        except FileExistsError:
            continue


def probe_in(settings, folder):
    r, w = os.pipe()
    try:
        pid = settings.fork_worker()
    except (OSError, SandboxError) as e:
        os.close(r)
        os.close(w)
        return str(e)  # as root: no pid namespace to be had (a container without CAP_SYS_ADMIN, say)
    if pid == 0:
        try:
            os.close(r)
            settings.libc.prctl(PR_SET_DUMPABLE, 0, "prctl(PR_SET_DUMPABLE)")  # as a worker is
            run = Run(settings, settings.uid_base, Limits(), folder)
            run.before_fork()
            child = os.fork()
            if child == 0:
                run.enter()
                os._exit(0 if os.getcwd() == WORK and not os.path.exists(folder) else 72)
            run.after_fork(child)
            if run.namespaces:
                run.attach()  # as a run's first socket would have it
            code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
            run.after_run()
            os._exit(code)
        except BaseException as e:
            os.write(w, str(e).encode("utf-8", "replace")[:500])
            os._exit(EXIT_SANDBOX_FAILED)
    os.close(w)
    why = read_to_end(r)
    os.close(r)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code == 0:
        return None
    return why.decode("utf-8", "replace") or "the probe exited with %s" % code
