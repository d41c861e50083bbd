// H3 physical limit: one io_uring ring, a user-space binary heap of 100,000 deadlines
// (1-10 ms), and ONE armed kernel timeout (IORING_OP_TIMEOUT, absolute) for the earliest.
// Usage: h3_raw_uring --n 100000
#include <liburing.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <queue>
#include <utility>
#include <vector>

#include "../report.hpp"
#include "../sleep_durations.hpp"
#include "ring_setup.hpp"

namespace {

std::int64_t monotonic_ns() noexcept {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const std::int64_t n = opt.get_int("n", 100'000);

    io_uring ring{};
    bench::init_ring(ring, 256);

    const std::int64_t t0 = bench::now_ns();
    // (deadline, sleeper id): the sleeper id stands for the coroutine to resume.
    using entry = std::pair<std::int64_t, std::int64_t>;
    std::priority_queue<entry, std::vector<entry>, std::greater<>> heap;
    bench::sleep_durations durations;
    const std::int64_t start = monotonic_ns();
    for (std::int64_t i = 0; i < n; ++i) {
        heap.emplace(start + durations.next_micros() * 1000, i);
    }

    std::int64_t done = 0;
    std::int64_t id_sum = 0;
    while (!heap.empty()) {
        const std::int64_t now = monotonic_ns();
        while (!heap.empty() && heap.top().first <= now) {
            id_sum += heap.top().second;
            ++done;
            heap.pop();
        }
        if (heap.empty()) {
            break;
        }
        __kernel_timespec ts{};
        ts.tv_sec = heap.top().first / 1'000'000'000;
        ts.tv_nsec = heap.top().first % 1'000'000'000;
        io_uring_sqe* sqe = io_uring_get_sqe(&ring);
        io_uring_prep_timeout(sqe, &ts, 0, IORING_TIMEOUT_ABS);
        io_uring_submit_and_wait(&ring, 1);
        io_uring_cqe* cqe = nullptr;
        while (io_uring_peek_cqe(&ring, &cqe) == 0) {
            io_uring_cqe_seen(&ring, cqe);
        }
    }
    const std::int64_t t1 = bench::now_ns();
    io_uring_queue_exit(&ring);

    bench::check(done == n, "sleepers finished", done, n);
    bench::check(id_sum == n * (n - 1) / 2, "every sleeper woke once", id_sum, n * (n - 1) / 2);
    bench::check(t1 - t0 >= bench::sleep_durations::max_micros * 1000,
                 "wall time >= longest sleep (ns)", t1 - t0,
                 bench::sleep_durations::max_micros * 1000);
    bench::report("wall_ms", static_cast<double>(t1 - t0) / 1e6);
    bench::report("peak_rss_mib", bench::peak_rss_mib());
    return 0;
}
