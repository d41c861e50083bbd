#pragma once
// Python Pool semantics every corio pool must have, written once as templates over
// the pool type: thread_pool_test.cpp runs them on `corio::thread_pool`, and
// process_pool_test.cpp runs the same functions on `corio::process_pool`:
//
//     TEST_CASE("map returns results in input order", "[process_pool][map]") {
//         pool_semantics::map_returns_results_in_input_order<corio::process_pool>();
//     }
//
// Only plain functions over ints, strings and tuples cross into the pool, so a
// process pool can run them; callbacks run in the caller's process. A call that must
// block until the test lets it go waits at a `process_gate`, which works across
// processes (a file lock and a FIFO), under a `watchdog` so that a hang fails.

#include <corio/async_result.hpp>
#include <corio/corio.hpp>
#include <corio/pool.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <numeric>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace pool_semantics {

using namespace std::chrono_literals;

/// Fails the run (exit 124 with a message) if the scope does not end within `limit`:
/// a hang must fail CI, not block it.
class watchdog {
public:
    explicit watchdog(const char* what, std::chrono::seconds limit = 60s)
        : thread_([this, what, limit] {
              std::unique_lock lock(mutex_);
              if (!cv_.wait_for(lock, limit, [&] { return done_; })) {
                  std::fprintf(stderr, "watchdog: \"%s\" hung for %lld s\n", what,
                               static_cast<long long>(limit.count()));
                  std::_Exit(124);
              }
          }) {}
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_all();
        thread_.join();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

/// A gate that pool calls wait at, in worker threads or worker processes alike,
/// until the test opens it; calls can also announce their arrival.
/// - The test holds an exclusive flock on `<dir>/lock` until `open()`; `pass(dir)`
///   takes a shared lock on its own descriptor, so it blocks until then (a flock
///   belongs to an open file description: threads of one process conflict too).
/// - `arrive(dir)` writes one byte into the FIFO `<dir>/arrivals`, which the test
///   holds open; `wait_arrivals(n)` reads them, bounded by a timeout.
/// The destructor opens the gate and removes the directory.
class process_gate {
public:
    process_gate() {
        char dir[] = "/tmp/corio-gate-XXXXXX";
        REQUIRE(::mkdtemp(dir) != nullptr);
        dir_ = dir;
        lock_fd_ = ::open((dir_ + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        REQUIRE(lock_fd_ >= 0);
        REQUIRE(::flock(lock_fd_, LOCK_EX) == 0);
        REQUIRE(::mkfifo((dir_ + "/arrivals").c_str(), 0600) == 0);
        // Read and write: opening does not wait for a writer, and reads never see end of file.
        fifo_fd_ = ::open((dir_ + "/arrivals").c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
        REQUIRE(fifo_fd_ >= 0);
    }
    process_gate(const process_gate&) = delete;
    process_gate& operator=(const process_gate&) = delete;
    ~process_gate() {
        open();
        ::close(lock_fd_);
        ::close(fifo_fd_);
        ::unlink((dir_ + "/arrivals").c_str());
        ::unlink((dir_ + "/lock").c_str());
        ::rmdir(dir_.c_str());
    }

    /// The directory to pass to the calls.
    const std::string& path() const noexcept { return dir_; }

    /// Lets every waiting and future call pass. Idempotent.
    void open() noexcept {
        if (!open_) {
            ::flock(lock_fd_, LOCK_UN);
            open_ = true;
        }
    }

    /// Waits until `n` calls in all arrived; false after `limit`.
    bool wait_arrivals(int n, std::chrono::milliseconds limit = 30s) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (arrived_ < n) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                return false;
            }
            pollfd p{fifo_fd_, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
                continue; // timeout or EINTR: recheck
            }
            char buf[256];
            const ssize_t got = ::read(fifo_fd_, buf, sizeof buf);
            if (got > 0) {
                arrived_ += static_cast<int>(got);
            }
        }
        return true;
    }

    /// In a call: announces that it got here.
    static void arrive(const std::string& dir) {
        const int fd = ::open((dir + "/arrivals").c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0) {
            return;
        }
        const char one = 1;
        [[maybe_unused]] const ssize_t n = ::write(fd, &one, 1);
        ::close(fd);
    }

    /// In a call: waits until the gate is open; false if the gate is gone.
    static bool pass(const std::string& dir) {
        const int fd = ::open((dir + "/lock").c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            return false;
        }
        int r;
        do {
            r = ::flock(fd, LOCK_SH);
        } while (r != 0 && errno == EINTR);
        ::close(fd);
        return r == 0;
    }

private:
    std::string dir_;
    int lock_fd_ = -1;
    int fifo_fd_ = -1;
    bool open_ = false;
    int arrived_ = 0;
};

/// Counts the items `on_progress` reported; the test thread waits for a count.
class progress_log {
public:
    void report(std::size_t done) {
        {
            std::lock_guard lock(mutex_);
            done_ = done;
        }
        cv_.notify_all();
    }
    bool wait_for(std::size_t n) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, 30s, [&] { return done_ >= n; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::size_t done_ = 0;
};

inline int square(int x) {
    return x * x;
}
inline int add(int a, int b) {
    return a + b;
}
inline int fail_on_odd(int x) {
    if (x % 2 != 0) {
        throw std::invalid_argument("odd: " + std::to_string(x));
    }
    return x;
}
inline int always_fail(int x) {
    throw std::out_of_range("bad item " + std::to_string(x));
}
inline std::string repeat(std::string s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
        out += s;
    }
    return out;
}

inline int identity(int x) {
    return x;
}
inline void nothing(int) {}

/// Announces itself at the gate `gate`, waits until it opens, returns x * x.
inline int gated_square(std::string gate, int x) {
    process_gate::arrive(gate);
    return process_gate::pass(gate) ? x * x : -1;
}

/// Item 0 throws at once; item 1 announces itself, waits at the gate, then throws.
inline int first_fails_second_waits(std::string gate, int x) {
    if (x == 0) {
        throw std::invalid_argument("first");
    }
    if (x == 1) {
        process_gate::arrive(gate);
        (void)process_gate::pass(gate);
        throw std::out_of_range("second");
    }
    return x;
}

/// Item 0 waits at the gate; the others return at once (imap takes one argument).
inline int square_holding_back_zero(std::pair<std::string, int> item) {
    if (item.second == 0) {
        process_gate::arrive(item.first);
        (void)process_gate::pass(item.first);
    }
    return item.second * item.second;
}

inline std::vector<int> iota_vector(int n) {
    std::vector<int> v(static_cast<std::size_t>(n));
    std::iota(v.begin(), v.end(), 0);
    return v;
}

template <class Pool>
void apply_returns_the_value_of_the_call() {
    Pool pool(2);
    CHECK(pool.apply(square, 7) == 49);
    CHECK(pool.apply(repeat, std::string("ab"), 3) == "ababab");
}

template <class Pool>
void apply_async_result_is_ready_and_successful_after_get() {
    Pool pool(2);
    auto res = pool.apply_async(add, 20, 22);
    CHECK(res.get() == 42);
    CHECK(res.ready());
    CHECK(res.successful());
    res.wait();
    CHECK(res.get() == 42); // get() can be called again
}

template <class Pool>
void an_exception_keeps_its_type_and_message() {
    Pool pool(2);
    try {
        (void)pool.apply(always_fail, 5);
        FAIL("apply did not throw");
    } catch (const std::out_of_range& e) {
        CHECK(std::string(e.what()) == "bad item 5");
    }
    auto res = pool.apply_async(fail_on_odd, 3);
    res.wait();
    CHECK(res.ready());
    CHECK_FALSE(res.successful());
    CHECK_THROWS_AS(res.get(), std::invalid_argument);
    CHECK_THROWS_WITH(res.get(), "odd: 3");
}

template <class Pool>
void callbacks_run_before_the_result_is_ready() {
    Pool pool(2);
    for (int i = 0; i < 50; ++i) {
        std::atomic<int> seen{-1};
        auto res = pool.apply_async(square, i, corio::callback([&](int v) { seen.store(v); }));
        CHECK(res.get() == i * i);
        CHECK(seen.load() == i * i); // ran before get() returned
    }
}

template <class Pool>
void callbacks_run_on_one_thread_one_at_a_time() {
    Pool pool(4);
    std::atomic<int> inside{0};
    std::atomic<int> overlaps{0};
    std::mutex ids_mutex;
    std::set<std::thread::id> ids;
    std::vector<corio::async_result<int>> results;
    for (int i = 0; i < 200; ++i) {
        results.push_back(pool.apply_async(square, i, corio::callback([&](int) {
                                               if (inside.fetch_add(1) != 0) {
                                                   overlaps.fetch_add(1);
                                               }
                                               {
                                                   std::lock_guard lock(ids_mutex);
                                                   ids.insert(std::this_thread::get_id());
                                               }
                                               inside.fetch_sub(1);
                                           })));
    }
    for (auto& r : results) {
        r.wait();
    }
    CHECK(overlaps.load() == 0);
    std::lock_guard lock(ids_mutex);
    CHECK(ids.size() == 1);
    CHECK(ids.count(std::this_thread::get_id()) == 0);
}

template <class Pool>
void the_error_callback_receives_the_exception() {
    Pool pool(2);
    std::atomic<bool> value_called{false};
    std::string message;
    auto res = pool.apply_async(fail_on_odd, 7, corio::callback([&](int) { value_called = true; }),
                                corio::error_callback([&](std::exception_ptr e) {
                                    try {
                                        std::rethrow_exception(e);
                                    } catch (const std::invalid_argument& ex) {
                                        message = ex.what();
                                    }
                                }));
    res.wait();
    CHECK_FALSE(value_called.load());
    CHECK(message == "odd: 7"); // written before the result became ready
    CHECK_THROWS_AS(res.get(), std::invalid_argument);
}

template <class Pool>
void a_throwing_callback_fails_the_result_and_the_pool_goes_on() {
    Pool pool(2);
    std::string reported;
    auto res = pool.apply_async(
        square, 3, corio::callback([](int) { throw std::logic_error("callback broke"); }),
        corio::error_callback([&](std::exception_ptr e) {
            try {
                std::rethrow_exception(e);
            } catch (const std::logic_error& ex) {
                reported = ex.what();
            }
        }));
    CHECK_THROWS_WITH(res.get(), "callback broke");
    CHECK(reported == "callback broke");
    CHECK_FALSE(res.successful());
    // The pool and its result thread keep working.
    std::atomic<int> seen{0};
    auto next = pool.apply_async(square, 4, corio::callback([&](int v) { seen = v; }));
    CHECK(next.get() == 16);
    CHECK(seen.load() == 16);
}

template <class Pool>
void map_returns_results_in_input_order() {
    Pool pool(3);
    const auto input = iota_vector(1000);
    for (int chunksize : {1, 3, 7, 1000, 5000}) {
        const auto out = pool.map(square, input, chunksize);
        REQUIRE(out.size() == input.size());
        for (std::size_t i = 0; i < out.size(); ++i) {
            REQUIRE(out[i] == square(input[i]));
        }
    }
    const auto out = pool.map(square, input);
    CHECK(std::equal(out.begin(), out.end(), input.begin(), input.end(),
                     [](int o, int i) { return o == i * i; }));
}

template <class Pool>
void map_async_calls_back_with_the_whole_vector() {
    Pool pool(2);
    std::vector<int> seen;
    auto res = pool.map_async(square, iota_vector(10), 2,
                              corio::callback([&](const std::vector<int>& v) { seen = v; }));
    const auto& got = res.get();
    CHECK(got == std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49, 64, 81});
    CHECK(seen == got);
}

template <class Pool>
void map_of_an_empty_range_is_empty_at_once() {
    Pool pool(2);
    CHECK(pool.map(square, std::vector<int>{}).empty());
    auto res = pool.map_async(square, std::vector<int>{});
    CHECK(res.ready()); // no waiting at all
    CHECK(res.get().empty());
    auto it = pool.imap(square, std::vector<int>{});
    CHECK(it.begin() == it.end());
}

template <class Pool>
void map_fails_with_an_exception_of_a_call() {
    Pool pool(2);
    CHECK_THROWS_AS(pool.map(fail_on_odd, iota_vector(100), 5), std::invalid_argument);
    auto res = pool.map_async(fail_on_odd, iota_vector(100));
    res.wait();
    CHECK(res.ready());
    CHECK_FALSE(res.successful());
    CHECK_THROWS_AS(res.get(), std::invalid_argument);
}

template <class Pool>
void a_chunksize_below_one_is_an_error() {
    Pool pool(2);
    const auto input = iota_vector(10);
    CHECK_THROWS_AS(pool.map(square, input, 0), corio::error);
    CHECK_THROWS_AS(pool.map_async(square, input, -3), corio::error);
    CHECK_THROWS_AS(pool.starmap(add, std::vector<std::tuple<int, int>>{{1, 2}}, 0), corio::error);
    CHECK_THROWS_AS(pool.imap(square, input, 0), corio::error);
    CHECK_THROWS_AS(pool.imap_unordered(square, input, -1), corio::error);
}

template <class Pool>
void starmap_unpacks_each_tuple() {
    Pool pool(2);
    std::vector<std::tuple<int, int>> pairs;
    for (int i = 0; i < 100; ++i) {
        pairs.emplace_back(i, 2 * i);
    }
    const auto out = pool.starmap(add, pairs);
    REQUIRE(out.size() == 100);
    for (int i = 0; i < 100; ++i) {
        CHECK(out[static_cast<std::size_t>(i)] == 3 * i);
    }
    CHECK(pool.starmap_async(add, pairs, 7).get() == out);
}

template <class Pool>
void imap_yields_results_in_input_order() {
    Pool pool(3);
    for (int chunksize : {1, 4}) {
        int expected = 0;
        for (int v : pool.imap(square, iota_vector(200), chunksize)) {
            REQUIRE(v == expected * expected);
            ++expected;
        }
        CHECK(expected == 200);
    }
}

template <class Pool>
void imap_unordered_yields_every_result_once() {
    Pool pool(3);
    std::multiset<int> got;
    for (int v : pool.imap_unordered(square, iota_vector(300), 2)) {
        got.insert(v);
    }
    std::multiset<int> expected;
    for (int i = 0; i < 300; ++i) {
        expected.insert(i * i);
    }
    CHECK(got == expected);
}

template <class Pool>
void imap_unordered_with_one_worker_yields_input_order() {
    Pool pool(1);
    int expected = 0;
    for (int v : pool.imap_unordered(square, iota_vector(100))) {
        REQUIRE(v == expected * expected);
        ++expected;
    }
    CHECK(expected == 100);
}

template <class Pool>
void imap_rethrows_at_the_failing_item_and_goes_on() {
    Pool pool(2);
    auto results = pool.imap(fail_on_odd, iota_vector(6));
    std::vector<std::string> seen;
    for (auto it = results.begin(); it != results.end(); ++it) {
        try {
            seen.push_back(std::to_string(*it));
        } catch (const std::invalid_argument& e) {
            seen.emplace_back(e.what());
        }
    }
    CHECK(seen == std::vector<std::string>{"0", "odd: 1", "2", "odd: 3", "4", "odd: 5"});
}

template <class Pool>
void calls_after_close_throw_pool_not_running() {
    Pool pool(2);
    pool.close();
    CHECK_THROWS_AS(pool.apply(square, 1), corio::pool_not_running);
    CHECK_THROWS_AS(pool.apply_async(square, 1), corio::pool_not_running);
    CHECK_THROWS_AS(pool.map(square, iota_vector(3)), corio::pool_not_running);
    CHECK_THROWS_AS(pool.map(square, std::vector<int>{}), corio::pool_not_running);
    CHECK_THROWS_AS(pool.map_async(square, iota_vector(3)), corio::pool_not_running);
    CHECK_THROWS_AS(pool.starmap(add, std::vector<std::tuple<int, int>>{{1, 2}}),
                    corio::pool_not_running);
    CHECK_THROWS_AS(pool.imap(square, iota_vector(3)), corio::pool_not_running);
    CHECK_THROWS_AS(pool.imap_unordered(square, iota_vector(3)), corio::pool_not_running);
    pool.join();
}

template <class Pool>
void join_while_running_throws() {
    Pool pool(2);
    CHECK_THROWS_AS(pool.join(), corio::error);
    pool.close();
    pool.join();
    pool.join(); // joining twice is fine
}

template <class Pool>
void close_then_join_finishes_every_submitted_call() {
    std::vector<corio::async_result<int>> results;
    std::atomic<int> callbacks{0};
    Pool pool(2);
    for (int i = 0; i < 500; ++i) {
        results.push_back(
            pool.apply_async(square, i, corio::callback([&](int) { callbacks.fetch_add(1); })));
    }
    pool.close();
    pool.join();
    CHECK(callbacks.load() == 500);
    for (int i = 0; i < 500; ++i) {
        REQUIRE(results[static_cast<std::size_t>(i)].ready());
        REQUIRE(results[static_cast<std::size_t>(i)].get() == i * i);
    }
}

template <class Pool>
void the_destructor_loses_no_submitted_work() {
    std::vector<corio::async_result<int>> results;
    corio::async_result<std::vector<int>> mapped;
    {
        Pool pool(2);
        for (int i = 0; i < 300; ++i) {
            results.push_back(pool.apply_async(square, i));
        }
        mapped = pool.map_async(square, iota_vector(300), 1);
    }
    for (int i = 0; i < 300; ++i) {
        REQUIRE(results[static_cast<std::size_t>(i)].ready());
        REQUIRE(results[static_cast<std::size_t>(i)].get() == i * i);
    }
    REQUIRE(mapped.ready());
    CHECK(mapped.get().size() == 300);
}

template <class Pool>
void a_pool_needs_at_least_one_worker() {
    CHECK_THROWS_AS(Pool(0), corio::error);
}

template <class Pool>
void on_progress_reports_each_chunk_before_the_map_is_ready() {
    std::vector<std::pair<std::size_t, std::size_t>>
        calls; // result thread only, then read after get()
    Pool pool(2, corio::pool_options{.on_progress = [&](std::size_t done, std::size_t total) {
                  calls.emplace_back(done, total);
              }});
    // 100 items, 2 workers: default chunksize ceil(100 / 8) = 13, so 8 chunks.
    const auto out = pool.map(square, iota_vector(100));
    CHECK(out.size() == 100);
    REQUIRE(calls.size() == 8);
    for (std::size_t i = 1; i < calls.size(); ++i) {
        CHECK(calls[i].first > calls[i - 1].first);
        CHECK(calls[i].second == 100);
    }
    CHECK(calls.back() == std::pair<std::size_t, std::size_t>{100, 100});
    calls.clear();
    (void)pool.starmap(add, std::vector<std::tuple<int, int>>(10, {1, 2}), 5);
    CHECK(calls == std::vector<std::pair<std::size_t, std::size_t>>{{5, 10}, {10, 10}});
}

template <class Pool>
void a_throwing_progress_callback_fails_the_map() {
    int calls = 0;
    Pool pool(2, corio::pool_options{.on_progress = [&](std::size_t, std::size_t) {
                  ++calls;
                  throw std::runtime_error("progress broke");
              }});
    // map_async(...).get() is map(); holding the result keeps the last reference to
    // the exception on this thread. Otherwise the pool's thread may free it after
    // Catch2 read its what(), ordered only by libstdc++'s uninstrumented reference
    // count, which ThreadSanitizer reports as a race (see tests/test_main.cpp).
    auto res = pool.map_async(square, iota_vector(20), 2);
    CHECK_THROWS_WITH(res.get(), "progress broke");
    CHECK(calls == 1); // not called again after it threw
    CHECK(pool.apply(square, 3) == 9);
}

template <class Pool>
void map_reports_its_first_error_only_after_every_chunk_finished() {
    watchdog dog("map reports its first error after every chunk");
    progress_log progress;
    Pool pool(2, corio::pool_options{
                     .on_progress = [&](std::size_t done, std::size_t) { progress.report(done); }});
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    // Two chunks: item 0 fails at once, item 1 waits at the gate, then fails too.
    const std::vector<std::tuple<std::string, int>> items{{gate.path(), 0}, {gate.path(), 1}};
    auto res = pool.starmap_async(first_fails_second_waits, items, 1);
    REQUIRE(gate.wait_arrivals(1)); // item 1 runs
    REQUIRE(progress.wait_for(1));  // item 0's chunk finished: its error arrived
    CHECK_FALSE(res.ready());
    CHECK_FALSE(res.wait(1ms));
    gate.open();
    try {
        (void)res.get();
        FAIL("the map did not fail");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()) == "first"); // the first to arrive, not the last
    }
}

template <class Pool>
void get_with_a_timeout_throws_timeout_error_while_the_call_runs() {
    watchdog dog("get with a timeout");
    Pool pool(1);
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    auto res = pool.apply_async(gated_square, gate.path(), 6);
    REQUIRE(gate.wait_arrivals(1));
    CHECK_THROWS_AS(res.get(1ms), corio::timeout_error);
    CHECK_FALSE(res.wait(1ms));
    CHECK_FALSE(res.ready());
    CHECK_THROWS_AS(res.successful(), corio::invalid_state_error);
    gate.open();
    CHECK(res.get(20s) == 36);
    CHECK(res.get(std::chrono::hours::max()) == 36); // no overflow: waits like get()
    CHECK(res.wait(0s));
    CHECK(res.successful());
}

template <class Pool>
void result_handles_report_validity_and_sizes() {
    Pool pool(3);
    CHECK(pool.size() == 3);
    corio::async_result<std::string> res;
    CHECK_FALSE(res.valid());
    res = pool.apply_async(repeat, std::string("ab"), 2);
    CHECK(res.valid());
    const auto copy = res;
    const std::string moved = std::move(res).get(); // get() && moves the value out
    CHECK(moved == "abab");
    CHECK(copy.ready());
    CHECK(copy.successful());
    auto taken = std::move(res);
    CHECK(taken.valid());
    CHECK_FALSE(res.valid()); // moved from
    std::move(pool.apply_async(nothing, 1)).get();
    auto ordered = pool.imap(square, iota_vector(5));
    CHECK(ordered.size() == 5);
    auto unordered = pool.imap_unordered(square, iota_vector(7), 3);
    CHECK(unordered.size() == 7);
    int n = 0;
    for (int v : unordered) {
        n += v >= 0 ? 1 : 0;
    }
    CHECK(n == 7);
}

template <class Pool>
void imap_unordered_yields_results_in_completion_order() {
    watchdog dog("imap_unordered in completion order");
    Pool pool(2);
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    std::vector<std::pair<std::string, int>> items;
    for (int i = 0; i < 8; ++i) {
        items.emplace_back(gate.path(), i);
    }
    auto results = pool.imap_unordered(square_holding_back_zero, items);
    REQUIRE(gate.wait_arrivals(1)); // item 0 runs and is held back
    auto it = results.begin();      // the first to finish: another worker's item
    std::vector<int> order{*it};
    CHECK(order.front() != 0);
    gate.open();
    for (++it; it != results.end(); ++it) {
        order.push_back(*it);
    }
    const auto zero_at = std::find(order.begin(), order.end(), 0) - order.begin();
    CHECK(zero_at > 0); // item 0 came out after an item submitted later
    std::sort(order.begin(), order.end());
    CHECK(order == std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49});
}

template <class Pool>
void concurrent_submitters_get_every_result_exactly_once(int threads, int per_thread) {
    Pool pool(4);
    const int total = threads * per_thread;
    std::vector<std::atomic<int>> got(static_cast<std::size_t>(total));
    std::vector<std::atomic<int>> called_back(static_cast<std::size_t>(total));
    std::atomic<int> wrong{0};
    std::vector<std::thread> submitters;
    for (int t = 0; t < threads; ++t) {
        submitters.emplace_back([&, t] {
            std::vector<corio::async_result<int>> results;
            results.reserve(static_cast<std::size_t>(per_thread));
            const int first = t * per_thread;
            for (int i = first; i < first + per_thread; ++i) {
                if (i % 2 == 0) {
                    results.push_back(pool.apply_async(identity, i));
                } else {
                    results.push_back(
                        pool.apply_async(identity, i, corio::callback([&called_back](int k) {
                                             called_back[static_cast<std::size_t>(k)].fetch_add(1);
                                         })));
                }
            }
            // A map from every thread at the same time, too.
            const auto mapped = pool.map(square, iota_vector(100), 7);
            if (mapped.size() != 100 || mapped.back() != 99 * 99) {
                wrong.fetch_add(1);
            }
            for (int i = 0; i < per_thread; ++i) {
                const int k = results[static_cast<std::size_t>(i)].get();
                if (k != first + i) {
                    wrong.fetch_add(1);
                } else {
                    got[static_cast<std::size_t>(k)].fetch_add(1);
                }
            }
        });
    }
    for (auto& t : submitters) {
        t.join();
    }
    CHECK(wrong.load() == 0);
    int bad = 0;
    for (int i = 0; i < total; ++i) {
        const auto k = static_cast<std::size_t>(i);
        if (got[k].load() != 1 || called_back[k].load() != (i % 2 == 0 ? 0 : 1)) {
            ++bad;
        }
    }
    CHECK(bad == 0);
}

// ---- awaiting results from an event loop ---------------------------------------------

inline corio::task<int> await_one(corio::async_result<int> res) {
    co_return co_await res;
}

/// Lets `waiter` run until it suspends (in a pool wait), cancels it, and says how it
/// ended: "cancelled", or "value" if it finished anyway.
template <class T>
corio::task<std::string> cancel_once_suspended(corio::future<T> waiter) {
    co_await corio::yield_now();
    co_await corio::yield_now();
    waiter.cancel();
    try {
        (void)co_await waiter;
        co_return "value";
    } catch (const corio::cancelled_error&) {
        co_return "cancelled";
    }
}

/// Ticks on the loop every millisecond, and opens `gate` after `n` ticks: a call
/// waiting at the gate can only finish if the loop kept running meanwhile.
inline corio::task<> open_after_ticks(process_gate* gate, int n, int* ticks) {
    for (; *ticks < n; ++*ticks) {
        co_await corio::sleep(1ms);
    }
    gate->open();
}

template <class Pool>
corio::task<int> await_while_the_loop_ticks(Pool* pool, process_gate* gate, int* ticks,
                                            int* off_loop) {
    const auto loop_thread = std::this_thread::get_id();
    auto res = pool->apply_async(gated_square, gate->path(), 9);
    auto ticker = corio::create_task(open_after_ticks(gate, 5, ticks));
    const int v = co_await res;
    *off_loop += std::this_thread::get_id() == loop_thread ? 0 : 1;
    // event_loop::run_in_executor, member and free function alike.
    const int w = co_await corio::get_running_loop().run_in_executor(*pool, add, v, 1);
    *off_loop += std::this_thread::get_id() == loop_thread ? 0 : 1;
    const int x = co_await corio::run_in_executor(*pool, square, 3);
    *off_loop += std::this_thread::get_id() == loop_thread ? 0 : 1;
    co_await ticker;
    co_return v + w + x;
}

template <class Pool>
void a_loop_task_awaits_a_result_while_the_loop_keeps_ticking() {
    watchdog dog("co_await while the loop ticks");
    Pool pool(2);
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    int ticks = 0;
    int off_loop = 0;
    CHECK(corio::run(await_while_the_loop_ticks(&pool, &gate, &ticks, &off_loop)) == 81 + 82 + 9);
    CHECK(ticks == 5);    // the call finished only after the loop ticked 5 times
    CHECK(off_loop == 0); // and the task was resumed on the loop's thread each time
}

template <class Pool>
corio::task<std::string> cancel_while_waiting(Pool* pool, process_gate* gate, int* off_loop) {
    const auto loop_thread = std::this_thread::get_id();
    auto res = pool->apply_async(gated_square, gate->path(), 9);
    std::string outcome = co_await cancel_once_suspended(corio::create_task(await_one(res)));
    *off_loop += std::this_thread::get_id() == loop_thread ? 0 : 1;
    gate->open();
    outcome += "/" + std::to_string(co_await res); // the call itself went on
    *off_loop += std::this_thread::get_id() == loop_thread ? 0 : 1;
    co_return outcome;
}

template <class Pool>
void cancelling_an_awaiting_task_stops_the_wait_not_the_call() {
    watchdog dog("cancel an awaiting task");
    Pool pool(1);
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    int off_loop = 0;
    CHECK(corio::run(cancel_while_waiting(&pool, &gate, &off_loop)) == "cancelled/81");
    CHECK(off_loop == 0);
}

template <class Pool>
corio::task<int> several_awaiters(Pool* pool, process_gate* gate) {
    auto res = pool->apply_async(gated_square, gate->path(), 4);
    auto a = corio::create_task(await_one(res));
    auto b = corio::create_task(await_one(res));
    co_await corio::yield_now(); // both suspend on the result
    gate->open();
    co_return co_await a + co_await b;
}

template <class Pool>
void several_tasks_of_one_loop_await_the_same_result() {
    watchdog dog("several awaiters");
    Pool pool(1);
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    CHECK(corio::run(several_awaiters(&pool, &gate)) == 32);
}

template <class Pool>
corio::task<std::string> await_terminated(Pool* pool, corio::async_result<int> res) {
    auto waiter = corio::create_task(await_one(res));
    co_await corio::yield_now(); // the waiter suspends on the result
    pool->terminate();
    try {
        (void)co_await waiter;
        co_return "value";
    } catch (const corio::pool_terminated&) {
        co_return "pool_terminated";
    }
}

template <class Pool>
void awaiting_a_result_of_a_terminated_pool_gets_pool_terminated() {
    watchdog dog("await a terminated pool");
    Pool pool(1);
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    auto res = pool.apply_async(gated_square, gate.path(), 2);
    REQUIRE(gate.wait_arrivals(1)); // the call runs when the pool is terminated
    CHECK(corio::run(await_terminated(&pool, res)) == "pool_terminated");
    CHECK_FALSE(res.ready());
    CHECK_THROWS_AS(res.get(), corio::pool_terminated);
    gate.open(); // a thread pool's worker still runs the call: let it return
    pool.join();
}

// ---- imap results taken item by item from a task (co_await next()) -----------------

inline std::vector<std::pair<std::string, int>> gated_items(const process_gate& gate, int n) {
    std::vector<std::pair<std::string, int>> items;
    for (int i = 0; i < n; ++i) {
        items.emplace_back(gate.path(), i);
    }
    return items;
}

/// Takes every item with next(); notes the ticks seen when the first item came.
inline corio::task<std::vector<int>> take_all_while_ticking(corio::imap_result<int>* r,
                                                            process_gate* gate, int* ticks,
                                                            int* ticks_at_first, int* off_loop) {
    const auto loop_thread = std::this_thread::get_id();
    auto ticker = corio::create_task(open_after_ticks(gate, 5, ticks));
    std::vector<int> got;
    while (std::optional<int> v = co_await r->next()) {
        if (got.empty()) {
            *ticks_at_first = *ticks;
        }
        *off_loop += std::this_thread::get_id() == loop_thread ? 0 : 1;
        got.push_back(*v);
    }
    co_await ticker;
    CHECK_FALSE((co_await r->next()).has_value()); // stays at the end
    co_return got;
}

template <class Pool>
void imap_next_yields_items_in_order_while_the_loop_ticks() {
    watchdog dog("imap next() while the loop ticks");
    Pool pool(2);
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    auto r = pool.imap(square_holding_back_zero, gated_items(gate, 6));
    int ticks = 0;
    int ticks_at_first = -1;
    int off_loop = 0;
    CHECK(corio::run(take_all_while_ticking(&r, &gate, &ticks, &ticks_at_first, &off_loop)) ==
          std::vector<int>{0, 1, 4, 9, 16, 25});
    CHECK(ticks_at_first == 5); // item 0 came only after the loop ticked 5 times meanwhile
    CHECK(off_loop == 0);       // resumed on the loop's thread every time
}

/// Takes the first item to finish (item 0 is held at the gate), then lets item 0 go
/// after 3 ticks of the loop and takes the rest; notes the ticks when item 0 came.
inline corio::task<std::vector<int>> take_unordered(corio::imap_result<int>* r, process_gate* gate,
                                                    int* ticks, int* ticks_at_zero) {
    std::vector<int> got;
    std::optional<int> first = co_await r->next();
    REQUIRE(first.has_value());
    got.push_back(*first);
    auto ticker = corio::create_task(open_after_ticks(gate, 3, ticks));
    while (std::optional<int> v = co_await r->next()) {
        if (*v == 0) {
            *ticks_at_zero = *ticks;
        }
        got.push_back(*v);
    }
    CHECK_FALSE((co_await r->next()).has_value());
    co_await ticker;
    co_return got;
}

template <class Pool>
void imap_unordered_next_yields_items_in_completion_order() {
    watchdog dog("imap_unordered next()");
    Pool pool(2);
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    auto r = pool.imap_unordered(square_holding_back_zero, gated_items(gate, 8));
    int ticks = 0;
    int ticks_at_zero = -1;
    const std::vector<int> got = corio::run(take_unordered(&r, &gate, &ticks, &ticks_at_zero));
    REQUIRE(got.size() == 8);
    CHECK(got.front() != 0);   // another worker's item finished first
    CHECK(ticks_at_zero == 3); // item 0 came after the loop ticked while next() waited
    std::vector<int> sorted = got;
    std::sort(sorted.begin(), sorted.end());
    CHECK(sorted == std::vector<int>{0, 1, 4, 9, 16, 25, 36, 49});
}

/// Values and the messages of the items that threw, in the order next() gave them.
inline corio::task<std::vector<std::string>> take_with_errors(corio::imap_result<int>* r) {
    std::vector<std::string> out;
    for (;;) {
        try {
            std::optional<int> v = co_await r->next();
            if (!v) {
                break;
            }
            out.push_back(std::to_string(*v));
        } catch (const std::invalid_argument& e) {
            out.emplace_back(e.what());
        }
    }
    co_return out;
}

template <class Pool>
void imap_next_rethrows_a_failed_item_and_goes_on() {
    watchdog dog("imap next() with failing items");
    Pool pool(2);
    auto ordered = pool.imap(fail_on_odd, iota_vector(6), 2);
    CHECK(corio::run(take_with_errors(&ordered)) ==
          std::vector<std::string>{"0", "odd: 1", "2", "odd: 3", "4", "odd: 5"});
    auto unordered = pool.imap_unordered(fail_on_odd, iota_vector(6));
    std::vector<std::string> got = corio::run(take_with_errors(&unordered));
    std::sort(got.begin(), got.end());
    CHECK(got == std::vector<std::string>{"0", "2", "4", "odd: 1", "odd: 3", "odd: 5"});
}

inline corio::task<std::optional<int>> next_of(corio::imap_result<int>* r) {
    co_return co_await r->next();
}

template <class Pool>
corio::task<std::string> next_when_terminated(Pool* pool, corio::imap_result<int>* r) {
    auto waiter = corio::create_task(next_of(r));
    co_await corio::yield_now(); // the waiter suspends in next()
    co_await corio::yield_now();
    pool->terminate();
    std::string outcome;
    try {
        (void)co_await waiter;
        outcome = "value";
    } catch (const corio::pool_terminated&) {
        outcome = "pool_terminated";
    }
    try {
        (void)co_await r->next();
        outcome += "/value";
    } catch (const corio::pool_terminated&) {
        outcome += "/pool_terminated"; // and again on a later call
    }
    co_return outcome;
}

template <class Pool>
void imap_next_of_a_terminated_pool_throws_pool_terminated() {
    watchdog dog("imap next() of a terminated pool");
    Pool pool(1);
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    auto r = pool.imap(square_holding_back_zero, gated_items(gate, 3));
    REQUIRE(gate.wait_arrivals(1)); // item 0 runs when the pool is terminated
    CHECK(corio::run(next_when_terminated(&pool, &r)) == "pool_terminated/pool_terminated");
    gate.open(); // a thread pool's worker still runs the call: let it return
    pool.join();
}

inline corio::task<std::string> cancel_next_then_go_on(process_gate* gate,
                                                       corio::imap_result<int>* r) {
    std::string outcome = co_await cancel_once_suspended(corio::create_task(next_of(r)));
    gate->open();
    // Nothing was taken: the next call yields item 0, then the rest.
    while (std::optional<int> v = co_await r->next()) {
        outcome += "/" + std::to_string(*v);
    }
    co_return outcome;
}

inline corio::task<std::optional<int>> await_next(corio::imap_result<int>::next_awaiter next) {
    co_return co_await next;
}

/// A next() that outlives its imap_result: the awaiter holds the shared state itself.
inline corio::task<int>
next_after_the_result_is_dropped(process_gate* gate,
                                 std::optional<corio::imap_result<int>>* holder) {
    auto waiter = corio::create_task(await_next((*holder)->next()));
    co_await corio::yield_now(); // the waiter suspends in next()
    co_await corio::yield_now();
    holder->reset(); // the result is dropped while its next() waits
    gate->open();
    std::optional<int> v = co_await waiter;
    co_return v ? *v : -1;
}

template <class Pool>
void cancelling_a_task_in_imap_next_takes_no_item() {
    watchdog dog("cancel in imap next()");
    Pool pool(1);
    {
        process_gate gate; // after the pool: destroyed (opened) before the pool joins
        auto r = pool.imap(square_holding_back_zero, gated_items(gate, 3));
        CHECK(corio::run(cancel_next_then_go_on(&gate, &r)) == "cancelled/0/1/4");
    }
    {
        process_gate gate;
        std::optional<corio::imap_result<int>> holder =
            pool.imap_unordered(square_holding_back_zero, gated_items(gate, 1));
        CHECK(corio::run(next_after_the_result_is_dropped(&gate, &holder)) == 0);
    }
}

inline corio::task<int> take_into(corio::imap_result<int>* r, std::vector<int>* out) {
    int n = 0;
    while (std::optional<int> v = co_await r->next()) {
        out->push_back(*v);
        ++n;
        co_await corio::yield_now(); // let the other task in
    }
    co_return n;
}

inline corio::task<std::vector<int>> two_takers(corio::imap_result<int>* r) {
    std::vector<int> got;
    auto [a, b] = co_await corio::gather(take_into(r, &got), take_into(r, &got));
    CHECK(a + b == static_cast<int>(got.size()));
    co_return got;
}

template <class Pool>
void imap_next_from_two_tasks_gives_each_item_once() {
    watchdog dog("imap next() from two tasks");
    Pool pool(2);
    for (bool ordered : {true, false}) {
        auto r = ordered ? pool.imap(square, iota_vector(40), 3)
                         : pool.imap_unordered(square, iota_vector(40), 3);
        std::vector<int> got = corio::run(two_takers(&r));
        if (ordered) {
            CHECK(std::is_sorted(got.begin(), got.end())); // taken in input order
        }
        std::sort(got.begin(), got.end());
        std::vector<int> want;
        for (int i = 0; i < 40; ++i) {
            want.push_back(i * i);
        }
        CHECK(got == want);
    }
}

inline corio::task<int> count_items(corio::imap_result<int>* r) {
    int n = 0;
    while (co_await r->next()) {
        ++n;
    }
    CHECK_FALSE((co_await r->next()).has_value());
    co_return n;
}

template <class Pool>
void imap_next_of_an_empty_input_ends_at_once() {
    Pool pool(1);
    auto ordered = pool.imap(square, std::vector<int>{});
    CHECK(corio::run(count_items(&ordered)) == 0);
    auto unordered = pool.imap_unordered(square, std::vector<int>{}, 3);
    CHECK(corio::run(count_items(&unordered)) == 0);
}

template <class Pool>
void imap_next_and_iteration_do_not_mix() {
    Pool pool(1);
    auto iterated = pool.imap(square, iota_vector(3));
    auto it = iterated.begin();
    CHECK(*it == 0);
    CHECK_THROWS_AS(corio::run(next_of(&iterated)), corio::invalid_state_error);
    auto awaited = pool.imap_unordered(square, iota_vector(3));
    CHECK(corio::run(count_items(&awaited)) == 3);
    CHECK_THROWS_AS(awaited.begin(), corio::invalid_state_error);
}

// ---- pool results in gather, wait_any and as_completed ------------------------------

template <class Pool>
corio::task<std::string> gather_results(Pool* pool) {
    auto [a, b] = co_await corio::gather(pool->apply_async(square, 3),
                                         pool->apply_async(repeat, std::string("ab"), 2));
    std::string out = std::to_string(a) + "," + b;
    std::vector<corio::async_result<int>> rs;
    for (int i = 1; i <= 3; ++i) {
        rs.push_back(pool->apply_async(square, i));
    }
    for (int v : co_await corio::gather(rs)) {
        out += "," + std::to_string(v);
    }
    try {
        (void)co_await corio::gather(pool->apply_async(square, 2),
                                     pool->apply_async(fail_on_odd, 3));
        out += ",no error";
    } catch (const std::invalid_argument& e) {
        out += std::string(",") + e.what();
    }
    co_return out;
}

template <class Pool>
void gather_accepts_async_results() {
    watchdog dog("gather of async_results");
    Pool pool(2);
    CHECK(corio::run(gather_results(&pool)) == "9,abab,1,4,9,odd: 3");
}

template <class Pool>
corio::task<std::string> wait_any_results(Pool* pool, process_gate* gate) {
    auto held = pool->apply_async(gated_square, gate->path(), 7);
    auto [i, v] = co_await corio::wait_any(held, pool->apply_async(square, 5));
    std::string out = std::to_string(i) + ":" + std::to_string(v);
    std::vector<corio::async_result<int>> rs{held, pool->apply_async(add, 1, 2)};
    auto [j, w] = co_await corio::wait_any(rs);
    out += "," + std::to_string(j) + ":" + std::to_string(w);
    try {
        (void)co_await corio::wait_any(held, pool->apply_async(always_fail, 4));
        out += ",no error";
    } catch (const std::out_of_range& e) {
        out += std::string(",") + e.what();
    }
    CHECK_FALSE(held.ready()); // the losers' waits were cancelled, not the call
    gate->open();
    out += "," + std::to_string(co_await held);
    co_return out;
}

template <class Pool>
void wait_any_accepts_async_results() {
    watchdog dog("wait_any of async_results");
    Pool pool(2);
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    CHECK(corio::run(wait_any_results(&pool, &gate)) == "1:25,1:3,bad item 4,49");
}

template <class Pool>
corio::task<std::vector<std::string>> as_completed_results(Pool* pool, process_gate* gate) {
    std::vector<corio::async_result<int>> rs{pool->apply_async(gated_square, gate->path(), 6),
                                             pool->apply_async(square, 3),
                                             pool->apply_async(fail_on_odd, 1)};
    std::vector<std::string> out;
    auto gen = corio::as_completed(rs);
    while (auto o = co_await gen.next()) {
        if (o->has_value()) {
            out.push_back(std::to_string(o->value()));
        } else {
            try {
                (void)o->value();
            } catch (const std::invalid_argument& e) {
                out.emplace_back(e.what());
            }
        }
        if (out.size() == 2) {
            gate->open(); // the held call can finish only now: it comes last
        }
    }
    co_return out;
}

template <class Pool>
void as_completed_accepts_async_results() {
    watchdog dog("as_completed of async_results");
    Pool pool(2);
    process_gate gate; // after the pool: destroyed (opened) before the pool joins
    std::vector<std::string> got = corio::run(as_completed_results(&pool, &gate));
    REQUIRE(got.size() == 3);
    CHECK(got[2] == "36");
    std::sort(got.begin(), got.end() - 1);
    CHECK(got == std::vector<std::string>{"9", "odd: 1", "36"});
}

// ---- initializers with arguments (Python's initargs) ---------------------------------

/// What a worker's initializer was given: per thread in a thread pool, per process in
/// a process pool (a worker process has one thread running calls).
inline thread_local std::string init_label;
inline thread_local int init_number = 0;

/// An initializer with arguments: announces itself at `gate`, then remembers the rest.
inline void remember_init_args(std::string gate, std::string label, int number) {
    process_gate::arrive(gate);
    init_label = std::move(label);
    init_number = number;
}
inline std::string initialized_as(int) {
    return init_label + ":" + std::to_string(init_number);
}
inline void throw_from_init(std::string what, int code) {
    throw std::runtime_error(what + " " + std::to_string(code));
}

template <class Pool>
void an_initializer_with_arguments_runs_in_every_worker() {
    watchdog dog("initializer with arguments");
    process_gate gate;
    gate.open(); // nothing waits here: the gate only counts arrivals
    Pool pool(3, corio::pool_options{.initializer = {remember_init_args, gate.path(), "db", 7}});
    CHECK(gate.wait_arrivals(3)); // each of the 3 workers ran it
    const auto seen = pool.map(initialized_as, iota_vector(30), 1);
    CHECK(seen == std::vector<std::string>(30, "db:7")); // every call saw the arguments
}

template <class Pool>
void a_throwing_initializer_with_arguments_fails_the_constructor() {
    watchdog dog("throwing initializer with arguments");
    CHECK_THROWS_AS(Pool(2, corio::pool_options{.initializer = {throw_from_init, "bad init", 3}}),
                    std::runtime_error);
    CHECK_THROWS_WITH(
        Pool(1, corio::pool_options{.initializer = {throw_from_init, std::string("bad init"), 4}}),
        "bad init 4");
}

// Arguments the function cannot take are rejected at compile time.
static_assert(
    std::is_constructible_v<corio::pool_initializer, void (*)(std::string, int), const char*, int>);
static_assert(
    !std::is_constructible_v<corio::pool_initializer, void (*)(std::string, int), int, int>);
static_assert(
    !std::is_constructible_v<corio::pool_initializer, void (*)(std::string, int), std::string>);
static_assert(!std::is_constructible_v<corio::pool_initializer, int, int>);

// ---- lifecycle rules of basic_pool, the same for every backend ----------------------

template <class Pool>
void join_from_a_callback_throws_invalid_state() {
    Pool pool(2);
    std::atomic<bool> closed{false};
    std::atomic<int> outcome{0}; // 1: invalid_state_error, 2: returned, 3: another error
    auto r = pool.apply_async(square, 3, corio::callback([&](int) {
                                  while (!closed.load()) {
                                      std::this_thread::yield(); // until the pool is closed
                                  }
                                  try {
                                      pool.join();
                                      outcome.store(2);
                                  } catch (const corio::invalid_state_error&) {
                                      outcome.store(1);
                                  } catch (...) {
                                      outcome.store(3);
                                  }
                              }));
    pool.close();
    closed.store(true);
    CHECK(r.get() == 9);
    CHECK(outcome.load() == 1);
    pool.join();
}

template <class Pool>
void terminate_from_a_callback_returns_and_join_ends_the_pool() {
    Pool pool(2);
    std::atomic<bool> returned{false};
    auto r = pool.apply_async(square, 3, corio::callback([&](int) {
                                  pool.terminate();
                                  pool.terminate(); // idempotent
                                  returned.store(true);
                              }));
    r.wait();
    pool.join();
    CHECK(returned.load());
    CHECK_THROWS_AS(pool.apply(square, 1), corio::pool_not_running);
}

} // namespace pool_semantics
