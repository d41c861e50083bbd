"""H7 peer: multiprocessing.pool.ThreadPool: tiny apply_async tasks; map speedup over serial."""
import os
import time
from multiprocessing.pool import ThreadPool

from report import check, parse, report

MASK = (1 << 64) - 1


def plus_one(x):
    return x + 1


def burn(x):
    # The same arithmetic as cpu_work.hpp, with fewer rounds (pure Python is ~100x slower).
    for _ in range(2_000):
        x = (x * 6364136223846793005 + 1442695040888963407) & MASK
        x ^= x >> 29
    return x


def main():
    args = parse(variant="tiny", n=100_000, items=200)
    with ThreadPool(len(os.sched_getaffinity(0))) as pool:
        if args.variant == "tiny":
            t0 = time.perf_counter()
            results = [pool.apply_async(plus_one, (i,)) for i in range(args.n)]
            total = sum(r.get() for r in results)
            t1 = time.perf_counter()
            want = args.n * (args.n + 1) // 2
            check(total == want, "sum of results", total, want)
            report("tasks_per_s", args.n / (t1 - t0))
            return
        inputs = list(range(args.items))
        t0 = time.perf_counter()
        serial = [burn(x) for x in inputs]
        t1 = time.perf_counter()
        parallel = pool.map(burn, inputs)
        t2 = time.perf_counter()
        check(parallel == serial, "map results equal serial results", parallel == serial, True)
        report("speedup", (t1 - t0) / (t2 - t1))


if __name__ == "__main__":
    main()
