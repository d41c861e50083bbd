"""H9 peer: RQ (python3-rq) with 2 `rq worker` processes on a private redis-server.

Variants: tiny_jobs (enqueue N jobs, wait until all finished: jobs/s) and round_trip
(enqueue one job, poll its result every 0.5 ms as RQ users do: median and p99 in us).
Usage: h9_rq.py --variant tiny_jobs|round_trip [--n 10000] [--calls 200]"""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from redis import Redis
from rq import Queue

import h9_jobs
from report import check, parse, report


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    args = parse(variant="tiny_jobs", n=10000, calls=200)
    tmp = tempfile.mkdtemp(prefix="corio-h9-rq-")
    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                               "--dir", tmp, "--save", "", "--appendonly", "no"],
                              stdout=subprocess.DEVNULL)
    conn = Redis(port=port)
    for _ in range(1000):
        try:
            conn.ping()
            break
        except Exception:
            time.sleep(0.01)
    here = os.path.dirname(os.path.abspath(__file__))
    env = dict(os.environ, PYTHONPATH=here)
    workers = [subprocess.Popen(["/usr/bin/python3", "-m", "rq.cli", "worker", "--url",
                                 f"redis://127.0.0.1:{port}", "h9", "--quiet"],
                                env=env, cwd=here, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for _ in range(2)]
    try:
        q = Queue("h9", connection=conn)
        warm = [q.enqueue(h9_jobs.tiny, i) for i in range(20)]
        while not all(j.is_finished for j in warm):
            time.sleep(0.01)
        if args.variant == "round_trip":
            micros = []
            total = 0
            for i in range(args.calls):
                t0 = time.perf_counter_ns()
                job = q.enqueue(h9_jobs.tiny, i)
                while True:
                    status = job.get_status(refresh=True)
                    if status == "finished":
                        break
                    if status == "failed":
                        check(False, "job status", status, "finished")
                    time.sleep(0.0005)
                total += job.result
                micros.append((time.perf_counter_ns() - t0) / 1e3)
            check(total == args.calls * (args.calls + 1) // 2, "sum of results", total,
                  args.calls * (args.calls + 1) // 2)
            micros.sort()
            report("rtt_median_us", micros[len(micros) // 2])
            report("rtt_p99_us", micros[min(len(micros) - 1, len(micros) * 99 // 100)])
            return
        registry = q.finished_job_registry
        before = registry.count
        t0 = time.perf_counter_ns()
        jobs = [q.enqueue(h9_jobs.tiny, i, result_ttl=3600) for i in range(args.n)]
        while registry.count - before < args.n:
            time.sleep(0.005)
        t1 = time.perf_counter_ns()
        total = sum(j.result for j in jobs)
        check(total == args.n * (args.n + 1) // 2, "sum of results", total,
              args.n * (args.n + 1) // 2)
        report("jobs_per_s", args.n * 1e9 / (t1 - t0))
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            try:
                w.wait(timeout=10)
            except subprocess.TimeoutExpired:
                w.kill()
        server.terminate()
        server.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
