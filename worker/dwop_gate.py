"""The body's gate: how the worker hands its run to the body's process, which was forked (and, in the
sandbox, set up) before the run was known.

A pipe made before the fork, on which the worker writes two messages, then closes its end:

  - the Place: the uid, the limits and the run's folder. A line "<uid> <memory> <disk> <processes>
    <cpu seconds> <folder length>", then the folder's bytes (length -1: no folder). In the sandbox the body
    finishes its root with it (the run's part: its folder, its disk limit, its uid) and drops its
    privileges. It goes as soon as the worker knows it: at once for a run whose every file comes in its
    environment (Place.folder None: the body's /work is a folder of its own, finished while the worker
    reads the run's environment), else once the downloads are in.
  - the Job: a line with whether pip runs first and how many files follow; each file as its name and its
    length, each ended by a NUL byte, then its bytes; then the body's environment (NAME=value entries), each
    ended by a NUL byte.

The body's process reads the Place, then the Job to the end of file. A worker that closes its end without
writing them abandons the body (its downloads failed).
"""

import os

from dwop_process import read_to_end, write_all
from dwop_sandbox import Limits

READ_CHUNK = 65536


class Place:
    """Where and as whom the body runs: the uid (None: the worker's own, or outside the sandbox), the
    limits, and the run's folder (an absolute path), or None when every file of the run comes in its Job:
    then, in the sandbox, the body sees nothing of the folder (the worker's own files are there)."""

    def __init__(self, uid, limits, folder):
        self.uid = uid
        self.limits = limits
        self.folder = folder


class Job:
    """What the body's process needs of its run besides its Place: whether pip runs first, the environment,
    and the files the body writes itself into its working folder ((name, bytes) pairs: in the sandbox, the
    code and inputs given inline, which then never touch the disk of the run's folder)."""

    def __init__(self, requirements, env, files=()):
        self.requirements = requirements
        self.env = env
        self.files = files


def send_place(fd, place):
    """Writes the Place; the worker's end stays open for the Job. Raises OSError when the body is gone."""
    write_all(fd, encode_place(place))


def send(fd, job):
    """Writes the Job and closes the worker's end. Raises OSError when the body's process is gone."""
    try:
        write_all(fd, encode(job))
    finally:
        os.close(fd)


class Reader:
    """The body's end of the gate: its Place, then its Job."""

    def __init__(self, fd):
        self.fd = fd
        self.data = b""

    def place(self):
        """The Place, or None when the worker closed its end without one (the end is then closed)."""
        while True:
            head, newline, rest = self.data.partition(b"\n")
            if newline:
                size = int(head.rsplit(b" ", 1)[1])
                if len(rest) >= max(size, 0):
                    self.data = rest[max(size, 0) :]
                    return decode_place(head, rest[:size] if size >= 0 else None)
            chunk = os.read(self.fd, READ_CHUNK)
            if not chunk:
                os.close(self.fd)
                return None
            self.data += chunk

    def job(self):
        """The Job, read to the end of file, or None when the worker closed its end without one; closes it."""
        try:
            data = self.data + read_to_end(self.fd)
        finally:
            os.close(self.fd)
        return decode(data) if data else None


def rehearsal():
    """A made-up Place and Job, encoded and read back as the body's process reads its real ones: for the
    body to go through its gate's steps while it waits, so that the pages they write are copied then, not on
    the run's path (see dwop_main.Body). Returns the Job."""
    env = {"DWOP_REHEARSAL_%d" % i: "x" * 64 for i in range(16)}
    place = encode_place(Place(1, Limits(1, 1, 1, 1), "/rehearsal"))
    head, _, folder = place.partition(b"\n")
    decode_place(head, folder)
    return decode(encode(Job(False, env, [("main.py", b"x" * 64)])))


def encode_place(place):
    limits = place.limits
    folder = b"" if place.folder is None else place.folder.encode("utf-8", "surrogateescape")
    return b"%d %d %d %d %d %d\n%s" % (
        -1 if place.uid is None else place.uid,
        limits.memory,
        limits.disk,
        limits.processes,
        limits.cpu_seconds,
        -1 if place.folder is None else len(folder),
        folder,
    )


def decode_place(head, folder):
    uid, memory, disk, processes, cpu_seconds, _ = head.split()
    limits = Limits(int(memory), int(disk), int(processes), int(cpu_seconds))
    folder = None if folder is None else folder.decode("utf-8", "surrogateescape")
    return Place(None if int(uid) < 0 else int(uid), limits, folder)


def encode(job):
    head = b"%s %d\n" % (b"r" if job.requirements else b"g", len(job.files))
    files = b"".join(b"%s\0%d\0%s" % (name.encode(), len(data), data) for name, data in job.files)
    entries = ["%s=%s" % item for item in job.env.items()]
    return head + files + b"".join(e.encode("utf-8", "surrogateescape") + b"\0" for e in entries)


def decode(data):
    head, _, rest = data.partition(b"\n")
    go, count = head.split()
    files = []
    at = 0
    for _ in range(int(count)):
        name_end = rest.index(b"\0", at)
        size_end = rest.index(b"\0", name_end + 1)
        start = size_end + 1
        end = start + int(rest[name_end + 1 : size_end])
        files.append((rest[at:name_end].decode(), rest[start:end]))
        at = end
    entries = [e.decode("utf-8", "surrogateescape") for e in rest[at:].split(b"\0")[:-1]]
    env = dict(entry.partition("=")[::2] for entry in entries)
    return Job(go == b"r", env, files)
