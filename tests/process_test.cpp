// corio::process (multiprocessing.Process): exit codes, join with a timeout,
// terminate and kill, arguments, and a child that throws.
//
// The fork server is started by a static initializer, before Catch2's main() and any
// thread (the equivalent of corio::init() first thing in main()).
#include <corio/init.hpp>
#include <corio/process.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

const bool fork_server_started = [] {
    corio::init();
    return true;
}();

void do_nothing() {}
void exit_with(int code) { std::exit(code); }
void throw_runtime_error() { throw std::runtime_error("child failed"); }
void wait_forever() {
    for (;;) ::pause();
}
void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// Writes a summary of its arguments to `path`, so the parent can check they arrived.
void write_summary(std::string path, std::vector<int> numbers, std::map<std::string, double> table) {
    long sum = 0;
    for (int n : numbers) sum += n;
    std::ofstream(path) << sum << ' ' << table.size() << ' ' << table.at("pi");
}

std::string temp_path(const char* tag) {
    return "/tmp/corio-process-test-" + std::to_string(::getpid()) + "-" + tag;
}

} // namespace

TEST_CASE("a process that returns exits with code 0", "[process][exitcode]") {
    REQUIRE(fork_server_started);
    corio::process p(do_nothing);
    CHECK(p.pid() == 0);
    CHECK_FALSE(p.exitcode().has_value());
    p.start();
    CHECK(p.pid() > 0);
    CHECK(p.pid() != ::getpid());
    p.join();
    CHECK(p.exitcode() == 0);
    CHECK_FALSE(p.is_alive());
}

TEST_CASE("exit(n) in a process gives exitcode n", "[process][exitcode]") {
    corio::process p(exit_with, 7);
    p.start();
    p.join();
    CHECK(p.exitcode() == 7);
}

TEST_CASE("a process whose function throws exits with code 1", "[process][exitcode]") {
    corio::process p(throw_runtime_error);
    p.start();
    p.join();
    CHECK(p.exitcode() == 1);
}

TEST_CASE("join with a timeout returns false while the child runs", "[process][join]") {
    corio::process p(wait_forever);
    p.start();
    CHECK(p.is_alive());
    CHECK_FALSE(p.join(20ms));
    CHECK_FALSE(p.exitcode().has_value());
    p.terminate();
    REQUIRE(p.join(30s));
    CHECK(p.exitcode() == -SIGTERM); // minus the signal number, as Python
    CHECK_FALSE(p.is_alive());
}

TEST_CASE("kill ends a child with SIGKILL", "[process][signal]") {
    corio::process p(wait_forever);
    p.start();
    p.kill();
    REQUIRE(p.join(30s));
    CHECK(p.exitcode() == -SIGKILL);
    p.terminate(); // no effect once it ended
    CHECK(p.exitcode() == -SIGKILL);
}

TEST_CASE("a process receives its arguments through serialize", "[process][arguments]") {
    const std::string path = temp_path("args");
    std::vector<int> numbers(100000, 2);
    corio::process p(write_summary, path, numbers, std::map<std::string, double>{{"pi", 3.5}, {"e", 2.5}});
    p.start();
    p.join();
    REQUIRE(p.exitcode() == 0);
    std::ifstream in(path);
    long sum = 0;
    std::size_t entries = 0;
    double pi = 0;
    in >> sum >> entries >> pi;
    std::remove(path.c_str());
    CHECK(sum == 200000);
    CHECK(entries == 2);
    CHECK(pi == 3.5);
}

TEST_CASE("several processes run concurrently and are all joined", "[process][join]") {
    std::vector<corio::process> procs;
    for (int i = 0; i < 4; ++i) procs.emplace_back(sleep_ms, 50);
    const auto t0 = std::chrono::steady_clock::now();
    for (auto& p : procs) p.start();
    for (auto& p : procs) p.join();
    for (auto& p : procs) CHECK(p.exitcode() == 0);
    // Moved-into-vector processes keep their child.
    CHECK(std::chrono::steady_clock::now() - t0 >= 50ms);
}

TEST_CASE("a capture-less lambda runs in a process", "[process][lambda]") {
    corio::process p([](int a, int b) { std::exit(a + b); }, 2, 3);
    p.start();
    p.join();
    CHECK(p.exitcode() == 5);
}

TEST_CASE("start twice and join before start are errors", "[process][error]") {
    corio::process p(do_nothing);
    CHECK_THROWS_AS(p.join(), corio::error);
    p.start();
    CHECK_THROWS_AS(p.start(), corio::error);
    p.join();
}

TEST_CASE("destroying a started process leaves the child running", "[process][lifetime]") {
    const std::string path = temp_path("detached");
    std::remove(path.c_str());
    {
        corio::process p(
            [](std::string file) {
                std::this_thread::sleep_for(50ms);
                std::ofstream(file) << "done";
            },
            path);
        p.start();
    }
    // Bounded wait for the file the detached child writes after the object is gone.
    std::string content;
    for (int i = 0; i < 3000 && content != "done"; ++i) {
        std::this_thread::sleep_for(10ms);
        std::ifstream in(path);
        in >> content;
    }
    std::remove(path.c_str());
    CHECK(content == "done");
}
