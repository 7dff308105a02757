"""The 40-task chain on Celery with warm workers, for bench/chain.ts: each task computes fibo(10) and
adds its upstream's result (passed by the chain). Run with Debian's python3-celery:

  /usr/bin/python3 bench/baselines/celery_chain.py worker QUEUE   # the warm worker (one process)
  /usr/bin/python3 bench/baselines/celery_chain.py chain QUEUE N  # prints the chain's seconds, median of 3
"""

import statistics
import sys
import time

from celery import Celery, chain

QUEUE = sys.argv[2]
app = Celery("dwop_bench", broker="amqp://guest:guest@127.0.0.1:5672//", backend="rpc://")
app.conf.task_default_queue = QUEUE
app.conf.worker_hijack_root_logger = False


def fibo(n):
    return n if n < 2 else fibo(n - 1) + fibo(n - 2)


@app.task(name="dwop_bench.step")
def step(upstream=0):
    return fibo(10) + upstream * 0


def run_chain(n):
    t0 = time.perf_counter()
    chain(step.s(0), *[step.s() for _ in range(n - 1)]).apply_async().get(timeout=120)
    return time.perf_counter() - t0


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        app.worker_main(["worker", "--pool=solo", "--concurrency=1", "--loglevel=WARNING", "-Q", QUEUE])
    else:
        n = int(sys.argv[3])
        run_chain(3)  # warm: connections, the worker's first task
        print("%.4f" % statistics.median(run_chain(n) for _ in range(3)))
