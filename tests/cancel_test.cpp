#include "counting.hpp"

#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

corio::task<> sleep_long(std::vector<std::string>& log) {
    try {
        co_await corio::sleep(1h);
    } catch (const corio::cancelled_error&) {
        log.push_back("innermost cancelled");
        throw;
    }
}
corio::task<> middle(std::vector<std::string>& log) {
    co_await sleep_long(log);
    log.push_back("never");
}

} // namespace

TEST_CASE("cancelling a sleeping task raises cancelled_error inside it", "[cancel]") {
    corio::event_loop loop;
    auto start = loop.time();
    auto sleeper = []() -> corio::task<std::string> {
        try {
            co_await corio::sleep(1h);
        } catch (const corio::cancelled_error&) {
            co_return "caught";
        }
        co_return "slept";
    };
    auto f = loop.create_task(sleeper());
    loop.call_later(2ms, [&] { CHECK(f.cancel()); });
    CHECK(loop.run_until_complete(f) == "caught");
    CHECK(loop.time() - start < 1h);
    CHECK(loop.timer_count() == 0);
}

TEST_CASE("cancel reaches the innermost await of a chain of tasks", "[cancel]") {
    corio::event_loop loop;
    std::vector<std::string> log;
    auto f = loop.create_task(middle(log));
    loop.call_later(1ms, [&] { f.cancel(); });
    CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
    CHECK(f.cancelled());
    CHECK(log == std::vector<std::string>{"innermost cancelled"});
}

TEST_CASE("a task cancelled while awaiting a created task cancels that task", "[cancel]") {
    corio::event_loop loop;
    std::vector<std::string> log;
    auto outer = [](std::vector<std::string>& l) -> corio::task<> {
        auto inner = corio::create_task(middle(l));
        co_await inner;
    };
    auto f = loop.create_task(outer(log));
    loop.call_later(1ms, [&] { f.cancel(); });
    CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
    CHECK(log == std::vector<std::string>{"innermost cancelled"});
}

TEST_CASE("a cancel requested while the task is running lands at its next suspension", "[cancel]") {
    auto body = []() -> corio::task<std::string> {
        auto self = corio::current_task();
        self.cancel(); // we are running: nothing can be thrown now
        std::string trace = "continued;";
        try {
            co_await corio::yield_now();
        } catch (const corio::cancelled_error&) {
            trace += "cancelled at next await;";
        }
        // Catching it consumed the request: later awaits proceed normally.
        co_await corio::sleep(1ms);
        trace += "carried on";
        co_return trace;
    };
    CHECK(corio::run(body()) == "continued;cancelled at next await;carried on");
}

TEST_CASE("cancelling a done task returns false", "[cancel]") {
    corio::event_loop loop;
    auto f = loop.create_task([]() -> corio::task<int> { co_return 1; }());
    CHECK(loop.run_until_complete(f) == 1);
    CHECK_FALSE(f.cancel());
    CHECK_FALSE(f.cancelled());
}

TEST_CASE("a cancelled task frees its frames", "[cancel][lifetime]") {
    {
        corio::event_loop loop;
        auto worker = [](corio_test::counted) -> corio::task<> { co_await corio::sleep(1h); };
        std::vector<corio::future<>> fs;
        for (int i = 0; i < 100; ++i) {
            fs.push_back(loop.create_task(worker(corio_test::counted{})));
        }
        loop.call_soon([&] {
            for (auto& f : fs) {
                f.cancel();
            }
        });
        loop.run_until_complete([]() -> corio::task<> { co_await corio::sleep(1ms); }());
        CHECK(corio_test::counted::live == 0);
        for (auto& f : fs) {
            CHECK(f.cancelled());
        }
    }
    CHECK(corio_test::counted::live == 0);
}

TEST_CASE("cancelling a task awaiting a plain future cancels the future", "[cancel][future]") {
    corio::event_loop loop;
    corio::future<int> gate(loop);
    auto waiter = [](corio::future<int> g) -> corio::task<int> { co_return co_await g; };
    auto f = loop.create_task(waiter(gate));
    loop.call_later(1ms, [&] { f.cancel(); });
    CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
    CHECK(gate.cancelled());
}

TEST_CASE("a cancel that arrives after the awaited future completed lands at the next suspension",
          "[cancel][future]") {
    // The future gets its result, then the task is cancelled in the same iteration,
    // before it resumed: the task sees the value, and the cancel is not lost (a
    // Redis worker's heartbeat kept running forever after its cancel came this way).
    corio::event_loop loop;
    corio::future<int> gate(loop);
    std::vector<std::string> log;
    auto waiter = [](corio::future<int> g, std::vector<std::string>& l) -> corio::task<> {
        l.push_back("got " + std::to_string(co_await g));
        try {
            co_await corio::yield_now();
            l.push_back("carried on");
        } catch (const corio::cancelled_error&) {
            l.push_back("cancelled at the next await");
            throw;
        }
    };
    auto f = loop.create_task(waiter(gate, log));
    loop.call_soon([&] {
        gate.set_result(7);
        CHECK(f.cancel());
    });
    CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
    CHECK(log == std::vector<std::string>{"got 7", "cancelled at the next await"});
}

TEST_CASE("a cancel that arrives after an awaited task finished lands at the next suspension",
          "[cancel][future]") {
    corio::event_loop loop;
    std::vector<std::string> log;
    std::optional<corio::future<>> outer_handle;
    // The inner task queues the outer one's cancel, then finishes: the cancel runs
    // before the outer task resumes with the inner one's value.
    auto inner = [](corio::event_loop& l, std::optional<corio::future<>>& o) -> corio::task<int> {
        l.call_soon([&o] { CHECK(o->cancel()); });
        co_return 5;
    };
    auto outer = [&inner, &loop](std::optional<corio::future<>>& o,
                                 std::vector<std::string>& l) -> corio::task<> {
        l.push_back("got " + std::to_string(co_await corio::create_task(inner(loop, o))));
        co_await corio::yield_now();
        l.push_back("not cancelled");
    };
    outer_handle = loop.create_task(outer(outer_handle, log));
    CHECK_THROWS_AS(loop.run_until_complete(*outer_handle), corio::cancelled_error);
    CHECK(log == std::vector<std::string>{"got 5"});
}
