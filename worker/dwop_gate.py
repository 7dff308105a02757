"""The body's gate: how the worker hands its run to the body's process, which was forked (and, in the
sandbox, set up) before the run was known.

A pipe made before the fork. Once the downloads are in, the worker writes one Job and closes its end: a
line with whether pip runs first, the uid, the limits and how many files follow; each file as its name and
its length, each ended by a NUL byte, then its bytes; then the run's folder and the body's environment
(NAME=value entries), each ended by a NUL byte. The body's process reads it to the end of file. A worker
that closes its end without writing abandons the body (its downloads failed).
"""

import os

from dwop_process import read_to_end, write_all
from dwop_sandbox import Limits


class Job:
    """What the body's process needs of its run: whether pip runs first, the uid (None: the worker's own,
    or outside the sandbox), the limits, the folder (an absolute path), the environment, and the files the
    body writes itself into its working folder ((name, bytes) pairs: in the sandbox, the code and inputs
    given inline, which then never touch the disk of the run's folder)."""

    def __init__(self, requirements, uid, limits, folder, env, files=()):
        self.requirements = requirements
        self.uid = uid
        self.limits = limits
        self.folder = folder
        self.env = env
        self.files = files


def send(fd, job):
    """Writes the job and closes the worker's end. Raises OSError when the body's process is gone."""
    try:
        write_all(fd, encode(job))
    finally:
        os.close(fd)


def receive(fd):
    """The Job the worker wrote, or None when it closed its end without one; closes the body's end."""
    try:
        data = read_to_end(fd)
    finally:
        os.close(fd)
    return decode(data) if data else None


def rehearsal():
    """A made-up job, encoded and read back as the body's process reads its real one: for the body to go
    through its gate's steps while it waits, so that the pages they write are copied then, not on the run's
    path (see dwop_main.Body)."""
    env = {"DWOP_REHEARSAL_%d" % i: "x" * 64 for i in range(16)}
    return decode(encode(Job(False, 1, Limits(1, 1, 1, 1), "/rehearsal", env, [("main.py", b"x" * 64)])))


def encode(job):
    limits = job.limits
    head = b"%s %d %d %d %d %d %d\n" % (
        b"r" if job.requirements else b"g",
        -1 if job.uid is None else job.uid,
        limits.memory,
        limits.disk,
        limits.processes,
        limits.cpu_seconds,
        len(job.files),
    )
    files = b"".join(b"%s\0%d\0%s" % (name.encode(), len(data), data) for name, data in job.files)
    entries = [job.folder] + ["%s=%s" % item for item in job.env.items()]
    return head + files + b"".join(e.encode("utf-8", "surrogateescape") + b"\0" for e in entries)


def decode(data):
    head, _, rest = data.partition(b"\n")
    go, uid, memory, disk, processes, cpu_seconds, count = head.split()
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
    env = dict(entry.partition("=")[::2] for entry in entries[1:])
    limits = Limits(int(memory), int(disk), int(processes), int(cpu_seconds))
    return Job(go == b"r", None if int(uid) < 0 else int(uid), limits, entries[0], env, files)
