"""H3 peer: 100,000 concurrent asyncio.sleep of 1-10 ms (the same sequence as the C++ programs)."""
import asyncio
import time

from report import check, parse, peak_rss_mib, report

MIN_US, MAX_US = 1000, 10000
MASK = (1 << 64) - 1


def durations(n):
    state = 42
    for _ in range(n):
        state = (state * 6364136223846793005 + 1442695040888963407) & MASK
        yield MIN_US + (state >> 33) % (MAX_US - MIN_US + 1)


async def sleeper(micros):
    await asyncio.sleep(micros / 1e6)
    return 1


async def sleep_all(n):
    tasks = [asyncio.create_task(sleeper(us)) for us in durations(n)]
    done = 0
    for t in tasks:
        done += await t
    return done


def main():
    args = parse(n=100_000)
    t0 = time.perf_counter()
    done = asyncio.run(sleep_all(args.n))
    t1 = time.perf_counter()
    check(done == args.n, "sleepers finished", done, args.n)
    check(t1 - t0 >= MAX_US / 1e6, "wall time >= longest sleep", t1 - t0, MAX_US / 1e6)
    report("wall_ms", (t1 - t0) * 1e3)
    report("peak_rss_mib", peak_rss_mib())


if __name__ == "__main__":
    main()
