// The hot paths the perf-budget check counts instructions of (benchmarks/perf_budget.py
// runs this under `valgrind --tool=callgrind` at two sizes and divides the difference
// in instructions by the difference in operations, so start-up cost cancels out).
// Usage: perf_paths --path create_await|nop|queue|pool_apply --n N
//   create_await  N times `co_await create_task(trivial(i))`
//   nop           N awaited IORING_OP_NOPs, one in flight
//   queue         N ints through a queue<int>(1024) from one producer to one consumer
//   pool_apply    N times `pool.apply_async(f, i).get()` on a one-worker thread_pool
// Each path checks its own result and exits non-zero if it is wrong.
#include "ring/nop.hpp"
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/pool.hpp>
#include <corio/queue.hpp>
#include <corio/task.hpp>
#include <corio/thread_pool.hpp>

#include <cstdint>
#include <string>

#include "../report.hpp"

namespace {

corio::task<std::int64_t> trivial(std::int64_t i) {
    co_return i;
}

corio::task<std::int64_t> create_await(std::int64_t n) {
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        sum += co_await corio::create_task(trivial(i));
    }
    co_return sum;
}

corio::task<std::int64_t> nops(std::int64_t n) {
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        sum += co_await corio::detail::nop() + 1;
    }
    co_return sum*(n - 1) / 2; // n NOPs of result 0: n * (n - 1) / 2 like the others
}

corio::task<std::int64_t> producer(corio::queue<std::int64_t>* q, std::int64_t n) {
    for (std::int64_t i = 0; i < n; ++i) {
        co_await q->put(i);
    }
    co_return 0;
}

corio::task<std::int64_t> consumer(corio::queue<std::int64_t>* q, std::int64_t n) {
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        sum += co_await q->get();
    }
    co_return sum;
}

corio::task<std::int64_t> through_queue(std::int64_t n) {
    corio::queue<std::int64_t> q(1024);
    auto c = corio::create_task(consumer(&q, n));
    auto p = corio::create_task(producer(&q, n));
    co_await p;
    co_return co_await c;
}

std::int64_t identity(std::int64_t x) {
    return x;
}

std::int64_t pool_apply(std::int64_t n) {
    corio::thread_pool pool(1);
    std::int64_t sum = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        sum += pool.apply_async(identity, i).get();
    }
    pool.close();
    pool.join();
    return sum;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const std::string path = opt.get("path", "");
    const std::int64_t n = opt.get_int("n", 10'000);
    std::int64_t sum = -1;
    if (path == "create_await") {
        sum = corio::run(create_await(n));
    } else if (path == "nop") {
        sum = corio::run(nops(n));
    } else if (path == "queue") {
        sum = corio::run(through_queue(n));
    } else if (path == "pool_apply") {
        sum = pool_apply(n);
    } else {
        std::fprintf(stderr, "perf_paths: unknown --path '%s'\n", path.c_str());
        return 2;
    }
    bench::check(sum == n * (n - 1) / 2, path.c_str(), sum, n * (n - 1) / 2);
    return 0;
}
