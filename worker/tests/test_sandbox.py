"""The task sandbox entered by a normal user (no root): a user namespace instead of a uid of the run's own.

The fork server's tests (test_forkserver.py) run as whoever runs the suite, which is root in CI; these run
the same boundary as the unprivileged user `nobody`, with Debian's Python (the suite's own interpreter may
live in root's home, which nobody cannot enter).

Run with: python -m unittest discover -s worker/tests -v
"""

import base64
import errno
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEM_PYTHON = "/usr/bin/python3"
NOBODY = 65534
AS_NOBODY = ["setpriv", "--reuid=%d" % NOBODY, "--regid=%d" % NOBODY, "--clear-groups", SYSTEM_PYTHON]

# Enters the sandbox as the executor's worker would, then reports what the body finds.
INSIDE = """
import json, os, socket, sys
sys.path.insert(0, sys.argv[1])
import dwop_sandbox
settings = dwop_sandbox.Settings(dwop_sandbox.load())
limits = dwop_sandbox.Limits(memory=64 << 20, disk=4 << 20, processes=16)
why = dwop_sandbox.probe(settings)
if why:
    print(json.dumps({"probe": why}))
    sys.exit(0)
worker = settings.fork_worker()  # as the fork server forks a run's worker
if worker != 0:
    sys.exit(os.waitstatus_to_exitcode(os.waitpid(worker, 0)[1]))
settings.libc.prctl(dwop_sandbox.PR_SET_DUMPABLE, 0, "not dumpable")  # as the worker is
run = dwop_sandbox.Run(settings, None, limits, sys.argv[2])
pid = os.fork()  # as the worker forks the body's process
if pid != 0:
    os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
run.enter()
def attempt(call):
    try:
        call()
        return "done"
    except (OSError, MemoryError) as e:
        return type(e).__name__
def write(path):
    with open(path, "w") as f:
        f.write("x")
report = {
    "uid": os.getuid(),
    "cwd": os.getcwd(),
    "listing": sorted(os.listdir(".")),
    "root": sorted(os.listdir("/")),
    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
    "outside": os.path.exists(sys.argv[3]),
    "connect": attempt(lambda: socket.create_connection(("127.0.0.1", int(sys.argv[4])), timeout=2).close()),
    "usr": attempt(lambda: write("/usr/lib/zz-dwop")),
    "work": attempt(lambda: write("/work/mine")),
    "tmp": attempt(lambda: write("/tmp/mine")),
    "memory": attempt(lambda: bytearray(256 << 20)),
    "disk": attempt(lambda: write("/work/big") or open("/work/big", "wb").write(b"x" * (8 << 20))),
}
print(json.dumps(report), flush=True)
"""


@unittest.skipUnless(sys.platform.startswith("linux"), "the sandbox is made of Linux namespaces")
@unittest.skipUnless(os.geteuid() == 0 and shutil.which("setpriv"), "needs root to become nobody (setpriv)")
@unittest.skipUnless(os.path.exists(SYSTEM_PYTHON), "needs a system Python that nobody can run")
class UnprivilegedSandboxTest(unittest.TestCase):
    def nobodys_copy(self):
        """A folder nobody can enter, holding a copy of the sandbox's code in code/: (folder, code)."""
        tmp = tempfile.mkdtemp(prefix="dwop-sandbox-nobody-")
        self.addCleanup(shutil.rmtree, tmp)
        os.chmod(tmp, 0o755)
        code = os.path.join(tmp, "code")
        os.mkdir(code)
        for name in ("dwop_sandbox.py", "dwop_process.py", "dwop_network.py", "dwop_source.py", "dwop_json.py"):
            shutil.copy(os.path.join(WORKER_DIR, name), code)
        return tmp, code

    def as_nobody(self, argv, **kwargs):
        return subprocess.run(AS_NOBODY + argv, capture_output=True, text=True, timeout=60, **kwargs)

    def test_a_worker_that_cannot_be_cloned_into_its_namespaces_fails_saying_why(self):
        # clone(2) refused (no user namespace left, say): forking the worker fails with clone's reason (the
        # fork server answers the run with it). A body whose worker is not the first process of a pid
        # namespace of its own is refused.
        tmp, code = self.nobodys_copy()
        script = """
import os, sys
sys.path.insert(0, sys.argv[1])
import dwop_sandbox
def refused(self, flags, what):
    raise dwop_sandbox.SandboxError("clone %s: No space left on device" % what)
dwop_sandbox.Libc.fork_into = refused
settings = dwop_sandbox.Settings(dwop_sandbox.load())
try:
    settings.fork_worker()
    print("forked", flush=True)
except dwop_sandbox.SandboxError as e:
    print(e, flush=True)
run = dwop_sandbox.Run(settings, None, dwop_sandbox.Limits(), sys.argv[2])
pid = os.fork()
if pid == 0:
    try:
        run.enter()
        print("entered", flush=True)
    except dwop_sandbox.SandboxError as e:
        print(e, flush=True)
    os._exit(0)
os.waitpid(pid, 0)
"""
        result = self.as_nobody(["-c", script, code, tmp], cwd="/")
        self.assertEqual(
            result.stdout.splitlines(),
            [
                "clone into a user and a pid namespace: No space left on device",
                "the run's worker is not the first process of a pid namespace of its own",
            ],
            result.stderr,
        )

    def test_a_normal_users_run_sees_only_its_folder_and_the_system_read_only(self):
        tmp, code = self.nobodys_copy()
        folder = os.path.join(tmp, "run")
        os.mkdir(folder, 0o700)
        os.chown(folder, NOBODY, NOBODY)
        with open(os.path.join(folder, "main.py"), "w") as f:
            f.write("print('hi')\n")
        os.chown(os.path.join(folder, "main.py"), NOBODY, NOBODY)
        script = os.path.join(tmp, "inside.py")
        with open(script, "w") as f:
            f.write(INSIDE)
        listener = __import__("socket").create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)
        port = listener.getsockname()[1]
        result = self.as_nobody([script, code, folder, tmp, str(port)], cwd="/")
        self.assertEqual(result.returncode, 0, result.stderr)
        seen = json.loads(result.stdout.splitlines()[-1])
        self.assertNotIn("probe", seen)
        self.assertEqual(seen["uid"], 1000)  # nobody's uid, mapped: never root inside, never the server's
        self.assertEqual(seen["cwd"], "/work")
        self.assertEqual(seen["listing"], ["main.py"])
        self.assertEqual(seen["pids"], [2])  # its own: the init is not dumpable, and /proc hides it (hidepid)
        self.assertFalse(seen["outside"])
        self.assertEqual(seen["connect"], "ConnectionRefusedError")
        self.assertEqual(seen["usr"], "OSError")
        self.assertEqual([seen["work"], seen["tmp"]], ["done", "done"])
        self.assertEqual(seen["memory"], "MemoryError")
        self.assertEqual(seen["disk"], "OSError")
        system = {"bin", "dev", "etc", "lib", "lib32", "lib64", "libx32", "proc", "sbin", "tmp", "usr", "work"}
        self.assertLessEqual(set(seen["root"]), system)


    def nobodys_server(self, tmp, settings):
        """A fork server run by nobody with settings, and its hello."""
        argv = [os.path.join(WORKER_DIR, "dwop_worker.py"), "--fork-server", json.dumps(settings)]
        server = subprocess.Popen(AS_NOBODY + argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd="/tmp")
        self.addCleanup(server.wait, 30)
        self.addCleanup(server.stdin.close)
        return server, json.loads(server.stdout.readline())

    def ask(self, server, tmp, run_id, body):
        """Asks nobody's server for an inline run of body, in a folder of nobody's below tmp: its folder."""
        folder = os.path.join(tmp, run_id)
        os.mkdir(folder, 0o700)
        os.chown(folder, NOBODY, NOBODY)
        env = {
            "PATH": "/usr/bin:/bin",
            "DWOP_CODE": base64.b64encode(body.encode()).decode(),
            "DWOP_INPUTS": "[]",
            "DWOP_OUTPUT_URL": "http://127.0.0.1:1/unused",
            "DWOP_LOG_URL": "http://127.0.0.1:1/unused",
            "DWOP_INLINE_RESULT_BYTES": "65536",
            "DWOP_RESULT_FILE": os.path.join(folder, "result.json"),
            "DWOP_RETRY_DELAYS": "0",  # a failed run's log goes to its (unused) URL: tried once more, at once
        }
        env_file = os.path.join(folder, ".dwop-env")
        with open(os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as f:
            json.dump(env, f)
        os.chown(env_file, NOBODY, NOBODY)
        server.stdin.write(json.dumps({"id": run_id, "cwd": folder, "inline": True}).encode() + b"\n")
        server.stdin.flush()
        return folder

    @staticmethod
    def output(folder):
        """What a run's body printed (the executor's share of its folder), or None when it left nothing."""
        try:
            with open(os.path.join(folder, ".dwop-output-and-log"), "rb") as f:
                sizes, _, rest = f.read().partition(b"\n")
        except FileNotFoundError:
            return None
        return rest[: int(sizes.split()[0])]

    def test_a_normal_users_runs_bind_one_read_only_template_of_their_root(self):
        # A normal user's zygote builds the system's part of the runs' root once, in a user and a mount
        # namespace of its own (dwop_sandbox.build_template); each run's body binds it whole as its root.
        tmp, _ = self.nobodys_copy()
        home = os.path.join(tmp, "home")
        os.mkdir(home, 0o700)
        os.chown(home, NOBODY, NOBODY)
        settings = {"sandbox": "required", "rootTemplate": os.path.join(home, ".root-template")}
        server, _ = self.nobodys_server(tmp, settings)
        body = """
import json
tried = {}
for path in ("/etc/new", "/new", "/usr/new"):
    try:
        open(path, "a").close()
        tried[path] = "written"
    except OSError as e:
        tried[path] = e.errno
root = [line.split(" - ")[1].split() for line in open("/proc/self/mountinfo") if line.split()[4] == "/"]
print(json.dumps({"user": open("/etc/passwd").read().splitlines()[-1], "tried": tried, "root": root[0]}))
"""
        folder = self.ask(server, tmp, "t", body)
        events = [json.loads(server.stdout.readline()) for _ in range(2)]
        self.assertEqual(events[1], {"id": "t", "exit": 0}, events)
        seen = json.loads(self.output(folder))
        self.assertEqual(seen["user"], "dwop:x:1000:1000:dwop task:/work:/bin/sh")
        self.assertEqual(set(seen["tried"].values()), {errno.EROFS}, seen["tried"])
        self.assertEqual(seen["root"][0], "tmpfs")
        self.assertTrue(seen["root"][2].startswith("ro,"), seen["root"])  # the template's, read-only whole
        self.assertEqual(os.listdir(os.path.join(home, ".root-template")), [])  # empty on the machine

    def test_a_normal_users_body_cannot_see_or_read_its_worker_and_its_signal_ends_only_its_own_run(self):
        # The worker is the first process of the run's pid namespace and, a normal user's, in the run's user
        # namespace, where the body has the same uid: the worker is not dumpable (its memory is the
        # machine's user namespace's) and holds capabilities the body has not (either alone makes the kernel
        # refuse the body), so /proc hides it and its files are not the body's to read. A stop
        # signal the body sends it while it runs comes back to the body (the worker passes SIGTERM on): it
        # ends the body's own run, as the body's own kill would, and no other.
        tmp, _ = self.nobodys_copy()
        server, _ = self.nobodys_server(tmp, {"sandbox": "required"})
        look = """
import json, os
def attempt(path):
    try:
        open(path, "rb").read()
        return "read"
    except OSError as e:
        return type(e).__name__
print(json.dumps({"ppid": os.getppid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
                  "cmdline": attempt("/proc/1/cmdline"), "environ": attempt("/proc/1/environ"),
                  "mem": attempt("/proc/1/mem")}))
"""
        folder = self.ask(server, tmp, "look", look)
        events = [json.loads(server.stdout.readline()) for _ in range(2)]
        self.assertEqual(events[1], {"id": "look", "exit": 0}, events)
        seen = json.loads(self.output(folder))
        self.assertEqual(seen, {"ppid": 1, "pids": [2], "cmdline": "FileNotFoundError",
                                "environ": "FileNotFoundError", "mem": "FileNotFoundError"})  # fmt: skip
        beside = self.ask(server, tmp, "beside", "import time\ntime.sleep(1.5)\nprint('still here')\n")
        self.ask(server, tmp, "stopper", "import os, signal, time\nos.kill(1, signal.SIGTERM)\ntime.sleep(10)\n")
        events = [json.loads(server.stdout.readline()) for _ in range(4)]
        ends = [e for e in events if "exit" in e or "signal" in e]
        self.assertCountEqual(ends, [{"id": "stopper", "exit": 143}, {"id": "beside", "exit": 0}], events)
        self.assertEqual(self.output(beside), b"still here\n")
        with open(os.path.join(tmp, "stopper", "result.json")) as f:
            self.assertEqual(json.load(f)["message"], "killed by signal 15")

    @unittest.skipUnless(shutil.which("slirp4netns"), "slirp4netns is not installed")
    def test_a_normal_users_runs_reach_the_internet_setting(self):
        # The fork server's probe attaches slirp4netns to a run's namespaces as a worker would.
        settings = '{"sandbox": "required", "network": "internet"}'
        argv = [os.path.join(WORKER_DIR, "dwop_worker.py"), "--fork-server", settings]
        result = self.as_nobody(argv, input="", cwd="/tmp")
        hello = json.loads(result.stdout.splitlines()[0])
        self.assertEqual((hello["sandbox"], hello["network"]), ("namespaces", "internet"), hello)


if __name__ == "__main__":
    unittest.main()
