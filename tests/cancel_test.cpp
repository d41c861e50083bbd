#include "counting.hpp"

#include <corio/corio.hpp>

#include <catch2/catch.hpp>

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
