// corio/format.hpp: fmt::formatter for task handles, outcomes, exceptions, endpoints
// and exit statuses; bad format specifications.
#include <corio/corio.hpp>
#include <corio/format.hpp>

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <csignal>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct not_a_std_exception {};

corio::task<std::string> describe_self() {
    co_return fmt::format("{} / {:n}", corio::current_task(), corio::current_task());
}

corio::task<> wait_forever(corio::event* e) {
    co_await e->wait();
}

// The sleeper's handle printed while it waits, after it was cancelled, and by name.
corio::task<std::vector<std::string>> print_sleeper() {
    corio::event never;
    auto f = corio::create_task(wait_forever(&never), "sleeper");
    co_await corio::yield_now(); // the sleeper runs up to its wait
    corio::task_handle sleeper;
    for (const auto& h : corio::all_tasks()) {
        if (h.name() == "sleeper") {
            sleeper = h;
        }
    }
    std::vector<std::string> out{fmt::format("{}", sleeper)};
    f.cancel();
    try {
        co_await f;
    } catch (const corio::cancelled_error&) {
    }
    out.push_back(fmt::format("{}", sleeper));
    out.push_back(fmt::format("{:n}", sleeper));
    co_return out;
}

} // namespace

TEST_CASE("a task handle prints its name and whether it is done", "[format][task]") {
    CHECK(fmt::format("{}", corio::task_handle{}) == "no task");
    corio::event_loop loop;
    auto self = loop.create_task(describe_self(), "worker");
    CHECK(loop.run_until_complete(self) == "worker (pending) / worker");

    CHECK(loop.run_until_complete(print_sleeper()) ==
          std::vector<std::string>{"sleeper (pending)", "sleeper (done)", "sleeper"});
}

TEST_CASE("corio's exceptions print their message, with {:t} their type too", "[format][error]") {
    const corio::timeout_error timeout;
    CHECK(fmt::format("{}", timeout) == "corio: timed out");
    CHECK(fmt::format("{:t}", timeout) == "corio::timeout_error: corio: timed out");
    const corio::queue_full full;
    CHECK(fmt::format("{:t}", full).rfind("corio::queue_full: ", 0) == 0);
    // Through a base-class reference, the dynamic type is named.
    const corio::error& base = timeout;
    CHECK(fmt::format("{:t}", base) == "corio::timeout_error: corio: timed out");
}

TEST_CASE("an exception_ptr prints its message or type and message, and null as none",
          "[format][error]") {
    CHECK(fmt::format("{}", std::exception_ptr{}) == "no exception");
    CHECK(fmt::format("{:t}", std::exception_ptr{}) == "no exception");
    const auto e = std::make_exception_ptr(std::invalid_argument("negative row length"));
    CHECK(fmt::format("{}", e) == "negative row length");
    CHECK(fmt::format("{:t}", e) == "std::invalid_argument: negative row length");
    const auto sys = std::make_exception_ptr(
        std::system_error(ECONNREFUSED, std::generic_category(), "connect"));
    CHECK(fmt::format("{:t}", sys).rfind("std::system_error: connect: ", 0) == 0);
    const auto odd = std::make_exception_ptr(not_a_std_exception{});
    CHECK(fmt::format("{:t}", odd) == "(anonymous namespace)::not_a_std_exception: ");
    const auto number = std::make_exception_ptr(42);
    CHECK(fmt::format("{:t}", number) == "int: ");
}

TEST_CASE("an outcome prints its value, or its exception as Python shows one",
          "[format][outcome]") {
    const corio::outcome<int> value(std::in_place, 42);
    CHECK(fmt::format("{}", value) == "42");
    const corio::outcome<std::string> text(std::in_place, "done");
    CHECK(fmt::format("[{}]", text) == "[done]");
    const corio::outcome<std::monostate> nothing(std::in_place, std::monostate{});
    CHECK(fmt::format("{}", nothing) == "ok");
    const corio::outcome<int> failed(std::make_exception_ptr(corio::timeout_error()));
    CHECK(fmt::format("{}", failed) == "corio::timeout_error(\"corio: timed out\")");
    const std::vector<corio::outcome<int>> settled{value, failed};
    CHECK(fmt::format("{}, {}", settled[0], settled[1]) ==
          "42, corio::timeout_error(\"corio: timed out\")");
}

TEST_CASE("an endpoint prints as address:port, [v6]:port, a path, or unspecified",
          "[format][net]") {
    CHECK(fmt::format("{}", corio::endpoint{}) == "unspecified");
    CHECK(fmt::format("{}", *corio::endpoint::parse("127.0.0.1", 4242)) == "127.0.0.1:4242");
    CHECK(fmt::format("{}", *corio::endpoint::parse("::1", 80)) == "[::1]:80");
    CHECK(fmt::format("{}", corio::endpoint::unix_path("/tmp/corio.sock")) == "/tmp/corio.sock");
}

TEST_CASE("an exit status prints as running, exited with a status, or killed by a signal",
          "[format][process]") {
    CHECK(fmt::format("{}", corio::exit_status(std::nullopt)) == "running");
    CHECK(fmt::format("{}", corio::exit_status(0)) == "exited with status 0");
    CHECK(fmt::format("{}", corio::exit_status(3)) == "exited with status 3");
    CHECK(fmt::format("{}", corio::exit_status(-SIGKILL)) == "killed by signal 9 (SIGKILL)");
    CHECK(fmt::format("{}", corio::exit_status(-SIGSEGV)) == "killed by signal 11 (SIGSEGV)");
    CHECK(fmt::format("{}", corio::exit_status(-200)) == "killed by signal 200");
    CHECK(corio::to_string(corio::exit_status(1)) == "exited with status 1");
}

TEST_CASE("an exit status of a real child process", "[format][process]") {
    corio::init();
    corio::process ok([] {});
    ok.start();
    ok.join();
    CHECK(fmt::format("{}", corio::exit_status(ok.exitcode())) == "exited with status 0");
    corio::process killed([] { std::raise(SIGKILL); });
    killed.start();
    killed.join();
    CHECK(fmt::format("{}", corio::exit_status(killed.exitcode())) ==
          "killed by signal 9 (SIGKILL)");
}

TEST_CASE("a format specification a corio type does not know throws fmt::format_error",
          "[format][error]") {
    CHECK_THROWS_AS(fmt::format(fmt::runtime("{:x}"), corio::task_handle{}), fmt::format_error);
    CHECK_THROWS_AS(fmt::format(fmt::runtime("{:nn}"), corio::task_handle{}), fmt::format_error);
    CHECK_THROWS_AS(fmt::format(fmt::runtime("{:n}"), corio::timeout_error()), fmt::format_error);
    CHECK_THROWS_AS(fmt::format(fmt::runtime("{:t}"), corio::endpoint{}), fmt::format_error);
    CHECK_THROWS_AS(fmt::format(fmt::runtime("{:>9}"), corio::exit_status(0)), fmt::format_error);
    CHECK_THROWS_AS(fmt::format(fmt::runtime("{:t}"), corio::outcome<int>(std::in_place, 1)),
                    fmt::format_error);
    CHECK_THROWS_WITH(fmt::format(fmt::runtime("{:q}"), std::exception_ptr{}),
                      "invalid format specification for a corio type");
}
