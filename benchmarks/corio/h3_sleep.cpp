// H3: 100,000 concurrent sleeps of 1-10 ms (pseudo-random, same sequence in every
// program): wall time from the first spawn until every sleeper finished, and peak RSS.
// Usage: h3_corio --n 100000
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>

#include <chrono>
#include <cstdint>
#include <vector>

#include "../report.hpp"
#include "../sleep_durations.hpp"

namespace {

corio::task<int> sleeper(std::int64_t micros) {
    co_await corio::sleep(std::chrono::microseconds(micros));
    co_return 1;
}

corio::task<std::int64_t> sleep_all(std::int64_t n) {
    bench::sleep_durations durations;
    std::vector<corio::future<int>> futures;
    futures.reserve(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        futures.push_back(corio::create_task(sleeper(durations.next_micros())));
    }
    std::int64_t done = 0;
    for (auto& f : futures) {
        done += co_await f;
    }
    co_return done;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const std::int64_t n = opt.get_int("n", 100'000);

    const std::int64_t t0 = bench::now_ns();
    const std::int64_t done = corio::run(sleep_all(n));
    const std::int64_t t1 = bench::now_ns();

    bench::check(done == n, "sleepers finished", done, n);
    bench::check(t1 - t0 >= bench::sleep_durations::max_micros * 1000,
                 "wall time >= longest sleep (ns)", t1 - t0,
                 bench::sleep_durations::max_micros * 1000);
    bench::report("wall_ms", static_cast<double>(t1 - t0) / 1e6);
    bench::report("peak_rss_mib", bench::peak_rss_mib());
    return 0;
}
