#pragma once
// Python Pool semantics every corio pool must have, written once as templates over
// the pool type: thread_pool_test.cpp runs them on `corio::thread_pool`, and
// process_pool_test.cpp can run the same functions on `corio::process_pool`:
//
//     TEST_CASE("map returns results in input order", "[process_pool][map]") {
//         pool_semantics::map_returns_results_in_input_order<corio::process_pool>();
//     }
//
// Only plain functions over ints, strings and tuples cross into the pool, so a
// process pool can run them; callbacks run in the caller's process. Everything that
// needs shared memory (gates, counters in the workers) lives in thread_pool_test.cpp.

#include <corio/async_result.hpp>
#include <corio/pool.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <mutex>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace pool_semantics {

inline int square(int x) { return x * x; }
inline int add(int a, int b) { return a + b; }
inline int fail_on_odd(int x) {
    if (x % 2 != 0) {
        throw std::invalid_argument("odd: " + std::to_string(x));
    }
    return x;
}
inline int always_fail(int x) { throw std::out_of_range("bad item " + std::to_string(x)); }
inline std::string repeat(std::string s, int n) {
    std::string out;
    for (int i = 0; i < n; ++i) {
        out += s;
    }
    return out;
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
    auto res = pool.apply_async(
        fail_on_odd, 7, corio::callback([&](int) { value_called = true; }),
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
    auto res = pool.apply_async(square, 3, corio::callback([](int) { throw std::logic_error("callback broke"); }),
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
    CHECK_THROWS_AS(pool.starmap(add, std::vector<std::tuple<int, int>>{{1, 2}}), corio::pool_not_running);
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
        results.push_back(pool.apply_async(square, i, corio::callback([&](int) { callbacks.fetch_add(1); })));
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
    std::vector<std::pair<std::size_t, std::size_t>> calls; // result thread only, then read after get()
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
    CHECK_THROWS_WITH(pool.map(square, iota_vector(20), 2), "progress broke");
    CHECK(calls == 1); // not called again after it threw
    CHECK(pool.apply(square, 3) == 9);
}

} // namespace pool_semantics
