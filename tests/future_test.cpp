#include "counting.hpp"

#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {
// One loop iteration for the tasks already scheduled.
corio::task<> one_step() {
    co_await corio::yield_now();
}
} // namespace

TEST_CASE("a future needs a running loop or an explicit one", "[future][error]") {
    CHECK_THROWS_AS(corio::future<int>(), corio::error);
    corio::event_loop loop;
    corio::future<int> f(loop);
    CHECK_FALSE(f.done());
}

TEST_CASE("set_result, result and the invalid-state errors", "[future]") {
    corio::event_loop loop;
    corio::future<std::string> f(loop);
    CHECK_THROWS_AS(f.result(), corio::invalid_state_error);
    CHECK_THROWS_AS(f.exception(), corio::invalid_state_error);
    f.set_result("hello");
    CHECK(f.done());
    CHECK_FALSE(f.cancelled());
    CHECK(f.result() == "hello");
    CHECK(f.exception() == nullptr);
    CHECK_THROWS_AS(f.set_result("again"), corio::invalid_state_error);
    CHECK_THROWS_AS(f.set_exception(std::make_exception_ptr(std::runtime_error("x"))),
                    corio::invalid_state_error);
    CHECK_FALSE(f.cancel());
}

TEST_CASE("set_exception makes result rethrow; a null exception is rejected", "[future][error]") {
    corio::event_loop loop;
    corio::future<> f(loop);
    CHECK_THROWS_AS(f.set_exception(nullptr), std::invalid_argument);
    f.set_exception(std::make_exception_ptr(std::logic_error("bad")));
    CHECK_THROWS_AS(f.result(), std::logic_error);
    CHECK(f.exception() != nullptr);
}

TEST_CASE("a cancelled future: result and exception throw cancelled_error", "[future][cancel]") {
    corio::event_loop loop;
    corio::future<int> f(loop);
    CHECK(f.cancel());
    CHECK(f.cancelled());
    CHECK(f.done());
    CHECK_THROWS_AS(f.result(), corio::cancelled_error);
    CHECK_THROWS_AS(f.exception(), corio::cancelled_error);
    CHECK_FALSE(f.cancel());
}

TEST_CASE("awaiting a future resumes when another task sets it", "[future]") {
    auto setter = [](corio::future<int> f) -> corio::task<> {
        co_await corio::sleep(1ms);
        f.set_result(41);
    };
    auto waiter = [](auto make) -> corio::task<int> {
        corio::future<int> f;
        auto t = corio::create_task(make(f));
        int v = co_await f;
        co_await t;
        co_return v + 1;
    };
    CHECK(corio::run(waiter(setter)) == 42);
}

TEST_CASE("several tasks can await one future", "[future]") {
    auto body = []() -> corio::task<int> {
        corio::future<int> f;
        auto wait = [](corio::future<int> g) -> corio::task<int> { co_return co_await g; };
        auto a = corio::create_task(wait(f));
        auto b = corio::create_task(wait(f));
        co_await corio::yield_now();
        f.set_result(5);
        co_return co_await a + co_await b;
    };
    CHECK(corio::run(body()) == 10);
}

TEST_CASE("waiters resume in arrival order; one destroyed while waiting leaves the rest in order",
          "[future]") {
    // Five coroutines await one future; the first, the middle and the last are
    // destroyed while waiting (which unlinks the head, an inner and the tail of the
    // waiter list), then two more arrive. The rest resume in the order they came.
    // Bare coroutines started by hand, not tasks: cancelling a task would cancel
    // the future it awaits (asyncio's rule), and a bare frame can be destroyed.
    auto body = []() -> corio::task<std::vector<int>> {
        corio::future<int> f;
        std::vector<int> order;
        auto wait = [](corio::future<int>& g, std::vector<int>& out, int id) -> corio::task<> {
            co_await g;
            out.push_back(id);
        };
        std::vector<corio::task<>::handle_type> frames;
        auto start = [&](int id) {
            frames.push_back(wait(f, order, id).release());
            frames.back().resume(); // runs to `co_await g` and waits there
        };
        for (int id = 0; id < 5; ++id) {
            start(id);
        }
        for (std::size_t id : {0U, 2U, 4U}) {
            frames[id].destroy();
            frames[id] = {};
        }
        start(5);
        start(6);
        f.set_result(1);
        co_await corio::yield_now(); // queued behind the waiters set_result woke
        for (auto& h : frames) {
            if (h) {
                CHECK(h.done());
                h.destroy();
            }
        }
        co_return order;
    };
    CHECK(corio::run(body()) == std::vector<int>{1, 3, 5, 6});
}

TEST_CASE("done callbacks run on a later iteration in registration order", "[future][callbacks]") {
    corio::event_loop loop;
    corio::future<int> f(loop);
    std::vector<int> order;
    f.add_done_callback([&](const corio::future<int>& g) { order.push_back(g.result()); });
    f.add_done_callback([&](const corio::future<int>&) { order.push_back(-1); });
    f.set_result(7);
    CHECK(order.empty()); // not synchronously
    loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
    loop.run_forever();
    CHECK(order == std::vector<int>{7, -1});
    // Added after completion: still scheduled, not called inline.
    f.add_done_callback([&](const corio::future<int>&) { order.push_back(99); });
    CHECK(order.size() == 2);
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    CHECK(order == std::vector<int>{7, -1, 99});
}

TEST_CASE("create_task: the future is the task, with a name", "[future][task]") {
    auto body = []() -> corio::task<std::string> {
        auto child = []() -> corio::task<std::string> {
            co_await corio::yield_now();
            co_return corio::current_task().name();
        };
        auto f = corio::create_task(child(), "worker-1");
        CHECK(f.is_task());
        CHECK(f.name() == "worker-1");
        auto unnamed = corio::create_task(child());
        CHECK(unnamed.name().rfind("Task-", 0) == 0);
        CHECK(corio::all_tasks().size() == 3); // the main task and both children
        co_await unnamed;
        std::string n = co_await f;
        CHECK(corio::all_tasks().size() == 1);
        co_return n;
    };
    CHECK(corio::run(body()) == "worker-1");
    CHECK_FALSE(corio::current_task());
}

TEST_CASE("a task's future rejects set_result", "[future][task][error]") {
    auto body = []() -> corio::task<> {
        auto f = corio::create_task([]() -> corio::task<int> { co_return 1; }());
        CHECK_THROWS_AS(f.set_result(2), corio::invalid_state_error);
        co_await f;
    };
    corio::run(body());
}

TEST_CASE("dropping a created task's future does not cancel the task", "[future][task]") {
    auto body = []() -> corio::task<int> {
        corio::future<int> out;
        auto child = [](corio::future<int> o) -> corio::task<> {
            co_await corio::sleep(2ms);
            o.set_result(9);
        };
        (void)corio::create_task(child(out));
        co_return co_await out;
    };
    CHECK(corio::run(body()) == 9);
}

TEST_CASE("a never-retrieved task exception is reported exactly once", "[future][error]") {
    corio::event_loop loop;
    std::vector<corio::exception_context> reports;
    loop.set_exception_handler(
        [&](const corio::exception_context& ctx) { reports.push_back(ctx); });
    auto failing = []() -> corio::task<> {
        co_await corio::yield_now();
        throw std::runtime_error("lost");
    };
    (void)loop.create_task(failing(), "doomed");
    loop.run_until_complete([]() -> corio::task<> {
        for (int i = 0; i < 5; ++i) {
            co_await corio::yield_now();
        }
    }());
    loop.close();
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].task_name == "doomed");
    CHECK(reports[0].message == "Task exception was never retrieved");
    CHECK_THROWS_WITH(std::rethrow_exception(reports[0].exception), "lost");
}

TEST_CASE("a retrieved exception is not reported", "[future][error]") {
    corio::event_loop loop;
    int reports = 0;
    loop.set_exception_handler([&](const corio::exception_context&) { ++reports; });
    auto failing = []() -> corio::task<> {
        throw std::runtime_error("seen");
        co_return;
    };
    auto f = loop.create_task(failing());
    CHECK_THROWS_AS(loop.run_until_complete(f), std::runtime_error);
    loop.close();
    CHECK(reports == 0);
}

TEST_CASE("a future holding an unretrieved exception is reported when the loop dies first",
          "[future][error]") {
    int reports = 0;
    std::unique_ptr<corio::future<>> keep;
    {
        corio::event_loop loop;
        loop.set_exception_handler([&](const corio::exception_context&) { ++reports; });
        keep = std::make_unique<corio::future<>>(loop);
        keep->set_exception(std::make_exception_ptr(std::runtime_error("late")));
    }
    CHECK(reports == 1);
    keep.reset(); // no second report, no use of the dead loop
    CHECK(reports == 1);
}

TEST_CASE("move-only results move out of an awaited temporary future", "[future][task]") {
    auto body = []() -> corio::task<int> {
        auto make = []() -> corio::task<std::unique_ptr<int>> {
            co_return std::make_unique<int>(4);
        };
        std::unique_ptr<int> p = co_await corio::create_task(make());
        co_return *p;
    };
    CHECK(corio::run(body()) == 4);
}

TEST_CASE("run_until_complete accepts a future", "[future][event_loop]") {
    corio::event_loop loop;
    corio::future<int> f(loop);
    loop.call_later(1ms, [&] { f.set_result(3); });
    CHECK(loop.run_until_complete(f) == 3);
}

TEST_CASE("as_task is the created task's handle, and empty for a plain future", "[future][task]") {
    auto body = []() -> corio::task<> {
        // (Not returned as the task's value: a task holding a handle on itself
        // would never be freed.)
        corio::task_handle seen_inside;
        auto self = [](corio::task_handle* out) -> corio::task<> {
            co_await corio::yield_now();
            *out = corio::current_task();
        };
        auto f = corio::create_task(self(&seen_inside), "child");
        corio::task_handle h = f.as_task();
        REQUIRE(h);
        CHECK(h.name() == "child");
        CHECK_FALSE(h.done());
        co_await f;
        CHECK(seen_inside == h); // the same task as current_task() saw it
        CHECK(h.done());

        auto sleeper = []() -> corio::task<> { co_await corio::sleep(std::chrono::hours(1)); };
        auto g = corio::create_task(sleeper());
        co_await corio::yield_now();
        CHECK(g.as_task().cancel()); // cancels the task behind the future
        CHECK_THROWS_AS(co_await g, corio::cancelled_error);
        CHECK(g.cancelled());

        corio::future<int> plain;
        CHECK_FALSE(plain.as_task());
        CHECK_FALSE(plain.is_task());
    };
    corio::run(body());
}

// ---- remove_done_callback, cancel(message), set_name, cancelling/uncancel ---------

TEST_CASE("remove_done_callback removes one callback before completion only",
          "[future][callbacks]") {
    corio::event_loop loop;
    corio::future<int> f(loop);
    std::vector<int> order;
    auto a = f.add_done_callback([&](const corio::future<int>&) { order.push_back(1); });
    auto b = f.add_done_callback([&](const corio::future<int>&) { order.push_back(2); });
    auto c = f.add_done_callback([&](const corio::future<int>&) { order.push_back(3); });
    CHECK(a.value != b.value);
    CHECK(f.remove_done_callback(b) == 1);
    CHECK(f.remove_done_callback(b) == 0);                            // already removed
    CHECK(f.remove_done_callback(corio::done_callback_id{999}) == 0); // never added
    f.set_result(1);
    CHECK(f.remove_done_callback(c) == 0); // scheduled: too late, as asyncio
    loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
    loop.run_forever();
    CHECK(order == std::vector<int>{1, 3});
    // One added after completion is scheduled at once and cannot be removed.
    auto d = f.add_done_callback([&](const corio::future<int>&) { order.push_back(4); });
    CHECK(f.remove_done_callback(d) == 0);
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    CHECK(order == std::vector<int>{1, 3, 4});
    // Another future's id removes nothing here.
    corio::future<int> g(loop);
    auto ga = g.add_done_callback([](const corio::future<int>&) {});
    corio::future<int> h(loop);
    CHECK(h.remove_done_callback(ga) == 0);
    CHECK(g.remove_done_callback(ga) == 1);
}

TEST_CASE("cancel(message): the task's cancelled_error carries the message",
          "[future][task][cancel]") {
    corio::event_loop loop;
    std::string seen_inside;
    auto body = [](std::string& seen) -> corio::task<> {
        try {
            co_await corio::sleep(10s);
        } catch (const corio::cancelled_error& e) {
            seen = e.what();
            throw;
        }
    };
    auto t = loop.create_task(body(seen_inside));
    loop.run_until_complete(one_step());
    CHECK(t.cancel("shutting down"));
    try {
        loop.run_until_complete(t);
        FAIL("a cancelled task returned");
    } catch (const corio::cancelled_error& e) {
        CHECK(std::string(e.what()) == "shutting down");
    }
    CHECK(seen_inside == "shutting down");

    // A plain future's result() carries it too; without a message, the default one.
    corio::future<int> f(loop);
    CHECK(f.cancel("no longer needed"));
    CHECK_THROWS_WITH(f.result(), "no longer needed");
    corio::future<int> g(loop);
    g.cancel();
    CHECK_THROWS_WITH(g.result(), "corio: operation was cancelled");
    auto plain = loop.create_task(body(seen_inside));
    loop.run_until_complete(one_step());
    plain.cancel();
    CHECK_THROWS_WITH(loop.run_until_complete(plain), "corio: operation was cancelled");
}

TEST_CASE("set_name renames a task; a plain future refuses", "[future][task][error]") {
    corio::event_loop loop;
    auto t = loop.create_task(
        []() -> corio::task<std::string> {
            co_await corio::yield_now();
            co_return corio::current_task().name();
        }(),
        "before");
    CHECK(t.name() == "before");
    t.set_name("after");
    CHECK(t.name() == "after");
    CHECK(loop.run_until_complete(t) == "after");
    t.set_name("");
    CHECK(t.name().rfind("Task-", 0) == 0);
    corio::future<int> f(loop);
    CHECK_THROWS_AS(f.set_name("x"), corio::invalid_state_error);
}

TEST_CASE("cancelling counts cancel requests and uncancel withdraws one",
          "[future][task][cancel]") {
    corio::event_loop loop;
    auto t = loop.create_task([]() -> corio::task<int> {
        int caught = 0;
        for (int i = 0; i < 2; ++i) {
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                ++caught;
            }
        }
        co_return caught;
    }());
    loop.run_until_complete(one_step());
    CHECK(t.cancelling() == 0);
    t.cancel();
    t.cancel(); // counted, though one delivery is enough
    CHECK(t.cancelling() == 2);
    CHECK(t.uncancel() == 1);
    CHECK(t.uncancel() == 0);
    CHECK(t.uncancel() == 0); // never below zero
    // The first request was delivered already (the sleep was woken): it is caught.
    // The task then sleeps again; a fresh cancel ends that sleep too.
    loop.run_until_complete(one_step());
    t.cancel();
    CHECK(loop.run_until_complete(t) == 2);
    corio::future<int> plain(loop);
    CHECK(plain.cancelling() == 0);
    CHECK(plain.uncancel() == 0);
}

TEST_CASE("uncancel to zero drops a cancel not yet delivered", "[future][task][cancel]") {
    corio::event_loop loop;
    auto t = loop.create_task([]() -> corio::task<int> {
        co_await corio::sleep(0s); // not armed when the cancel arrives below
        co_return 5;
    }());
    t.cancel(); // the task has not started: the cancel is pending
    CHECK(t.uncancel() == 0);
    CHECK(loop.run_until_complete(t) == 5);
}

// ---- eager tasks ---------------------------------------------------------------------

TEST_CASE("an eager task runs its first step inside create_eager_task", "[future][task][eager]") {
    std::vector<std::string> order;
    auto body = [](std::vector<std::string>& o) -> corio::task<> {
        auto quick = [](std::vector<std::string>& o2) -> corio::task<int> {
            o2.push_back("quick ran as " + corio::current_task().name());
            co_return 1;
        };
        auto slow = [](std::vector<std::string>& o2) -> corio::task<int> {
            o2.push_back("slow first step");
            co_await corio::yield_now();
            o2.push_back("slow second step");
            co_return 2;
        };
        auto q = corio::create_eager_task(quick(o), "quick");
        o.push_back("after create quick");
        CHECK(q.done()); // finished without ever being queued
        CHECK(q.result() == 1);
        auto s = corio::create_eager_task(slow(o));
        o.push_back("after create slow");
        CHECK_FALSE(s.done());
        CHECK(corio::current_task().name() != "quick"); // the caller's task again
        CHECK(co_await s == 2);
        // A lazy task, for contrast, has not run yet when create_task returns.
        auto lazy = corio::create_task(quick(o), "lazy");
        o.push_back("after create lazy");
        co_await lazy;
    };
    corio::run(body(order));
    CHECK(order == std::vector<std::string>{"quick ran as quick", "after create quick",
                                            "slow first step", "after create slow",
                                            "slow second step", "after create lazy",
                                            "quick ran as lazy"});
}

TEST_CASE("an eager task's exception and cancellation behave as a lazy task's",
          "[future][task][eager][error]") {
    corio::event_loop loop;
    loop.run_until_complete([]() -> corio::task<> {
        auto failing = [](bool fail) -> corio::task<int> {
            if (fail) {
                throw std::runtime_error("eager failure");
            }
            co_return 0;
        };
        auto f = corio::create_eager_task(failing(true));
        CHECK(f.done());
        CHECK_THROWS_WITH(co_await f, "eager failure");
        auto sleeper = []() -> corio::task<int> {
            co_await corio::sleep(10s);
            co_return 0;
        };
        auto s = corio::create_eager_task(sleeper());
        CHECK(s.cancel("stop"));
        CHECK_THROWS_WITH(co_await s, "stop");
    }());
    // Not running: create_eager_task schedules as create_task does.
    bool ran = false;
    auto t = loop.create_eager_task([](bool& r) -> corio::task<> {
        r = true;
        co_return;
    }(ran));
    CHECK_FALSE(ran);
    loop.run_until_complete(t);
    CHECK(ran);
    CHECK_THROWS_AS(corio::create_eager_task(one_step()), corio::error); // no loop
}
