#include <corio/combinators.hpp>
#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct report {
    std::string message;
    std::string task_name;
    bool has_exception = false;
};

/// Installs a handler that records every report of `loop`.
std::vector<report>& record(corio::event_loop& loop, std::vector<report>& out) {
    loop.set_exception_handler([&out](const corio::exception_context& c) {
        out.push_back({c.message, c.task_name, c.exception != nullptr});
    });
    return out;
}

bool contains(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

/// One step that blocks the loop's thread for `d` (the scenario of a slow step).
corio::task<> hog(std::chrono::milliseconds d) {
    std::this_thread::sleep_for(d);
    co_return;
}

} // namespace

TEST_CASE("debug mode reports a slow task step with the task name and its creation site",
          "[debug]") {
    corio::event_loop loop({.debug = true, .slow_callback_duration = 5ms});
    std::vector<report> reports;
    record(loop, reports);
    const int line = __LINE__ + 1;
    auto f = loop.create_task(hog(20ms), "slowpoke");
    loop.run_until_complete(f);
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].task_name == "slowpoke");
    CHECK(contains(reports[0].message, "Executing a step of task slowpoke"));
    CHECK(contains(reports[0].message, "debug_test.cpp:" + std::to_string(line)));
    CHECK(contains(reports[0].message, " seconds"));
}

TEST_CASE("debug mode reports a slow callback", "[debug]") {
    corio::event_loop loop({.debug = true, .slow_callback_duration = 5ms});
    std::vector<report> reports;
    record(loop, reports);
    loop.call_soon([] { std::this_thread::sleep_for(20ms); });
    loop.run_until_complete(
        corio::task<>([]() -> corio::task<> { co_await corio::yield_now(); }()));
    REQUIRE(reports.size() == 1);
    CHECK(contains(reports[0].message, "Executing a callback took"));
}

TEST_CASE("without debug mode slow steps are not reported", "[debug]") {
    ::unsetenv("CORIO_DEBUG");
    corio::event_loop loop({.slow_callback_duration = 1ms});
    std::vector<report> reports;
    record(loop, reports);
    CHECK_FALSE(loop.get_debug());
    loop.run_until_complete(hog(5ms));
    CHECK(reports.empty());
}

TEST_CASE("CORIO_DEBUG=1 in the environment switches debug mode on", "[debug]") {
    ::setenv("CORIO_DEBUG", "1", 1);
    corio::event_loop on;
    ::setenv("CORIO_DEBUG", "0", 1);
    corio::event_loop off;
    ::unsetenv("CORIO_DEBUG");
    CHECK(on.get_debug());
    CHECK_FALSE(off.get_debug());
    off.set_debug(true);
    CHECK(off.get_debug());
}

TEST_CASE("debug mode shows where a task with an unretrieved exception was created", "[debug]") {
    corio::event_loop loop({.debug = true});
    std::vector<report> reports;
    record(loop, reports);
    auto fails = []() -> corio::task<> {
        co_await corio::yield_now();
        throw std::runtime_error("nobody looks");
    };
    auto body = [](auto make) -> corio::task<int> {
        const int line = __LINE__ + 1;
        (void)corio::create_task(make(), "forgotten");
        for (int i = 0; i < 3; ++i) {
            co_await corio::yield_now();
        }
        co_return line;
    };
    const int line = loop.run_until_complete(body(fails));
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].task_name == "forgotten");
    CHECK(reports[0].has_exception);
    CHECK(contains(reports[0].message, "Task exception was never retrieved"));
    CHECK(contains(reports[0].message, "debug_test.cpp:" + std::to_string(line)));
}

TEST_CASE("debug mode reports a task destroyed while still pending, with its creation site",
          "[debug]") {
    std::vector<report> reports;
    int line = 0;
    {
        corio::event_loop loop({.debug = true});
        record(loop, reports);
        auto stubborn = []() -> corio::task<> {
            corio::future<> never;
            corio::future<> never_again;
            try {
                co_await never;
            } catch (const corio::cancelled_error&) {
            }
            co_await never_again; // refuses to finish: close() has to destroy it
        };
        line = __LINE__ + 1;
        auto f = loop.create_task(stubborn(), "stuck");
        loop.run_until_complete(
            corio::task<>([]() -> corio::task<> { co_await corio::yield_now(); }()));
        loop.close();
        CHECK(f.cancelled());
    }
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].task_name == "stuck");
    CHECK(contains(reports[0].message, "Task was destroyed but it is pending"));
    CHECK(contains(reports[0].message, "debug_test.cpp:" + std::to_string(line)));
}

TEST_CASE("debug reports name combinator children after the awaiting task",
          "[debug][combinators]") {
    corio::event_loop loop({.debug = true, .slow_callback_duration = 5ms});
    std::vector<report> reports;
    record(loop, reports);
    auto body = []() -> corio::task<> { (void)co_await corio::gather(hog(0ms), hog(20ms)); };
    loop.run_until_complete(loop.create_task(body(), "batch"));
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].task_name == "batch/gather[1]");
}

TEST_CASE("debug mode rejects call_soon from another thread", "[debug]") {
    corio::event_loop loop({.debug = true});
    bool threw = false;
    std::thread t([&] {
        try {
            loop.call_soon([] {});
        } catch (const corio::error&) {
            threw = true;
        }
    });
    t.join();
    CHECK(threw);
    loop.call_soon_threadsafe([] {}); // the supported way
}
