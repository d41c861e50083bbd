// H8: corio::process_pool. Variants: map_chunksize1 and map_default (items/s for ITEMS
// tiny items), round_trip (apply_async(...).get() one at a time; median and p99 in us).
// The pool is created and warmed up (one map over 2 x workers items) before timing.
// Usage: h8_corio --variant map_chunksize1|map_default|round_trip [--n 100000] [--calls 2000]
#include <corio/init.hpp>
#include <corio/pool.hpp>
#include <corio/process_pool.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "../cpu_work.hpp"
#include "../report.hpp"

namespace {

std::int64_t tiny(std::int64_t x) {
    return bench::plus_one(x);
}

} // namespace

int main(int argc, char** argv) {
    corio::init();
    bench::options opt(argc, argv);
    const std::string variant = opt.get("variant", "map_chunksize1");
    corio::process_pool pool;
    {
        std::vector<std::int64_t> warm(2 * corio::cpu_count(), 1);
        static_cast<void>(pool.map(tiny, warm));
    }

    if (variant == "round_trip") {
        const std::int64_t calls = opt.get_int("calls", 2000);
        std::vector<double> micros;
        micros.reserve(static_cast<std::size_t>(calls));
        std::int64_t sum = 0;
        for (std::int64_t i = 0; i < calls; ++i) {
            const std::int64_t t0 = bench::now_ns();
            auto r = pool.apply_async(tiny, i);
            sum += r.get();
            micros.push_back(static_cast<double>(bench::now_ns() - t0) / 1e3);
        }
        bench::check(sum == calls * (calls + 1) / 2, "sum of results", sum,
                     calls * (calls + 1) / 2);
        std::sort(micros.begin(), micros.end());
        bench::report("rtt_median_us", micros[micros.size() / 2]);
        bench::report("rtt_p99_us", micros[std::min(micros.size() - 1, micros.size() * 99 / 100)]);
        return 0;
    }

    const std::int64_t n = opt.get_int("n", 100'000);
    std::vector<std::int64_t> inputs(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        inputs[static_cast<std::size_t>(i)] = i;
    }
    const std::int64_t t0 = bench::now_ns();
    const std::vector<std::int64_t> out =
        variant == "map_default" ? pool.map(tiny, inputs) : pool.map(tiny, inputs, 1);
    const std::int64_t t1 = bench::now_ns();
    std::int64_t sum = 0;
    bool in_order = out.size() == inputs.size();
    for (std::size_t i = 0; in_order && i < out.size(); ++i) {
        in_order = out[i] == inputs[i] + 1;
        sum += out[i];
    }
    bench::check(in_order && sum == n * (n + 1) / 2, "results in input order, sum", sum,
                 n * (n + 1) / 2);
    bench::report("items_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
    return 0;
}
