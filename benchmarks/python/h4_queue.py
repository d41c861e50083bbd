"""H4 peer: asyncio.Queue(maxsize=1024) carrying ints from P producers to C consumers."""
import asyncio
import time

from report import check, parse, report


async def producer(q, first, count):
    for i in range(first, first + count):
        await q.put(i)
    return 0


async def consumer(q, count):
    total = 0
    for _ in range(count):
        total += await q.get()
    return total


async def transfer(n, producers, consumers):
    q = asyncio.Queue(maxsize=1024)
    tasks = [asyncio.create_task(consumer(q, n // consumers)) for _ in range(consumers)]
    tasks += [asyncio.create_task(producer(q, p * (n // producers), n // producers))
              for p in range(producers)]
    total = 0
    for t in tasks:
        total += await t
    return total


def main():
    args = parse(producers=1, consumers=1, n=1_000_000)
    k = args.producers * args.consumers
    n = args.n // k * k
    t0 = time.perf_counter()
    total = asyncio.run(transfer(n, args.producers, args.consumers))
    t1 = time.perf_counter()
    check(total == n * (n - 1) // 2, "sum of received ints", total, n * (n - 1) // 2)
    report("msgs_per_s", n / (t1 - t0))


if __name__ == "__main__":
    main()
