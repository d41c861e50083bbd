// H2 peer: direct co_await of a trivial asio::awaitable, ns per await.
// Usage: h2_asio --n 10000000
#include <asio.hpp>

#include <cstdint>
#include <exception>

#include "../report.hpp"

namespace {

asio::awaitable<std::int64_t> trivial(std::int64_t i) {
    co_return i;
}

asio::awaitable<std::int64_t> await_many(std::int64_t n) {
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

    asio::io_context ctx(1);
    std::int64_t sum = -1;
    const std::int64_t t0 = bench::now_ns();
    asio::co_spawn(ctx, await_many(n), [&](std::exception_ptr e, std::int64_t v) {
        if (e) {
            std::rethrow_exception(e);
        }
        sum = v;
    });
    ctx.run();
    const std::int64_t t1 = bench::now_ns();

    bench::check(sum == n * (n - 1) / 2, "sum of awaited results", sum, n * (n - 1) / 2);
    bench::report("ns_per_await", static_cast<double>(t1 - t0) / static_cast<double>(n));
    return 0;
}
