"""Tests of dwop_worker.py, run as a real process against a small HTTP object store (stdlib only).

Run with: python -m unittest discover -s worker/tests -v
"""

import base64
import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import unittest
import zipfile
from unittest import mock

# A body that says where it is, then waits to be killed.
SLEEPER = "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(60)\n"

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(WORKER_DIR, "dwop_worker.py")
sys.path.insert(0, WORKER_DIR)

import dwop_http  # noqa: E402

FAST_RETRIES = ",".join(["0.01"] * len(dwop_http.RETRY_DELAYS))


class ObjectStore:
    """A threaded HTTP server that serves GET and PUT of files under a folder, with injectable faults."""

    def __init__(self, root):
        self.root = root
        self.faults = {}  # (method, path) -> list of statuses answered before the real one
        self.requests = []  # (method, path)
        self.chunked = set()  # paths whose GET answers with Transfer-Encoding: chunked
        self.redirects = {}  # path -> URL a GET is redirected to
        store = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def fault(self):
                store.requests.append((self.command, self.path))
                pending = store.faults.get((self.command, self.path))
                if not pending:
                    return False
                self.reply(pending.pop(0), b"injected fault")
                return True

            def reply(self, status, body):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.fault():
                    return
                if self.path in store.redirects:
                    self.send_response(307)
                    self.send_header("Location", store.redirects[self.path])
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                path = store.file(self.path)
                if not os.path.isfile(path):
                    self.reply(404, b"not found")
                    return
                if self.path in store.chunked:
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    with open(path, "rb") as f:
                        while chunk := f.read(7):
                            self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(chunk), chunk))
                    self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(os.path.getsize(path)))
                self.end_headers()
                with open(path, "rb") as f:
                    while chunk := f.read(65536):
                        self.wfile.write(chunk)

            def do_PUT(self):
                remaining = int(self.headers.get("Content-Length", "0"))
                if self.fault():
                    return
                path = store.file(self.path)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path + ".part", "wb") as f:
                    while remaining:
                        chunk = self.rfile.read(min(remaining, 65536))
                        if not chunk:
                            break
                        f.write(chunk)
                        remaining -= len(chunk)
                os.replace(path + ".part", path)
                self.reply(200, b"{}")

        class Server(http.server.ThreadingHTTPServer):
            # socketserver's default backlog is 5: the SYNs of a worker's 16 requests at once beyond it
            # were dropped, and each such connect waited a second for its SYN to be sent again.
            request_queue_size = 64

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def file(self, url_path):
        return os.path.join(self.root, url_path.lstrip("/").split("?")[0])

    def url(self, path):
        return "http://127.0.0.1:%d/%s" % (self.server.server_address[1], path)

    def put(self, path, data):
        full = self.file(path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)

    def read(self, path):
        full = self.file(path)
        if not os.path.exists(full):
            return None
        with open(full, "rb") as f:
            return f.read()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Run:
    def __init__(self, process, work, store, result_file):
        self.code = process.returncode
        self.stdout = process.stdout
        self.stderr = process.stderr
        self.work = work
        self.output = store.read("out/output.txt")
        self.log = store.read("out/attempt-1.log")
        self.result = None
        if os.path.exists(result_file):
            with open(result_file) as f:
                self.result = f.read()

    def failure(self):
        return json.loads(self.result)


def build_wheel(folder, name="dwoptiny", version="0.1"):
    """A minimal pure-Python wheel, so requirements install without a package index."""
    dist = "%s-%s.dist-info" % (name, version)
    files = {
        "%s/__init__.py" % name: "GREETING = 'hello from the wheel'\n",
        "%s/METADATA" % dist: "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version),
        "%s/WHEEL" % dist: "Wheel-Version: 1.0\nGenerator: dwop-test\nRoot-Is-Purelib: true\n"
        "Tag: py3-none-any\n",
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(text.encode())))
    record.append("%s/RECORD,," % dist)
    files["%s/RECORD" % dist] = "\n".join(record) + "\n"
    path = os.path.join(folder, "%s-%s-py3-none-any.whl" % (name, version))
    with zipfile.ZipFile(path, "w") as whl:
        for name_in_zip, text in files.items():
            whl.writestr(name_in_zip, text)
    return path


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


class WorkerTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory(prefix="dwop-worker-test-")
        self.addCleanup(self.tmp.cleanup)
        self.store = ObjectStore(os.path.join(self.tmp.name, "store"))
        self.addCleanup(self.store.close)
        self.work = os.path.join(self.tmp.name, "work")
        os.makedirs(self.work)
        self.result_file = os.path.join(self.tmp.name, "result.json")

    def env(self, inputs=(), requirements=False, extra=None):
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "DWOP_CODE_URL": self.store.url("code/main.py"),
            "DWOP_INPUTS": json.dumps([{"param": p, "url": self.store.url("in/" + p)} for p in inputs]),
            "DWOP_OUTPUT_URL": self.store.url("out/output.txt"),
            "DWOP_LOG_URL": self.store.url("out/attempt-1.log"),
            "DWOP_RESULT_FILE": self.result_file,
            # The default schedule waits ~10 s in all (test_the_default_retry_schedule_rides_out_10_s):
            # the same number of tries, without the waits.
            "DWOP_RETRY_DELAYS": FAST_RETRIES,
        }
        if requirements:
            env["DWOP_REQUIREMENTS_URL"] = self.store.url("code/requirements.txt")
        env.update(extra or {})
        return env

    def start(self, body, **kwargs):
        self.store.put("code/main.py", textwrap.dedent(body))
        return subprocess.Popen(
            [sys.executable, WORKER],
            cwd=self.work,
            env=self.env(**kwargs),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def run_worker(self, body, **kwargs):
        process = self.start(body, **kwargs)
        stdout, stderr = process.communicate(timeout=120)
        process.stdout, process.stderr = stdout, stderr
        return Run(process, self.work, self.store, self.result_file)

    def assertSucceeded(self, run):
        self.assertEqual(run.code, 0, "worker failed: %r %r" % (run.stderr, run.result))
        self.assertIsNone(run.result)

    # --- the happy path ---

    def test_runs_the_body_and_uploads_stdout_and_log(self):
        run = self.run_worker('print("hello")\nprint(__name__)\n')
        self.assertSucceeded(run)
        self.assertEqual(run.output, b"hello\n__main__\n")
        self.assertEqual(run.log, b"hello\n__main__\n")
        self.assertEqual(run.stdout, b"hello\n__main__\n")

    def test_writes_each_input_to_a_file_named_by_its_parameter(self):
        self.store.put("in/raw", "a,b,c")
        self.store.put("in/other", "x y")
        run = self.run_worker(
            """
            print(open("raw").read().upper())
            print(open("other").read())
            """,
            inputs=("raw", "other"),
        )
        self.assertSucceeded(run)
        self.assertEqual(run.output, b"A,B,C\nx y\n")
        self.assertEqual(sorted(os.listdir(self.work)), ["main.py", "other", "raw"])

    def test_code_and_inputs_given_inline_are_saved_without_a_request(self):
        self.store.put("in/fetched", "by url")
        code = b"print(open('given').read(), open('fetched').read(), open('empty').read() == '')\n"
        inputs = [
            {"param": "given", "data": base64.b64encode("inline \x00\xff".encode()).decode()},  # a NUL too
            {"param": "fetched", "url": self.store.url("in/fetched")},
            {"param": "empty", "data": ""},
        ]
        run = self.run_worker(
            "raise SystemExit('the code was fetched')\n",
            extra={
                "DWOP_CODE": base64.b64encode(code).decode(),
                "DWOP_CODE_URL": "",  # absent in practice: with DWOP_CODE it is never read
                "DWOP_INPUTS": json.dumps(inputs),
            },
        )
        self.assertSucceeded(run)
        self.assertEqual(run.output, "inline \x00\xff by url True\n".encode())
        fetched = [path for method, path in self.store.requests if method == "GET"]
        self.assertEqual(fetched, ["/in/fetched"])
        self.assertEqual(read_file(os.path.join(self.work, "main.py")), code)

    def test_inline_code_is_checked_as_downloaded_code_is(self):
        bad = [
            ({"DWOP_CODE": "not base64!"}, "worker_error", "DWOP_CODE is not base64"),
            ({"DWOP_INPUTS": '[{"param": "x", "data": "eA="}]'}, "worker_error", "input x is not base64"),
            ({"DWOP_INPUTS": '[{"param": "x", "data": "eA==", "url": "u"}]'}, "worker_error", "a url or data"),
            ({"DWOP_INPUTS": '[{"param": "x"}]'}, "worker_error", "a url or data"),
            (
                {"DWOP_CODE": base64.b64encode(b"print(1)\n").decode(), "DWOP_CODE_RANGE": "0,9"},
                "download_failed",
                "is not a task's code",
            ),
        ]
        for extra, kind, message in bad:
            with self.subTest(extra=extra):
                run = self.run_worker("print('ran')\n", extra=extra)
                self.assertEqual(run.code, 70)
                self.assertEqual(run.failure()["type"], kind)
                self.assertTrue(run.failure()["nonRetryable"])
                self.assertIn(message, run.failure()["message"])
                self.assertIsNone(run.output)

    def test_a_small_result_is_left_to_the_executor_and_a_large_one_uploaded(self):
        run = self.run_worker("print('small')\n", extra={"DWOP_INLINE_RESULT_BYTES": "6"})
        self.assertSucceeded(run)
        self.assertEqual([m for m, _ in self.store.requests if m == "PUT"], [])
        self.assertIsNone(run.output)
        left = os.path.join(self.work, ".dwop-output-and-log")
        self.assertEqual(read_file(left), b"6 6\nsmall\nsmall\n")  # the sizes, the output, the log
        self.assertEqual(os.stat(left).st_mode & 0o777, 0o600)

        os.unlink(left)
        run = self.run_worker("print('larger')\n", extra={"DWOP_INLINE_RESULT_BYTES": "6"})
        self.assertSucceeded(run)
        self.assertEqual(run.output, b"larger\n")
        self.assertFalse(os.path.exists(left))

        run = self.run_worker("print('x')\n", extra={"DWOP_INLINE_RESULT_BYTES": "lots"})
        self.assertEqual(run.failure()["type"], "worker_error")
        self.assertIn("DWOP_INLINE_RESULT_BYTES", run.failure()["message"])

    def test_a_failed_run_uploads_its_log_whatever_its_size(self):
        run = self.run_worker("raise SystemExit(3)\n", extra={"DWOP_INLINE_RESULT_BYTES": "65536"})
        self.assertEqual(run.code, 3)
        self.assertIn(("PUT", "/out/attempt-1.log"), self.store.requests)
        self.assertFalse(os.path.exists(os.path.join(self.work, ".dwop-output-and-log")))

    def test_fetches_more_inputs_than_go_in_one_batch(self):
        params = ["p%02d" % i for i in range(40)]
        for i, param in enumerate(params):
            self.store.put("in/" + param, str(i))
        run = self.run_worker("print(sum(int(open('p%02d' % i).read()) for i in range(40)))\n", inputs=params)
        self.assertSucceeded(run)
        self.assertEqual(run.output, b"780\n")

    def test_body_sees_a_plain_script_environment(self):
        run = self.run_worker(
            """
            import os, pickle, sys
            class Point:
                pass
            print(sys.argv, __file__, repr(sys.stdin.read()))
            print(sorted(k for k in os.environ if k.startswith("DWOP_")))
            print(sys.path[0] == os.getcwd(), sys.modules["__main__"].Point is Point)
            print(type(pickle.loads(pickle.dumps(Point()))).__name__)
            """
        )
        self.assertSucceeded(run)
        self.assertEqual(run.output, b"['main.py'] main.py ''\n[]\nTrue True\nPoint\n")

    def test_non_daemon_threads_and_atexit_run_before_the_output_is_taken(self):
        run = self.run_worker(
            """
            import atexit, threading, time
            atexit.register(print, "at exit")
            threading.Thread(target=lambda: (time.sleep(0.2), print("thread"))).start()
            print("main")
            """
        )
        self.assertSucceeded(run)
        self.assertEqual(run.output, b"main\nthread\nat exit\n")

    def test_stderr_goes_to_the_log_and_the_workers_stderr_but_not_the_output(self):
        run = self.run_worker(
            """
            import sys, time
            # Two pipes keep no order between them: the log has the order the worker reads them in,
            # so the writes are spaced out.
            print("out 1", flush=True)
            time.sleep(0.1)
            print("err 1", file=sys.stderr, flush=True)
            time.sleep(0.1)
            print("out 2", flush=True)
            """
        )
        self.assertSucceeded(run)
        self.assertEqual(run.output, b"out 1\nout 2\n")
        self.assertEqual(run.log, b"out 1\nerr 1\nout 2\n")
        self.assertEqual(run.stderr, b"err 1\n")
        self.assertEqual(run.stdout, b"out 1\nout 2\n")

    def test_streams_a_large_non_ascii_output_byte_for_byte(self):
        line = "héllo wörld ✓ 日本語 \U0001f600\n".encode()
        count = 5 * 1024 * 1024 // len(line) + 1
        body = """
            import sys
            line = "héllo wörld ✓ 日本語 \\U0001f600\\n".encode()
            block = line * 1000
            for _ in range(%d):
                sys.stdout.buffer.write(block)
            sys.stdout.buffer.write(line * %d)
        """ % (count // 1000, count % 1000)
        self.store.put("code/main.py", textwrap.dedent(body))
        # The worker runs under a wrapper so its peak memory can be read: streaming keeps it flat.
        measure = (
            "import resource, subprocess, sys\n"
            "subprocess.run([sys.executable, %r], stdout=subprocess.DEVNULL, check=False)\n"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n" % WORKER
        )

        def peak_kib():
            argv = [sys.executable, "-c", measure]
            out = subprocess.run(argv, cwd=self.work, env=self.env(), capture_output=True, check=True)
            return int(out.stdout)

        big = peak_kib()
        output = self.store.read("out/output.txt")
        self.assertGreater(len(output), 5 * 1024 * 1024)
        self.assertEqual(hashlib.sha256(output).hexdigest(), hashlib.sha256(line * count).hexdigest())
        os.unlink(os.path.join(self.work, "main.py"))
        self.store.put("code/main.py", "print('small')\n")
        small = peak_kib()
        self.assertLess(big - small, 2048, "peak RSS grew by %d KiB for a 5 MB output" % (big - small))

    # --- requirements ---

    def fake_pip(self):
        """A `pip` that shadows the real one through PYTHONPATH and leaves a marker when it runs."""
        folder = os.path.join(self.tmp.name, "fakepip")
        os.makedirs(os.path.join(folder, "pip"))
        marker = os.path.join(self.tmp.name, "pip-ran")
        with open(os.path.join(folder, "pip", "__init__.py"), "w"):
            pass
        with open(os.path.join(folder, "pip", "__main__.py"), "w") as f:
            f.write("open(%r, 'w').close()\nraise SystemExit(1)\n" % marker)
        return {"PYTHONPATH": folder}, marker

    def test_requirements_without_a_requirement_line_do_not_call_pip(self):
        env, marker = self.fake_pip()
        self.store.put("code/requirements.txt", "# nothing needed\n\n   \n")
        run = self.run_worker("print('ok')\n", requirements=True, extra=env)
        self.assertSucceeded(run)
        self.assertFalse(os.path.exists(marker))
        self.assertFalse(os.path.exists(os.path.join(self.work, ".dwop-deps")))
        run = self.run_worker("print('ok')\n", extra=env)
        self.assertSucceeded(run)
        self.assertFalse(os.path.exists(marker))

    def test_a_failed_install_is_a_non_retryable_requirements_failure(self):
        env, marker = self.fake_pip()
        self.store.put("code/requirements.txt", "# comment\nsomething==1.0\n")
        run = self.run_worker("print('never')\n", requirements=True, extra=env)
        self.assertTrue(os.path.exists(marker))
        self.assertEqual(run.code, 70)
        failure = run.failure()
        self.assertEqual(failure["type"], "requirements_failed")
        self.assertIs(failure["nonRetryable"], True)
        self.assertIsNone(run.output)

    def test_installs_requirements_from_a_local_wheel_folder(self):
        wheels = os.path.join(self.tmp.name, "wheels")
        os.makedirs(wheels)
        build_wheel(wheels)
        self.store.put("code/requirements.txt", "# test wheel\ndwoptiny==0.1\n")
        run = self.run_worker(
            """
            import subprocess, sys
            import dwoptiny
            print(dwoptiny.GREETING)
            subprocess.run([sys.executable, "-c", "import dwoptiny"], check=True)
            """,
            requirements=True,
            extra={"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": wheels, "PIP_NO_CACHE_DIR": "1"},
        )
        self.assertSucceeded(run)
        self.assertEqual(run.output, b"hello from the wheel\n")
        self.assertIn(b"Successfully installed dwoptiny-0.1", run.log)
        self.assertTrue(os.path.isdir(os.path.join(self.work, ".dwop-deps", "dwoptiny")))

    # --- failures ---

    def test_a_traceback_names_the_workflow_file_its_line_and_the_task(self):
        mark = '# dwop-source: {"file": "etl.workflow", "line": 7, "task": "transform"}\n'
        body = 'rows = ["a,b,c", "d,e"]\nfor n, row in enumerate(rows, 41):\n    if len(row.split(",")) != 3:\n'
        body += '        raise ValueError(f"bad row {n}: expected 3 columns, got {len(row.split(\',\'))}")\n'
        run = self.run_worker(mark + body)
        self.assertEqual(run.code, 1)
        self.assertEqual(run.failure()["message"], "ValueError: bad row 42: expected 3 columns, got 2")
        self.assertIn(b'File "etl.workflow", line 11, in transform\n    raise ValueError(', run.log)

    def test_a_multi_line_exception_message_is_one_line_of_error(self):
        run = self.run_worker('class Bad(Exception):\n    pass\nraise Bad("first\\nsecond")\n')
        self.assertEqual(run.failure()["message"], "Bad: first second")

    def test_stdout_and_stderr_are_merged_by_line_never_mid_line(self):
        body = "import sys\nfor i in range(200):\n"
        body += "    sys.stdout.write('out-%d ' % i); sys.stderr.write('err-%d\\n' % i); sys.stdout.write('end\\n')\n"
        run = self.run_worker(body)
        self.assertSucceeded(run)
        lines = run.log.decode().splitlines()
        self.assertEqual(sorted(lines), sorted(["out-%d end" % i for i in range(200)] + ["err-%d" % i for i in range(200)]))
        self.assertEqual(run.output.decode(), "".join("out-%d end\n" % i for i in range(200)))

    def test_a_failing_body_writes_the_failure_and_exits_with_its_code(self):
        self.store.put("out/output.txt", "previous good output")
        run = self.run_worker('print("partial")\nraise SystemExit(3)\n')
        self.assertEqual(run.code, 3)
        self.assertEqual(
            run.result, '{"type":"task_failed","message":"exit code 3","exitCode":3,"nonRetryable":false}\n'
        )
        self.assertEqual(run.output, b"previous good output")
        self.assertEqual(run.log, b"partial\n")

    def test_an_uncaught_exception_prints_the_users_traceback_and_exits_1(self):
        run = self.run_worker('print("before")\nx = 1 / 0\n')
        self.assertEqual(run.code, 1)
        self.assertEqual(run.failure()["message"], "ZeroDivisionError: division by zero")
        self.assertEqual(run.failure()["type"], "task_failed")
        self.assertIn(b'File "main.py", line 2, in <module>', run.log)
        self.assertTrue(run.log.rstrip().endswith(b"ZeroDivisionError: division by zero"), run.log)
        self.assertNotIn(b"dwop_worker", run.log)
        self.assertIn(b"ZeroDivisionError", run.stderr)
        self.assertTrue(run.log.startswith(b"before\n"))

    def test_a_syntax_error_is_reported_like_python_does(self):
        run = self.run_worker("def broken(:\n")
        self.assertEqual(run.code, 1)
        self.assertIn(b"SyntaxError", run.log)
        self.assertNotIn(b"dwop_worker", run.log)

    def test_system_exit_codes_are_honoured_as_python_does(self):
        cases = [
            ("import sys; sys.exit()", 0, b""),
            ("raise SystemExit(None)", 0, b""),
            ("raise SystemExit(0)", 0, b""),
            ("raise SystemExit(5)", 5, b""),
            ("raise SystemExit(True)", 1, b""),
            ("import sys; sys.exit('goodbye')", 1, b"goodbye\n"),
            ("raise SystemExit(256)", 0, b""),
        ]
        for body, code, stderr in cases:
            with self.subTest(body=body):
                if os.path.exists(self.result_file):
                    os.unlink(self.result_file)
                run = self.run_worker(body + "\n")
                self.assertEqual(run.code, code, run.stderr)
                self.assertEqual(run.stderr, stderr)
                self.assertEqual(run.result is None, code == 0)

    def test_a_body_killed_by_a_signal_reports_the_signal(self):
        run = self.run_worker("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
        self.assertEqual(run.code, 137)
        self.assertEqual(
            run.failure(),
            {"type": "task_failed", "message": "killed by signal 9", "exitCode": 137, "nonRetryable": False},
        )

    def test_sigterm_to_the_worker_ends_the_body_too(self):
        pid_file = os.path.join(self.work, "pid")
        process = self.start(SLEEPER)
        body_pid = wait_for_pid(pid_file)
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=10)
        self.assertEqual(process.returncode, 143)
        self.assertFalse(alive(body_pid))
        with open(self.result_file) as f:
            self.assertEqual(json.loads(f.read())["message"], "killed by signal 15")

    @unittest.skipUnless(sys.platform.startswith("linux"), "prctl is Linux-only")
    def test_die_with_parent_kills_worker_and_body_when_the_parent_dies(self):
        self.store.put("code/main.py", SLEEPER)
        env = self.env(extra={"DWOP_DIE_WITH_PARENT": "1"})
        parent = subprocess.Popen(
            [sys.executable, "-c", "import subprocess, sys; subprocess.run([sys.executable, %r])" % WORKER],
            cwd=self.work,
            env=env,
        )
        body_pid = wait_for_pid(os.path.join(self.work, "pid"))
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 5
        while alive(body_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(alive(body_pid), "the body outlived the worker's parent")

    def test_a_missing_object_is_a_download_failure(self):
        run = self.run_worker("print('x')\n", inputs=("raw",))
        self.assertEqual(run.code, 70)
        failure = run.failure()
        self.assertEqual(failure["type"], "download_failed")
        self.assertIn("404", failure["message"])
        self.assertIn("input raw", failure["message"])
        self.assertIs(failure["exitCode"], None)
        self.assertIn(b"download_failed", run.log)
        self.assertEqual(self.store.requests.count(("GET", "/in/raw")), 1, "a 404 must not be retried")

    def test_transient_errors_are_retried(self):
        self.store.faults[("GET", "/code/main.py")] = [503, 502]
        self.store.faults[("PUT", "/out/output.txt")] = [500]
        run = self.run_worker("print('eventually')\n")
        self.assertSucceeded(run)
        self.assertEqual(run.output, b"eventually\n")
        self.assertEqual(self.store.requests.count(("GET", "/code/main.py")), 3)
        self.assertEqual(self.store.requests.count(("PUT", "/out/output.txt")), 2)

    def test_a_storage_outage_of_several_seconds_is_ridden_out(self):
        # Found by the chaos soak: a storage restart of a few seconds failed the attempt.
        self.store.faults[("GET", "/code/main.py")] = [503, 503, 503, 503]
        run = self.run_worker("print('after the outage')\n")
        self.assertSucceeded(run)
        self.assertEqual(self.store.requests.count(("GET", "/code/main.py")), 5)

    def test_follows_redirects_and_reads_chunked_bodies(self):
        self.store.put("in/real", "chunked input, longer than one chunk ✓")
        self.store.chunked.add("/in/real")
        self.store.redirects["/in/raw"] = "/in/real"
        run = self.run_worker("print(open('raw', encoding='utf-8').read())\n", inputs=("raw",))
        self.assertSucceeded(run)
        self.assertEqual(run.output, "chunked input, longer than one chunk ✓\n".encode())

    def test_a_refused_connection_is_retried_then_reported(self):
        run = self.run_worker("print('x')\n", extra={"DWOP_CODE_URL": "http://127.0.0.1:1/code/main.py"})
        self.assertEqual(run.code, 70)
        self.assertEqual(run.failure()["type"], "download_failed")
        self.assertIn("refused", run.failure()["message"].lower())

    def test_a_storage_that_ignores_the_code_range_fails_the_run_before_the_body(self):
        # This store answers every GET with the whole object (200): the worker must not run it as its code.
        run = self.run_worker("print('ran')\n", extra={"DWOP_CODE_RANGE": "0,6"})
        self.assertEqual(run.code, 70)
        self.assertEqual(run.failure()["type"], "download_failed")
        self.assertEqual(
            run.failure()["message"],
            "downloading the task's code (bytes 0+6 of the code bundle): asked for bytes 0-5 but the storage answered 200",
        )
        self.assertIsNone(run.output)

    def test_an_output_storage_refuses_is_the_tasks_own_failure_with_storages_reason(self):
        self.store.faults[("PUT", "/out/output.txt")] = [413]
        run = self.run_worker("print('done')\n")
        self.assertEqual(run.code, 70)
        self.assertEqual(run.failure()["type"], "output_rejected")
        self.assertEqual(run.failure()["message"], "storage refused the output: HTTP 413: injected fault")
        self.assertEqual(self.store.requests.count(("PUT", "/out/output.txt")), 1, "a refusal is not retried")

    def test_a_rejected_log_upload_does_not_fail_a_successful_task(self):
        self.store.faults[("PUT", "/out/attempt-1.log")] = [403]
        run = self.run_worker("print('done')\n")
        self.assertSucceeded(run)
        self.assertEqual(run.output, b"done\n")
        self.assertIn(b"uploading the log", run.stderr)

    def test_bad_inputs_json_is_a_worker_error(self):
        run = self.run_worker("print('x')\n", extra={"DWOP_INPUTS": '[{"param": "../escape", "url": "x"}]'})
        self.assertEqual(run.code, 70)
        self.assertEqual(run.failure()["type"], "worker_error")
        # Cut short: the C scanner's own errors (worker started as a Job imports no json module) were a
        # SystemError, which failed the run as a retryable worker error about the scanner.
        for cut in ("[{", '[{"param": "x", "url'):
            with self.subTest(inputs=cut):
                run = self.run_worker("print('x')\n", extra={"DWOP_INPUTS": cut})
                self.assertEqual(run.failure()["type"], "worker_error")
                self.assertTrue(run.failure()["nonRetryable"])
                self.assertIn("DWOP_INPUTS is not a JSON array", run.failure()["message"])

    def test_a_bad_retry_schedule_is_a_worker_error_that_names_it(self):
        for schedule in ("soon", "1,-1", "0.1,nan", ",".join(["1"] * 21)):
            with self.subTest(schedule=schedule):
                run = self.run_worker("print('x')\n", extra={"DWOP_RETRY_DELAYS": schedule})
                self.assertEqual(run.code, 70)
                self.assertEqual(run.failure()["type"], "worker_error")
                self.assertTrue(run.failure()["nonRetryable"])
                self.assertIn("DWOP_RETRY_DELAYS is not", run.failure()["message"])
                fetched = [path for method, path in self.store.requests if method == "GET"]
                self.assertEqual(fetched, [], "nothing is fetched with a bad schedule")


class UnnamedFileTest(unittest.TestCase):
    """The output's and the log's file (dwop_unnamed): in memory while small, then on disk, never named."""

    def setUp(self):
        tmp = tempfile.TemporaryDirectory(prefix="dwop-unnamed-")
        self.addCleanup(tmp.cleanup)
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(tmp.name)
        self.folder = os.path.realpath(tmp.name)

    def test_a_small_file_stays_in_memory_and_a_large_one_moves_to_the_folder_with_every_byte(self):
        from dwop_unnamed import IN_MEMORY_BYTES, UnnamedFile

        where = lambda fd: os.readlink("/proc/self/fd/%d" % fd)  # noqa: E731
        f = UnnamedFile("dwop-test")
        self.addCleanup(os.close, f.fd)
        f.write(b"a" * 1000)
        self.assertTrue(where(f.fd).startswith("/memfd:dwop-test"), where(f.fd))
        memory = f.fd
        f.write(b"b" * IN_MEMORY_BYTES)
        self.assertTrue(where(f.fd).startswith(self.folder + "/"), where(f.fd))
        self.assertEqual(f.size, 1000 + IN_MEMORY_BYTES)
        self.assertEqual(os.fstat(f.fd).st_size, f.size)
        self.assertEqual(os.pread(f.fd, f.size + 1, 0), b"a" * 1000 + b"b" * IN_MEMORY_BYTES)
        # What was in memory stays readable there, for a reader that took the size before the move.
        self.assertEqual(os.pread(memory, 2000, 0), b"a" * 1000)
        self.assertEqual(os.listdir("."), [])

    def test_a_large_one_moves_to_the_spill_folder_when_there_is_one(self):
        import dwop_unnamed
        from dwop_unnamed import IN_MEMORY_BYTES, UnnamedFile

        spill = tempfile.TemporaryDirectory(prefix="dwop-spill-")
        self.addCleanup(spill.cleanup)
        self.addCleanup(dwop_unnamed.spill_to, None)
        dwop_unnamed.spill_to(spill.name)
        f = UnnamedFile("dwop-test")
        self.addCleanup(os.close, f.fd)
        f.write(b"c" * (IN_MEMORY_BYTES + 1))
        self.assertTrue(os.readlink("/proc/self/fd/%d" % f.fd).startswith(os.path.realpath(spill.name) + "/"))
        self.assertEqual(os.pread(f.fd, f.size + 1, 0), b"c" * (IN_MEMORY_BYTES + 1))
        self.assertEqual((os.listdir("."), os.listdir(spill.name)), ([], []))


class RetryScheduleTest(unittest.TestCase):
    def test_the_default_schedule_rides_out_about_10_s_of_storage_outage(self):
        self.assertEqual(dwop_http.parse_retry_delays(None), dwop_http.RETRY_DELAYS)
        self.assertEqual(dwop_http.parse_retry_delays(""), dwop_http.RETRY_DELAYS)
        self.assertEqual(len(dwop_http.RETRY_DELAYS), 5)
        self.assertGreaterEqual(sum(dwop_http.RETRY_DELAYS), 10)

    def test_a_set_schedule_is_read_as_seconds(self):
        self.assertEqual(dwop_http.parse_retry_delays("0.5, 2,10"), (0.5, 2.0, 10.0))

    def test_each_retry_waits_its_delay_and_a_final_failure_is_raised(self):
        slept, tries = [], []

        def attempt():
            tries.append(1)
            raise ConnectionRefusedError("refused")

        with mock.patch.object(dwop_http.time, "sleep", slept.append):
            with self.assertRaises(ConnectionRefusedError):
                dwop_http.with_retries(attempt, None, (0.2, 0.5, 1.5))
        self.assertEqual(slept, [0.2, 0.5, 1.5])
        self.assertEqual(len(tries), 4)

    def test_a_final_answer_is_not_retried(self):
        slept, tries = [], []

        def attempt():
            tries.append(1)
            raise dwop_http.HttpError(404, "missing")

        with mock.patch.object(dwop_http.time, "sleep", slept.append):
            with self.assertRaises(dwop_http.HttpError):
                dwop_http.with_retries(attempt, None, (0.2, 0.5))
        self.assertEqual((slept, len(tries)), ([], 1))


class SplitUrlTest(unittest.TestCase):
    def test_splits_absolute_urls(self):
        cases = {
            "http://127.0.0.1:8080/o/b/k?sig=1": ("http", "127.0.0.1", 8080, "/o/b/k?sig=1"),
            "https://x.supabase.co/o/b/k#frag": ("https", "x.supabase.co", 443, "/o/b/k"),
            "HTTP://[::1]:9000?q=1": ("http", "::1", 9000, "/?q=1"),
            "http://user@host": ("http", "host", 80, "/"),
        }
        for url, parts in cases.items():
            with self.subTest(url=url):
                self.assertEqual(dwop_http.split_url(url), parts)

    def test_rejects_what_is_not_an_http_url(self):
        for url in ("ftp://host/x", "/relative/path", "http:///no-host"):
            with self.subTest(url=url), self.assertRaises(ValueError):
                dwop_http.split_url(url)

    def test_percent_encodes_non_ascii_paths(self):
        self.assertEqual(dwop_http.request_target("/b/tâche ok?x=1"), b"/b/t%C3%A2che%20ok?x=1")


def wait_for_pid(path, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                text = f.read()
            if text:
                return int(text)
        except FileNotFoundError:
            pass
        time.sleep(0.02)
    raise AssertionError("the body never started")


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie still answers kill(0); it has finished running.
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # reaped between the two looks
        return False
    except IndexError:
        return True


if __name__ == "__main__":
    unittest.main()
