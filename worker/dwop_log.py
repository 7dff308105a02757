"""The attempt's log: the body's stdout and stderr merged by line, and shipped live while the body runs.

The log is an unnamed file (dwop_unnamed) that only ever grows by whole lines: each stream's
partial line waits until its newline arrives (or it passes PARTIAL_MAX, or the stream ends), so a line of
stdout and a line of stderr never cut into each other. While the body runs, a thread ships what the log
has gained to the API (DWOP_LOG_STREAM_URL, with the run's token) about every SHIP_EVERY seconds, at most
CHUNK_MAX bytes a request; so the log up to that moment stays readable whatever ends the attempt. When the
whole log has been stored as an object, the shipped chunks are dropped (sealed).
"""

import _thread
import os
import stat

from dwop_http import HttpError, request
from dwop_json import parse_json
from dwop_process import write_all

PARTIAL_MAX = 64 * 1024
# The worker's own copy of the body's streams, when it is a file (BoundedEcho): what the executor reads a
# failure's log tail from (the last 1 MiB at most).
ECHO_MAX = 8 << 20
ECHO_KEEP = 1 << 20
ECHO_CHECK_EVERY = 1 << 20
SHIP_EVERY = 0.5
CHUNK_MAX = 256 * 1024
REQUEST_TIMEOUT = 10.0


class LineLog:
    """The log file (an UnnamedFile), written a whole line at a time; size is what it holds (what may be
    shipped), counted after each write, so a reader that takes size and then fd finds all of it."""

    def __init__(self, file):
        self.file = file
        self.partial = {}

    @property
    def fd(self):
        return self.file.fd

    @property
    def size(self):
        return self.file.size

    def stream(self, name):
        """A sink for one stream of the body (for dwop_process.pump): .write(data)."""
        return Sink(self, name)

    def add(self, name, data):
        pending = self.partial.get(name, b"") + data
        cut = pending.rfind(b"\n") + 1
        if cut == 0 and len(pending) > PARTIAL_MAX:
            cut = len(pending)  # a line that never ends: written in pieces rather than held whole
        if cut:
            self.write(pending[:cut])
        self.partial[name] = pending[cut:]

    def end_streams(self):
        """Writes what each stream left without a newline, ending it with one (in the log only)."""
        for name in sorted(self.partial):
            rest = self.partial[name]
            if rest:
                self.write(rest + b"\n")
        self.partial = {}

    def write(self, data):
        self.file.write(data)


class BoundedEcho:
    """A sink that echoes one of the body's streams on the worker's own stdout or stderr (fd). Where that is
    a file (the fork server's runs: .dwop-worker.log in the run's folder, in memory for an inline run), it
    is kept to a tail: past ECHO_MAX it is emptied and given the last ECHO_KEEP bytes of the log (what a
    failure's log tail is read from), so a big output is not held there a third time. A pipe (a pod's
    container log) is echoed whole. An echo nobody reads any more is dropped."""

    def __init__(self, fd, log):
        self.fd = fd
        self.log = log
        self.unchecked = 0  # bytes written since the file's size was last looked at
        try:
            self.bounded = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            self.bounded = False
        self.broken = False

    def write(self, data):
        if self.broken:
            return
        try:
            if self.bounded:
                self.unchecked += len(data)
                if self.unchecked >= ECHO_CHECK_EVERY:
                    self.unchecked = 0
                    if os.fstat(self.fd).st_size > ECHO_MAX:
                        # Before this chunk, which the log (a later sink) has not been given yet either.
                        keep = min(ECHO_KEEP, self.log.size)
                        tail = os.pread(self.log.fd, keep, self.log.size - keep)
                        os.ftruncate(self.fd, 0)
                        os.lseek(self.fd, 0, os.SEEK_SET)  # for a file not opened to append (a shell's >)
                        write_all(self.fd, tail)
            write_all(self.fd, data)
        except OSError:
            self.broken = True


class LogStream:
    """Ships a LineLog's new bytes to the run's log-stream URL; asks it for upload URLs; seals it."""

    def __init__(self, url, token, log):
        # DWOP_LOG_STREAM_URL is <api>/runs/<id>/log; the run's other calls are beside it.
        self.run_url = url[: -len("/log")] if url.endswith("/log") else url
        self.headers = {"Authorization": "Bearer " + token}
        self.log = log
        self.shipped = 0
        self.open = True  # False once the API said the log takes no more (ended, full, refused)
        self.stopping = False
        self.done = _thread.allocate_lock()
        self.wake = _thread.allocate_lock()  # held while the thread waits out SHIP_EVERY; stop() frees it

    @classmethod
    def from_env(cls, env, log):
        url, token = env.get("DWOP_LOG_STREAM_URL"), env.get("DWOP_LOG_STREAM_TOKEN")
        return cls(url, token, log) if url and token else None

    def start(self):
        """Ships in a thread of its own until stop(): the body's output is never held up by a request."""
        self.done.acquire()
        self.wake.acquire()
        _thread.start_new_thread(self.loop, ())

    def loop(self):
        try:
            # Started once the run has lasted SHIP_EVERY (see dwop_main.Body.open): what it has so far first.
            while not self.stopping and self.open:
                self.ship_once()
                self.wake.acquire(True, SHIP_EVERY)  # returns at once when stop() releases it
        except BaseException:
            pass  # live logs are a convenience: the stored log is the record
        finally:
            self.done.release()

    def stop(self):
        """Ends the thread at once, or after the request it has in flight (at most REQUEST_TIMEOUT)."""
        if not self.done.locked():
            return  # never started
        self.stopping = True
        if self.wake.locked():
            self.wake.release()
        if self.done.acquire(True, REQUEST_TIMEOUT + 1):
            self.done.release()

    def ship_once(self):
        """Sends one chunk of what the log has gained, cut after a newline; False when nothing was sent."""
        end = min(self.log.size, self.shipped + CHUNK_MAX)
        if end <= self.shipped or not self.open:
            return False
        data = os.pread(self.log.fd, end - self.shipped, self.shipped)
        if end < self.log.size:
            cut = data.rfind(b"\n") + 1
            data = data[:cut] if cut else data
        if not data:
            return False
        headers = dict(self.headers, **{"X-Log-Offset": str(self.shipped), "Content-Type": "text/plain"})
        try:
            answer = parse_json(self.call("/log", data, headers).decode("utf-8"))
        except HttpError as e:
            self.open = e.transient  # a refused token or a gone run is not worth asking again
            return False
        except (OSError, ValueError):
            return False  # the next tick tries again
        result = answer.get("result")
        if result in ("appended", "behind"):
            self.shipped = int(answer.get("size", self.shipped))
        else:
            self.open = False
        return result == "appended"

    def ship_rest(self):
        """Sends everything not yet shipped (the stored log could not be written)."""
        for _ in range(1 + self.log.size // CHUNK_MAX * 2):
            if not self.open or self.shipped >= self.log.size or not self.ship_once():
                return

    def upload_urls(self):
        """Signed PUT URLs for the output and the log, minted now: (output, log), or None."""
        try:
            answer = parse_json(self.call("/upload-urls", b"", dict(self.headers)).decode("utf-8"))
            return str(answer["output"]), str(answer["log"])
        except (HttpError, OSError, ValueError, KeyError, TypeError):
            return None

    def seal(self):
        """The whole log is stored: the API drops the chunks."""
        if self.shipped == 0:
            return
        try:
            self.call("/log/sealed", b"", dict(self.headers))
        except (HttpError, OSError, ValueError):
            pass  # the chunks stay until they are cleaned up; the stored log is read first

    def call(self, path, body, headers):
        return request("POST", self.run_url + path, headers, body, REQUEST_TIMEOUT)


class Sink:
    """One stream of the body into the log (Log.stream)."""

    def __init__(self, log, name):
        self.log = log
        self.name = name

    def write(self, data):
        self.log.add(self.name, data)
