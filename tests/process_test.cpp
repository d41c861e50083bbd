// corio::process (multiprocessing.Process): exit codes, join with a timeout,
// terminate and kill, arguments, and a child that throws.
//
// The fork server is started by a static initializer, before Catch2's main() and any
// thread (the equivalent of corio::init() first thing in main()).
#include "pool_semantics.hpp"

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
void exit_with(int code) {
    std::exit(code);
}
void throw_runtime_error() {
    throw std::runtime_error("child failed");
}
void wait_forever() {
    for (;;) {
        ::pause();
    }
}
// A barrier across processes: announces itself, then waits until the parent opens
// the gate, which it does once every child arrived.
void wait_for_the_others(std::string gate) {
    pool_semantics::process_gate::arrive(gate);
    if (!pool_semantics::process_gate::pass(gate)) {
        std::exit(2);
    }
}

// Writes a summary of its arguments to `path`, so the parent can check they arrived.
void write_summary(std::string path, std::vector<int> numbers,
                   std::map<std::string, double> table) {
    long sum = 0;
    for (int n : numbers) {
        sum += n;
    }
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
    corio::process p(write_summary, path, numbers,
                     std::map<std::string, double>{{"pi", 3.5}, {"e", 2.5}});
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
    pool_semantics::watchdog dog("processes meeting at a barrier");
    pool_semantics::process_gate gate;
    std::vector<corio::process> procs;
    for (int i = 0; i < 4; ++i) {
        procs.emplace_back(wait_for_the_others, gate.path());
    }
    for (auto& p : procs) {
        p.start();
    }
    // Every child waits at the gate until all four started: they run at the same time.
    CHECK(gate.wait_arrivals(4));
    for (auto& p : procs) {
        CHECK(p.is_alive());
    }
    gate.open();
    for (auto& p : procs) {
        p.join();
    }
    // Moved-into-vector processes keep their child.
    for (auto& p : procs) {
        CHECK(p.exitcode() == 0);
    }
}

TEST_CASE("move assignment hands the child over; assigning over a started process releases it",
          "[process][lifetime]") {
    pool_semantics::watchdog dog("move assignment");
    pool_semantics::process_gate gate;
    corio::process a(wait_for_the_others, gate.path());
    corio::process b(do_nothing);
    a.start();
    const pid_t child = a.pid();
    b = std::move(a);
    CHECK(b.pid() == child);
    CHECK(a.pid() == 0); // NOLINT(bugprone-use-after-move): the moved-from object is empty
    CHECK(b.is_alive());
    gate.open();
    b.join();
    CHECK(b.exitcode() == 0);
    // b's child ended and was reaped; assigning a fresh process over it starts over.
    b = corio::process(exit_with, 4);
    CHECK(b.pid() == 0);
    CHECK_FALSE(b.exitcode().has_value());
    b.start();
    b.join();
    CHECK(b.exitcode() == 4);
    // Assigning over a running child lets it run on (as the destructor would).
    corio::process c(wait_forever);
    c.start();
    const pid_t running = c.pid();
    c = corio::process(do_nothing);
    CHECK(c.pid() == 0);
    CHECK(::kill(running, 0) == 0);
    ::kill(running, SIGKILL); // reaped by the fork server
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
    pool_semantics::watchdog dog("detached child");
    pool_semantics::process_gate gate;
    const std::string path = temp_path("detached");
    std::remove(path.c_str());
    {
        corio::process p(
            [](std::string gate_dir, std::string file) {
                if (!pool_semantics::process_gate::pass(gate_dir)) {
                    std::exit(2);
                }
                std::ofstream(file) << "done";
                pool_semantics::process_gate::arrive(gate_dir);
            },
            gate.path(), path);
        p.start();
    }
    // The object is gone; the child goes on once the gate opens, writes, announces.
    gate.open();
    REQUIRE(gate.wait_arrivals(1));
    std::string content;
    {
        std::ifstream in(path);
        in >> content;
    }
    std::remove(path.c_str());
    CHECK(content == "done");
}
