// H7: corio::thread_pool. Variant tiny: 1,000,000 apply_async of a trivial function,
// then every result collected (tasks/s). Variant map: pool.map of a CPU-bound function
// over ITEMS inputs, speedup over the same loop run serially in this process.
// Usage: h7_corio --variant tiny|map [--n 1000000] [--items 1000]
#include <corio/pool.hpp>
#include <corio/thread_pool.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "../cpu_work.hpp"
#include "../report.hpp"

namespace {

std::int64_t tiny(std::int64_t x) {
    return bench::plus_one(x);
}
std::uint64_t work(std::uint64_t x) {
    return bench::burn(x);
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const std::string variant = opt.get("variant", "tiny");
    corio::thread_pool pool;

    if (variant == "tiny") {
        const std::int64_t n = opt.get_int("n", 1'000'000);
        std::vector<corio::async_result<std::int64_t>> results;
        results.reserve(static_cast<std::size_t>(n));
        const std::int64_t t0 = bench::now_ns();
        for (std::int64_t i = 0; i < n; ++i) {
            results.push_back(pool.apply_async(tiny, i));
        }
        std::int64_t sum = 0;
        for (auto& r : results) {
            sum += r.get();
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
    const std::int64_t t0 = bench::now_ns();
    for (std::size_t i = 0; i < items; ++i) {
        serial[i] = work(inputs[i]);
    }
    const std::int64_t t1 = bench::now_ns();
    const std::vector<std::uint64_t> parallel = pool.map(work, inputs);
    const std::int64_t t2 = bench::now_ns();
    bench::check(parallel == serial, "map results equal serial results", parallel == serial, 1);
    bench::report("speedup", static_cast<double>(t1 - t0) / static_cast<double>(t2 - t1));
    return 0;
}
