"""H10, asyncio: create_subprocess_exec of /bin/true N times, `parallel` at a time
(spawn_wait); `cat` of a file read through a pipe (pipe_64MiB)."""
import asyncio
import time

from report import check, parse, report


async def spawn_one():
    p = await asyncio.create_subprocess_exec("/bin/true")
    return await p.wait()


async def spawn_all(n, parallel):
    ok = 0
    done = 0
    while done < n:
        batch = [spawn_one() for _ in range(min(parallel, n - done))]
        done += len(batch)
        ok += sum(1 for rc in await asyncio.gather(*batch) if rc == 0)
    return ok


async def read_cat(path):
    p = await asyncio.create_subprocess_exec("cat", path, stdout=asyncio.subprocess.PIPE)
    total = 0
    while True:
        chunk = await p.stdout.read(1 << 20)
        if not chunk:
            break
        total += len(chunk)
    rc = await p.wait()
    return total if rc == 0 else -1


def main():
    args = parse(variant="spawn_wait", n=2000, parallel=8, mib=64, file="")
    if args.variant == "spawn_wait":
        t0 = time.perf_counter()
        ok = asyncio.run(spawn_all(args.n, args.parallel))
        t1 = time.perf_counter()
        check(ok == args.n, "every child exited 0", ok, args.n)
        report("spawns_per_s", args.n / (t1 - t0))
    else:
        check(bool(args.file), "--file given", 0, 1)
        t0 = time.perf_counter()
        total = asyncio.run(read_cat(args.file))
        t1 = time.perf_counter()
        want = args.mib << 20
        check(total == want, "bytes read", total, want)
        report("mb_per_s", total / 1e6 / (t1 - t0))


if __name__ == "__main__":
    main()
