"""Tests of dwop_process's wait for a child (stdlib only).

Run with: python -m unittest discover -s worker/tests -v
"""

import os
import signal
import sys
import time
import unittest

WORKER_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, WORKER_DIR)

import dwop_process  # noqa: E402


class Collected:
    """A sink of wait_child that keeps what it is given."""

    def __init__(self):
        self.data = b""

    def write(self, data):
        self.data += data


def child_that(seconds, text):
    """A fork_child that prints text, sleeps, and exits 0."""

    def run():
        os.write(1, text)
        time.sleep(seconds)
        os._exit(0)

    return dwop_process.fork_child(run, (), None)


class LaterTest(unittest.TestCase):
    """wait_child's later: what only a long run needs (its log's shipping thread) is called once, when the
    child still runs at its time, and never for a child that ended before it."""

    def test_called_once_while_the_child_still_runs(self):
        calls = []
        out = Collected()
        started = time.monotonic()
        child = child_that(1.0, b"hello\n")
        code, _, _ = dwop_process.wait_child(
            child, [out], [], later=(started + 0.1, lambda: calls.append(time.monotonic()))
        )
        self.assertEqual(code, 0)
        self.assertEqual(out.data, b"hello\n")
        self.assertEqual(len(calls), 1)
        self.assertGreaterEqual(calls[0], started + 0.1)
        self.assertLess(calls[0], started + 1.0, "called at its time, not when the child ended")

    def test_not_called_for_a_child_that_ended_first(self):
        calls = []
        started = time.monotonic()
        child = child_that(0, b"")
        code, _, _ = dwop_process.wait_child(child, [], [], later=(started + 5, lambda: calls.append(1)))
        self.assertEqual(code, 0)
        self.assertEqual(calls, [])
        self.assertLess(time.monotonic() - started, 2, "the wait ended with the child, not at later's time")


class StartTest(unittest.TestCase):
    """wait_child's start lets the child go once SIGTERM is passed on to it: a stop signal sent the moment
    the child is let go (as a body may send its worker, the first process of its pid namespace) ends the
    child, not the waiting process."""

    def test_a_stop_signal_at_the_start_reaches_the_child(self):
        own = []
        previous = signal.signal(signal.SIGTERM, lambda signum, _frame: own.append(signum))
        ready_r, ready_w = os.pipe()

        def run():  # as a body at its gate: the fresh interpreter's signal handlers, waiting to go
            os.write(ready_w, b"r")
            time.sleep(5)
            os._exit(0)

        try:
            child = dwop_process.fork_child(run, (ready_r,), None)
            os.close(ready_w)
            self.assertEqual(os.read(ready_r, 1), b"r")
            os.close(ready_r)
            started = time.monotonic()
            code, killed_by, _ = dwop_process.wait_child(
                child, [], [], start=lambda: os.kill(os.getpid(), signal.SIGTERM)
            )
        finally:
            signal.signal(signal.SIGTERM, previous)
        self.assertEqual(own, [], "the signal reached the waiting process's own handler")
        self.assertEqual((code, killed_by), (128 + signal.SIGTERM, signal.SIGTERM))
        self.assertLess(time.monotonic() - started, 4, "the child was stopped, not waited out")


if __name__ == "__main__":
    unittest.main()
