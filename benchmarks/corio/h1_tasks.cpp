// H1: create_task + await of trivial tasks, one at a time and spawn-all-then-await-all;
// eager_one_at_a_time does the first with create_eager_task (asyncio 3.12's eager task
// start: a task that finishes without suspending never touches the ready queue).
// Usage: h1_corio --variant one_at_a_time|spawn_all|eager_one_at_a_time --n 1000000
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/task.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "../report.hpp"

namespace {

corio::task<std::int64_t> trivial(std::int64_t i) {
    co_return i;
}

corio::task<std::int64_t> one_at_a_time(std::int64_t n) {
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        auto f = corio::create_task(trivial(i));
        sum += co_await f;
    }
    co_return sum;
}

corio::task<std::int64_t> eager_one_at_a_time(std::int64_t n) {
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        auto f = corio::create_eager_task(trivial(i));
        sum += co_await f;
    }
    co_return sum;
}

corio::task<std::int64_t> spawn_all(std::int64_t n) {
    std::vector<corio::future<std::int64_t>> futures;
    futures.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        futures.push_back(corio::create_task(trivial(i)));
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
    const std::string variant = opt.get("variant", "one_at_a_time");
    const std::int64_t n = opt.get_int("n", 1'000'000);

    const std::int64_t t0 = bench::now_ns();
    const std::int64_t sum = corio::run(variant == "spawn_all"             ? spawn_all(n)
                                        : variant == "eager_one_at_a_time" ? eager_one_at_a_time(n)
                                                                           : one_at_a_time(n));
    const std::int64_t t1 = bench::now_ns();

    bench::check(sum == n * (n - 1) / 2, "sum of task results", sum, n * (n - 1) / 2);
    bench::report("tasks_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
    return 0;
}
