"""The worker's unnamed files: the body's output and the attempt's log, which the body never sees.

Each starts in memory (memfd_create) and moves to an unnamed file in the run's folder (O_TMPFILE) once it
holds more than IN_MEMORY_BYTES: a small task's run makes no inode on disk for either (on a file system
that makes inodes slowly, each cost up to half a millisecond on the run's path), and a large output still
goes to disk, not to memory. A run whose folder is itself in memory (the local executor keeps a small
sandboxed run's there) is given a folder on disk for them instead: DWOP_SPILL_FOLDER (spill_to).
"""

import os

from dwop_process import write_all

IN_MEMORY_BYTES = 256 * 1024
COPY_CHUNK = 1 << 20
# Where a file goes once it outgrows memory: the working folder (the run's), unless spill_to said.
SPILL_FOLDER = "."


def spill_to(folder):
    """Has files that outgrow memory go to folder (None: the working folder), in this process."""
    global SPILL_FOLDER
    SPILL_FOLDER = folder or "."


def anonymous_file():
    """A read-write file in the spill folder that has no name, so the body never sees it."""
    try:
        return os.open(SPILL_FOLDER, os.O_TMPFILE | os.O_RDWR, 0o600)
    except (AttributeError, OSError):
        name = os.path.join(SPILL_FOLDER, ".dwop-%d.tmp" % os.getpid())
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.unlink(name)
        return fd


class UnnamedFile:
    """A file only this process holds, written by write(); fd is where it is now, size how much it holds.

    When it moves to disk, fd changes after the bytes so far are copied and before any later byte is
    written, and the memory file is never closed: a reader that took size first and fd after it (the live
    log's thread) reads every byte up to that size, from either."""

    def __init__(self, name):
        self.size = 0
        self.on_disk = False
        try:
            self.fd = os.memfd_create(name, os.MFD_CLOEXEC)
        except (AttributeError, OSError):
            self.fd = anonymous_file()
            self.on_disk = True

    def write(self, data):
        if not self.on_disk and self.size + len(data) > IN_MEMORY_BYTES:
            self.move_to_disk()
        write_all(self.fd, data)
        self.size += len(data)

    def move_to_disk(self):
        disk = anonymous_file()
        offset = 0
        while offset < self.size:
            chunk = os.pread(self.fd, min(COPY_CHUNK, self.size - offset), offset)
            write_all(disk, chunk)
            offset += len(chunk)
        self.fd, self.on_disk = disk, True  # the memory file stays open (see above)
