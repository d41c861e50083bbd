"""H8 peer: multiprocessing.Pool: map of tiny items (chunksize 1 and default) in items/s,
apply_async round trip (median and p99 in us). Pool created and warmed up before timing."""
import multiprocessing
import time

from report import check, parse, report


def plus_one(x):
    return x + 1


def main():
    args = parse(variant="map_chunksize1", n=100_000, calls=2000)
    with multiprocessing.Pool() as pool:
        pool.map(plus_one, range(2 * multiprocessing.cpu_count()))
        if args.variant == "round_trip":
            micros = []
            total = 0
            for i in range(args.calls):
                t0 = time.perf_counter()
                total += pool.apply_async(plus_one, (i,)).get()
                micros.append((time.perf_counter() - t0) * 1e6)
            want = args.calls * (args.calls + 1) // 2
            check(total == want, "sum of results", total, want)
            micros.sort()
            report("rtt_median_us", micros[len(micros) // 2])
            report("rtt_p99_us", micros[min(len(micros) - 1, len(micros) * 99 // 100)])
            return
        inputs = list(range(args.n))
        t0 = time.perf_counter()
        if args.variant == "map_default":
            out = pool.map(plus_one, inputs)
        else:
            out = pool.map(plus_one, inputs, chunksize=1)
        t1 = time.perf_counter()
        ok = out == [x + 1 for x in inputs]
        check(ok, "results in input order", sum(out), args.n * (args.n + 1) // 2)
        report("items_per_s", args.n / (t1 - t0))


if __name__ == "__main__":
    main()
