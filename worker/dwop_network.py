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
"""

import os
import select

GATEWAY_DNS = "10.0.2.3"
CLOSED_RANGES = (
    "0.0.0.0/8",
    "10.0.0.0/8",  # 10.0.2.0/24, slirp4netns's own network, is more specific and stays open
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
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
    found = set()
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    for before, line in zip(lines, lines[1:]):
        if line.strip() == "/32 host LOCAL" and "|--" in before:
            address = before.split("|--")[1].strip()
            if not address.startswith("127."):
                found.add(address)
    return sorted(found)


class Slirp:
    """slirp4netns attached to a run's network namespace, from the worker; stop() ends it."""

    def __init__(self, program, pid):
        ready_r, ready_w = os.pipe()
        self.exit_r, self.exit_w = os.pipe()
        argv = [program, "--configure", "--mtu=65520", "--disable-host-loopback"]
        argv += ["--ready-fd=%d" % ready_w, "--exit-fd=%d" % self.exit_r]
        if os.geteuid() != 0:
            argv += ["--userns-path=/proc/%d/ns/user" % pid]
        argv += [str(pid), "tap0"]
        for fd in (ready_w, self.exit_r):
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


def close_private_routes(addresses):
    """In the run's namespace (with the privilege to): prohibit routes to the closed ranges and to the
    machine's own addresses, through one rtnetlink request per route, acknowledged."""
    import _socket
    import struct

    sock = _socket.socket(AF_NETLINK, _socket.SOCK_RAW, NETLINK_ROUTE)
    try:
        routes = list(CLOSED_RANGES) + ["%s/32" % address for address in addresses]
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
