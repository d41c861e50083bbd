#include "counting.hpp"

#include <corio/combinators.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/sleep.hpp>
#include <corio/sync.hpp>
#include <corio/timeout.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using corio_test::counted;

namespace {

using clock_type = std::chrono::steady_clock;

// A deadline that has passed: the scope expires at the block's first suspension.
clock_type::time_point past() {
    return clock_type::now() - 1s;
}

corio::task<> wait_forever(corio::event& never) {
    co_await never.wait();
}

corio::task<> wait_for_event(corio::event& e) {
    co_await e.wait();
}

corio::task<> one_step() {
    co_await corio::yield_now();
}

} // namespace

TEST_CASE("a block that outlives its deadline throws timeout_error and the task goes on",
          "[timeout]") {
    auto body = []() -> corio::task<int> {
        corio::event never;
        int steps = 0;
        auto block = [](corio::event& e, int& n) -> corio::task<> {
            ++n;
            co_await corio::yield_now();
            ++n;
            co_await e.wait(); // never set: the deadline ends it
            ++n;
        };
        auto started = clock_type::now();
        CHECK_THROWS_AS(co_await corio::timeout(5ms, block(never, steps)), corio::timeout_error);
        CHECK(clock_type::now() - started >= 5ms);
        CHECK(steps == 2);
        // The task itself is not cancelled: it can await again, and no request is left.
        CHECK(corio::current_task());
        co_await corio::sleep(1ms);
        co_return steps;
    };
    corio::event_loop loop;
    auto t = loop.create_task(body());
    CHECK(loop.run_until_complete(t) == 2);
    CHECK(t.cancelling() == 0);
    CHECK(loop.timer_count() == 0);
}

TEST_CASE("a block that finishes in time yields its value and leaves no timer", "[timeout]") {
    corio::event_loop loop;
    auto body = []() -> corio::task<counted> {
        co_await corio::yield_now();
        co_return counted{};
    };
    {
        counted c = loop.run_until_complete(corio::timeout(10s, body()));
        CHECK(counted::live == 1);
        CHECK(loop.timer_count() == 0);
        auto at = clock_type::now() + 10s;
        loop.run_until_complete(corio::timeout_at(at, body()));
        CHECK(loop.timer_count() == 0);
    }
    CHECK(counted::live == 0);
    // References and void pass through.
    int x = 4;
    auto ref = [](int& v) -> corio::task<int&> {
        co_await corio::yield_now();
        co_return v;
    };
    int& r = loop.run_until_complete(corio::timeout(10s, ref(x)));
    CHECK(&r == &x);
    loop.run_until_complete(corio::timeout(10s, one_step()));
}

TEST_CASE("an exception of the block passes through unchanged", "[timeout][error]") {
    corio::event_loop loop;
    auto failing = []() -> corio::task<int> {
        co_await corio::yield_now();
        throw std::runtime_error("body failed");
    };
    CHECK_THROWS_WITH(loop.run_until_complete(corio::timeout(10s, failing())), "body failed");
    // Even after expiry, an exception other than the cancellation is the block's own.
    auto catches_then_fails = []() -> corio::task<int> {
        try {
            co_await corio::sleep(10s);
        } catch (const corio::cancelled_error&) {
            throw std::logic_error("cleanup failed");
        }
        co_return 0;
    };
    corio::timeout_scope scope(past());
    CHECK_THROWS_AS(loop.run_until_complete(scope.run(catches_then_fails())), std::logic_error);
    CHECK(scope.expired());
}

TEST_CASE("reschedule moves the deadline while the block runs", "[timeout][reschedule]") {
    corio::event_loop loop;
    // Lifted: a deadline that would have passed is removed before it fires.
    loop.run_until_complete([]() -> corio::task<> {
        corio::timeout_scope scope(1ms);
        CHECK(scope.when().has_value());
        co_await scope.run([](corio::timeout_scope& s) -> corio::task<> {
            s.reschedule(std::nullopt);
            co_await corio::sleep(20ms);
        }(scope));
        CHECK_FALSE(scope.expired());
        CHECK_FALSE(scope.when().has_value());
    }());
    // Brought forward: a far deadline moved into the past ends the block.
    loop.run_until_complete([]() -> corio::task<> {
        corio::timeout_scope scope(10s);
        corio::event never;
        auto block = [](corio::timeout_scope& s, corio::event& e) -> corio::task<> {
            s.reschedule(clock_type::now() - 1ms);
            co_await e.wait();
        };
        CHECK_THROWS_AS(co_await scope.run(block(scope, never)), corio::timeout_error);
        CHECK(scope.expired());
    }());
    // A scope without a deadline, given one later (by a duration).
    loop.run_until_complete([]() -> corio::task<> {
        corio::timeout_scope scope;
        CHECK_FALSE(scope.when().has_value());
        corio::event never;
        auto block = [](corio::timeout_scope& s, corio::event& e) -> corio::task<> {
            s.reschedule(2ms);
            co_await e.wait();
        };
        CHECK_THROWS_AS(co_await scope.run(block(scope, never)), corio::timeout_error);
    }());
    CHECK(loop.timer_count() == 0);
}

TEST_CASE("misuse of a timeout_scope is a clear error", "[timeout][error]") {
    corio::event_loop loop;
    corio::timeout_scope scope(10s);
    scope.reschedule(20s); // before the block: allowed
    loop.run_until_complete(scope.run(one_step()));
    CHECK_THROWS_AS(scope.reschedule(1s), corio::invalid_state_error); // block ended
    CHECK_THROWS_AS(loop.run_until_complete(scope.run(one_step())),
                    corio::invalid_state_error); // one block per scope
    corio::timeout_scope expired(past());
    corio::event never;
    CHECK_THROWS_AS(loop.run_until_complete(expired.run(wait_forever(never))),
                    corio::timeout_error);
    CHECK_THROWS_AS(expired.reschedule(1s), corio::invalid_state_error);
}

TEST_CASE("a cancel from elsewhere inside the block stays a cancellation", "[timeout][cancel]") {
    corio::event_loop loop;
    corio::event inside;
    corio::event never;
    auto body = [](corio::event& in, corio::event& e) -> corio::task<> {
        auto block = [](corio::event& in2, corio::event& e2) -> corio::task<> {
            in2.set();
            co_await e2.wait();
        };
        co_await corio::timeout(10s, block(in, e));
    };
    auto t = loop.create_task(body(inside, never));
    loop.run_until_complete(wait_for_event(inside));
    t.cancel();
    CHECK_THROWS_AS(loop.run_until_complete(t), corio::cancelled_error);
    CHECK(t.cancelled());
    CHECK(t.cancelling() == 1); // the outside request was not withdrawn
    CHECK(loop.timer_count() == 0);
}

TEST_CASE("expiry and an outside cancel together: the cancellation wins", "[timeout][cancel]") {
    corio::event_loop loop;
    corio::event second_wait;
    corio::event never;
    std::vector<std::string> seen;
    auto body = [](corio::event& second, corio::event& e,
                   std::vector<std::string>& s) -> corio::task<> {
        auto block = [](corio::event& second2, corio::event& e2,
                        std::vector<std::string>& s2) -> corio::task<> {
            try {
                co_await e2.wait();
            } catch (const corio::cancelled_error&) {
                s2.push_back("deadline"); // swallowed: the block keeps going
            }
            second2.set();
            co_await e2.wait(); // the outside cancel arrives here
        };
        corio::timeout_scope scope(past());
        try {
            co_await scope.run(block(second, e, s));
        } catch (const corio::timeout_error&) {
            s.push_back("timeout_error");
        } catch (const corio::cancelled_error&) {
            s.push_back("cancelled_error");
            CHECK(scope.expired());
            throw;
        }
    };
    auto t = loop.create_task(body(second_wait, never, seen));
    loop.run_until_complete(wait_for_event(second_wait));
    CHECK(t.cancelling() == 1); // the scope's request
    t.cancel();
    CHECK(t.cancelling() == 2);
    CHECK_THROWS_AS(loop.run_until_complete(t), corio::cancelled_error);
    CHECK(seen == std::vector<std::string>{"deadline", "cancelled_error"});
    CHECK(t.cancelling() == 1);
}

TEST_CASE("a block that swallows the deadline's cancellation returns normally",
          "[timeout][cancel]") {
    corio::event_loop loop;
    auto body = []() -> corio::task<int> {
        corio::timeout_scope scope(past());
        int v = co_await scope.run([]() -> corio::task<int> {
            try {
                co_await corio::sleep(10s);
            } catch (const corio::cancelled_error&) {
                co_return 7;
            }
            co_return 0;
        }());
        CHECK(scope.expired());
        co_await corio::sleep(1ms); // not cancelled afterwards
        co_return v;
    };
    auto t = loop.create_task(body());
    CHECK(loop.run_until_complete(t) == 7);
    CHECK(t.cancelling() == 0);
    // Expired but never suspended again: the undelivered cancel is withdrawn with it.
    auto no_suspend = []() -> corio::task<int> {
        corio::timeout_scope scope(past());
        auto block = []() -> corio::task<int> {
            co_await corio::yield_now(); // the scope's timer fires during this iteration
            co_await corio::yield_now(); // cancelled here
            co_return 1;
        };
        int v = 0;
        try {
            v = co_await scope.run(block());
        } catch (const corio::timeout_error&) {
            v = -1;
        }
        co_await corio::yield_now();
        co_return v;
    };
    CHECK(loop.run_until_complete(no_suspend()) == -1);
}

TEST_CASE("nested scopes: the scope whose deadline passed reports it", "[timeout][nested]") {
    corio::event_loop loop;
    corio::event never;
    // The inner deadline passes: its timeout_error is caught inside the outer block.
    loop.run_until_complete([](corio::event& e) -> corio::task<> {
        auto outer_block = [](corio::event& e2) -> corio::task<std::string> {
            try {
                co_await corio::timeout_at(past(), wait_forever(e2));
            } catch (const corio::timeout_error&) {
                co_return "inner timed out";
            }
            co_return "no";
        };
        corio::timeout_scope outer(10s);
        std::string r = co_await outer.run(outer_block(e));
        CHECK(r == "inner timed out");
        CHECK_FALSE(outer.expired());
    }(never));
    // The outer deadline passes: the inner scope lets the cancellation through and
    // the outer one turns it into timeout_error.
    loop.run_until_complete([](corio::event& e) -> corio::task<> {
        std::vector<std::string> seen;
        auto outer_block = [](corio::event& e2, std::vector<std::string>& s) -> corio::task<> {
            try {
                co_await corio::timeout(10s, wait_forever(e2));
            } catch (const corio::timeout_error&) {
                s.push_back("inner timeout_error");
                throw;
            } catch (const corio::cancelled_error&) {
                s.push_back("inner cancelled_error");
                throw;
            }
        };
        CHECK_THROWS_AS(co_await corio::timeout_at(past(), outer_block(e, seen)),
                        corio::timeout_error);
        CHECK(seen == std::vector<std::string>{"inner cancelled_error"});
    }(never));
    // Both deadlines pass: the inner one expires too, yet only the outer reports it.
    loop.run_until_complete([](corio::event& e) -> corio::task<> {
        std::vector<std::string> seen;
        auto outer_block = [](corio::event& e2, std::vector<std::string>& s) -> corio::task<> {
            try {
                co_await corio::timeout_at(past(), wait_forever(e2));
            } catch (const corio::timeout_error&) {
                s.push_back("inner timeout_error");
                throw;
            } catch (const corio::cancelled_error&) {
                s.push_back("inner cancelled_error");
                throw;
            }
        };
        auto deadline = past();
        CHECK_THROWS_AS(co_await corio::timeout_at(deadline, outer_block(e, seen)),
                        corio::timeout_error);
        CHECK(seen == std::vector<std::string>{"inner cancelled_error"});
    }(never));
    CHECK(loop.timer_count() == 0);
}

TEST_CASE("a timeout over gather cancels and awaits every child", "[timeout][combinators]") {
    corio::event_loop loop;
    corio::event never;
    int cleaned = 0;
    auto child = [](corio::event& e, int& c) -> corio::task<int> {
        try {
            co_await e.wait();
        } catch (const corio::cancelled_error&) {
            ++c;
            throw;
        }
        co_return 1;
    };
    CHECK_THROWS_AS(loop.run_until_complete(corio::timeout(
                        2ms, corio::gather(child(never, cleaned), child(never, cleaned)))),
                    corio::timeout_error);
    CHECK(cleaned == 2);
}
