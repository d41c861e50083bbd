// H4 peer: asio::experimental::channel<void(error_code, int)> with capacity 1024,
// P producer and C consumer coroutines on one io_context; messages per second.
// Usage: h4_asio --producers 1 --consumers 1 --n 1000000
#include <asio.hpp>
#include <asio/experimental/channel.hpp>

#include <cstdint>
#include <exception>

#include "../report.hpp"

namespace {

using channel = asio::experimental::channel<void(asio::error_code, int)>;

asio::awaitable<void> producer(channel& ch, int first, int count) {
    for (int i = first; i < first + count; ++i) {
        co_await ch.async_send(asio::error_code{}, i, asio::use_awaitable);
    }
}

asio::awaitable<void> consumer(channel& ch, int count, std::int64_t& sum) {
    for (int i = 0; i < count; ++i) {
        sum += co_await ch.async_receive(asio::use_awaitable);
    }
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const int producers = static_cast<int>(opt.get_int("producers", 1));
    const int consumers = static_cast<int>(opt.get_int("consumers", 1));
    const int n = static_cast<int>(opt.get_int("n", 1'000'000) / (producers * consumers)) *
                  (producers * consumers);

    asio::io_context ctx(1);
    channel ch(ctx, 1024);
    std::int64_t sum = 0;
    auto rethrow = [](std::exception_ptr e) {
        if (e) {
            std::rethrow_exception(e);
        }
    };
    const std::int64_t t0 = bench::now_ns();
    for (int c = 0; c < consumers; ++c) {
        asio::co_spawn(ctx, consumer(ch, n / consumers, sum), rethrow);
    }
    for (int p = 0; p < producers; ++p) {
        asio::co_spawn(ctx, producer(ch, p * (n / producers), n / producers), rethrow);
    }
    ctx.run();
    const std::int64_t t1 = bench::now_ns();

    const std::int64_t want = static_cast<std::int64_t>(n) * (n - 1) / 2;
    bench::check(sum == want, "sum of received ints", sum, want);
    bench::report("msgs_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
    return 0;
}
