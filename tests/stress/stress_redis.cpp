// The Redis pool's stress case (ctest stress_redis, label `stress`; built with
// -DCORIO_STRESS=ON where hiredis is found). A private redis-server (no persistence),
// worker programs (tests/redis_test_worker.cpp) SIGKILLed at random and replaced, and
// the redis-server restarted once, empty, in the middle of the run. Every job's result
// must reach the client exactly once and none may be lost. Bounded: the pool is
// terminated after a time limit (the case then fails cleanly), and a watchdog aborts
// the program if even that hangs. Written against the public API only (redis_pool,
// redis_worker through the test worker program).
#include "redis_functions.hpp"
#include "redis_server.hpp"
#include "redis_test_support.hpp"

#include <corio/corio.hpp>
#include <corio/redis_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// Waits up to `limit` for `done` (set by the owner), then runs `on_timeout`.
class deadline_thread {
public:
    template <class F>
    deadline_thread(std::chrono::seconds limit, F on_timeout) {
        thread_ = std::thread([this, limit, on_timeout] {
            std::unique_lock lock(mutex_);
            if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
                lock.unlock();
                on_timeout();
            }
        });
    }
    deadline_thread(const deadline_thread&) = delete;
    deadline_thread& operator=(const deadline_thread&) = delete;
    ~deadline_thread() { finish(); }
    void finish() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_one();
        if (thread_.joinable()) {
            thread_.join();
        }
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

// A worker program serving `queue` with 2 processes and a 1 s grace period.
std::unique_ptr<redis_test::worker_process> start_worker(const std::string& url) {
    return std::make_unique<redis_test::worker_process>(url, "stress", 2, true, 1000);
}

int jobs_to_run() {
    const char* e = std::getenv("CORIO_STRESS_REDIS_JOBS");
    return e != nullptr ? std::atoi(e) : 10'000;
}

double seconds_since(steady::time_point t) {
    return std::chrono::duration<double>(steady::now() - t).count();
}

} // namespace

TEST_CASE("stress: Redis pool, 10,000 jobs, workers SIGKILLed at random, Redis restarted once",
          "[stress][redis]") {
    const int jobs = jobs_to_run();
    REQUIRE(jobs > 0);
    // The backstop: the pool is terminated at 240 s (the iteration below then throws
    // pool_terminated and the case fails); if even that hangs, the program aborts.
    deadline_thread backstop(300s, [] {
        std::fprintf(stderr, "stress watchdog: the Redis case did not finish in 300 s\n");
        std::abort();
    });
    corio_example::redis_server server;
    const std::string url = server.url();
    constexpr std::size_t worker_count = 3;
    std::vector<std::unique_ptr<redis_test::worker_process>> workers;
    for (std::size_t i = 0; i < worker_count; ++i) {
        workers.push_back(start_worker(url));
    }
    // A short lease: a killed worker's jobs are requeued within about a second.
    // Retries enough that no job is dead-lettered by the kills alone.
    corio::redis_pool pool(url, {.queue = "stress", .max_retries = 1000, .lease = 1s});

    std::atomic<int> received{0};
    std::atomic<bool> stop{false};
    long kills = 0;
    bool restarted = false;
    double restarted_at = 0;
    const auto start = steady::now();
    // Chaos: every 100-300 ms a random worker program is SIGKILLed (its process pool
    // dies with it) and a fresh one started. Once half the results are in, the loop
    // below restarts the redis-server, empty, while the rest are queued or running.
    std::thread chaos([&] {
        std::mt19937 rng(4242);
        std::uniform_int_distribution<int> pause_ms(100, 300);
        std::uniform_int_distribution<std::size_t> pick(0, worker_count - 1);
        while (!stop.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
            if (stop.load()) {
                break;
            }
            auto& w = workers[pick(rng)];
            w->kill();
            ++kills;
            w = start_worker(url);
        }
    });
    deadline_thread limit(240s, [&pool] { pool.terminate(); });

    std::vector<int> in(static_cast<std::size_t>(jobs));
    std::iota(in.begin(), in.end(), 0);
    std::vector<int> seen(in.size(), 0);
    long unexpected = 0;
    std::string failure;
    try {
        for (int v : pool.imap_unordered(redis_fns::square, in, 1)) {
            const auto root = static_cast<long>(std::lround(std::sqrt(static_cast<double>(v))));
            if (root < 0 || root >= jobs || root * root != v) {
                ++unexpected;
            } else {
                ++seen[static_cast<std::size_t>(root)];
            }
            if (received.fetch_add(1) + 1 == jobs / 2) {
                server.restart();
                restarted = true;
                restarted_at = seconds_since(start);
            }
        }
    } catch (const std::exception& e) {
        failure = e.what();
    }
    limit.finish();
    stop = true;
    chaos.join();
    const double took = seconds_since(start);
    long missing = 0;
    long duplicated = 0;
    for (int n : seen) {
        missing += n == 0 ? 1 : 0;
        duplicated += n > 1 ? n - 1 : 0;
    }
    std::printf("stress: redis: %d jobs in %.1f s through %zu workers, %ld worker programs "
                "SIGKILLed, redis-server restarted empty at %.1f s; %ld missing, %ld "
                "duplicated, %ld unexpected%s%s\n",
                jobs, took, worker_count, kills, restarted_at, missing, duplicated, unexpected,
                failure.empty() ? "" : "; failed: ", failure.c_str());
    CHECK(failure.empty());
    CHECK(restarted);
    CHECK(kills > 0);
    CHECK(missing == 0);
    CHECK(duplicated == 0);
    CHECK(unexpected == 0);
    workers.clear();
    backstop.finish();
}
