// H1 peer: Asio C++20 coroutines. One at a time: `co_await co_spawn(ex, t, use_awaitable)`.
// Spawn all, then await all, the default `--style handler`: each co_spawn completes into
// a handler that stores the result and counts down; the waiting coroutine wakes when
// the count reaches zero (a "wait group"). `--style promise` instead keeps the
// experimental::promise of each co_spawn and awaits them in order; it measured ~40%
// slower here, so the runner uses the handler style (never tune a peer down).
// Usage: h1_asio --variant one_at_a_time|spawn_all [--style handler|promise] --n 1000000
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/promise.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <string>
#include <vector>

#include "../report.hpp"

namespace {

asio::awaitable<std::int64_t> trivial(std::int64_t i) {
    co_return i;
}

asio::awaitable<std::int64_t> one_at_a_time(std::int64_t n) {
    auto ex = co_await asio::this_coro::executor;
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        sum += co_await asio::co_spawn(ex, trivial(i), asio::use_awaitable);
    }
    co_return sum;
}

asio::awaitable<std::int64_t> spawn_all_promises(std::int64_t n) {
    auto ex = co_await asio::this_coro::executor;
    using promise_t =
        asio::experimental::promise<void(std::exception_ptr, std::int64_t), asio::any_io_executor>;
    std::vector<promise_t> promises;
    promises.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        promises.push_back(asio::co_spawn(ex, trivial(i), asio::experimental::use_promise));
    }
    std::int64_t sum = 0;
    for (auto& p : promises) {
        sum += co_await p.async_wait(asio::use_awaitable);
    }
    co_return sum;
}

asio::awaitable<std::int64_t> spawn_all_handlers(std::int64_t n) {
    auto ex = co_await asio::this_coro::executor;
    asio::steady_timer all_done(ex, std::chrono::steady_clock::time_point::max());
    std::vector<std::int64_t> results(static_cast<std::size_t>(n));
    std::int64_t remaining = n;
    for (std::int64_t i = 0; i < n; ++i) {
        asio::co_spawn(ex, trivial(i), [&, i](std::exception_ptr e, std::int64_t v) {
            if (e) {
                std::rethrow_exception(e);
            }
            results[static_cast<std::size_t>(i)] = v;
            if (--remaining == 0) {
                all_done.cancel();
            }
        });
    }
    if (remaining != 0) {
        co_await all_done.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
    }
    std::int64_t sum = 0;
    for (std::int64_t v : results) {
        sum += v;
    }
    co_return sum;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const std::string variant = opt.get("variant", "one_at_a_time");
    const std::string style = opt.get("style", "handler");
    const std::int64_t n = opt.get_int("n", 1'000'000);

    asio::io_context ctx(1);
    std::int64_t sum = -1;
    const std::int64_t t0 = bench::now_ns();
    asio::co_spawn(ctx,
                   variant == "spawn_all"
                       ? (style == "handler" ? spawn_all_handlers(n) : spawn_all_promises(n))
                       : one_at_a_time(n),
                   [&](std::exception_ptr e, std::int64_t v) {
                       if (e) {
                           std::rethrow_exception(e);
                       }
                       sum = v;
                   });
    ctx.run();
    const std::int64_t t1 = bench::now_ns();

    bench::check(sum == n * (n - 1) / 2, "sum of task results", sum, n * (n - 1) / 2);
    bench::report("tasks_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
    return 0;
}
