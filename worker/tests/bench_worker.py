"""Wall time of one worker run for a trivial body, spawn to exit, against a local object store.

python worker/tests/bench_worker.py [--python /path/to/python] [--runs 40] [--gap 10] [--inline] [--fork-server-only]
Prints the median and 10th percentile of the wall time, and the CPU time (user + system, worker and
body) per run, which a busy machine disturbs less; next to a bare `python -c pass` for comparison, and
the same run started through the fork server (request sent to exit reported; CPU time: the server's and
its reaped children's, so the worker, the sandbox's processes and the body, but not slirp4netns),
outside the task sandbox and in it, without and with the internet (slirp4netns), with the page faults
per run of the same processes (minor faults: each page a forked process first writes is copied; a fault
costs ~2-3 us on bare metal and ~25 us in a paravirtualized guest, so this count, which the machine's
speed does not change, is the figure to compare across machines). --gap waits that many
milliseconds between two runs through the fork server, as the orchestration between two tasks of a chain
does (the server's spare worker prepares the next run's body meanwhile); 0 sends each request as soon
as the last run ended. --inline gives the code and the input in the run's environment and has the output
and the log left in its folder, as the local executor does with small objects: no request to a store (and
the request says so, as the executor's does: in the sandbox, the body sets its root up meanwhile).
"""

import argparse
import base64
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_worker import WORKER, ObjectStore  # noqa: E402


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(argv, cwd, env, runs):
    times = []
    cpu = cpu_seconds()
    for _ in range(runs):
        start = time.perf_counter()
        code = subprocess.run(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL).returncode
        times.append((time.perf_counter() - start) * 1000)
        if code != 0:
            raise SystemExit("%s exited with %d" % (argv, code))
    cpu = (cpu_seconds() - cpu) / runs * 1000
    times.sort()
    return statistics.median(times), times[len(times) // 10], cpu


def timed_fork_server(python, cwd, env, runs, settings, gap, inline):
    server = subprocess.Popen(
        [python, WORKER, "--fork-server", json.dumps(settings)],
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        ready = json.loads(server.stdout.readline())
        if settings.get("sandbox") == "required" and ready["sandbox"] != "namespaces":
            raise SystemExit("no sandbox here: %s" % ready["why"])
        times = []
        cpu, faults = server_cpu(server.pid), server_faults(server.pid)
        for i in range(runs):
            time.sleep(gap / 1000)
            start = time.perf_counter()
            with open(os.path.join(cwd, ".dwop-env"), "w") as f:  # the executor hands the env over so
                json.dump(env, f)
            # As the local executor asks for a run whose every file comes in its environment.
            request = {"id": str(i), "cwd": cwd, **({"inline": True} if inline else {})}
            server.stdin.write(b"%s\n" % json.dumps(request).encode())
            server.stdin.flush()
            server.stdout.readline()  # {"id", "pid"}
            ended = json.loads(server.stdout.readline())
            times.append((time.perf_counter() - start) * 1000)
            if ended.get("exit") != 0:
                raise SystemExit("the fork server's worker ended with %r" % ended)
        cpu = (server_cpu(server.pid) - cpu) / runs * 1000
        faults = (server_faults(server.pid) - faults) / runs
    finally:
        server.stdin.close()
        server.wait()
    times.sort()
    return statistics.median(times), times[len(times) // 10], cpu, faults


def server_cpu(pid):
    """Seconds of CPU of the fork server and of its zygote, with the children each has reaped."""
    return sum(sum(int(x) for x in stat_fields(p)[11:15]) for p in server_and_zygote(pid)) / os.sysconf("SC_CLK_TCK")


def server_faults(pid):
    """Minor page faults of the fork server and of its zygote, with the children each has reaped."""
    return sum(int(fields[7]) + int(fields[8]) for fields in map(stat_fields, server_and_zygote(pid)))


def server_and_zygote(pid):
    """The fork server and its live children (the zygote, which reaps the spare workers)."""
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [pid, *(int(child) for child in f.read().split())]


def stat_fields(pid):
    """/proc/<pid>/stat's fields after the command's name (state first)."""
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rpartition(")")[2].split()


def new_folder(tmp):
    """A run folder of its own for each series: in the sandbox, a run given its files inline refuses to
    overwrite those a series outside it left in the folder."""
    folder = tempfile.mkdtemp(dir=tmp, prefix="work-")
    os.chmod(folder, 0o755)
    return folder


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", default=sys.executable)
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--gap", type=float, default=0, help="milliseconds between two fork server runs")
    parser.add_argument(
        "--inline",
        action="store_true",
        help="code and input given in the env, output and log left in the folder: a local run's way (no URL)",
    )
    parser.add_argument(
        "--fork-server-only", action="store_true", help="only the fork server's rows (no interpreter started per run)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = ObjectStore(os.path.join(tmp, "store"))
        store.put("code/main.py", "print('hello')\n")
        store.put("in/raw", "a,b,c")
        os.chmod(tmp, 0o755)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "LANG": "C.UTF-8",
            "DWOP_CODE_URL": store.url("code/main.py"),
            "DWOP_INPUTS": '[{"param": "raw", "url": "%s"}]' % store.url("in/raw"),
            "DWOP_OUTPUT_URL": store.url("out/output.txt"),
            "DWOP_LOG_URL": store.url("out/attempt-1.log"),
            "DWOP_RESULT_FILE": os.path.join(tmp, "result.json"),
            "DWOP_DIE_WITH_PARENT": "1",
        }
        if args.inline:  # as the local executor gives small objects (shared/executors/local.ts)
            code = b'# dwop-source: {"file": "bench.workflow", "line": 1, "task": "main"}\nprint("hello")\n'
            del env["DWOP_CODE_URL"]
            env["DWOP_CODE"] = base64.b64encode(code).decode()
            env["DWOP_INPUTS"] = '[{"param": "raw", "data": "%s"}]' % base64.b64encode(b"a,b,c").decode()
            env["DWOP_INLINE_RESULT_BYTES"] = "65536"
        spawned = (
            ("python -c pass", [args.python, "-c", "pass"]),
            ("worker, trivial body, 1 input", [args.python, WORKER]),
        )
        for label, argv in () if args.fork_server_only else spawned:
            median, p10, cpu = timed(argv, new_folder(tmp), env, args.runs)
            print("%-32s median %6.1f ms   p10 %6.1f ms   cpu %5.1f ms" % (label, median, p10, cpu))
        # As the local executor starts it: as root, the runs' root template on a folder of its own.
        template = {"rootTemplate": os.path.join(tmp, "root-template")}
        for label, settings in (
            ("same, through the fork server", {}),
            ("  in the sandbox, network none", {"sandbox": "required", "network": "none", **template}),
            ("  in the sandbox, internet", {"sandbox": "required", "network": "internet", **template}),
        ):
            work = new_folder(tmp)
            median, p10, cpu, faults = timed_fork_server(
                args.python, work, env, args.runs, settings, args.gap, args.inline
            )
            print(
                "%-32s median %6.1f ms   p10 %6.1f ms   cpu %5.1f ms   page faults %5.0f"
                % (label, median, p10, cpu, faults)
            )
        store.close()


if __name__ == "__main__":
    main()
