"""The worker's transfers against a storage server, timed: bench/storage.ts runs it.

Reads one line of JSON on stdin, {"code", "input", "output", "log", "rounds"}: signed URLs of a code bundle,
an input, and two objects to write. Each round downloads a range of the bundle and the input together, as
a run's downloads go, then uploads two small files together, as its output and log go (dwop_http's
transfer_all, the worker's own client). Prints one JSON line: the milliseconds of each round's pair.
"""

import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "worker"))
from dwop_http import Transfer, transfer_all  # noqa: E402


def main():
    ask = json.loads(sys.stdin.readline())
    with tempfile.TemporaryDirectory(prefix="dwop-bench-storage-") as folder:  # removed at the end
        os.chdir(folder)
        rounds(ask)


def rounds(ask):
    with open("payload", "w") as f:
        f.write("1\n" * 3)
    downloads, uploads = [], []
    for _ in range(ask["rounds"]):
        fds = [os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) for name in ("main.py", "input")]
        start = time.perf_counter()
        failed = transfer_all(
            [Transfer("GET", ask["code"], fds[0], "code", (0, 100)), Transfer("GET", ask["input"], fds[1], "input")]
        )
        downloads.append((time.perf_counter() - start) * 1000)
        for fd in fds:
            os.close(fd)
        fds = [os.open("payload", os.O_RDONLY) for _ in range(2)]
        start = time.perf_counter()
        failed += transfer_all([Transfer("PUT", ask["output"], fds[0], "output"), Transfer("PUT", ask["log"], fds[1], "log")])
        uploads.append((time.perf_counter() - start) * 1000)
        for fd in fds:
            os.close(fd)
        if failed:
            raise SystemExit("a transfer failed: %r" % (failed,))
        time.sleep(0.01)  # a chain's runs come one after another, not back to back
    print(json.dumps({"downloads": downloads, "uploads": uploads}))


if __name__ == "__main__":
    main()
