// redis_pool is a basic_pool like thread_pool and process_pool: the Python Pool
// semantics of tests/pool_semantics.hpp, run on a redis_pool whose "workers" are one
// worker program (tests/redis_test_worker.cpp, a thread pool of `workers` threads) on a
// private redis-server, plus the lifecycle cases that only a Redis pool meets.

#include "pool_semantics.hpp"
#include "redis_functions.hpp"
#include "redis_server.hpp"
#include "redis_test_support.hpp"

#include <corio/corio.hpp>
#include <corio/redis_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
namespace ps = pool_semantics;

namespace {

// The server and the worker program, built before the pool and destroyed after it.
struct redis_setup {
    corio_example::redis_server server;
    redis_test::worker_process worker;
    explicit redis_setup(std::size_t workers)
        : worker(server.url(), "semantics", static_cast<int>(workers), false) {}
};

/// A redis_pool built as the Pool semantics build theirs, `Pool pool(workers, options)`:
/// `workers` jobs at a time on its own server; only `on_progress` of the options
/// applies (the Redis pool has its own options).
class redis_test_pool : private redis_setup, public corio::redis_pool {
public:
    explicit redis_test_pool(std::size_t workers = 2, corio::pool_options options = {})
        : redis_setup(workers), corio::redis_pool(server.url(),
                                                  {.queue = "semantics",
                                                   .on_progress = std::move(options.on_progress)}) {
    }
};

using pool = redis_test_pool;

} // namespace

// ---- Python Pool semantics (tests/pool_semantics.hpp) ------------------------------

TEST_CASE("apply returns the value of the call on a Redis worker", "[redis_pool][apply]") {
    ps::apply_returns_the_value_of_the_call<pool>();
}
TEST_CASE("an apply_async result is ready and successful after get", "[redis_pool][apply]") {
    ps::apply_async_result_is_ready_and_successful_after_get<pool>();
}
TEST_CASE("an exception from a Redis worker keeps its type and message", "[redis_pool][error]") {
    ps::an_exception_keeps_its_type_and_message<pool>();
}
TEST_CASE("a callback runs before its result becomes ready", "[redis_pool][callback]") {
    ps::callbacks_run_before_the_result_is_ready<pool>();
}
TEST_CASE("callbacks run on one result thread, one at a time", "[redis_pool][callback]") {
    ps::callbacks_run_on_one_thread_one_at_a_time<pool>();
}
TEST_CASE("the error callback receives the exception of a failed call", "[redis_pool][callback]") {
    ps::the_error_callback_receives_the_exception<pool>();
}
TEST_CASE("a throwing callback fails its result and the pool keeps serving",
          "[redis_pool][callback]") {
    ps::a_throwing_callback_fails_the_result_and_the_pool_goes_on<pool>();
}
TEST_CASE("map returns results in input order for any chunksize", "[redis_pool][map]") {
    ps::map_returns_results_in_input_order<pool>();
}
TEST_CASE("map_async calls back with the whole vector", "[redis_pool][map][callback]") {
    ps::map_async_calls_back_with_the_whole_vector<pool>();
}
TEST_CASE("a map of an empty range is empty at once", "[redis_pool][map]") {
    ps::map_of_an_empty_range_is_empty_at_once<pool>();
}
TEST_CASE("map fails with an exception of a call", "[redis_pool][map][error]") {
    ps::map_fails_with_an_exception_of_a_call<pool>();
}
TEST_CASE("a chunksize below one is an error", "[redis_pool][map][error]") {
    ps::a_chunksize_below_one_is_an_error<pool>();
}
TEST_CASE("starmap unpacks each tuple into the call", "[redis_pool][map]") {
    ps::starmap_unpacks_each_tuple<pool>();
}
TEST_CASE("imap yields results in input order", "[redis_pool][imap]") {
    ps::imap_yields_results_in_input_order<pool>();
}
TEST_CASE("imap_unordered yields every result exactly once", "[redis_pool][imap]") {
    ps::imap_unordered_yields_every_result_once<pool>();
}
TEST_CASE("imap_unordered with one worker yields input order", "[redis_pool][imap]") {
    ps::imap_unordered_with_one_worker_yields_input_order<pool>();
}
TEST_CASE("imap rethrows at the failing item and the iteration goes on",
          "[redis_pool][imap][error]") {
    ps::imap_rethrows_at_the_failing_item_and_goes_on<pool>();
}
TEST_CASE("imap_unordered yields results in completion order", "[redis_pool][imap]") {
    ps::imap_unordered_yields_results_in_completion_order<pool>();
}
TEST_CASE("imap next() yields items in input order while the loop ticks",
          "[redis_pool][imap][loop]") {
    ps::imap_next_yields_items_in_order_while_the_loop_ticks<pool>();
}

TEST_CASE("imap_unordered next() yields items in completion order", "[redis_pool][imap][loop]") {
    ps::imap_unordered_next_yields_items_in_completion_order<pool>();
}

TEST_CASE("imap next() rethrows a failed item and the iteration goes on",
          "[redis_pool][imap][loop][error]") {
    ps::imap_next_rethrows_a_failed_item_and_goes_on<pool>();
}

TEST_CASE("imap next() of a terminated pool throws pool_terminated",
          "[redis_pool][imap][loop][terminate]") {
    ps::imap_next_of_a_terminated_pool_throws_pool_terminated<pool>();
}

TEST_CASE("cancelling a task in imap next() takes no item; a next() outlives its result",
          "[redis_pool][imap][loop][cancel]") {
    ps::cancelling_a_task_in_imap_next_takes_no_item<pool>();
}

TEST_CASE("imap next() of an empty input ends at once", "[redis_pool][imap][loop]") {
    ps::imap_next_of_an_empty_input_ends_at_once<pool>();
}

TEST_CASE("imap next() from two tasks of one loop gives each item once",
          "[redis_pool][imap][loop]") {
    ps::imap_next_from_two_tasks_gives_each_item_once<pool>();
}

TEST_CASE("imap next() and blocking iteration do not mix", "[redis_pool][imap][loop][error]") {
    ps::imap_next_and_iteration_do_not_mix<pool>();
}

TEST_CASE("gather accepts async_results (values and an exception)", "[redis_pool][loop][gather]") {
    ps::gather_accepts_async_results<pool>();
}

TEST_CASE("wait_any accepts async_results (values and an exception)",
          "[redis_pool][loop][wait_any]") {
    ps::wait_any_accepts_async_results<pool>();
}

TEST_CASE("as_completed accepts async_results (values and an exception)",
          "[redis_pool][loop][as_completed]") {
    ps::as_completed_accepts_async_results<pool>();
}

TEST_CASE("a throwing progress callback fails the map", "[redis_pool][map][progress]") {
    ps::a_throwing_progress_callback_fails_the_map<pool>();
}
TEST_CASE("map reports its first exception only after every chunk finished",
          "[redis_pool][map][error]") {
    ps::map_reports_its_first_error_only_after_every_chunk_finished<pool>();
}
TEST_CASE("get with a timeout throws timeout_error while the call runs",
          "[redis_pool][async_result]") {
    ps::get_with_a_timeout_throws_timeout_error_while_the_call_runs<pool>();
}
TEST_CASE("concurrent submitters get every result exactly once", "[redis_pool][threads]") {
    ps::concurrent_submitters_get_every_result_exactly_once<pool>(4, 250);
}
TEST_CASE("a loop task awaits a result while the loop keeps ticking", "[redis_pool][loop]") {
    ps::a_loop_task_awaits_a_result_while_the_loop_keeps_ticking<pool>();
}
TEST_CASE("cancelling an awaiting task stops the wait, not the call", "[redis_pool][loop]") {
    ps::cancelling_an_awaiting_task_stops_the_wait_not_the_call<pool>();
}
TEST_CASE("several tasks of one loop await the same result", "[redis_pool][loop]") {
    ps::several_tasks_of_one_loop_await_the_same_result<pool>();
}
TEST_CASE("awaiting a result of a terminated pool gets pool_terminated", "[redis_pool][loop]") {
    ps::awaiting_a_result_of_a_terminated_pool_gets_pool_terminated<pool>();
}

// ---- the lifecycle of basic_pool, the same for every backend -----------------------

TEST_CASE("calls after close throw pool_not_running", "[redis_pool][close]") {
    ps::calls_after_close_throw_pool_not_running<pool>();
}
TEST_CASE("join while the pool is running throws; joining twice is fine", "[redis_pool][join]") {
    ps::join_while_running_throws<pool>();
}
TEST_CASE("join from a callback throws invalid_state_error", "[redis_pool][join]") {
    ps::join_from_a_callback_throws_invalid_state<pool>();
}
TEST_CASE("terminate from a callback returns, and join then ends the pool",
          "[redis_pool][terminate]") {
    ps::terminate_from_a_callback_returns_and_join_ends_the_pool<pool>();
}
TEST_CASE("close then join finishes every submitted call and callback", "[redis_pool][join]") {
    ps::close_then_join_finishes_every_submitted_call<pool>();
}
TEST_CASE("the destructor closes and joins, losing no submitted work", "[redis_pool][join]") {
    ps::the_destructor_loses_no_submitted_work<pool>();
}

// ---- what only a Redis pool meets ----------------------------------------------------

TEST_CASE("terminate is idempotent from several threads, and join after it from several",
          "[redis_pool][terminate]") {
    ps::watchdog dog("terminate and join from several threads");
    pool p(1);
    ps::process_gate gate; // after the pool: destroyed (opened) before the pool joins
    auto running = p.apply_async(ps::gated_square, gate.path(), 3);
    auto queued = p.map_async(ps::square, ps::iota_vector(10), 1);
    REQUIRE(gate.wait_arrivals(1));
    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&] {
            p.terminate();
            p.join();
        });
    }
    for (auto& t : threads) {
        t.join();
    }
    CHECK_THROWS_AS(running.get(), corio::pool_terminated);
    CHECK_THROWS_AS(queued.get(), corio::pool_terminated);
    p.terminate(); // after join too
    p.join();
    CHECK_THROWS_AS(p.apply(ps::square, 1), corio::pool_not_running);
}

TEST_CASE("introspection from other threads while the pool is joined: a result or "
          "pool_not_running",
          "[redis_pool][join][threads]") {
    ps::watchdog dog("counts() from several threads during join");
    pool p(1);
    CHECK(p.apply(ps::square, 3) == 9);
    std::atomic<int> answered{0};
    std::atomic<int> refused{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i) {
        threads.emplace_back([&] {
            for (;;) {
                try {
                    (void)p.counts();
                    answered.fetch_add(1);
                } catch (const corio::pool_not_running&) {
                    refused.fetch_add(1);
                    return;
                }
            }
        });
    }
    while (answered.load() < 3) {
        std::this_thread::yield(); // another thread's progress, not a timing assumption
    }
    p.close();
    p.join();
    for (auto& t : threads) {
        t.join();
    }
    CHECK(refused.load() == 3);
    CHECK_THROWS_AS(p.counts(), corio::pool_not_running);
}

TEST_CASE("terminate with the server gone returns in bounded time; the destructor does not throw",
          "[redis_pool][terminate][error]") {
    ps::watchdog dog("terminate with the server gone");
    corio_example::redis_server server;
    std::optional<corio::async_result<int>> r;
    {
        corio::redis_pool p(server.url(), {.queue = "nobody", .connect_timeout = 500ms});
        r = p.apply_async(redis_fns::square, 3); // no worker serves "nobody"
        server.stop();
        const auto start = std::chrono::steady_clock::now();
        p.terminate();
        CHECK(std::chrono::steady_clock::now() - start < 30s);
        CHECK_THROWS_AS(r->get(), corio::pool_terminated);
    } // the destructor: closed and joined, nothing pending
    CHECK(r->ready() == false);
}

TEST_CASE("a redis_pool's map uses its chunksize option, else ceil(n / 64)",
          "[redis_pool][map][progress]") {
    // on_progress sees one report per chunk: the number of chunks is the chunking.
    for (const std::size_t option : {std::size_t{0}, std::size_t{7}}) {
        corio_example::redis_server server;
        redis_test::worker_process worker(server.url(), "chunks", 2, false);
        std::vector<std::size_t> reports; // the pool's thread, read after get()
        corio::redis_pool p(server.url(), {.queue = "chunks",
                                           .chunksize = option,
                                           .on_progress = [&](std::size_t done, std::size_t) {
                                               reports.push_back(done);
                                           }});
        const auto out = p.map(ps::square, ps::iota_vector(200));
        REQUIRE(out.size() == 200);
        CHECK(out[199] == 199 * 199);
        const std::size_t chunk = option == 0 ? 4 : 7; // ceil(200 / 64) = 4
        CHECK(reports.size() == (200 + chunk - 1) / chunk);
        CHECK(reports.back() == 200);
        p.close();
        p.join();
    }
}

TEST_CASE("submit returns the job's Redis id beside its result", "[redis_pool][apply]") {
    corio_example::redis_server server;
    redis_test::worker_process worker(server.url(), "ids", 1, false);
    corio::redis_pool p(server.url(), {.queue = "ids"});
    auto [id1, r1] = p.submit(redis_fns::square, 4);
    auto [id2, r2] = p.submit(redis_fns::square, 5, corio::callback([](int) {}));
    CHECK_FALSE(id1.empty());
    CHECK(id1 != id2);
    CHECK(r1.get(60s) == 16);
    CHECK(r2.get(60s) == 25);
    CHECK_FALSE(p.cancel(id1)); // finished: nothing to cancel
    p.close();
    CHECK_THROWS_AS(p.submit(redis_fns::square, 1), corio::pool_not_running);
    p.join();
}
