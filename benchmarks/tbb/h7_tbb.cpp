// H7 peer: oneTBB. Variant tiny: one tbb::task_group running 1,000,000 trivial tasks
// that store their results, then wait() (tasks/s). Variant map: tbb::parallel_for over
// the inputs, speedup over the serial loop.
// Usage: h7_tbb --variant tiny|map [--n 1000000] [--items 1000]
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_group.h>

#include <cstdint>
#include <string>
#include <vector>

#include "../cpu_work.hpp"
#include "../report.hpp"

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const std::string variant = opt.get("variant", "tiny");

    if (variant == "tiny") {
        const std::int64_t n = opt.get_int("n", 1'000'000);
        std::vector<std::int64_t> results(static_cast<std::size_t>(n));
        const std::int64_t t0 = bench::now_ns();
        tbb::task_group group;
        for (std::int64_t i = 0; i < n; ++i) {
            group.run([&results, i] { results[static_cast<std::size_t>(i)] = bench::plus_one(i); });
        }
        group.wait();
        std::int64_t sum = 0;
        for (std::int64_t r : results) {
            sum += r;
        }
        const std::int64_t t1 = bench::now_ns();
        bench::check(sum == n * (n + 1) / 2, "sum of results", sum, n * (n + 1) / 2);
        bench::report("tasks_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
        return 0;
    }

    const std::size_t items = static_cast<std::size_t>(opt.get_int("items", 1000));
    std::vector<std::uint64_t> inputs(items);
    for (std::size_t i = 0; i < items; ++i) {
        inputs[i] = i;
    }
    std::vector<std::uint64_t> serial(items);
    std::vector<std::uint64_t> parallel(items);
    const std::int64_t t0 = bench::now_ns();
    for (std::size_t i = 0; i < items; ++i) {
        serial[i] = bench::burn(inputs[i]);
    }
    const std::int64_t t1 = bench::now_ns();
    tbb::parallel_for(tbb::blocked_range<std::size_t>(0, items),
                      [&](const tbb::blocked_range<std::size_t>& r) {
                          for (std::size_t i = r.begin(); i != r.end(); ++i) {
                              parallel[i] = bench::burn(inputs[i]);
                          }
                      });
    const std::int64_t t2 = bench::now_ns();
    bench::check(parallel == serial, "map results equal serial results", parallel == serial, 1);
    bench::report("speedup", static_cast<double>(t1 - t0) / static_cast<double>(t2 - t1));
    return 0;
}
