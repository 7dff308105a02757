"""DWOP worker: fetch one task's code and inputs by signed URL, run the body, upload its output.

Started as `python dwop_worker.py` (a launcher, so this module's bytecode is cached). Environment:
  DWOP_CODE_URL          signed GET of the body, saved as main.py
  DWOP_CODE              instead of DWOP_CODE_URL: the body itself, base64 (a small one, which the dispatcher
                         read from storage on the same machine: no request)
  DWOP_CODE_RANGE        optional "offset,length": the body is those bytes of DWOP_CODE_URL's object (the
                         workflow's code bundle), fetched with an HTTP Range request
  DWOP_REQUIREMENTS_URL  optional signed GET of requirements.txt
  DWOP_INPUTS            JSON array [{"param": "raw", "url": "<signed GET>"}]; each saved as file `param`;
                         an item may hold {"param", "data": "<base64>"} instead of a URL, as DWOP_CODE
  DWOP_OUTPUT_URL        signed PUT of Task_Output/<workflow>/<task>/attempt-<n>.output.txt (the body's
                         stdout), which the dispatcher moves to the task's output.txt if the run succeeded
  DWOP_LOG_URL           signed PUT of the full log (stdout and stderr in arrival order)
  DWOP_INLINE_RESULT_BYTES  optional n: after a success whose output and log are both at most n bytes (and
                         none of the log went out live), they are left in the working folder as one file,
                         .dwop-output-and-log, for the executor to store, instead of uploaded (a local run):
                         a line "<output bytes> <log bytes>", then the output, then the log
  DWOP_RESULT_FILE       where the failure JSON goes (default /dev/termination-log when it is writable)
  DWOP_DIE_WITH_PARENT   "1": die (SIGKILL) when the process that started the worker dies
  DWOP_RETRY_DELAYS      optional "0.2,0.5,1.5,3,5" (the default): seconds before each further try of a
                         transfer that failed transiently (a refused connection, 5xx, 408, 429)

Exit status: 0 on success. When the body fails, the body's own status (128+N when signal N killed it);
any other failure, 70. Each of these non-zero exits writes one line of JSON, the WorkerFailure shape of
shared/model.ts: {"type", "message", "exitCode", "nonRetryable"}. A worker killed from outside writes
nothing.

The body runs in a forked child (no second interpreter start), as `python main.py` would run it. The
worker tees the body's stdout to an unnamed output file and its own stdout, the body's stderr to its own
stderr, and both to an unnamed log file, which are uploaded when the body has exited.

Start-up time is most of a small task's cost, so only C modules and the worker's own files are
imported: json, socket, runpy and ctypes would pull in re, enum and importlib.util (~20 ms together on
a clean CPython 3.11), and http.client with ssl costs more than the rest of a run (~35 ms).
"""

import _json
import _signal
import binascii
import errno
import os
import sys
import time as _time

from dwop_http import RETRY_DELAYS, HttpError, Transfer, parse_retry_delays, transfer_all, write_all
from dwop_json import parse_json
from dwop_log import SHIP_EVERY, BoundedEcho, LineLog, LogStream
from dwop_source import MARK, exception_line
from dwop_unnamed import UnnamedFile, spill_to
from dwop_process import BODY_KEEPS, abandon_child, die_with_parent, exit_on_stop_signals, fork_child, load_prctl
from dwop_process import reap_child
from dwop_process import run_script, unbuffered_stdio, wait_child
from dwop_sandbox import Limits, SandboxError
import dwop_gate
import dwop_source

RESULT_FILE_DEFAULT = "/dev/termination-log"
DEPS_DIR = ".dwop-deps"
EXIT_WORKER_FAILURE = 70  # EX_SOFTWARE: anything that is not the body's own failure
RESULT_FILE = ".dwop-output-and-log"  # see DWOP_INLINE_RESULT_BYTES
MAX_MESSAGE = 2000
FRESH_URLS_AFTER = 300


class Failure(Exception):
    """A failure the worker reports as a WorkerFailure."""

    def __init__(self, type_, message, non_retryable=False, exit_code=None, status=EXIT_WORKER_FAILURE):
        super().__init__(message)
        self.type = type_
        self.message = message
        self.non_retryable = non_retryable
        self.exit_code = exit_code
        self.status = status

    def to_json(self):
        enc = _json.encode_basestring_ascii
        exit_code = "null" if self.exit_code is None else str(int(self.exit_code))
        return '{"type":%s,"message":%s,"exitCode":%s,"nonRetryable":%s}' % (
            enc(self.type),
            enc(self.message[:MAX_MESSAGE]),
            exit_code,
            "true" if self.non_retryable else "false",
        )


def sandbox_failed(why):
    """The Failure of a run whose sandbox could not be set up, for why (which step, and how)."""
    return Failure("sandbox_failed", "the task sandbox could not be set up: %s" % why)


class Log(LineLog):
    """The attempt's log (dwop_log.LineLog); what the worker says itself goes there and to its stderr."""

    def __init__(self):
        super().__init__(UnnamedFile("dwop-log"))
        self.started = _time.monotonic()
        self.stream_to = None  # the LogStream, when the run has one

    def say(self, message):
        line = ("dwop-worker: %s\n" % message).encode("utf-8", "replace")
        self.write(line)
        try:
            write_all(2, line)
        except OSError:
            pass


class Task:
    """What the environment asks for (env: the run's, which the fork server's worker reads from its env
    file and keeps here rather than in its own process environment)."""

    def __init__(self, env):
        self.env = env
        # The body's environment: the run's, without the worker's own variables.
        self.body_env = {k: v for k, v in env.items() if not k.startswith("DWOP_") or k in BODY_KEEPS}
        try:
            self.output_url = env["DWOP_OUTPUT_URL"]
            self.log_url = env["DWOP_LOG_URL"]
            self.code = inline_bytes(env["DWOP_CODE"], "DWOP_CODE") if "DWOP_CODE" in env else None
            self.code_url = None if self.code is not None else env["DWOP_CODE_URL"]
        except KeyError as e:
            message = "missing environment variable %s" % e.args[0]
            raise Failure("worker_error", message, non_retryable=True) from None
        self.code_range = code_range(env.get("DWOP_CODE_RANGE"))
        try:
            self.retry_delays = parse_retry_delays(env.get("DWOP_RETRY_DELAYS"))
        except ValueError as e:
            raise Failure("worker_error", str(e), non_retryable=True) from None
        self.requirements_url = env.get("DWOP_REQUIREMENTS_URL") or None
        inline_result = env.get("DWOP_INLINE_RESULT_BYTES") or "0"
        if not inline_result.isdigit():
            message = "DWOP_INLINE_RESULT_BYTES is not a whole number: %.40s" % inline_result
            raise Failure("worker_error", message, non_retryable=True)
        self.inline_result_bytes = int(inline_result)
        try:
            inputs = parse_json(env.get("DWOP_INPUTS") or "[]")
            # (param, url or None, bytes or None) of each input
            self.inputs = [(item["param"], item.get("url"), item.get("data")) for item in inputs]
            if not all(isinstance(url, str) != isinstance(data, str) for _, url, data in self.inputs):
                raise ValueError("each item needs a url or data, not both")
        except (ValueError, TypeError, KeyError, AttributeError) as e:
            message = "DWOP_INPUTS is not a JSON array of {param, url} or {param, data}: %s" % e
            raise Failure("worker_error", message, non_retryable=True) from None
        for param, _, _ in self.inputs:
            if not isinstance(param, str) or not safe_file_name(param):
                message = "input %r is not a safe file name" % (param,)
                raise Failure("worker_error", message, non_retryable=True)
        self.inputs = [
            (param, url, None if data is None else inline_bytes(data, "input %s" % param))
            for param, url, data in self.inputs
        ]


def inline_bytes(text, what):
    """The bytes of an object given inline (base64); raises Failure when it is not base64."""
    try:
        return binascii.a2b_base64(text)
    except (binascii.Error, ValueError, TypeError) as e:
        raise Failure("worker_error", "%s is not base64: %s" % (what, e), non_retryable=True) from None


def code_range(text):
    """(offset, length) of DWOP_CODE_RANGE, or None when it is absent."""
    if not text:
        return None
    offset, _, length = text.partition(",")
    if not (offset.isdigit() and length.isdigit() and int(length) > 0):
        message = "DWOP_CODE_RANGE is not offset,length (two whole numbers, length above 0): %.80s" % text
        raise Failure("worker_error", message, non_retryable=True)
    return int(offset), int(length)


def safe_file_name(name):
    reserved = (".", "..", "main.py", "requirements.txt", DEPS_DIR)
    return bool(name) and name not in reserved and not any(c in name for c in "/\\\0")


def download(task, while_waiting, keep_inline=False):
    """Saves code, inputs and requirements: those given inline at once (or, with keep_inline, returns them
    as (name, bytes) pairs, for the body to write in its own folder), the others with all their requests at
    once; runs while_waiting() meanwhile."""
    code = "the task's code"
    if task.code_range:
        code += " (bytes %d+%d of the code bundle)" % task.code_range
    given = [("main.py", task.code)] + [(param, data) for param, _, data in task.inputs]
    given = [(path, data) for path, data in given if data is not None]
    if not keep_inline:
        for path, data in given:
            write_file(path, data)
    wanted = [("main.py", task.code_url, code, task.code_range)]
    wanted += [(param, url, "input %s" % param, None) for param, url, _ in task.inputs]
    if task.requirements_url:
        wanted.append(("requirements.txt", task.requirements_url, "requirements.txt", None))
    wanted = [item for item in wanted if item[1] is not None]
    transfers = []
    try:
        for path, url, what, byte_range in wanted:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            transfers.append(Transfer("GET", url, fd, what, byte_range))
        failed = transfer_all(transfers, while_waiting, task.retry_delays)
    finally:
        for transfer in transfers:
            os.close(transfer.fd)
    if failed:
        transfer, error = failed[0]
        raise Failure("download_failed", "downloading %s: %s" % (transfer.what, describe(error)))
    if task.code_range:
        if task.code is not None:
            start = task.code[: len(MARK)]
        else:
            with open("main.py", "rb") as f:
                start = f.read(len(MARK))
        if start != MARK:
            message = "%s is not a task's code (it does not start with %r)" % (code, MARK.decode())
            raise Failure("download_failed", message, non_retryable=True)
    return given if keep_inline else []


def fetched(task):
    """What of the run is downloaded into its folder (its code, an input or requirements.txt), or None."""
    wanted = [("the task's code", task.code_url)] + [("input " + param, url) for param, url, _ in task.inputs]
    wanted.append(("requirements.txt", task.requirements_url))
    return next((what for what, url in wanted if url is not None), None)


def write_file(path, data, exclusive=False):
    """Writes a file of the run (mode 0644); exclusive: only a new one, never through a link."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL | os.O_NOFOLLOW if exclusive else os.O_TRUNC)
    fd = os.open(path, flags, 0o644)
    try:
        write_all(fd, data)
    finally:
        os.close(fd)


def describe(error):
    return str(error) or type(error).__name__


def has_requirement_lines(path):
    with open(path, "rb") as f:
        return any(line.strip() and not line.strip().startswith(b"#") for line in f)


class Body:
    """The body's process (after pip, when there are requirements), in the sandbox when there is one. The fork
    server's spare worker forks it ahead (ahead=True), before the run is known, and sets its sandbox up
    while it waits for a run: the namespaces, the system's part of the root, the network's trap. A worker started
    on its own forks it as its downloads start. It waits at a gate (dwop_gate) until the worker hands it the
    run: place() tells it where and as whom it runs (for a run whose every file comes in its environment,
    before the worker even reads that, so that the body finishes its root meanwhile), open() the rest once
    the downloads are in, abandon() ends it unstarted. Its stdout goes to the output and the log, its
    stderr to the worker's and the log (the two merged by line)."""

    def __init__(self, sandbox, prctl, close=(), ahead=False):
        self.sandbox = sandbox
        self.ahead = ahead
        self.placed = False  # whether place() told the body where it runs
        self.folderless = False  # whether it was told that no file of its run is in the run's folder
        self.attached = False
        self.setup_error = None  # why the worker's half of the set-up failed (started()), if it did
        self.report_r, self.report_w = os.pipe()
        gate_r, self.gate_w = os.pipe()
        if sandbox:
            sandbox.before_fork()
        # The body's process tells its exit status just before it exits (dwop_process.wait_child).
        self.told = os.pipe()
        ends = (*close, self.report_r, self.gate_w, self.told[0])  # the child's to close
        self.child = fork_child(lambda: self.main(gate_r), ends, prctl)
        os.close(gate_r)
        os.close(self.told[1])
        self.unreaped = False  # after open(): whether its status came before its exit, to reap it then

    def note(self, kind, text):
        write_all(self.report_w, ("%s %s\n" % (kind, text)).encode("utf-8", "replace"))

    def main(self, gate_r):
        """In the child: set up (the sandbox), wait at the gate, then run pip and the body; never returns."""
        reader = dwop_gate.Reader(gate_r)

        def gate():
            # In the process that runs the body (the sandbox forks it before its gate), while it waits.
            if self.ahead:  # a made-up body read and compiled
                dwop_source.rehearse()
            else:  # forked on the run's path, its job on the way: only the compiler set up (~2 ms)
                compile("pass", "<warm-up>", "exec")
            unbuffered_stdio()  # what `python -u` gives the body (nothing is written to it before)
            # The gate's steps on a made-up run: its Place and Job read, its environment taken (0.4 -> 0.1 ms
            # of each run's path here). The made-up environment stays until the real one replaces it.
            take_environment(dwop_gate.rehearsal())
            place = reader.place()
            if place is None:
                os._exit(EXIT_WORKER_FAILURE)  # abandoned: the downloads failed
            return place

        if self.sandbox:
            try:
                self.sandbox.enter(gate)
            except (SandboxError, OSError) as e:
                self.note("sandbox", describe(e))
                os._exit(EXIT_WORKER_FAILURE)
        else:
            os.chdir(gate().folder)
        job = reader.job()
        if job is None:
            os._exit(EXIT_WORKER_FAILURE)  # abandoned after its Place: the downloads failed
        take_environment(job)
        if self.sandbox:
            self.sandbox.own_environment()
        try:
            for name, data in job.files:  # into its own /work, as the run's user (the sandbox's only)
                write_file(name, data, exclusive=True)
        except OSError as e:
            self.note("sandbox", describe(e))
            os._exit(EXIT_WORKER_FAILURE)
        deps = install_requirements(self.note) if job.requirements else None
        told = self.told[1] if self.told else None
        run_script("main.py", deps, lambda error: body_failed(self.note, error, self.sandbox), told)

    def started(self):
        """Right after the fork, while the child sets up: the worker's half of the sandbox's set-up
        (the run's namespaces held, slirp4netns where it is not attached on demand). Its failure is kept, for
        the run to report."""
        self.attached = True
        if self.sandbox:
            try:
                self.sandbox.after_fork(self.child[0])
            except (SandboxError, OSError) as e:
                self.setup_error = describe(e)

    def abandon(self):
        """Ends the child unstarted (the downloads failed)."""
        os.close(self.gate_w)
        abandon_child(self.child)
        os.close(self.report_r)
        os.close(self.report_w)
        if self.told:
            os.close(self.told[0])
        if self.sandbox and self.attached:
            self.sandbox.after_run()

    def place(self, folder):
        """Tells the body where and as whom it runs (once): its uid and limits, and the run's folder (the
        cwd), or None (in the sandbox only) when no file of the run will be in the folder, every one coming
        in its Job: the body then finishes its root at once, beside what the worker does before open()."""
        if self.placed:
            return
        self.placed = True
        self.folderless = folder is None
        sandbox = self.sandbox
        uid, limits = (sandbox.uid, sandbox.limits) if sandbox else (None, Limits())
        try:
            dwop_gate.send_place(self.gate_w, dwop_gate.Place(uid, limits, folder))
        except BrokenPipeError:
            pass  # it died setting up; how is in its notes
        if sandbox:
            sandbox.hold_mounts(self.child[0])  # while the body adds the run's part of its root

    def open(self, has_requirements, log, output, body_env, files=()):
        """Hands the body its run (body_env: its environment), copies its output until it exits; raises
        Failure for anything but a clean exit."""
        self.place(os.getcwd())
        sandbox = self.sandbox

        def hand_over():
            try:
                dwop_gate.send(self.gate_w, dwop_gate.Job(has_requirements, body_env, files))
            except BrokenPipeError:
                pass  # it died setting up; how is in its notes

        # The sandbox's runs: what the body prints is bounded as what it writes is (a pod's by its own limits).
        budget = (StreamBudget(sandbox.limits.disk),) if sandbox else ()
        try:
            code, signal, self.unreaped = wait_child(
                self.child,
                (*budget, BoundedEcho(1, log), output, log.stream("stdout")),
                (*budget, BoundedEcho(2, log), log.stream("stderr")),
                self.told[0],
                sandbox.network_watch() if sandbox else None,
                # Its log shipped live from SHIP_EVERY after the run's start on: a thread a shorter run
                # neither starts nor waits for at its end.
                (log.started + SHIP_EVERY, log.stream_to.start) if log.stream_to else None,
                # Once a stop signal the body sends its worker at once is passed back to it.
                start=hand_over,
            )
        except SandboxError as e:  # the network, attached at the body's first socket
            raise sandbox_failed(describe(e)) from None
        finally:
            os.close(self.told[0])
            os.close(self.report_w)
            log.end_streams()
            if log.stream_to:
                log.stream_to.stop()
            if sandbox:
                sandbox.after_run()
        notes = dict(line.partition(" ")[::2] for line in read_all(self.report_r).splitlines() if line)
        os.close(self.report_r)
        failure = body_failure(code, signal, notes, sandbox)
        if failure:
            raise failure


def install_requirements(note):
    """pip install --target .dwop-deps, in this (the body's) process's child; pip's output goes to stderr.
    Exits this process when pip fails; returns the folder otherwise."""
    deps = os.path.abspath(DEPS_DIR)
    argv = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--no-input"]
    argv += ["--target", deps, "-r", "requirements.txt"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DWOP_")}
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(2, 1)
            os.execve(sys.executable, argv, env)
        finally:
            os._exit(127)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if code != 0:
        note("requirements", "was killed by signal %d" % -code if code < 0 else "exited with code %d" % code)
        os._exit(EXIT_WORKER_FAILURE)
    return deps


def body_failed(note, error, sandbox):
    """In the body's process, when it failed: the exception's last line, and which limit it hit if any."""
    if isinstance(error, BaseException) and not isinstance(error, SystemExit):
        note("exception", exception_line(error).replace("\n", " ")[:MAX_MESSAGE])
    limit_reached(note, error, sandbox)


def limit_reached(note, error, sandbox):
    """After a failed body in the sandbox: says which limit it ran into, when it was one."""
    if sandbox is None:
        return
    if isinstance(error, MemoryError):
        note("memory", "")
    elif isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        note("disk", "")
    else:
        try:
            usage = os.statvfs(".")
            if usage.f_bavail == 0:
                note("disk", "")
        except OSError:
            pass


def body_failure(code, signal, notes, sandbox):
    """The Failure for how the body's process ended and what it noted, or None for a clean exit."""
    if "sandbox" in notes:
        return sandbox_failed(notes["sandbox"])
    if "requirements" in notes:
        message = "pip install -r requirements.txt %s" % notes["requirements"]
        if sandbox and not sandbox.settings.internet:
            message += " (tasks have no network: DWOP_TASK_NETWORK=none)"
        return Failure("requirements_failed", message, non_retryable=True)
    if code == 0:
        return None
    limits = sandbox.limits if sandbox else None
    if "memory" in notes:
        message = "went over its memory limit of %s (MemoryError)" % size(limits.memory)
        return Failure("memory_limit", message, exit_code=code, status=code)
    if "disk" in notes:
        message = "filled its folder's limit of %s (%s)" % (size(limits.disk), "no space left on device")
        return Failure("disk_limit", message, exit_code=code, status=code)
    if limits and limits.cpu_seconds and signal == _signal.SIGXCPU:
        message = "used up its CPU time limit of %d s" % limits.cpu_seconds
        return Failure("cpu_limit", message, exit_code=code, status=code)
    if signal:
        message = "killed by signal %d" % signal
    else:
        message = notes.get("exception") or "exit code %d" % code
    return Failure("task_failed", message, exit_code=code, status=code)


class StreamBudget:
    """A sink of the body's stdout and stderr together, first in both lists: once they pass the run's disk
    limit it raises a disk_limit Failure, before the chunk that passed it is written anywhere. What the body
    prints becomes files of the machine's (its output, its log, and the worker's own copy in the run's
    folder, which is in memory for an inline run), outside the tmpfs that bounds its other writes."""

    def __init__(self, limit):
        self.limit = limit
        self.left = limit

    def write(self, data):
        self.left -= len(data)
        if self.left < 0:
            message = "wrote more than its disk limit of %s to stdout and stderr" % size(self.limit)
            raise Failure("disk_limit", message)


def size(n):
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale and n % scale == 0 or n >= scale * 10:
            return "%d %s" % (n // scale, unit)
    return "%d bytes" % n


def read_all(fd):
    """What fd holds now, without waiting for end of file: a process the body left (sandbox off) may
    still hold the pipe open."""
    os.set_blocking(fd, False)
    data = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        data += chunk
    return data.decode("utf-8", "replace")


def upload(task, output, log):
    """Uploads output and log together, to URLs minted now when the run has a log stream, unless they are
    left to the executor (leave_to_executor). Storage refusing the output (4xx: too large, an expired URL)
    is the task's own failure, with storage's reason; a storage that cannot be reached is the
    infrastructure's. A log that cannot be stored does not fail the task: its live chunks keep it."""
    if leave_to_executor(task, output, log):
        return
    fresh = fresh_upload_urls(log, task.env)
    output_url, log_url = fresh or (task.output_url, task.log_url)
    sent = Transfer("PUT", output_url, output.fd, "the output")
    failed = dict(transfer_all([sent, Transfer("PUT", log_url, log.fd, "the log")], None, task.retry_delays))
    store_log_done(log, not any(t is not sent for t in failed))
    for transfer, error in failed.items():
        if transfer is not sent:
            log.say("uploading the log: %s" % describe(error))
        elif isinstance(error, HttpError) and not error.transient:
            raise Failure("output_rejected", "storage refused the output: %s" % describe(error))
        else:
            raise Failure("upload_failed", "uploading the output: %s" % describe(error))


def leave_to_executor(task, output, log):
    """Writes the output and the log to RESULT_FILE in the working folder, for the executor to store
    (DWOP_INLINE_RESULT_BYTES): no request. Only when both fit and nothing of the log went out live, whose
    chunks only a stored log seals. False to upload them."""
    limit = task.inline_result_bytes
    if not limit or (log.stream_to and log.stream_to.shipped):
        return False
    if max(output.size, log.size) > limit:
        return False
    try:
        os.unlink(RESULT_FILE)  # none but one a body outside the sandbox made: the run's folder is new
    except FileNotFoundError:
        pass
    target = os.open(RESULT_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        head = b"%d %d\n" % (output.size, log.size)
        write_all(target, head + os.pread(output.fd, output.size, 0) + os.pread(log.fd, log.size, 0))
    finally:
        os.close(target)
    return True


def fresh_upload_urls(log, env):
    """Upload URLs minted now, for a run old enough that the ones it started with may have expired:
    every signed URL lives at least FRESH_URLS_AFTER seconds (Supabase's upload URLs two hours,
    whatever the task's deadline). None for a younger run, or one without a log stream."""
    after = float(env.get("DWOP_FRESH_URLS_AFTER_SECONDS") or FRESH_URLS_AFTER)
    if not log.stream_to or _time.monotonic() - log.started < after:
        return None
    return log.stream_to.upload_urls()


def store_log_done(log, stored):
    """After the log's upload: its live chunks are dropped when it was stored, else sent in full."""
    if not log.stream_to:
        return
    if stored:
        log.stream_to.seal()
    else:
        log.stream_to.ship_rest()


def work(task, log, parent, die_with_parent_wanted, body, done=None):
    """The steps of a run; raises Failure. body: the Body prepared for it, or None to fork one now (which
    does not keep done, the worker's pipe to the fork server). Returns the body's process (a fork_child) when
    it told its status (see dwop_process.wait_child) and succeeded, for exit_now to reap once the run's end
    is told; else None."""
    prctl = None
    if die_with_parent_wanted:
        prctl = load_prctl()
        die_with_parent(prctl, parent)
    output = UnnamedFile("dwop-output")
    if body is None:
        body = Body(None, prctl, close=(output.fd, log.fd) + (() if done is None else (done,)))
        body.started()
    try:
        if body.setup_error:
            raise sandbox_failed(body.setup_error)
        unseen = body.folderless and fetched(task)
        if unseen:
            # The executor asked for it as inline, but its environment says otherwise: the body cannot see it.
            message = "the run was asked for as inline (every file in its environment), but %s is fetched by URL"
            raise Failure("worker_error", message % unseen, non_retryable=True)
        # In the sandbox, the code and inputs given inline go to the body, which writes them in its own
        # /work (a tmpfs): none of them is a file of the run's folder on disk.
        files = download(task, None, keep_inline=bool(body.sandbox))
        has_requirements = bool(task.requirements_url) and has_requirement_lines("requirements.txt")
    except BaseException:
        body.abandon()
        if log.stream_to:
            log.stream_to.stop()
        raise
    try:
        body.open(has_requirements, log, output, task.body_env, files)
        upload(task, output, log)
    except BaseException:
        if body.sandbox or body.unreaped:
            reap_child(body.child)
        raise
    return body.child if body.unreaped else None


# A made-up run for rehearse(), its URL as long as a real one, so that the same sizes are allocated.
REHEARSAL_URL = "http://127.0.0.1:1/storage/v1/object/dwop-outputs/rehearsal?method=GET&expires=1&signature=" + "0" * 64


def rehearse():
    """Takes the first steps of a run (its environment read and checked) on a made-up one, in a spare worker
    while it waits for its run. A forked process pays a page fault the first time it writes a page it still
    shares with the fork server (a reference count, a freed block reused), about 2-3 us apiece on bare
    metal and 20-30 us in a paravirtualized guest; here they are paid before the run is asked for instead of
    on its path. It touches nothing outside this process's memory; returns the made-up environment."""
    url = _json.encode_basestring_ascii(REHEARSAL_URL)
    inputs = _json.encode_basestring_ascii('[{"param":"x","url":%s},{"param":"y","data":"eA=="}]' % url)
    env = parse_json(
        '{"DWOP_CODE":"eA==","DWOP_CODE_RANGE":"1,2","DWOP_INPUTS":%s,"DWOP_OUTPUT_URL":%s,"DWOP_LOG_URL":%s,'
        '"DWOP_LOG_STREAM_URL":%s,"DWOP_LOG_STREAM_TOKEN":"x"}' % (inputs, url, url, url)
    )
    Task(env)
    LogStream.from_env(env, None)
    return env


def take_environment(job):
    """In the body's process, at its gate: the job's environment becomes the process's, every variable it
    had removed."""
    os.environ.clear()
    os.environ.update(job.env)


def result_file(env):
    path = env.get("DWOP_RESULT_FILE")
    if path:
        return path
    return RESULT_FILE_DEFAULT if os.access(RESULT_FILE_DEFAULT, os.W_OK) else None


def report(failure, env):
    """Writes the failure JSON where the executor reads it."""
    path = result_file(env)
    if path is None:
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            write_all(fd, (failure.to_json() + "\n").encode())
        finally:
            os.close(fd)
    except OSError as e:
        write_all(2, ("dwop-worker: cannot write %s: %s\n" % (path, e)).encode("utf-8", "replace"))


def main(body=None, done=None, env=None):
    """Runs the worker; never returns. body: the Body prepared for the run in the sandbox (fork server
    runs); None forks one, without the sandbox, when the run starts. done: a pipe to the fork server, told
    the exit code just before the exit (see exit_now). env: the run's environment (the fork server's env
    file), else this process's."""
    env = os.environ if env is None else env
    spill_to(env.get("DWOP_SPILL_FOLDER"))
    if os.getpid() == 1:
        exit_on_stop_signals()
    parent = os.getppid()
    failure = None
    log = None
    task = None
    body_left = None
    try:
        log = Log()
        log.stream_to = LogStream.from_env(env, log)
        task = Task(env)
        body_left = work(task, log, parent, env.get("DWOP_DIE_WITH_PARENT") == "1", body, done)
    except Failure as e:
        failure = e
    except BaseException as e:
        failure = Failure("worker_error", "%s: %s" % (type(e).__name__, describe(e)))
        import traceback

        trace = traceback.format_exc().encode("utf-8", "replace")
        if log:
            log.write(trace)
        write_all(2, trace)
    if failure is None:
        exit_now(0, done, body_left)
    if log:
        if failure.type != "task_failed":
            log.say("%s: %s" % (failure.type, failure.message))
        fresh = fresh_upload_urls(log, env)
        log_url = fresh[1] if fresh else env.get("DWOP_LOG_URL")
        if log_url:
            delays = task.retry_delays if task else RETRY_DELAYS
            store_log_done(log, not transfer_all([Transfer("PUT", log_url, log.fd, "the log")], None, delays))
    else:
        write_all(2, ("dwop-worker: %s: %s\n" % (failure.type, failure.message)).encode("utf-8", "replace"))
    report(failure, env)
    exit_now(failure.status, done)


def exit_now(code, done, body=None):
    """Exits with code, having told the fork server on done first: the server reports the run's end
    without waiting for the kernel to tear this process down (half a millisecond and more). The run is
    over by then: its body ended (killed, when it told its status), its output stored or its failure
    written.

    body, the body's process after a success whose status it told, is reaped after the telling: its exit
    tears its process down (~1 ms), which the report need not wait for. In the sandbox this process is the
    first of the run's pid namespace, and its own exit kills what the body left running there. The server
    frees the run's uid only when it reaps this process: no other run gets the uid while anything of this
    one is left."""
    if done is not None:
        try:
            os.write(done, b"%d\n" % code)
        except OSError:
            pass  # the server is gone; its end ends the run anyway
    if body is not None:
        reap_child(body)
    os._exit(code)
