#include "counting.hpp"

#include <corio/combinators.hpp>
#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

using namespace std::chrono_literals;

namespace {

using corio_test::counted;

/// A counted result value.
struct item : counted {
    int v = 0;
    explicit item(int x) : v(x) {}
};

using log_t = std::vector<std::string>;

/// Finishes after `yields` loop iterations; the order of completion is fixed by
/// `yields` alone, without timers.
corio::task<item> after(int v, int yields, log_t* log) {
    for (int i = 0; i < yields; ++i) {
        co_await corio::yield_now();
    }
    if (log != nullptr) {
        log->push_back("done " + std::to_string(v));
    }
    co_return item(v);
}

corio::task<int> int_after(int v, int yields) {
    for (int i = 0; i < yields; ++i) {
        co_await corio::yield_now();
    }
    co_return v;
}

corio::task<int> fail_after(int yields, std::string what) {
    for (int i = 0; i < yields; ++i) {
        co_await corio::yield_now();
    }
    throw std::runtime_error(what);
}

/// Sleeps "forever"; on cancel runs an asynchronous cleanup, logs, and rethrows.
corio::task<int> until_cancelled(std::string name, log_t* log) {
    counted alive;
    bool cancelled = false;
    try {
        co_await corio::sleep(1h);
    } catch (const corio::cancelled_error&) {
        cancelled = true;
    }
    if (cancelled) {
        co_await corio::yield_now(); // cleanup that itself awaits
        log->push_back(name + " cleaned up");
        throw corio::cancelled_error();
    }
    co_return -1;
}

/// Swallows a cancel and returns `v` instead.
corio::task<int> swallow_cancel(int v, log_t* log) {
    try {
        co_await corio::sleep(1h);
    } catch (const corio::cancelled_error&) {
        log->push_back("swallowed");
    }
    co_return v;
}

template <class T>
T run_on(corio::event_loop& loop, corio::task<T> t) {
    return loop.run_until_complete(std::move(t));
}

} // namespace

TEST_CASE("gather yields results in argument order whatever the completion order",
          "[combinators][gather]") {
    {
        corio::event_loop loop;
        log_t log;
        auto body = [](log_t* l) -> corio::task<std::vector<int>> {
            auto [a, b, c] = co_await corio::gather(after(1, 3, l), after(2, 1, l), after(3, 2, l));
            co_return std::vector<int>{a.v, b.v, c.v};
        };
        CHECK(run_on(loop, body(&log)) == std::vector<int>{1, 2, 3});
        CHECK(log == log_t{"done 2", "done 3", "done 1"});
    }
    CHECK(counted::live == 0);
}

TEST_CASE("gather with mixed sleep durations keeps argument order", "[combinators][gather]") {
    corio::event_loop loop;
    auto sleepy = [](int v, std::chrono::milliseconds d) -> corio::task<int> {
        co_await corio::sleep(d);
        co_return v;
    };
    auto body = [](auto make) -> corio::task<std::tuple<int, int, int>> {
        co_return co_await corio::gather(make(1, 6ms), make(2, 1ms), make(3, 3ms));
    };
    auto start = loop.time();
    CHECK(run_on(loop, body(sleepy)) == std::tuple{1, 2, 3});
    CHECK(loop.time() - start >= 6ms);
    CHECK(counted::live == 0);
}

TEST_CASE("gather over a range yields a vector in range order", "[combinators][gather]") {
    {
        corio::event_loop loop;
        auto body = []() -> corio::task<std::vector<int>> {
            std::vector<corio::task<item>> tasks;
            for (int i = 0; i < 5; ++i) {
                tasks.push_back(after(i, 5 - i, nullptr));
            }
            std::vector<item> items = co_await corio::gather(std::move(tasks));
            std::vector<int> out;
            for (auto& x : items) {
                out.push_back(x.v);
            }
            co_return out;
        };
        CHECK(run_on(loop, body()) == std::vector<int>{0, 1, 2, 3, 4});
        auto empty = []() -> corio::task<std::size_t> {
            co_return (co_await corio::gather(std::vector<corio::task<int>>{})).size();
        };
        CHECK(run_on(loop, empty()) == 0);
        auto nothing = []() -> corio::task<std::size_t> {
            auto none = co_await corio::gather();
            co_return std::tuple_size_v<decltype(none)>;
        };
        CHECK(run_on(loop, nothing()) == 0);
    }
    CHECK(counted::live == 0);
}

TEST_CASE("gather maps void results to std::monostate and accepts futures",
          "[combinators][gather]") {
    corio::event_loop loop;
    auto nothing = []() -> corio::task<> { co_await corio::yield_now(); };
    auto body = [](auto make) -> corio::task<int> {
        corio::future<int> f;
        corio::get_running_loop().call_soon([f]() mutable { f.set_result(41); });
        auto [m, v, w] = co_await corio::gather(make(), f, int_after(1, 1));
        static_assert(std::is_same_v<decltype(m), std::monostate>);
        CHECK(f.result() == 41); // the caller's future keeps its value
        co_return v + w;
    };
    CHECK(run_on(loop, body(nothing)) == 42);
    CHECK(counted::live == 0);
}

TEST_CASE(
    "gather cancels the other children on the first failure and rethrows it after they finished",
    "[combinators][gather][cancel]") {
    {
        corio::event_loop loop;
        log_t log;
        auto body = [](log_t* l) -> corio::task<> {
            try {
                (void)co_await corio::gather(until_cancelled("a", l), fail_after(2, "boom"),
                                             until_cancelled("b", l));
            } catch (const std::runtime_error& e) {
                l->push_back(std::string("caught ") + e.what());
            }
        };
        run_on(loop, body(&log));
        CHECK(log == log_t{"a cleaned up", "b cleaned up", "caught boom"});
        CHECK(loop.timer_count() == 0);
    }
    CHECK(counted::live == 0);
}

TEST_CASE("a later failure of a gather sibling is reported, not swallowed",
          "[combinators][gather]") {
    corio::event_loop loop;
    std::vector<std::string> reported;
    loop.set_exception_handler([&](const corio::exception_context& c) {
        try {
            std::rethrow_exception(c.exception);
        } catch (const std::exception& e) {
            reported.push_back(e.what());
        }
    });
    auto stubborn = []() -> corio::task<int> {
        try {
            co_await corio::sleep(1h);
        } catch (const corio::cancelled_error&) {
        }
        throw std::logic_error("second");
    };
    auto body = [](auto s) -> corio::task<std::string> {
        try {
            (void)co_await corio::gather(fail_after(1, "first"), s());
        } catch (const std::exception& e) {
            co_return e.what();
        }
        co_return "";
    };
    CHECK(run_on(loop, body(stubborn)) == "first");
    loop.close();
    CHECK(reported == std::vector<std::string>{"second"});
    CHECK(counted::live == 0);
}

TEST_CASE("gather_settled keeps every outcome in its slot, exceptions included",
          "[combinators][gather_settled]") {
    {
        corio::event_loop loop;
        auto body = []() -> corio::task<> {
            auto [a, b, c] = co_await corio::gather_settled(after(1, 3, nullptr),
                                                            fail_after(1, "bad"), int_after(3, 2));
            REQUIRE(a.has_value());
            CHECK(a.value().v == 1);
            CHECK_FALSE(b.has_value());
            CHECK(b.exception() != nullptr);
            CHECK_THROWS_WITH(b.value(), "bad");
            CHECK(c.value() == 3);
            CHECK(c.exception() == nullptr);

            std::vector<corio::task<int>> ts;
            ts.push_back(int_after(1, 2));
            ts.push_back(fail_after(1, "x"));
            ts.push_back(int_after(3, 0));
            auto v = co_await corio::gather_settled(std::move(ts));
            REQUIRE(v.size() == 3);
            CHECK(v[0].value() == 1);
            CHECK_THROWS_AS(v[1].value(), std::runtime_error);
            CHECK(v[2].value() == 3);
        };
        run_on(loop, body());
    }
    CHECK(counted::live == 0);
}

TEST_CASE("cancelling the task awaiting gather cancels every child and waits for them",
          "[combinators][gather][cancel]") {
    {
        corio::event_loop loop;
        log_t log;
        auto body = [](log_t* l) -> corio::task<> {
            (void)co_await corio::gather(until_cancelled("a", l), until_cancelled("b", l),
                                         until_cancelled("c", l));
        };
        auto f = loop.create_task(body(&log));
        loop.call_soon([&] { loop.call_soon([&] { f.cancel(); }); });
        CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
        CHECK(f.cancelled());
        CHECK(log == log_t{"a cleaned up", "b cleaned up", "c cleaned up"});
        CHECK(loop.timer_count() == 0);
    }
    CHECK(counted::live == 0);
}

TEST_CASE("gather children are tasks named after the awaiting task", "[combinators][gather]") {
    corio::event_loop loop;
    auto name_of_self = []() -> corio::task<std::string> {
        co_return corio::current_task().name();
    };
    auto body = [](auto n) -> corio::task<std::string> {
        auto [a, b] = co_await corio::gather(n(), n());
        co_return a + " " + b;
    };
    auto f = loop.create_task(body(name_of_self), "parent");
    CHECK(loop.run_until_complete(f) == "parent/gather[0] parent/gather[1]");
    CHECK(counted::live == 0);
}

TEST_CASE("wait_for returns the value of inner work that finishes in time",
          "[combinators][wait_for]") {
    corio::event_loop loop;
    auto body = []() -> corio::task<int> {
        co_return co_await corio::wait_for(int_after(7, 3), 1h);
    };
    CHECK(run_on(loop, body()) == 7);
    CHECK(loop.timer_count() == 0);
    CHECK(counted::live == 0);
}

TEST_CASE("wait_for timeout cancels the inner task and its cleanup ran before timeout_error",
          "[combinators][wait_for][cancel]") {
    {
        corio::event_loop loop;
        log_t log;
        auto body = [](log_t* l) -> corio::task<> {
            try {
                (void)co_await corio::wait_for(until_cancelled("inner", l), 2ms);
            } catch (const corio::timeout_error&) {
                l->push_back("timeout");
            }
        };
        auto start = loop.time();
        run_on(loop, body(&log));
        CHECK(loop.time() - start >= 2ms);
        CHECK(log == log_t{"inner cleaned up", "timeout"});
        CHECK(loop.timer_count() == 0);
    }
    CHECK(counted::live == 0);
}

TEST_CASE("wait_for returns the value of an inner task that swallowed the cancel",
          "[combinators][wait_for]") {
    corio::event_loop loop;
    log_t log;
    auto body = [](log_t* l) -> corio::task<int> {
        co_return co_await corio::wait_for(swallow_cancel(5, l), 1ms);
    };
    CHECK(run_on(loop, body(&log)) == 5);
    CHECK(log == log_t{"swallowed"});
    CHECK(counted::live == 0);
}

TEST_CASE("wait_for never turns another exception into timeout_error", "[combinators][wait_for]") {
    corio::event_loop loop;
    auto fails_on_cancel = []() -> corio::task<int> {
        try {
            co_await corio::sleep(1h);
        } catch (const corio::cancelled_error&) {
            throw std::logic_error("cleanup failed");
        }
        co_return 0;
    };
    auto body = [](auto f) -> corio::task<> {
        CHECK_THROWS_AS(co_await corio::wait_for(fail_after(1, "early"), 1h), std::runtime_error);
        try {
            (void)co_await corio::wait_for(f(), 1ms);
            FAIL("no exception");
        } catch (const corio::timeout_error&) {
            FAIL("became timeout_error");
        } catch (const std::logic_error& e) {
            CHECK(std::string(e.what()) == "cleanup failed");
        }
    };
    run_on(loop, body(fails_on_cancel));
    CHECK(counted::live == 0);
}

TEST_CASE("nested wait_for: the inner, shorter deadline raises timeout_error through the outer",
          "[combinators][wait_for]") {
    corio::event_loop loop;
    log_t log;
    auto body = [](log_t* l) -> corio::task<> {
        try {
            (void)co_await corio::wait_for(corio::wait_for(until_cancelled("work", l), 1ms), 1h);
        } catch (const corio::timeout_error&) {
            l->push_back("timeout");
        }
    };
    run_on(loop, body(&log));
    CHECK(log == log_t{"work cleaned up", "timeout"});
    CHECK(loop.timer_count() == 0);
    CHECK(counted::live == 0);
}

TEST_CASE("nested wait_for: the outer, shorter deadline cancels the inner wait_for",
          "[combinators][wait_for]") {
    corio::event_loop loop;
    log_t log;
    auto inner = [](log_t* l) -> corio::task<int> {
        try {
            co_return co_await corio::wait_for(until_cancelled("work", l), 1h);
        } catch (const corio::timeout_error&) {
            l->push_back("inner saw timeout_error");
            throw;
        } catch (const corio::cancelled_error&) {
            l->push_back("inner saw cancelled_error");
            throw;
        }
    };
    auto body = [](auto in, log_t* l) -> corio::task<> {
        try {
            (void)co_await corio::wait_for(in(l), 1ms);
        } catch (const corio::timeout_error&) {
            l->push_back("outer timeout");
        }
    };
    run_on(loop, body(inner, &log));
    CHECK(log == log_t{"work cleaned up", "inner saw cancelled_error", "outer timeout"});
    CHECK(counted::live == 0);
}

TEST_CASE("wait_for with a zero or negative timeout returns a result that is already there",
          "[combinators][wait_for]") {
    corio::event_loop loop;
    auto immediate = []() -> corio::task<int> { co_return 3; };
    auto body = [](auto imm) -> corio::task<> {
        corio::future<int> done;
        done.set_result(9);
        // Awaited into locals first: g++ 12 miscompiles some co_await expressions
        // inside Catch2's assertion macros.
        int from_done = co_await corio::wait_for(done, 0s);
        int from_immediate = co_await corio::wait_for(imm(), -1s);
        CHECK(from_done == 9);
        CHECK(from_immediate == 3);
        CHECK_THROWS_AS(co_await corio::wait_for(int_after(1, 1), 0s), corio::timeout_error);
        corio::future<int> pending;
        CHECK_THROWS_AS(co_await corio::wait_for(pending, 0ms), corio::timeout_error);
        CHECK(pending.cancelled()); // asyncio: the awaited future is cancelled on expiry
    };
    run_on(loop, body(immediate));
    CHECK(counted::live == 0);
}

TEST_CASE("wait_for and shield of a future with a move-only value move it out, done or not",
          "[combinators][wait_for][shield]") {
    corio::event_loop loop;
    auto body = []() -> corio::task<> {
        corio::future<std::unique_ptr<int>> a;
        a.set_result(std::make_unique<int>(4));
        corio::future<std::unique_ptr<int>> b;
        b.set_result(std::make_unique<int>(5));
        std::unique_ptr<int> from_wait_for = co_await corio::wait_for(a, 1s);
        std::unique_ptr<int> from_shield = co_await corio::shield(b);
        REQUIRE(from_wait_for != nullptr);
        REQUIRE(from_shield != nullptr);
        CHECK(*from_wait_for == 4);
        CHECK(*from_shield == 5);
        CHECK(a.done()); // the futures stay done, their values moved out
        corio::future<std::unique_ptr<int>> later;
        corio::get_running_loop().call_soon(
            [later]() mutable { later.set_result(std::make_unique<int>(6)); });
        std::unique_ptr<int> from_pending = co_await corio::wait_for(later, 1s);
        REQUIRE(from_pending != nullptr);
        CHECK(*from_pending == 6);
        corio::future<int> failed;
        failed.set_exception(std::make_exception_ptr(std::out_of_range("done badly")));
        CHECK_THROWS_AS(co_await corio::shield(failed), std::out_of_range);
    };
    run_on(loop, body());
}

TEST_CASE("cancelling the task awaiting wait_for gives cancelled_error, not timeout_error",
          "[combinators][wait_for][cancel]") {
    corio::event_loop loop;
    log_t log;
    auto body = [](log_t* l) -> corio::task<> {
        (void)co_await corio::wait_for(until_cancelled("w", l), 1h);
    };
    auto f = loop.create_task(body(&log));
    loop.call_soon([&] { f.cancel(); });
    CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
    CHECK(log == log_t{"w cleaned up"});
    CHECK(counted::live == 0);
}

TEST_CASE("shield: cancelling the outer task raises cancelled_error while the inner work runs on",
          "[combinators][shield][cancel]") {
    {
        corio::event_loop loop;
        log_t log;
        auto inner = [](log_t* l) -> corio::task<item> {
            for (int i = 0; i < 5; ++i) {
                co_await corio::yield_now();
            }
            l->push_back("inner finished");
            co_return item(8);
        };
        auto body = [](auto in, log_t* l) -> corio::task<> {
            try {
                (void)co_await corio::shield(in(l));
            } catch (const corio::cancelled_error&) {
                l->push_back("outer cancelled");
                throw;
            }
        };
        auto f = loop.create_task(body(inner, &log));
        loop.call_soon([&] { f.cancel(); });
        CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
        CHECK(log == log_t{"outer cancelled"});
        auto drain = []() -> corio::task<> {
            for (int i = 0; i < 10; ++i) {
                co_await corio::yield_now();
            }
        };
        loop.run_until_complete(drain());
        CHECK(log == log_t{"outer cancelled", "inner finished"});

        auto plain = [](auto in, log_t* l) -> corio::task<int> {
            item x = co_await corio::shield(in(l));
            co_return x.v;
        };
        CHECK(loop.run_until_complete(plain(inner, &log)) == 8);
    }
    CHECK(counted::live == 0);
}

TEST_CASE("wait_any returns the first finisher and cancels and awaits the rest",
          "[combinators][wait_any]") {
    {
        corio::event_loop loop;
        log_t log;
        auto body = [](log_t* l) -> corio::task<> {
            auto [index, value] = co_await corio::wait_any(until_cancelled("a", l), int_after(2, 3),
                                                           until_cancelled("c", l));
            static_assert(std::is_same_v<decltype(value), int>);
            l->push_back("winner " + std::to_string(index) + " = " + std::to_string(value));
        };
        run_on(loop, body(&log));
        CHECK(log == log_t{"a cleaned up", "c cleaned up", "winner 1 = 2"});
        CHECK(loop.timer_count() == 0);

        auto ranged = []() -> corio::task<std::pair<std::size_t, item>> {
            std::vector<corio::task<item>> ts;
            ts.push_back(after(0, 4, nullptr));
            ts.push_back(after(1, 2, nullptr));
            ts.push_back(after(2, 3, nullptr));
            co_return co_await corio::wait_any(std::move(ts));
        };
        auto [i, v] = run_on(loop, ranged());
        CHECK(i == 1);
        CHECK(v.v == 1);
    }
    CHECK(counted::live == 0);
}

TEST_CASE("wait_any with different result types yields a variant", "[combinators][wait_any]") {
    corio::event_loop loop;
    auto str = []() -> corio::task<std::string> {
        co_await corio::yield_now();
        co_return "s";
    };
    auto body = [](auto s) -> corio::task<> {
        auto [index, value] = co_await corio::wait_any(int_after(1, 3), s(), int_after(2, 4));
        static_assert(std::is_same_v<decltype(value), std::variant<int, std::string>>);
        CHECK(index == 1);
        CHECK(std::get<std::string>(value) == "s");
    };
    run_on(loop, body(str));
    CHECK(counted::live == 0);
}

TEST_CASE("wait_any rethrows the winner's exception after the others finished",
          "[combinators][wait_any]") {
    corio::event_loop loop;
    log_t log;
    auto body = [](log_t* l) -> corio::task<> {
        try {
            (void)co_await corio::wait_any(until_cancelled("a", l), fail_after(1, "lost"));
        } catch (const std::runtime_error& e) {
            l->push_back(e.what());
        }
        CHECK_THROWS_AS(co_await corio::wait_any(std::vector<corio::task<int>>{}), corio::error);
    };
    run_on(loop, body(&log));
    CHECK(log == log_t{"a cleaned up", "lost"});
    CHECK(counted::live == 0);
}

TEST_CASE("as_completed yields every result in completion order", "[combinators][as_completed]") {
    {
        corio::event_loop loop;
        auto body = []() -> corio::task<std::vector<int>> {
            std::vector<corio::task<item>> ts;
            for (int yields : {4, 1, 3, 0, 2}) {
                ts.push_back(after(yields, yields, nullptr));
            }
            ts.push_back([]() -> corio::task<item> {
                co_await corio::yield_now();
                co_await corio::yield_now();
                co_await corio::yield_now();
                co_await corio::yield_now();
                co_await corio::yield_now();
                throw std::runtime_error("last");
            }());
            std::vector<int> order;
            auto gen = corio::as_completed(std::move(ts));
            while (auto o = co_await gen.next()) {
                if (o->has_value()) {
                    order.push_back(o->value().v);
                } else {
                    CHECK_THROWS_WITH(o->value(), "last");
                    order.push_back(-1);
                }
            }
            co_return order;
        };
        CHECK(run_on(loop, body()) == std::vector<int>{0, 1, 2, 3, 4, -1});
    }
    CHECK(counted::live == 0);
}

TEST_CASE("as_completed aclose cancels the children still running and waits for them",
          "[combinators][as_completed][cancel]") {
    corio::event_loop loop;
    log_t log;
    auto body = [](log_t* l) -> corio::task<int> {
        std::vector<corio::task<int>> ts;
        ts.push_back(until_cancelled("a", l));
        ts.push_back(int_after(7, 1));
        ts.push_back(until_cancelled("b", l));
        auto gen = corio::as_completed(std::move(ts));
        auto first = co_await gen.next();
        co_await gen.aclose();
        l->push_back("closed");
        co_return first->value();
    };
    CHECK(run_on(loop, body(&log)) == 7);
    CHECK(log == log_t{"a cleaned up", "b cleaned up", "closed"});
    CHECK(counted::live == 0);
}

TEST_CASE("cancelling the consumer of as_completed cancels every child",
          "[combinators][as_completed][cancel]") {
    corio::event_loop loop;
    log_t log;
    auto body = [](log_t* l) -> corio::task<> {
        std::vector<corio::task<int>> ts;
        ts.push_back(until_cancelled("a", l));
        ts.push_back(until_cancelled("b", l));
        auto gen = corio::as_completed(std::move(ts));
        (void)co_await gen.next();
    };
    auto f = loop.create_task(body(&log));
    loop.call_soon([&] { loop.call_soon([&] { f.cancel(); }); });
    CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
    CHECK(log == log_t{"a cleaned up", "b cleaned up"});
    CHECK(counted::live == 0);
}

TEST_CASE("a million gathers of two trivial tasks leak nothing",
          "[combinators][gather][lifetime]") {
#if defined(__SANITIZE_ADDRESS__)
    constexpr int iterations = 20'000;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    constexpr int iterations = 20'000;
#else
    constexpr int iterations = 1'000'000;
#endif
#else
    constexpr int iterations = 1'000'000;
#endif
    {
        corio::event_loop loop;
        auto trivial = [](int v) -> corio::task<item> { co_return item(v); };
        auto body = [](auto t, int n) -> corio::task<long> {
            long sum = 0;
            for (int i = 0; i < n; ++i) {
                auto [a, b] = co_await corio::gather(t(1), t(2));
                sum += a.v + b.v;
            }
            co_return sum;
        };
        CHECK(run_on(loop, body(trivial, iterations)) == 3L * iterations);
        CHECK(counted::live == 0);
    }
    CHECK(counted::live == 0);
}

TEST_CASE("a cancel arriving after every child finished keeps the result and lands at the next "
          "suspension",
          "[combinators][gather][cancel]") {
    corio::event_loop loop;
    log_t log;
    auto canceller = [](corio::task_handle victim) -> corio::task<> {
        co_await corio::yield_now(); // runs after the children finished, before the parent resumed
        victim.cancel();
    };
    auto body = [](auto c, log_t* l) -> corio::task<> {
        auto helper = corio::create_task(c(corio::current_task()));
        auto [a, b] = co_await corio::gather(int_after(1, 0), int_after(2, 0));
        l->push_back("got " + std::to_string(a + b));
        try {
            co_await corio::yield_now();
        } catch (const corio::cancelled_error&) {
            l->push_back("cancelled at the next suspension");
        }
        co_await helper;
    };
    loop.run_until_complete(body(canceller, &log));
    CHECK(log == log_t{"got 3", "cancelled at the next suspension"});
    CHECK(counted::live == 0);
}

TEST_CASE("reference results are gathered as std::reference_wrapper", "[combinators][gather]") {
    corio::event_loop loop;
    static int shared = 5;
    auto ref = []() -> corio::task<int&> { co_return shared; };
    auto body = [](auto r) -> corio::task<> {
        auto [x, y] = co_await corio::gather(r(), int_after(1, 1));
        static_assert(std::is_same_v<decltype(x), std::reference_wrapper<int>>);
        CHECK(&x.get() == &shared);
        CHECK(y == 1);
    };
    loop.run_until_complete(body(ref));
    CHECK(counted::live == 0);
}

TEST_CASE("cancelling the task awaiting gather_settled or wait_any cancels every child",
          "[combinators][gather_settled][wait_any][cancel]") {
    {
        corio::event_loop loop;
        log_t log;
        auto settled = [](log_t* l) -> corio::task<> {
            (void)co_await corio::gather_settled(until_cancelled("s1", l),
                                                 until_cancelled("s2", l));
        };
        auto any = [](log_t* l) -> corio::task<> {
            (void)co_await corio::wait_any(until_cancelled("w1", l), until_cancelled("w2", l));
        };
        auto f = loop.create_task(settled(&log));
        auto g = loop.create_task(any(&log));
        loop.call_soon([&] {
            loop.call_soon([&] {
                f.cancel();
                g.cancel();
            });
        });
        CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
        CHECK_THROWS_AS(loop.run_until_complete(g), corio::cancelled_error);
        std::sort(log.begin(), log.end());
        CHECK(log == log_t{"s1 cleaned up", "s2 cleaned up", "w1 cleaned up", "w2 cleaned up"});
    }
    CHECK(counted::live == 0);
}

TEST_CASE("destroying an as_completed generator early cancels the children still running",
          "[combinators][as_completed][lifetime]") {
    {
        corio::event_loop loop;
        log_t log;
        auto body = [](log_t* l) -> corio::task<int> {
            std::vector<corio::task<int>> ts;
            ts.push_back(int_after(4, 0));
            ts.push_back(until_cancelled("left behind", l));
            int first = 0;
            {
                auto gen = corio::as_completed(std::move(ts));
                first = (co_await gen.next())->value();
            } // destroyed at a co_yield: cannot wait, cancels
            for (int i = 0; i < 3; ++i) {
                co_await corio::yield_now();
            }
            co_return first;
        };
        CHECK(loop.run_until_complete(body(&log)) == 4);
        CHECK(log == log_t{"left behind cleaned up"});
    }
    CHECK(counted::live == 0);
}
