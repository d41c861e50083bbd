// H4: bounded corio::queue<int> (maxsize 1024) carrying 1,000,000 ints from P producers
// to C consumers (1x1 and 4x4), all tasks on one loop; messages per second.
// Usage: h4_corio --producers 1 --consumers 1 --n 1000000
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/queue.hpp>
#include <corio/task.hpp>

#include <cstdint>
#include <vector>

#include "../report.hpp"

namespace {

corio::task<std::int64_t> producer(corio::queue<int>* q, int first, int count) {
    for (int i = first; i < first + count; ++i) {
        co_await q->put(i);
    }
    co_return 0;
}

corio::task<std::int64_t> consumer(corio::queue<int>* q, int count) {
    std::int64_t sum = 0;
    for (int i = 0; i < count; ++i) {
        sum += co_await q->get();
    }
    co_return sum;
}

corio::task<std::int64_t> transfer(int n, int producers, int consumers) {
    corio::queue<int> q(1024);
    std::vector<corio::future<std::int64_t>> futures;
    for (int c = 0; c < consumers; ++c) {
        futures.push_back(corio::create_task(consumer(&q, n / consumers)));
    }
    for (int p = 0; p < producers; ++p) {
        futures.push_back(corio::create_task(producer(&q, p * (n / producers), n / producers)));
    }
    std::int64_t sum = 0;
    for (auto& f : futures) {
        sum += co_await f;
    }
    co_return sum;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const int producers = static_cast<int>(opt.get_int("producers", 1));
    const int consumers = static_cast<int>(opt.get_int("consumers", 1));
    const int n = static_cast<int>(opt.get_int("n", 1'000'000) / (producers * consumers)) *
                  (producers * consumers);

    const std::int64_t t0 = bench::now_ns();
    const std::int64_t sum = corio::run(transfer(n, producers, consumers));
    const std::int64_t t1 = bench::now_ns();

    const std::int64_t want = static_cast<std::int64_t>(n) * (n - 1) / 2;
    bench::check(sum == want, "sum of received ints", sum, want);
    bench::report("msgs_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
    return 0;
}
