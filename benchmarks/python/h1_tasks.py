"""H1 peer: asyncio create_task + await, one at a time and spawn all then await all."""
import asyncio
import time

from report import check, parse, report


async def trivial(i):
    return i


async def one_at_a_time(n):
    total = 0
    for i in range(n):
        total += await asyncio.create_task(trivial(i))
    return total


async def spawn_all(n):
    tasks = [asyncio.create_task(trivial(i)) for i in range(n)]
    total = 0
    for t in tasks:
        total += await t
    return total


def main():
    args = parse(variant="one_at_a_time", n=1_000_000)
    body = spawn_all if args.variant == "spawn_all" else one_at_a_time
    t0 = time.perf_counter()
    total = asyncio.run(body(args.n))
    t1 = time.perf_counter()
    check(total == args.n * (args.n - 1) // 2, "sum of task results", total, args.n * (args.n - 1) // 2)
    report("tasks_per_s", args.n / (t1 - t0))


if __name__ == "__main__":
    main()
