#include "counting.hpp"
#include "pool_semantics.hpp"

#include <corio/corio.hpp>
#include <corio/pool.hpp>
#include <corio/thread_pool.hpp>
#include <corio/to_thread.hpp>

#include <catch2/catch.hpp>

#include <sched.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
namespace ps = pool_semantics;

namespace {

/// A one-shot gate the pool's workers wait on; opened by the test thread.
/// Bounded wait: if a bug keeps it shut, the call returns false instead of hanging.
class gate {
public:
    void open() {
        {
            std::lock_guard lock(mutex_);
            open_ = true;
        }
        cv_.notify_all();
    }
    bool pass() {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, 20s, [&] { return open_; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool open_ = false;
};

/// Counts arrivals; the test thread waits until `n` arrived (bounded).
class arrivals {
public:
    void arrive() {
        {
            std::lock_guard lock(mutex_);
            ++count_;
        }
        cv_.notify_all();
    }
    bool wait_for_count(int n) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, 20s, [&] { return count_ >= n; });
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int count_ = 0;
};

int gated_square(gate* g, arrivals* started, int x) {
    if (started != nullptr) {
        started->arrive();
    }
    if (!g->pass()) {
        return -1;
    }
    return x * x;
}

struct custom_error : std::runtime_error {
    custom_error(std::string what, int code) : std::runtime_error(std::move(what)), code(code) {}
    int code;
};

} // namespace

// ---------------------------------------------------------------------------
// The interface shared with process_pool.

static_assert(corio::pool_like<corio::thread_pool>, "thread_pool must satisfy pool_like");
static_assert(std::ranges::input_range<corio::imap_result<int>>);
static_assert(std::is_same_v<decltype(std::declval<corio::thread_pool&>().map_async(
                                 ps::square, std::declval<std::vector<int>&>())),
                             corio::async_result<std::vector<int>>>);

TEST_CASE("thread_pool satisfies pool_like, checked at compile time", "[thread_pool][static]") {
    STATIC_REQUIRE(corio::pool_like<corio::thread_pool>);
    STATIC_REQUIRE_FALSE(corio::pool_like<int>);
}

// ---------------------------------------------------------------------------
// Python Pool semantics (tests/pool_semantics.hpp).

TEST_CASE("apply returns the value of the call", "[thread_pool][apply]") {
    ps::apply_returns_the_value_of_the_call<corio::thread_pool>();
}
TEST_CASE("an apply_async result is ready and successful after get", "[thread_pool][apply]") {
    ps::apply_async_result_is_ready_and_successful_after_get<corio::thread_pool>();
}
TEST_CASE("an exception from a call keeps its type and message", "[thread_pool][error]") {
    ps::an_exception_keeps_its_type_and_message<corio::thread_pool>();
}
TEST_CASE("a callback runs before its result becomes ready", "[thread_pool][callback]") {
    ps::callbacks_run_before_the_result_is_ready<corio::thread_pool>();
}
TEST_CASE("callbacks run on one result thread, one at a time", "[thread_pool][callback]") {
    ps::callbacks_run_on_one_thread_one_at_a_time<corio::thread_pool>();
}
TEST_CASE("the error callback receives the exception of a failed call", "[thread_pool][callback]") {
    ps::the_error_callback_receives_the_exception<corio::thread_pool>();
}
TEST_CASE("a throwing callback fails its result and the pool keeps serving",
          "[thread_pool][callback]") {
    ps::a_throwing_callback_fails_the_result_and_the_pool_goes_on<corio::thread_pool>();
}
TEST_CASE("map returns results in input order for any chunksize", "[thread_pool][map]") {
    ps::map_returns_results_in_input_order<corio::thread_pool>();
}
TEST_CASE("map_async calls back with the whole vector", "[thread_pool][map][callback]") {
    ps::map_async_calls_back_with_the_whole_vector<corio::thread_pool>();
}
TEST_CASE("a map of an empty range is empty at once", "[thread_pool][map]") {
    ps::map_of_an_empty_range_is_empty_at_once<corio::thread_pool>();
}
TEST_CASE("map fails with an exception of a call", "[thread_pool][map][error]") {
    ps::map_fails_with_an_exception_of_a_call<corio::thread_pool>();
}
TEST_CASE("a chunksize below one is an error", "[thread_pool][map][error]") {
    ps::a_chunksize_below_one_is_an_error<corio::thread_pool>();
}
TEST_CASE("starmap unpacks each tuple into the call", "[thread_pool][map]") {
    ps::starmap_unpacks_each_tuple<corio::thread_pool>();
}
TEST_CASE("imap yields results in input order", "[thread_pool][imap]") {
    ps::imap_yields_results_in_input_order<corio::thread_pool>();
}
TEST_CASE("imap_unordered yields every result exactly once", "[thread_pool][imap]") {
    ps::imap_unordered_yields_every_result_once<corio::thread_pool>();
}
TEST_CASE("imap_unordered with one worker yields input order", "[thread_pool][imap]") {
    ps::imap_unordered_with_one_worker_yields_input_order<corio::thread_pool>();
}
TEST_CASE("imap rethrows at the failing item and the iteration goes on",
          "[thread_pool][imap][error]") {
    ps::imap_rethrows_at_the_failing_item_and_goes_on<corio::thread_pool>();
}
TEST_CASE("calls after close throw pool_not_running", "[thread_pool][close]") {
    ps::calls_after_close_throw_pool_not_running<corio::thread_pool>();
}
TEST_CASE("join while the pool is running throws", "[thread_pool][join]") {
    ps::join_while_running_throws<corio::thread_pool>();
}
TEST_CASE("join from a callback throws invalid_state_error", "[thread_pool][join]") {
    ps::join_from_a_callback_throws_invalid_state<corio::thread_pool>();
}
TEST_CASE("terminate from a callback returns, and join then ends the pool",
          "[thread_pool][terminate]") {
    ps::terminate_from_a_callback_returns_and_join_ends_the_pool<corio::thread_pool>();
}
TEST_CASE("close then join finishes every submitted call and callback", "[thread_pool][join]") {
    ps::close_then_join_finishes_every_submitted_call<corio::thread_pool>();
}
TEST_CASE("the destructor closes and joins, losing no submitted work", "[thread_pool][join]") {
    ps::the_destructor_loses_no_submitted_work<corio::thread_pool>();
}
TEST_CASE("a pool with zero workers is refused", "[thread_pool][error]") {
    ps::a_pool_needs_at_least_one_worker<corio::thread_pool>();
}
TEST_CASE("on_progress reports every chunk before the map is ready",
          "[thread_pool][map][progress]") {
    ps::on_progress_reports_each_chunk_before_the_map_is_ready<corio::thread_pool>();
}
TEST_CASE("a throwing progress callback fails the map", "[thread_pool][map][progress]") {
    ps::a_throwing_progress_callback_fails_the_map<corio::thread_pool>();
}
TEST_CASE("map reports its first exception only after every chunk finished",
          "[thread_pool][map][error]") {
    ps::map_reports_its_first_error_only_after_every_chunk_finished<corio::thread_pool>();
}
TEST_CASE("get with a timeout throws timeout_error while the call runs",
          "[thread_pool][async_result]") {
    ps::get_with_a_timeout_throws_timeout_error_while_the_call_runs<corio::thread_pool>();
}
TEST_CASE("results report valid(), get() && moves the value out, imap results know their size",
          "[thread_pool][async_result][imap]") {
    ps::result_handles_report_validity_and_sizes<corio::thread_pool>();
}
TEST_CASE("imap_unordered yields results in the order they finish", "[thread_pool][imap]") {
    ps::imap_unordered_yields_results_in_completion_order<corio::thread_pool>();
}
TEST_CASE("8 threads submitting at once get every result exactly once", "[thread_pool][stress]") {
    ps::concurrent_submitters_get_every_result_exactly_once<corio::thread_pool>(8, 2000);
}

// ---------------------------------------------------------------------------
// Thread-pool specifics.

TEST_CASE("cpu_count follows the affinity mask: a thread pinned to one CPU sees 1",
          "[thread_pool][cpu_count]") {
    cpu_set_t allowed;
    CPU_ZERO(&allowed);
    REQUIRE(sched_getaffinity(0, sizeof allowed, &allowed) == 0);
    int one_cpu = -1;
    for (int c = 0; c < CPU_SETSIZE && one_cpu < 0; ++c) {
        if (CPU_ISSET(c, &allowed)) {
            one_cpu = c;
        }
    }
    REQUIRE(one_cpu >= 0);
    int pinned = -1;
    std::size_t seen = 0;
    std::thread t([&] {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(one_cpu, &set);
        pinned = sched_setaffinity(0, sizeof set, &set); // this thread only
        seen = corio::cpu_count();
    });
    t.join();
    REQUIRE(pinned == 0);
    CHECK(seen == 1);
    CHECK(corio::cpu_count() >= 1); // this thread keeps its own mask
    corio::thread_pool pool;
    CHECK(pool.size() == corio::cpu_count());
}

TEST_CASE("the default map chunksize is ceil(n / (4 * workers))", "[thread_pool][map]") {
    CHECK(corio::detail::default_chunksize(100, 2) == 13);
    CHECK(corio::detail::default_chunksize(8, 2) == 1);
    CHECK(corio::detail::default_chunksize(9, 2) == 2);
    CHECK(corio::detail::default_chunksize(1, 64) == 1);
    CHECK(corio::detail::default_chunksize(1'000'000, 4) == 62'500);
}

TEST_CASE("an exception keeps its own derived type across the pool", "[thread_pool][error]") {
    corio::thread_pool pool(2);
    auto res = pool.apply_async([] { throw custom_error("custom", 42); });
    try {
        res.get();
        FAIL("get did not throw");
    } catch (const custom_error& e) {
        CHECK(e.code == 42);
        CHECK(std::string(e.what()) == "custom");
    }
}

TEST_CASE("apply_async copies its arguments and std::ref shares them", "[thread_pool][apply]") {
    corio::thread_pool pool(2);
    std::string s = "abc";
    auto copied = pool.apply_async(
        [](std::string v) {
            v += "!";
            return v;
        },
        s);
    CHECK(copied.get() == "abc!");
    CHECK(s == "abc");
    pool.apply([](std::string& v) { v += "?"; }, std::ref(s));
    CHECK(s == "abc?");
}

TEST_CASE("void calls give async_result<void> and maps of monostate", "[thread_pool][apply]") {
    corio::thread_pool pool(2);
    std::atomic<int> n{0};
    std::atomic<bool> called{false};
    auto res = pool.apply_async([&] { n.fetch_add(1); }, corio::callback([&] { called = true; }));
    res.get();
    CHECK(called.load());
    const std::vector<std::monostate> out =
        pool.map([&](int) { n.fetch_add(1); }, ps::iota_vector(10));
    CHECK(out.size() == 10);
    CHECK(n.load() == 11);
}

TEST_CASE("map stores bool and non-default-constructible results", "[thread_pool][map]") {
    corio::thread_pool pool(3);
    const auto even = pool.map([](int x) { return x % 2 == 0; }, ps::iota_vector(1000), 3);
    REQUIRE(even.size() == 1000);
    for (std::size_t i = 0; i < even.size(); ++i) {
        REQUIRE(even[i] == (i % 2 == 0));
    }
    struct boxed {
        explicit boxed(int v) : value(v) {}
        int value;
    };
    const auto boxes = pool.map([](int x) { return boxed(x); }, ps::iota_vector(100), 7);
    REQUIRE(boxes.size() == 100);
    CHECK(boxes[99].value == 99);
    auto owned = pool.map([](int x) { return std::make_unique<int>(x); }, ps::iota_vector(10));
    CHECK(*owned[9] == 9);
}

TEST_CASE("get() on an rvalue result moves a move-only value out", "[thread_pool][async_result]") {
    corio::thread_pool pool(1);
    std::unique_ptr<int> p = pool.apply_async([] { return std::make_unique<int>(5); }).get();
    REQUIRE(p != nullptr);
    CHECK(*p == 5);
    auto res = pool.apply_async([] { return std::make_unique<int>(6); });
    std::unique_ptr<int> q = std::move(res).get();
    CHECK(*q == 6);
    CHECK(res.valid()); // the handle stays; its value was moved out
}

TEST_CASE("results and captured state are destroyed, none leaks", "[thread_pool][lifetime]") {
    using corio_test::counted;
    {
        corio::thread_pool pool(2);
        counted c;
        auto a = pool.apply_async([c] { return counted{}; });
        (void)a.get();
        auto m = pool.map([c](int) { return counted{}; }, ps::iota_vector(50), 4);
        CHECK(m.size() == 50);
        for (auto& x : pool.imap([c](int) { return counted{}; }, ps::iota_vector(20), 3)) {
            (void)x;
        }
        auto dropped = pool.imap_unordered([c](int) { return counted{}; }, ps::iota_vector(20));
        (void)dropped;
    }
    CHECK(counted::live.load() == 0);
}

TEST_CASE("the initializer runs once in every worker before any call",
          "[thread_pool][initializer]") {
    static std::atomic<int> initialized{0};
    static thread_local bool ready = false;
    initialized = 0;
    {
        corio::thread_pool pool(3, corio::pool_options{.initializer = [] {
                                    ready = true;
                                    initialized.fetch_add(1);
                                }});
        CHECK(initialized.load() == 3);
        const auto flags = pool.map([](int) { return ready; }, ps::iota_vector(100), 1);
        CHECK(std::all_of(flags.begin(), flags.end(), [](bool b) { return b; }));
    }
    CHECK(initialized.load() == 3);
}

TEST_CASE("a throwing initializer makes the constructor throw", "[thread_pool][initializer]") {
    auto make = [] {
        corio::thread_pool pool(
            2, corio::pool_options{.initializer = [] { throw custom_error("init failed", 7); }});
    };
    CHECK_THROWS_AS(make(), custom_error);
}

TEST_CASE("8 threads submit 100,000 tasks and every result is counted exactly once",
          "[thread_pool][stress]") {
    constexpr int threads = 8;
    constexpr int total = 100'000;
    constexpr int per_thread = total / threads;
    corio::thread_pool pool(4);
    std::vector<std::atomic<int>> ran(total);
    std::vector<std::atomic<int>> called_back(total);
    std::atomic<int> wrong_values{0};
    std::vector<std::thread> submitters;
    for (int t = 0; t < threads; ++t) {
        submitters.emplace_back([&, t] {
            std::vector<corio::async_result<int>> results;
            results.reserve(per_thread);
            for (int i = t * per_thread; i < (t + 1) * per_thread; ++i) {
                if (i % 2 == 0) {
                    results.push_back(pool.apply_async(
                        [&ran](int k) {
                            ran[static_cast<std::size_t>(k)].fetch_add(1,
                                                                       std::memory_order_relaxed);
                            return k;
                        },
                        i));
                } else {
                    results.push_back(pool.apply_async(
                        [&ran](int k) {
                            ran[static_cast<std::size_t>(k)].fetch_add(1,
                                                                       std::memory_order_relaxed);
                            return k;
                        },
                        i, corio::callback([&called_back](int k) {
                            called_back[static_cast<std::size_t>(k)].fetch_add(
                                1, std::memory_order_relaxed);
                        })));
                }
            }
            for (int i = 0; i < per_thread; ++i) {
                if (results[static_cast<std::size_t>(i)].get() != t * per_thread + i) {
                    wrong_values.fetch_add(1);
                }
            }
        });
    }
    for (auto& t : submitters) {
        t.join();
    }
    CHECK(wrong_values.load() == 0);
    int bad = 0;
    for (int i = 0; i < total; ++i) {
        const auto k = static_cast<std::size_t>(i);
        if (ran[k].load() != 1 || called_back[k].load() != (i % 2 == 0 ? 0 : 1)) {
            ++bad;
        }
    }
    CHECK(bad == 0);
}

TEST_CASE("terminate while calls run: unfinished results never complete",
          "[thread_pool][terminate]") {
    corio::thread_pool pool(2);
    gate g;
    arrivals started;
    std::atomic<bool> callback_ran{false};
    auto done = pool.apply_async(ps::square, 5);
    REQUIRE(done.get() == 25);
    auto running1 = pool.apply_async(gated_square, &g, &started, 1);
    auto running2 = pool.apply_async(gated_square, &g, &started, 2,
                                     corio::callback([&](int) { callback_ran = true; }));
    auto queued = pool.apply_async(ps::square, 3);
    auto mapped = pool.map_async(ps::square, ps::iota_vector(100));
    auto lazy = pool.imap(ps::square, ps::iota_vector(100));
    REQUIRE(started.wait_for_count(2)); // both workers are busy
    pool.terminate();
    for (auto* r : {&running1, &running2, &queued}) {
        CHECK_FALSE(r->ready());
        r->wait(); // returns instead of hanging
        CHECK_THROWS_AS(r->get(), corio::pool_terminated);
        CHECK_FALSE(r->wait(1ms));
    }
    CHECK_THROWS_AS(mapped.get(), corio::pool_terminated);
    CHECK_THROWS_AS(lazy.begin(), corio::pool_terminated);
    CHECK(done.get() == 25); // finished before terminate: still there
    CHECK_THROWS_AS(pool.apply(ps::square, 1), corio::pool_not_running);
    g.open(); // let the running calls return; their results are discarded
    pool.join();
    CHECK_FALSE(running1.ready());
    CHECK_FALSE(running2.ready());
    CHECK_FALSE(callback_ran.load());
    CHECK_THROWS_AS(running1.get(), corio::pool_terminated);
}

TEST_CASE("close lets queued work finish; terminate after close drops it",
          "[thread_pool][terminate]") {
    corio::thread_pool pool(1);
    gate g;
    arrivals started;
    auto running = pool.apply_async(gated_square, &g, &started, 4);
    auto queued = pool.apply_async(ps::square, 5);
    REQUIRE(started.wait_for_count(1));
    pool.close();
    pool.terminate();
    g.open();
    pool.join();
    CHECK_THROWS_AS(queued.get(), corio::pool_terminated);
    CHECK_THROWS_AS(running.get(), corio::pool_terminated);
}

TEST_CASE("to_thread runs on a default pool of min(32, cores + 4) threads",
          "[thread_pool][to_thread]") {
    CHECK(corio::detail::default_blocking_pool().size() ==
          std::min<std::size_t>(32, corio::cpu_count() + 4));
    auto res = corio::to_thread([](int a, int b) { return a * b; }, 6, 7);
    CHECK(res.get() == 42);
    CHECK(corio::to_thread([] { return std::this_thread::get_id(); }).get() !=
          std::this_thread::get_id());
}

// ---------------------------------------------------------------------------
// Awaiting pool results from an event loop.

namespace {

/// Ticks counted by a timer task; pool calls wait until enough ticks happened,
/// which can only be if the loop kept running while a task awaited them.
class tick_counter {
public:
    void tick() {
        {
            std::lock_guard lock(mutex_);
            ++ticks_;
        }
        cv_.notify_all();
    }
    bool wait_ticks(int n) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, 20s, [&] { return ticks_ >= n; });
    }
    int ticks() {
        std::lock_guard lock(mutex_);
        return ticks_;
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int ticks_ = 0;
};

int square_after_ticks(tick_counter* ticks, int x) {
    return ticks->wait_ticks(3) ? x * x : -1;
}

corio::task<> ticker(tick_counter* ticks, const std::atomic<bool>* stop) {
    while (!stop->load()) {
        co_await corio::sleep(1ms);
        ticks->tick();
    }
}

corio::task<long> await_results(corio::thread_pool* pool, tick_counter* ticks,
                                std::atomic<bool>* stop, int* off_loop) {
    const auto loop_thread = std::this_thread::get_id();
    std::vector<corio::async_result<int>> results;
    for (int i = 0; i < 1000; ++i) {
        results.push_back(pool->apply_async(square_after_ticks, ticks, i));
    }
    long sum = 0;
    for (auto& r : results) {
        sum += co_await r;
        *off_loop += std::this_thread::get_id() == loop_thread ? 0 : 1;
    }
    stop->store(true);
    co_return sum;
}

corio::task<long> await_while_ticking(corio::thread_pool* pool, tick_counter* ticks,
                                      int* off_loop) {
    std::atomic<bool> stop{false};
    auto tick_task = corio::create_task(ticker(ticks, &stop));
    const long sum = co_await await_results(pool, ticks, &stop, off_loop);
    co_await tick_task;
    co_return sum;
}

corio::task<int> await_one(corio::async_result<int> res) {
    co_return co_await res;
}

corio::task<int> cancel_races_completion(corio::thread_pool* pool, int rounds) {
    int finished = 0;
    for (int i = 0; i < rounds; ++i) {
        auto waiter = corio::create_task(await_one(pool->apply_async(ps::square, i)));
        if (i % 3 != 0) {
            co_await corio::yield_now();
        }
        waiter.cancel();
        try {
            if (co_await waiter == i * i) {
                ++finished;
            }
        } catch (const corio::cancelled_error&) {
            ++finished;
        }
    }
    co_return finished;
}

corio::task<std::string> await_to_thread(tick_counter* ticks, int* off_loop) {
    const auto loop_thread = std::this_thread::get_id();
    auto on_loop = [&] { *off_loop += std::this_thread::get_id() == loop_thread ? 0 : 1; };
    std::atomic<bool> stop{false};
    auto tick_task = corio::create_task(ticker(ticks, &stop));
    corio::thread_pool pool(1);
    const int a = co_await corio::to_thread(square_after_ticks, ticks, 5);
    on_loop();
    const int b = co_await corio::run_in_executor(pool, square_after_ticks, ticks, 6);
    on_loop();
    const int c = co_await corio::get_running_loop().run_in_executor(
        nullptr, [](int x) { return x + 1; }, 6);
    on_loop();
    auto moved = corio::to_thread([] { return std::make_unique<std::string>("moved"); });
    std::unique_ptr<std::string> p = co_await std::move(moved);
    on_loop();
    stop.store(true);
    co_await tick_task;
    co_return std::to_string(a) + " " + std::to_string(b) + " " + std::to_string(c) + " " + *p;
}

corio::task<int> await_and_signal(corio::async_result<int> res, arrivals* registered) {
    auto waiter = corio::create_task(await_one(res));
    co_await corio::yield_now(); // the waiter suspends on the result
    co_await corio::yield_now();
    registered->arrive();
    co_return co_await waiter;
}

corio::task<std::string> await_from_second_loop(corio::async_result<int> res) {
    try {
        (void)co_await res;
        co_return "value";
    } catch (const corio::invalid_state_error&) {
        co_return "invalid_state_error";
    }
}

} // namespace

TEST_CASE("a loop task awaits 1,000 pool results while a timer task keeps ticking",
          "[thread_pool][loop]") {
    corio::thread_pool pool(4);
    tick_counter ticks;
    long expected = 0;
    for (long i = 0; i < 1000; ++i) {
        expected += i * i;
    }
    int off_loop = 0;
    CHECK(corio::run(await_while_ticking(&pool, &ticks, &off_loop)) == expected);
    CHECK(ticks.ticks() >= 3);
    CHECK(off_loop == 0); // every resumption on the loop's thread
}

TEST_CASE("a loop task awaits a result that needs the loop to tick, resumed on the loop",
          "[thread_pool][loop]") {
    ps::a_loop_task_awaits_a_result_while_the_loop_keeps_ticking<corio::thread_pool>();
}

TEST_CASE("cancelling a task that awaits a pool result stops the wait, not the call",
          "[thread_pool][loop][cancel]") {
    ps::cancelling_an_awaiting_task_stops_the_wait_not_the_call<corio::thread_pool>();
}

TEST_CASE("cancellation racing a completion never resumes a waiter twice",
          "[thread_pool][loop][cancel]") {
    corio::thread_pool pool(2);
    CHECK(corio::run(cancel_races_completion(&pool, 2000)) == 2000);
}

TEST_CASE("several tasks of one loop await the same result", "[thread_pool][loop]") {
    ps::several_tasks_of_one_loop_await_the_same_result<corio::thread_pool>();
}

TEST_CASE("a thread pool initializer with arguments may capture and take any argument",
          "[thread_pool][initializer]") {
    std::atomic<int> calls{0};
    auto shared = std::make_shared<int>(11); // not serializable: fine in threads
    {
        corio::thread_pool pool(
            3, corio::pool_options{.initializer = {[&calls](const std::shared_ptr<int>& p, int k) {
                                                       calls.fetch_add(*p + k);
                                                   },
                                                   shared, 1}});
        CHECK(calls.load() == 3 * 12); // the constructor waited for every worker
    }
    CHECK(shared.use_count() == 1); // the pool's copy went with its options
}

TEST_CASE("a task awaiting a result of a terminated pool gets pool_terminated",
          "[thread_pool][loop][terminate]") {
    ps::awaiting_a_result_of_a_terminated_pool_gets_pool_terminated<corio::thread_pool>();
}

TEST_CASE("an initializer with arguments runs in every worker and calls see them",
          "[thread_pool][initializer]") {
    ps::an_initializer_with_arguments_runs_in_every_worker<corio::thread_pool>();
}

TEST_CASE("a throwing initializer with arguments makes the constructor throw it",
          "[thread_pool][initializer]") {
    ps::a_throwing_initializer_with_arguments_fails_the_constructor<corio::thread_pool>();
}

TEST_CASE("imap next() yields items in input order while the loop ticks",
          "[thread_pool][imap][loop]") {
    ps::imap_next_yields_items_in_order_while_the_loop_ticks<corio::thread_pool>();
}

TEST_CASE("imap_unordered next() yields items in completion order", "[thread_pool][imap][loop]") {
    ps::imap_unordered_next_yields_items_in_completion_order<corio::thread_pool>();
}

TEST_CASE("imap next() rethrows a failed item and the iteration goes on",
          "[thread_pool][imap][loop][error]") {
    ps::imap_next_rethrows_a_failed_item_and_goes_on<corio::thread_pool>();
}

TEST_CASE("imap next() of a terminated pool throws pool_terminated",
          "[thread_pool][imap][loop][terminate]") {
    ps::imap_next_of_a_terminated_pool_throws_pool_terminated<corio::thread_pool>();
}

TEST_CASE("cancelling a task in imap next() takes no item; a next() outlives its result",
          "[thread_pool][imap][loop][cancel]") {
    ps::cancelling_a_task_in_imap_next_takes_no_item<corio::thread_pool>();
}

TEST_CASE("imap next() of an empty input ends at once", "[thread_pool][imap][loop]") {
    ps::imap_next_of_an_empty_input_ends_at_once<corio::thread_pool>();
}

TEST_CASE("imap next() from two tasks of one loop gives each item once",
          "[thread_pool][imap][loop]") {
    ps::imap_next_from_two_tasks_gives_each_item_once<corio::thread_pool>();
}

TEST_CASE("imap next() and blocking iteration do not mix", "[thread_pool][imap][loop][error]") {
    ps::imap_next_and_iteration_do_not_mix<corio::thread_pool>();
}

TEST_CASE("gather accepts async_results (values and an exception)", "[thread_pool][loop][gather]") {
    ps::gather_accepts_async_results<corio::thread_pool>();
}

TEST_CASE("wait_any accepts async_results (values and an exception)",
          "[thread_pool][loop][wait_any]") {
    ps::wait_any_accepts_async_results<corio::thread_pool>();
}

TEST_CASE("as_completed accepts async_results (values and an exception)",
          "[thread_pool][loop][as_completed]") {
    ps::as_completed_accepts_async_results<corio::thread_pool>();
}

TEST_CASE("to_thread and run_in_executor are awaited without blocking the loop",
          "[thread_pool][loop][to_thread]") {
    tick_counter ticks;
    int off_loop = 0;
    CHECK(corio::run(await_to_thread(&ticks, &off_loop)) == "25 36 7 moved");
    CHECK(ticks.ticks() >= 3);
    CHECK(off_loop == 0);
}

TEST_CASE("awaiting a result without a running loop throws corio::error",
          "[thread_pool][loop][error]") {
    corio::thread_pool pool(1);
    gate g;
    auto res = pool.apply_async(gated_square, &g, nullptr, 3);
    CHECK_THROWS_AS(res.operator co_await(), corio::error);
    g.open();
    CHECK(res.get() == 9);
}

TEST_CASE("awaiting one result from a second loop at the same time is refused",
          "[thread_pool][loop][error]") {
    corio::thread_pool pool(1);
    gate g;
    arrivals registered;
    auto res = pool.apply_async(gated_square, &g, nullptr, 5);
    int first = 0;
    std::thread other([&] { first = corio::run(await_and_signal(res, &registered)); });
    const bool waiting = registered.wait_for_count(1);
    CHECK(waiting);
    CHECK(corio::run(await_from_second_loop(res)) == "invalid_state_error");
    g.open();
    other.join();
    CHECK(first == 25);
}

// ---------------------------------------------------------------------------
// The queue: a lock-free inbox drained in submission order, wake-ups of sleeping
// workers, close / terminate racing submitters.

TEST_CASE("one worker starts calls in submission order, apply_async and map chunks alike",
          "[thread_pool][order]") {
    corio::thread_pool pool(1);
    std::mutex m;
    std::vector<int> started;
    auto record = [&](int k) {
        std::lock_guard lock(m);
        started.push_back(k);
        return k;
    };
    std::vector<int> expected;
    std::vector<corio::async_result<int>> singles;
    std::vector<corio::async_result<std::vector<int>>> maps;
    int next = 0;
    for (int round = 0; round < 200; ++round) {
        for (int i = 0; i < 3; ++i) {
            expected.push_back(next);
            singles.push_back(pool.apply_async(record, next++));
        }
        std::vector<int> chunked;
        for (int i = 0; i < 7; ++i) {
            expected.push_back(next);
            chunked.push_back(next++);
        }
        maps.push_back(pool.map_async(record, chunked, 2)); // 4 chunks, one batch
    }
    for (auto& r : singles) {
        r.wait();
    }
    for (auto& r : maps) {
        r.wait();
    }
    std::lock_guard lock(m);
    CHECK(started == expected);
}

TEST_CASE("several threads' submissions start in each thread's order on one worker",
          "[thread_pool][order][stress]") {
    constexpr int threads = 4;
    constexpr int per_thread = 5000;
    corio::thread_pool pool(1);
    std::vector<int> last(threads, -1); // only the one worker writes
    std::atomic<int> out_of_order{0};
    std::vector<std::thread> submitters;
    for (int t = 0; t < threads; ++t) {
        submitters.emplace_back([&, t] {
            std::vector<corio::async_result<void>> results;
            for (int i = 0; i < per_thread; ++i) {
                results.push_back(pool.apply_async(
                    [&](int who, int k) {
                        if (last[static_cast<std::size_t>(who)] != k - 1) {
                            out_of_order.fetch_add(1);
                        }
                        last[static_cast<std::size_t>(who)] = k;
                    },
                    t, i));
            }
            for (auto& r : results) {
                r.get();
            }
        });
    }
    for (auto& t : submitters) {
        t.join();
    }
    CHECK(out_of_order.load() == 0);
    for (int t = 0; t < threads; ++t) {
        CHECK(last[static_cast<std::size_t>(t)] == per_thread - 1);
    }
}

TEST_CASE("blocking calls submitted together start on every worker", "[thread_pool][wakeup]") {
    // Each call blocks until all have started: the pool must wake every sleeping
    // worker, by the submission or by a woken worker that left work queued.
    for (int round = 0; round < 20; ++round) {
        corio::thread_pool pool(3);
        gate g;
        arrivals started;
        std::vector<corio::async_result<int>> results;
        for (int i = 0; i < 3; ++i) {
            results.push_back(pool.apply_async(gated_square, &g, &started, i));
        }
        const bool all_started = started.wait_for_count(3);
        g.open();
        REQUIRE(all_started);
        for (int i = 0; i < 3; ++i) {
            CHECK(results[static_cast<std::size_t>(i)].get() == i * i);
        }
    }
}

namespace {

// Calls submit(i) for i = 0, 1, ... until the pool refuses a call (pool_not_running),
// and arrives at `some` after the 101st; returns how many calls were accepted.
template <class Submit>
int submit_until_refused(Submit submit, arrivals& some) {
    for (int i = 0;; ++i) {
        try {
            submit(i);
        } catch (const corio::pool_not_running&) {
            return i;
        }
        if (i == 100) {
            some.arrive();
        }
    }
}

// Runs `body(some)` on 4 submitter threads; once each arrived at `some`, calls
// `stop()` (close or terminate) while they still submit, then joins them and the pool.
template <class Body, class Stop>
void race_submitters(corio::thread_pool& pool, Body body, Stop stop) {
    constexpr int threads = 4;
    arrivals some_submitted;
    std::vector<std::thread> submitters;
    for (int t = 0; t < threads; ++t) {
        submitters.emplace_back([&] { body(some_submitted); });
    }
    const bool all_submitting = some_submitted.wait_for_count(threads);
    stop();
    for (auto& t : submitters) {
        t.join();
    }
    pool.join();
    REQUIRE(all_submitting);
}

} // namespace

TEST_CASE("close racing submitters: every accepted call runs, later ones are refused",
          "[thread_pool][close][stress]") {
    for (int round = 0; round < 20; ++round) {
        corio::thread_pool pool(2);
        std::atomic<int> accepted{0};
        std::atomic<int> ran{0};
        std::atomic<int> wrong{0};
        race_submitters(
            pool,
            [&](arrivals& some) {
                std::vector<corio::async_result<int>> results;
                auto submit = [&](int i) {
                    results.push_back(pool.apply_async(
                        [&ran](int k) {
                            ran.fetch_add(1);
                            return k;
                        },
                        i));
                };
                accepted.fetch_add(submit_until_refused(submit, some));
                for (int i = 0; i < static_cast<int>(results.size()); ++i) {
                    if (results[static_cast<std::size_t>(i)].get() != i) {
                        wrong.fetch_add(1);
                    }
                }
            },
            [&] { pool.close(); });
        CHECK(wrong.load() == 0);
        CHECK(ran.load() == accepted.load());
    }
}

TEST_CASE("terminate racing submitters: every result completes or throws pool_terminated",
          "[thread_pool][terminate][stress]") {
    for (int round = 0; round < 20; ++round) {
        corio::thread_pool pool(2);
        std::atomic<int> finished{0};
        std::atomic<int> terminated{0};
        std::atomic<int> accepted{0};
        std::atomic<int> wrong{0};
        // A result lost in a queue would time out here instead of hanging.
        auto settle = [&](auto& r, auto value_ok) {
            try {
                if (!value_ok(r.get(20s))) {
                    wrong.fetch_add(1);
                }
                finished.fetch_add(1);
            } catch (const corio::pool_terminated&) {
                terminated.fetch_add(1);
            } catch (const corio::timeout_error&) {
                wrong.fetch_add(1);
            }
        };
        race_submitters(
            pool,
            [&](arrivals& some) {
                std::vector<corio::async_result<int>> results;
                std::vector<corio::async_result<std::vector<int>>> maps;
                auto submit = [&](int i) {
                    if (i % 10 == 0) {
                        maps.push_back(pool.map_async(ps::square, ps::iota_vector(8), 1));
                    } else {
                        results.push_back(pool.apply_async(ps::square, i));
                    }
                };
                accepted.fetch_add(submit_until_refused(submit, some));
                for (auto& r : results) {
                    settle(r, [](int) { return true; });
                }
                for (auto& r : maps) {
                    settle(r, [](const std::vector<int>& v) { return v.size() == 8; });
                }
            },
            [&] { pool.terminate(); });
        CHECK(wrong.load() == 0);
        CHECK(finished.load() + terminated.load() == accepted.load());
    }
}
