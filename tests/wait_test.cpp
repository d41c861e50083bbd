#include "counting.hpp"

#include <corio/combinators.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/sleep.hpp>
#include <corio/sync.hpp>
#include <corio/thread_pool.hpp>
#include <corio/wait.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;
using corio_test::counted;

namespace {

corio::task<counted> wait_then(corio::event& e, bool fail) {
    co_await e.wait();
    if (fail) {
        throw std::runtime_error("child failed");
    }
    co_return counted{};
}

corio::task<> wait_event(corio::event& e) {
    co_await e.wait();
}

using index_list = std::vector<std::size_t>;

corio::task<> one_step() {
    co_await corio::yield_now();
}

} // namespace

TEST_CASE("wait first_completed returns the done index and leaves the rest running", "[wait]") {
    {
        corio::event_loop loop;
        corio::event e0, e1, e2;
        std::vector<corio::future<counted>> fs;
        fs.push_back(loop.create_task(wait_then(e0, false)));
        fs.push_back(loop.create_task(wait_then(e1, false)));
        fs.push_back(loop.create_task(wait_then(e2, false)));
        auto waiter = loop.create_task(corio::wait(fs, corio::return_when::first_completed));
        loop.run_until_complete([](corio::event& e) -> corio::task<> {
            co_await corio::yield_now();
            e.set();
        }(e1));
        corio::wait_result r = loop.run_until_complete(waiter);
        CHECK(r.done == index_list{1});
        CHECK(r.pending == index_list{0, 2});
        CHECK_FALSE(fs[0].done());
        CHECK_FALSE(fs[2].cancelled());
        e0.set();
        e2.set();
        corio::wait_result all = loop.run_until_complete(corio::wait(fs));
        CHECK(all.done == index_list{0, 1, 2});
        CHECK(all.pending.empty());
        CHECK(counted::live == 3);
    }
    CHECK(counted::live == 0);
}

TEST_CASE("wait all_completed waits for every one; done ones return at once", "[wait]") {
    corio::event_loop loop;
    corio::event e0, e1;
    std::vector<corio::future<>> fs{loop.create_task(wait_event(e0)),
                                    loop.create_task(wait_event(e1))};
    auto waiter = loop.create_task(corio::wait(fs, corio::return_when::all_completed));
    e0.set();
    loop.run_until_complete(wait_event(e0));
    CHECK_FALSE(waiter.done());
    e1.set();
    auto r = loop.run_until_complete(waiter);
    CHECK(r.done == index_list{0, 1});
    // Everything already done: no suspension needed, any mode.
    auto again = loop.run_until_complete(corio::wait(fs, corio::return_when::first_exception));
    CHECK(again.done == index_list{0, 1});
}

TEST_CASE("wait first_exception stops at a failure, not at a cancellation", "[wait][error]") {
    corio::event_loop loop;
    corio::event ok, bad, never;
    std::vector<corio::future<counted>> fs;
    fs.push_back(loop.create_task(wait_then(ok, false)));
    fs.push_back(loop.create_task(wait_then(never, false)));
    fs.push_back(loop.create_task(wait_then(bad, true)));
    fs.push_back(loop.create_task(wait_then(never, false)));
    auto waiter = loop.create_task(corio::wait(fs, corio::return_when::first_exception));
    ok.set();
    loop.run_until_complete(wait_event(ok));
    fs[3].cancel(); // a cancellation is not an exception
    loop.run_until_complete([](corio::future<counted> f) -> corio::task<> {
        try {
            co_await f;
        } catch (const corio::cancelled_error&) {
        }
    }(fs[3]));
    loop.run_until_complete(wait_event(ok)); // the callbacks of the done ones ran
    CHECK_FALSE(waiter.done());
    bad.set();
    auto r = loop.run_until_complete(waiter);
    CHECK(r.done == index_list{0, 2, 3});
    CHECK(r.pending == index_list{1});
    CHECK_THROWS_AS(fs[2].result(), std::runtime_error);
    fs[1].cancel();
    CHECK_THROWS_AS(loop.run_until_complete(fs[1]), corio::cancelled_error);
}

TEST_CASE("wait with a timeout returns what is done, cancelling nothing", "[wait][timeout]") {
    corio::event_loop loop;
    corio::event never, soon;
    std::vector<corio::future<>> fs{loop.create_task(wait_event(never)),
                                    loop.create_task(wait_event(soon))};
    soon.set();
    auto started = std::chrono::steady_clock::now();
    auto r = loop.run_until_complete(corio::wait(fs, corio::return_when::all_completed, 5ms));
    CHECK(std::chrono::steady_clock::now() - started >= 5ms);
    CHECK(r.done == index_list{1});
    CHECK(r.pending == index_list{0});
    CHECK_FALSE(fs[0].done());
    CHECK(loop.timer_count() == 0);
    // A timeout that does not pass first leaves no timer behind either.
    never.set();
    auto r2 = loop.run_until_complete(corio::wait(fs, corio::return_when::all_completed, 10s));
    CHECK(r2.done == index_list{0, 1});
    CHECK(loop.timer_count() == 0);
}

TEST_CASE("wait of plain futures, and bad arguments", "[wait][error]") {
    corio::event_loop loop;
    std::vector<corio::future<int>> fs;
    fs.emplace_back(loop);
    fs.emplace_back(loop);
    loop.call_soon([f = fs[1]]() mutable { f.set_result(3); });
    auto r = loop.run_until_complete(corio::wait(fs, corio::return_when::first_completed));
    CHECK(r.done == index_list{1});
    std::vector<corio::future<int>> none;
    CHECK_THROWS_AS(loop.run_until_complete(corio::wait(none)), corio::error);
    CHECK_THROWS_AS(loop.run_until_complete(corio::wait(fs, static_cast<corio::return_when>(42))),
                    corio::error);
    fs[0].set_result(1);
}

TEST_CASE("cancelling the waiting task leaves the futures alone", "[wait][cancel]") {
    corio::event_loop loop;
    corio::event e;
    std::vector<corio::future<counted>> fs{loop.create_task(wait_then(e, false))};
    auto waiter = loop.create_task(corio::wait(fs, corio::return_when::all_completed, 10s));
    loop.run_until_complete(one_step());
    waiter.cancel();
    CHECK_THROWS_AS(loop.run_until_complete(waiter), corio::cancelled_error);
    CHECK_FALSE(fs[0].done());
    CHECK_FALSE(fs[0].cancelled());
    CHECK(loop.timer_count() == 0);
    e.set(); // its done callback was removed: nothing runs into the finished wait
    loop.run_until_complete(fs[0]);
    CHECK(fs[0].done());
}

TEST_CASE("wait accepts pool async_results", "[wait][async_result]") {
    corio::thread_pool pool(2);
    std::promise<void> release;
    std::shared_future<void> gate = release.get_future().share();
    std::vector<corio::async_result<int>> rs;
    rs.push_back(pool.apply_async(
        [](std::shared_future<void> g) {
            g.wait();
            return 1;
        },
        gate));
    rs.push_back(pool.apply_async([] { return 2; }));
    corio::event_loop loop;
    auto r = loop.run_until_complete(corio::wait(rs, corio::return_when::first_completed));
    CHECK(r.done == index_list{1});
    CHECK(r.pending == index_list{0});
    CHECK_FALSE(rs[0].ready());
    auto t = loop.run_until_complete(corio::wait(rs, corio::return_when::all_completed, 5ms));
    CHECK(t.pending == index_list{0}); // timed out; the job goes on
    release.set_value();
    auto all = loop.run_until_complete(corio::wait(rs));
    CHECK(all.done == index_list{0, 1});
    CHECK(rs[0].get() == 1);
    // A failing job counts for first_exception.
    std::vector<corio::async_result<int>> failing;
    failing.push_back(pool.apply_async([]() -> int { throw std::runtime_error("job failed"); }));
    auto f = loop.run_until_complete(corio::wait(failing, corio::return_when::first_exception));
    CHECK(f.done == index_list{0});
    CHECK_THROWS_AS(failing[0].get(), std::runtime_error);
}
