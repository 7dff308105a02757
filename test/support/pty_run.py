"""Runs a command in a pseudo-terminal, as a person at a terminal would, and presses Ctrl-C.

usage: pty_run.py READY_PATTERN TIMEOUT_SECONDS -- COMMAND ARGS...

Waits until the command's terminal output matches READY_PATTERN (a Python regular expression), then
types Ctrl-C (the terminal sends SIGINT to the whole foreground process group, as a real one does),
and waits for the command to exit. Prints one JSON line: {"code": exit code (128+N for a signal),
"output": everything the terminal showed, "ready": whether the pattern was seen,
"interruptToExitMs": milliseconds from Ctrl-C to exit}. A command still running at the timeout is
killed (SIGKILL to its group) and reported with code -1.
"""
import json
import os
import pty
import re
import select
import signal
import sys
import time


def main() -> None:
    pattern = re.compile(sys.argv[1])
    timeout = float(sys.argv[2])
    command = sys.argv[sys.argv.index("--") + 1 :]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(command[0], command)
    output = b""
    ready = False
    interrupted_at = None
    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        readable, _, _ = select.select([fd], [], [], 0.05)
        if readable:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            output += chunk
        if not ready and pattern.search(output.decode("utf-8", "replace")):
            ready = True
            interrupted_at = time.monotonic()
            os.write(fd, b"\x03")
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
    else:
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        status = None
    exited_at = time.monotonic()
    # Whatever the terminal still holds.
    try:
        while select.select([fd], [], [], 0.1)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            output += chunk
    except OSError:
        pass
    if status is None:
        code = -1
    elif os.WIFSIGNALED(status):
        code = 128 + os.WTERMSIG(status)
    else:
        code = os.WEXITSTATUS(status)
    print(
        json.dumps(
            {
                "code": code,
                "output": output.decode("utf-8", "replace"),
                "ready": ready,
                "interruptToExitMs": None
                if interrupted_at is None
                else round((exited_at - interrupted_at) * 1000),
            }
        )
    )


main()
