// H3 peer: 100,000 coroutines each awaiting its own steady_timer (1-10 ms).
// Usage: h3_asio --n 100000
#include <asio.hpp>

#include <chrono>
#include <cstdint>
#include <exception>

#include "../report.hpp"
#include "../sleep_durations.hpp"

namespace {

asio::awaitable<void> sleeper(std::int64_t micros, std::int64_t& done) {
    asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::microseconds(micros));
    co_await timer.async_wait(asio::use_awaitable);
    ++done;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const std::int64_t n = opt.get_int("n", 100'000);

    asio::io_context ctx(1);
    std::int64_t done = 0;
    bench::sleep_durations durations;
    const std::int64_t t0 = bench::now_ns();
    for (std::int64_t i = 0; i < n; ++i) {
        asio::co_spawn(ctx, sleeper(durations.next_micros(), done), [](std::exception_ptr e) {
            if (e) {
                std::rethrow_exception(e);
            }
        });
    }
    ctx.run();
    const std::int64_t t1 = bench::now_ns();

    bench::check(done == n, "sleepers finished", done, n);
    bench::check(t1 - t0 >= bench::sleep_durations::max_micros * 1000,
                 "wall time >= longest sleep (ns)", t1 - t0,
                 bench::sleep_durations::max_micros * 1000);
    bench::report("wall_ms", static_cast<double>(t1 - t0) / 1e6);
    bench::report("peak_rss_mib", bench::peak_rss_mib());
    return 0;
}
