// H2: direct co_await of a trivial task (no loop round trip), ns per await.
// Usage: h2_corio --n 10000000
#include <corio/event_loop.hpp>
#include <corio/task.hpp>

#include <cstdint>

#include "../report.hpp"

namespace {

corio::task<std::int64_t> trivial(std::int64_t i) {
    co_return i;
}

corio::task<std::int64_t> await_many(std::int64_t n) {
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        sum += co_await trivial(i);
    }
    co_return sum;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const std::int64_t n = opt.get_int("n", 10'000'000);

    const std::int64_t t0 = bench::now_ns();
    const std::int64_t sum = corio::run(await_many(n));
    const std::int64_t t1 = bench::now_ns();

    bench::check(sum == n * (n - 1) / 2, "sum of awaited results", sum, n * (n - 1) / 2);
    bench::report("ns_per_await", static_cast<double>(t1 - t0) / static_cast<double>(n));
    return 0;
}
