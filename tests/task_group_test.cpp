#include "counting.hpp"

#include <corio/corio.hpp>
#include <corio/task_group.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

using corio_test::counted;
using log_t = std::vector<std::string>;

corio::task<> yields(int n) {
    for (int i = 0; i < n; ++i) {
        co_await corio::yield_now();
    }
}

corio::task<int> value_after(int v, int n, log_t* log) {
    counted alive;
    co_await yields(n);
    log->push_back("value " + std::to_string(v));
    co_return v;
}

corio::task<> fail_after(int n, std::string what) {
    counted alive;
    co_await yields(n);
    throw std::runtime_error(what);
}

/// Sleeps "forever"; on cancel runs an asynchronous cleanup, logs, and rethrows.
corio::task<> until_cancelled(std::string name, log_t* log) {
    counted alive;
    bool cancelled = false;
    try {
        co_await corio::sleep(1h);
    } catch (const corio::cancelled_error&) {
        cancelled = true;
    }
    if (cancelled) {
        co_await corio::yield_now();
        log->push_back(name + " cleaned up");
        throw corio::cancelled_error();
    }
}

std::string message_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    }
}

} // namespace

TEST_CASE("a task_group joins every child and their results stay in their futures",
          "[task_group]") {
    {
        corio::event_loop loop;
        log_t log;
        auto body = [](log_t* l) -> corio::task<int> {
            corio::task_group group;
            auto a = group.spawn(value_after(1, 3, l));
            auto b = group.spawn(value_after(2, 1, l));
            CHECK(group.size() == 2);
            co_await group.join();
            CHECK(group.size() == 0);
            co_return a.result() + b.result();
        };
        CHECK(loop.run_until_complete(body(&log)) == 3);
        CHECK(log == log_t{"value 2", "value 1"});
        auto empty = []() -> corio::task<> {
            corio::task_group group;
            co_await group.join();
        };
        loop.run_until_complete(empty());
    }
    CHECK(counted::live == 0);
}

TEST_CASE("a task_group with one failing child cancels the siblings and join rethrows the failure",
          "[task_group][cancel]") {
    {
        corio::event_loop loop;
        log_t log;
        auto body = [](log_t* l) -> corio::task<> {
            corio::task_group group;
            group.spawn(until_cancelled("a", l));
            group.spawn(fail_after(2, "boom"));
            group.spawn(until_cancelled("b", l));
            try {
                co_await group.join();
            } catch (const std::runtime_error& e) {
                l->push_back(std::string("join threw ") + e.what());
            }
        };
        loop.run_until_complete(body(&log));
        CHECK(log == log_t{"a cleaned up", "b cleaned up", "join threw boom"});
        CHECK(loop.timer_count() == 0);
    }
    CHECK(counted::live == 0);
}

TEST_CASE("a task_group with two failing children throws an exception_group with both",
          "[task_group]") {
    {
        corio::event_loop loop;
        log_t log;
        auto stubborn = [](log_t* l) -> corio::task<> {
            try {
                co_await corio::sleep(1h);
            } catch (const corio::cancelled_error&) {
                l->push_back("stubborn cancelled");
            }
            throw std::logic_error("second");
        };
        auto body = [](auto s, log_t* l) -> corio::task<> {
            corio::task_group group;
            group.spawn(s(l));
            group.spawn(fail_after(1, "first"));
            group.spawn(until_cancelled("quiet", l));
            try {
                co_await group.join();
                FAIL("join did not throw");
            } catch (const corio::exception_group& g) {
                REQUIRE(g.exceptions().size() == 2);
                CHECK(message_of(g.exceptions()[0]) == "first");
                CHECK(message_of(g.exceptions()[1]) == "second");
                CHECK(std::string(g.what()).find("first; second") != std::string::npos);
                l->push_back("group");
            }
        };
        loop.run_until_complete(body(stubborn, &log));
        CHECK(log == log_t{"stubborn cancelled", "quiet cleaned up", "group"});
    }
    CHECK(counted::live == 0);
}

TEST_CASE("children can spawn into their task_group while it runs", "[task_group]") {
    {
        corio::event_loop loop;
        log_t log;
        auto grandchild = [](int v, log_t* l) -> corio::task<> {
            co_await yields(v);
            l->push_back("grandchild " + std::to_string(v));
        };
        auto child = [](corio::task_group* g, auto gc, log_t* l) -> corio::task<> {
            co_await corio::yield_now();
            g->spawn(gc(3, l));
            g->spawn(gc(1, l));
            l->push_back("child done");
        };
        auto body = [](auto c, auto gc, log_t* l) -> corio::task<> {
            corio::task_group group;
            group.spawn(c(&group, gc, l));
            co_await group.join();
            l->push_back("joined");
            CHECK_THROWS_AS(group.spawn(yields(1)), corio::error);
        };
        loop.run_until_complete(body(child, grandchild, &log));
        CHECK(log == log_t{"child done", "grandchild 1", "grandchild 3", "joined"});
    }
    CHECK(counted::live == 0);
}

TEST_CASE("the first failure cancels the group body, and join reports the child's failure",
          "[task_group][cancel]") {
    {
        corio::event_loop loop;
        log_t log;
        auto body = [](log_t* l) -> corio::task<> {
            corio::task_group group;
            std::exception_ptr body_error;
            try {
                group.spawn(fail_after(1, "child failed"));
                group.spawn(until_cancelled("sibling", l));
                co_await corio::sleep(1h); // the body's own work
                l->push_back("body finished");
            } catch (...) {
                body_error = std::current_exception();
                l->push_back("body cancelled");
            }
            try {
                co_await group.join(body_error);
            } catch (const std::runtime_error& e) {
                l->push_back(e.what());
            }
            co_await corio::yield_now(); // no stray cancel is left behind
            l->push_back("after");
        };
        loop.run_until_complete(body(&log));
        CHECK(log == log_t{"body cancelled", "sibling cleaned up", "child failed", "after"});
    }
    CHECK(counted::live == 0);
}

TEST_CASE(
    "a failure of the group body passed to join cancels the children and is joined after theirs",
    "[task_group]") {
    corio::event_loop loop;
    log_t log;
    auto body = [](log_t* l) -> corio::task<> {
        corio::task_group group;
        group.spawn(until_cancelled("child", l));
        std::exception_ptr body_error = std::make_exception_ptr(std::runtime_error("body"));
        try {
            co_await group.join(body_error);
        } catch (const std::runtime_error& e) {
            l->push_back(std::string("join threw ") + e.what());
        }
    };
    loop.run_until_complete(body(&log));
    CHECK(log == log_t{"child cleaned up", "join threw body"});
    CHECK(counted::live == 0);
}

TEST_CASE("cancelling the task that owns a group cancels all children", "[task_group][cancel]") {
    {
        corio::event_loop loop;
        log_t log;
        auto body = [](log_t* l) -> corio::task<> {
            corio::task_group group;
            group.spawn(until_cancelled("a", l));
            group.spawn(until_cancelled("b", l));
            co_await group.join();
        };
        auto f = loop.create_task(body(&log));
        loop.call_soon([&] { loop.call_soon([&] { f.cancel(); }); });
        CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
        CHECK(log == log_t{"a cleaned up", "b cleaned up"});
    }
    CHECK(counted::live == 0);
}

TEST_CASE("cancelling the owner outside join cancels all children and they finish before the owner",
          "[task_group][cancel]") {
    {
        corio::event_loop loop;
        log_t log;
        auto body = [](log_t* l) -> corio::task<> {
            corio::task_group group;
            group.spawn(until_cancelled("a", l));
            group.spawn(until_cancelled("b", l));
            std::exception_ptr body_error;
            try {
                co_await corio::sleep(1h); // the owner's own wait, not join()
            } catch (...) {
                body_error = std::current_exception();
                l->push_back("owner cancelled in its sleep");
            }
            try {
                co_await group.join(body_error);
            } catch (const corio::cancelled_error&) {
                l->push_back("join threw cancelled_error with " + std::to_string(group.size()) +
                             " children running");
                throw;
            }
        };
        auto f = loop.create_task(body(&log));
        // Cancelled once the owner and both children are suspended in their sleeps.
        loop.call_soon([&] { loop.call_soon([&] { f.cancel(); }); });
        CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
        CHECK(f.cancelled());
        CHECK(log == log_t{"owner cancelled in its sleep", "a cleaned up", "b cleaned up",
                           "join threw cancelled_error with 0 children running"});
    }
    CHECK(counted::live == 0);
}

TEST_CASE("a group destroyed without join cancels its children and reports collected failures",
          "[task_group][lifetime]") {
    {
        corio::event_loop loop;
        log_t log;
        std::vector<std::string> reported;
        loop.set_exception_handler([&](const corio::exception_context& c) {
            reported.push_back(c.message + ": " + message_of(c.exception));
        });
        auto body = [](log_t* l) -> corio::task<> {
            corio::task_group group;
            group.spawn(until_cancelled("orphan", l));
            co_await corio::yield_now();
            throw std::logic_error("body gave up");
        };
        CHECK_THROWS_AS(loop.run_until_complete(body(&log)), std::logic_error);
        CHECK(log.empty()); // cancelled, still running its cleanup on the loop
        loop.run_until_complete(yields(3));
        CHECK(log == log_t{"orphan cleaned up"});

        auto failing = []() -> corio::task<> {
            corio::task_group group;
            group.spawn(fail_after(0, "lost"));
            co_await yields(3);
            // the body returns without join: the failure must not vanish
        };
        CHECK_THROWS_AS(loop.run_until_complete(failing()), corio::cancelled_error);
        REQUIRE(reported.size() == 1);
        CHECK(reported[0] ==
              "task_group destroyed before join(): child exception never retrieved: lost");
    }
    CHECK(counted::live == 0);
}

TEST_CASE("a child spawned after a failure is cancelled at once but still joined",
          "[task_group][cancel]") {
    corio::event_loop loop;
    log_t log;
    int reports = 0;
    loop.set_exception_handler([&](const corio::exception_context&) { ++reports; });
    auto body = [](log_t* l) -> corio::task<> {
        corio::task_group group;
        group.spawn(fail_after(0, "early"));
        co_await yields(2);
        group.spawn(until_cancelled("late", l));
        CHECK_THROWS_AS(co_await group.join(), std::runtime_error);
    };
    auto f = loop.create_task(body(&log));
    // The body is cancelled by the group at yields(2); it never reaches the spawn.
    CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
    CHECK(log.empty());
    CHECK(reports == 1); // the unjoined group reported "early"

    auto body2 = [](log_t* l) -> corio::task<> {
        corio::task_group group;
        group.spawn(fail_after(0, "early"));
        std::exception_ptr e;
        try {
            co_await yields(2);
        } catch (...) {
            e = std::current_exception();
        }
        group.spawn(until_cancelled("late", l));
        CHECK_THROWS_WITH(co_await group.join(e), "early");
    };
    loop.run_until_complete(body2(&log));
    CHECK(log == log_t{"late cleaned up"});
    CHECK(reports == 1);
    CHECK(counted::live == 0);
}

TEST_CASE("a child spawned after the last one finished but before join resumed is still joined",
          "[task_group]") {
    corio::event_loop loop;
    log_t log;
    auto outsider = [](corio::task_group* g, log_t* l) -> corio::task<> {
        co_await corio::yield_now();
        g->spawn(value_after(2, 1, l)); // runs right after the only child finished
    };
    auto body = [](auto o, log_t* l) -> corio::task<> {
        corio::task_group group;
        group.spawn(value_after(1, 1, l));
        auto x = corio::create_task(o(&group, l));
        co_await group.join();
        l->push_back("joined");
        co_await x;
    };
    loop.run_until_complete(body(outsider, &log));
    CHECK(log == log_t{"value 1", "value 2", "joined"});
    CHECK(counted::live == 0);
}
