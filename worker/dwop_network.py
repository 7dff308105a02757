"""Outbound internet for a sandboxed run: user-mode networking (slirp4netns) into its network namespace.

The run's namespace starts with a loopback of its own and nothing else. With the internet setting, the
worker (outside, in the machine's network) attaches slirp4netns to it: a tap device whose traffic slirp4netns
turns into ordinary sockets of the worker's user, so the run reaches what that user could, minus what is
closed here:

  - the machine's loopback: --disable-host-loopback (10.0.2.2, the gateway, is not 127.0.0.1);
  - private, shared, link-local (metadata services: 169.254.169.254) and reserved ranges, and every
    address of the machine's own interfaces: "prohibit" routes in the run's namespace, set by its first
    process before it drops its privileges, so the body cannot remove them;
  - IPv6: slirp4netns is not asked for it, so the namespace has no IPv6 route.

Names resolve through slirp4netns's own forwarder (10.0.2.3), which asks the machine's resolver; the run's
/etc/resolv.conf says so.

slirp4netns is attached when the run first needs it: a seccomp filter on the body (SocketTrap) holds
its first socket(2) of an IPv4 or IPv6 family until the worker has attached it (the listener's
notification, answered with "go on"); a run that opens no such socket never starts slirp4netns, which
cost a sandboxed run more CPU than anything but Python (~11 % of a chain's on a 2-core PVM guest). The
filter only decides when: the routes above close the machine off either way. A 32-bit or x32 process's
sockets, and io_uring's, are not seen by it: they find no route until something else asked for the network.
"""

import _socket
import fcntl
import os
import select
import struct

GATEWAY_DNS = "10.0.2.3"
SLIRP_NETWORK = "10.0.2."  # slirp4netns's own /24: the run's address, its gateway, its DNS
CLOSED_RANGES = (
    "0.0.0.0/8",
    "10.0.0.0/8",  # 10.0.2.0/24, slirp4netns's own network, is more specific and stays open
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "192.0.2.0/24",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
READY_TIMEOUT = 10
AF_NETLINK, NETLINK_ROUTE, RTM_NEWROUTE, NLMSG_ERROR, RTA_DST, RTN_PROHIBIT = 16, 0, 24, 2, 1, 8


class NetworkError(OSError):
    """The run's network could not be attached or closed off."""


def find_slirp():
    """The slirp4netns program, or None."""
    for folder in os.environ.get("PATH", "/usr/bin:/bin").split(":") + ["/usr/bin", "/usr/sbin"]:
        path = os.path.join(folder or ".", "slirp4netns")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def host_addresses():
    """The IPv4 addresses of the machine's own interfaces (its LOCAL routes), outside 127/8."""
    return sorted(cidr[:-3] for cidr in host_networks() if cidr.endswith("/32"))


def host_networks():
    """What a run is closed off from besides CLOSED_RANGES, as CIDRs: the machine's own IPv4 addresses (its
    LOCAL routes, outside 127/8), and the networks its interfaces are on (their LINK routes: its neighbours
    and its gateway), whatever range they are in."""
    found = set()
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    leaf = None  # the address of the entries below it ("|-- a.b.c.d", then "/bits scope type" lines)
    for line in lines:
        if "+--" in line:  # a node of the trie, not an address
            leaf = None
            continue
        if "|--" in line:
            leaf = line.split("|--")[1].strip()
            continue
        entry = line.split()
        if leaf is None or leaf.startswith("127.") or not entry or not entry[0].startswith("/"):
            continue
        bits, kind = int(entry[0][1:]), " ".join(entry[1:])
        if leaf.startswith(SLIRP_NETWORK) and bits >= 24:
            continue  # more specific than slirp4netns's own network, it would take the run's gateway
        if (bits == 32 and kind == "host LOCAL") or (0 < bits < 32 and kind == "link UNICAST"):
            found.add("%s/%d" % (leaf, bits))
    return sorted(found)


class Slirp:
    """slirp4netns attached to a run's network namespace, from the worker; stop() ends it. net: the worker's
    file descriptor of the run's network namespace, which slirp4netns joins through its own /proc/self/fd:
    the run's processes may have ended by then."""

    def __init__(self, program, net):
        ready_r, ready_w = os.pipe()
        self.exit_r, self.exit_w = os.pipe()
        argv = [program, "--configure", "--mtu=65520", "--disable-host-loopback", "--netns-type=path"]
        argv += ["--ready-fd=%d" % ready_w, "--exit-fd=%d" % self.exit_r]
        argv += ["/proc/self/fd/%d" % net, "tap0"]
        passed = (ready_w, self.exit_r, net)
        for fd in passed:
            os.set_inheritable(fd, True)
        null = os.open(os.devnull, os.O_RDWR)
        try:
            self.pid = os.posix_spawn(
                program, argv, {"PATH": "/usr/bin:/bin"}, file_actions=[(os.POSIX_SPAWN_DUP2, null, 0),
                (os.POSIX_SPAWN_DUP2, null, 1), (os.POSIX_SPAWN_DUP2, null, 2)]  # fmt: skip
            )
        finally:
            os.close(null)
            os.close(ready_w)
            os.close(self.exit_r)
            for fd in passed[2:]:
                os.set_inheritable(fd, False)
        try:
            if not select.select([ready_r], [], [], READY_TIMEOUT)[0] or os.read(ready_r, 1) != b"1":
                self.stop()
                raise NetworkError("slirp4netns did not attach to the run's network namespace")
        finally:
            os.close(ready_r)

    def stop(self):
        """Closes its exit fd, on which it exits; the process is not waited for (the worker ends soon after,
        and the machine's init reaps it)."""
        if self.exit_w is not None:
            os.close(self.exit_w)
            self.exit_w = None


# seccomp(2) and its user notifications (linux/seccomp.h, linux/filter.h, linux/audit.h), per machine: the
# seccomp and socket system calls' numbers and the architecture the filter's data names.
TRAPS = {
    "x86_64": {"seccomp": 317, "socket": 41, "arch": 0xC000003E},
    "aarch64": {"seccomp": 277, "socket": 198, "arch": 0xC00000B7},
}
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER = 1, 8
SECCOMP_RET_ALLOW, SECCOMP_RET_USER_NOTIF = 0x7FFF0000, 0x7FC00000
SECCOMP_IOCTL_NOTIF_RECV, SECCOMP_IOCTL_NOTIF_SEND = 0xC0502100, 0xC0182101  # 80 and 24 bytes
SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1
BPF_LD_W_ABS, BPF_JEQ_K, BPF_RET_K = 0x20, 0x15, 0x06


def inet_socket_filter(machine):
    """The filter's program: socket(2) of AF_INET or AF_INET6 waits for the listener; all else goes on."""
    trap = TRAPS[machine]
    return [
        (BPF_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (BPF_JEQ_K, 0, 5, trap["arch"]),
        (BPF_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (BPF_JEQ_K, 0, 3, trap["socket"]),
        (BPF_LD_W_ABS, 0, 0, 16),  # the low half of seccomp_data.args[0]: the family
        (BPF_JEQ_K, 2, 0, _socket.AF_INET),
        (BPF_JEQ_K, 1, 0, _socket.AF_INET6),
        (BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        (BPF_RET_K, 0, 0, SECCOMP_RET_USER_NOTIF),
    ]


class SocketTrap:
    """The filter (inet_socket_filter), built once in the fork server, whose forks install it: load() gives
    None where this machine's filters cannot hold a call for a listener and let it go on (before Linux 5.5,
    another architecture)."""

    @classmethod
    def load(cls, libc):
        try:
            major, minor = (int(part) for part in os.uname().release.split(".")[:2])
        except ValueError:
            return None
        machine = os.uname().machine
        return cls(libc, machine) if machine in TRAPS and (major, minor) >= (5, 5) else None

    def __init__(self, libc, machine):
        c = self.ctypes = libc.ctypes
        self.syscall = libc._syscall
        self.number = c.c_long(TRAPS[machine]["seccomp"])
        program = inet_socket_filter(machine)
        self.code = c.create_string_buffer(b"".join(struct.pack("=HBBI", *line) for line in program))
        self.fprog = c.create_string_buffer(struct.pack("=H6xQ", len(program), c.addressof(self.code)))

    def install(self):
        """In the body's process (with the privilege to: CAP_SYS_ADMIN in its user namespace): installs the
        filter on it and every process it starts from now on; returns the listener's file descriptor."""
        c = self.ctypes
        flags = (c.c_long(SECCOMP_SET_MODE_FILTER), c.c_long(SECCOMP_FILTER_FLAG_NEW_LISTENER))
        fd = self.syscall(self.number, *flags, self.fprog)
        if fd < 0:
            raise NetworkError(c.get_errno(), "seccomp: %s" % os.strerror(c.get_errno()))
        return fd


def next_trapped(listener):
    """Takes the next call the listener holds; its id, or None when its caller is gone (killed meanwhile)."""
    notification = bytearray(80)  # zeroed, as the kernel wants it
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, notification, True)
    except OSError:
        return None
    return struct.unpack_from("=Q", notification)[0]


def let_go(listener, call):
    """Lets a held call go on, as if no filter had held it."""
    response = bytearray(struct.pack("=QqiI", call, 0, 0, SECCOMP_USER_NOTIF_FLAG_CONTINUE))
    try:
        fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, response, True)
    except OSError:
        pass  # its caller is gone


def socket_pair():
    """Two connected Unix sockets' file descriptors, for send_fd and receive_fd."""
    ends = _socket.socketpair(_socket.AF_UNIX, _socket.SOCK_STREAM)
    return tuple(end.detach() for end in ends)


def send_fd(sock, fd):
    """Sends the file descriptor fd on the Unix socket sock, and closes sock."""
    conn = _socket.socket(fileno=sock)
    try:
        conn.sendmsg([b"t"], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, struct.pack("=i", fd))])
    finally:
        conn.close()


def receive_fd(sock):
    """The file descriptor send_fd sent on sock, or None (its other end closed without one)."""
    conn = _socket.socket(fileno=os.dup(sock))
    try:
        _, ancillary, _, _ = conn.recvmsg(1, _socket.CMSG_SPACE(4), _socket.MSG_CMSG_CLOEXEC)
    finally:
        conn.close()
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= 4:
            return struct.unpack_from("=i", data)[0]
    return None


def close_private_routes(networks):
    """In the run's namespace (with the privilege to): prohibit routes to the closed ranges and to the
    machine's own addresses and networks (host_networks), through one rtnetlink request per route,
    acknowledged."""
    import _socket
    import struct

    sock = _socket.socket(AF_NETLINK, _socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        routes = list(CLOSED_RANGES) + list(networks)
        sock.sendall(b"".join(route_message(cidr, seq) for seq, cidr in enumerate(routes, 1)))
        acked = 0
        while acked < len(routes):
            data = sock.recv(65536)
            while len(data) >= 16:
                length, kind = struct.unpack_from("=IH", data)
                if kind == NLMSG_ERROR:
                    error, seq = struct.unpack_from("=iI", data, 16)[0], struct.unpack_from("=I", data, 28)[0]
                    if error != 0:
                        raise NetworkError("route to %s: %s" % (routes[seq - 1], os.strerror(-error)))
                    acked += 1
                data = data[(length + 3) & ~3 :]
    finally:
        sock.close()


def route_message(cidr, seq):
    """An RTM_NEWROUTE message: a prohibit route to cidr in the main table."""
    import struct

    address, bits = cidr.split("/")
    destination = bytes(int(part) for part in address.split("."))
    attribute = struct.pack("=HH", 8, RTA_DST) + destination
    # rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type; flags
    body = struct.pack("=BBBBBBBBI", 2, int(bits), 0, 0, 254, 3, 0, RTN_PROHIBIT, 0) + attribute
    flags = 0x1 | 0x4 | 0x400 | 0x100  # NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
    return struct.pack("=IHHII", 16 + len(body), RTM_NEWROUTE, flags, seq, 0) + body
