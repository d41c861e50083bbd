// redis_pool + redis_worker: every test starts its own redis-server and worker
// programs (tests/redis_test_worker.cpp), and stops them at the end.

#include "redis_functions.hpp"
#include "redis_server.hpp"
#include "redis_test_support.hpp"

#include <corio/corio.hpp>
#include <corio/redis.hpp>
#include <corio/redis_pool.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <pthread.h>
#include <set>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace std::chrono_literals;
using corio_example::redis_server;
using redis_test::worker_process;
namespace redis = corio::redis;
using redis_fns::add;
using redis_fns::echo;
using redis_fns::fail_custom;
using redis_fns::fail_with;
using redis_fns::hold;
using redis_fns::nothing;
using redis_fns::sleep_ms;
using redis_fns::square;

namespace {

// Registered here only, never in the worker program.
int only_in_client(int x) {
    return x;
}
CORIO_REMOTE(only_in_client);
// Registered under the worker's name "redis_fns::typed_int", with another signature: the
// worker cannot decode these arguments.
int typed_string(std::string s) {
    return static_cast<int>(s.size());
}
[[maybe_unused]] const bool typed_registered =
    corio::register_function("redis_fns::typed_int", &typed_string);
int not_registered(int x) {
    return x;
}

/// A temp dir for hold() markers.
struct marker_dir {
    std::string path;
    marker_dir() {
        char tmpl[] = "/tmp/corio-hold-XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~marker_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    bool started(int n) const {
        return std::filesystem::exists(path + "/started-" + std::to_string(n));
    }
    void release() const { std::ofstream(path + "/release").put('x'); }
};

// Waits for a condition another process brings about (a worker starting a job): the
// test's only way to learn it, polled with a bound.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds bound = 60s) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (!pred()) {
        if (std::chrono::steady_clock::now() > deadline) {
            return false;
        }
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// One command on a fresh connection, from outside any loop.
redis::reply query(const std::string& url, std::vector<std::string> argv) {
    return corio::run([](std::string u, std::vector<std::string> a) -> corio::task<redis::reply> {
        auto c = co_await redis::connection::connect(u);
        co_return co_await c.command_argv(std::move(a));
    }(url, std::move(argv)));
}

std::vector<pid_t> descendants(pid_t pid) {
    std::vector<pid_t> out;
    std::error_code ec;
    for (const auto& t :
         std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
        std::ifstream in(t.path() / "children");
        pid_t child = 0;
        while (in >> child) {
            out.push_back(child);
            for (pid_t d : descendants(child)) {
                out.push_back(d);
            }
        }
    }
    return out;
}

// A failed REQUIRE must not leave the pool's destructor waiting for a job that a
// held or killed worker will never finish: terminate at the end of the test.
struct terminate_at_exit {
    corio::redis_pool& pool;
    ~terminate_at_exit() { pool.terminate(); }
};

bool gone(pid_t pid) {
    // A reaped or zombie process (its parent died: init reaps it).
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string pid_s, comm, state;
    return !(in >> pid_s >> comm >> state) || state == "Z";
}

} // namespace

TEST_CASE("map over 3 worker processes equals the serial map", "[redis_pool][map]") {
    redis_server server;
    worker_process w1(server.url(), "q"), w2(server.url(), "q"), w3(server.url(), "q");
    corio::redis_pool pool(server.url(), {.queue = "q"});
    terminate_at_exit pool_guard{pool};
    std::vector<int> in(1000);
    std::iota(in.begin(), in.end(), -500);
    std::vector<int> serial;
    for (int x : in) {
        serial.push_back(square(x));
    }
    CHECK(pool.map(square, in) == serial);
    CHECK(pool.map(square, in, 7) == serial);
    CHECK(pool.apply(square, 12) == 144);
    std::vector<std::tuple<int, int>> pairs = {{1, 2}, {3, 4}, {5, 6}};
    CHECK(pool.starmap(add, pairs) == std::vector<int>{3, 7, 11});
    std::vector<int> got;
    for (int v : pool.imap(square, in, 10)) {
        got.push_back(v);
    }
    CHECK(got == serial);
    std::multiset<int> unordered;
    for (int v : pool.imap_unordered(square, in)) {
        unordered.insert(v);
    }
    CHECK(unordered == std::multiset<int>(serial.begin(), serial.end()));
    std::atomic<int> seen{0};
    auto r = pool.apply_async(square, 9, corio::callback([&](int v) { seen = v; }));
    CHECK(r.get(60s) == 81);
    CHECK(seen.load() == 81);
    pool.apply(nothing);
    CHECK(pool.map(square, std::vector<int>{}).empty());
    // Awaited from a task on a loop.
    auto v = corio::run([](corio::redis_pool* p) -> corio::task<int> {
        auto res = p->apply_async(square, 5);
        co_return co_await res;
    }(&pool));
    CHECK(v == 25);
    const auto c = pool.counts();
    CHECK(c.finished >= 1 + 1 + 3);
    CHECK(c.queued == 0);
    pool.close();
    pool.join();
    CHECK_THROWS_AS(pool.apply(square, 1), corio::pool_not_running);
}

TEST_CASE("exceptions reach the caller with their type and message; failed jobs are listed",
          "[redis_pool][error]") {
    redis_server server;
    worker_process w(server.url(), "q");
    corio::redis_pool pool(server.url(), {.queue = "q"});
    terminate_at_exit pool_guard{pool};
    try {
        pool.apply(fail_with, 7);
        FAIL("no exception");
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()) == "bad value: 7");
    }
    try {
        pool.apply(fail_custom, 1);
        FAIL("no exception");
    } catch (const corio::remote_error& e) {
        CHECK(e.type_name() == "redis_fns::custom_error");
        CHECK(e.message() == "a custom failure");
    }
    std::exception_ptr seen;
    auto r = pool.apply_async(fail_with, 3,
                              corio::error_callback([&](std::exception_ptr e) { seen = e; }));
    CHECK_THROWS_AS(r.get(60s), std::invalid_argument);
    CHECK(seen != nullptr);
    CHECK_THROWS_AS(pool.map(fail_with, std::vector<int>{1, 2, 3}), std::invalid_argument);
    auto failed = pool.failed_jobs();
    REQUIRE(failed.size() >= 3);
    bool found = false;
    for (const auto& f : failed) {
        if (f.error_type == "redis_fns::custom_error") {
            found = true;
            CHECK(f.function == "fail_custom");
            CHECK(f.state == "failed");
            CHECK(f.error_message == "a custom failure");
            CHECK(f.attempts == 1);
        }
    }
    CHECK(found);
    CHECK(pool.counts().failed == failed.size());
    CHECK(pool.requeue_failed() == failed.size());
    // They fail again (nobody waits for them now) and are listed again.
    CHECK(eventually([&] { return pool.counts().failed == failed.size(); }));
}

TEST_CASE("an unregistered or mistyped function fails its job, naming it; the worker serves on",
          "[redis_pool][error]") {
    redis_server server;
    worker_process w(server.url(), "q");
    corio::redis_pool pool(server.url(), {.queue = "q"});
    terminate_at_exit pool_guard{pool};
    try {
        pool.apply(only_in_client, 1);
        FAIL("no exception");
    } catch (const corio::error& e) {
        CHECK(std::string(e.what()).find("only_in_client") != std::string::npos);
        CHECK(std::string(e.what()).find("registered") != std::string::npos);
    }
    try {
        pool.apply(typed_string, std::string("twelve bytes"));
        FAIL("no exception");
    } catch (const corio::error& e) {
        CHECK(std::string(e.what()).find("do not decode") != std::string::npos);
    }
    CHECK_THROWS_WITH(pool.apply(not_registered, 1), Catch::Contains("not registered"));
    CHECK(pool.apply(square, 3) == 9); // still served
}

TEST_CASE("a worker SIGKILLed mid-job: another reruns it, attempt 2, and no process is left",
          "[redis_pool][kill]") {
    redis_server server;
    marker_dir dir;
    auto a = std::make_unique<worker_process>(server.url(), "q");
    corio::redis_pool pool(server.url(), {.queue = "q", .lease = 1s});
    terminate_at_exit pool_guard{pool};
    auto submitted1 = pool.submit(hold, dir.path, 42);
    const std::string id = submitted1.first; // (clang 14: no lambda capture of bindings)
    auto& result = submitted1.second;
    REQUIRE(eventually([&] { return dir.started(1); }));
    std::vector<pid_t> family = descendants(a->pid());
    CHECK(family.size() >= 2); // the fork server and the job's process
    a->signal(SIGKILL);
    CHECK(a->wait() == -SIGKILL);
    CHECK(eventually([&] { return std::all_of(family.begin(), family.end(), gone); }, 5s));
    worker_process b(server.url(), "q");
    REQUIRE(eventually([&] { return dir.started(2); }));
    dir.release();
    CHECK(result.get(60s) == 42);
    CHECK(query(server.url(), {"HGET", "corio:job:" + id, "attempts"}).str() == "2");
}

TEST_CASE("past max_retries a lost job fails with worker_lost_error and is dead-lettered",
          "[redis_pool][kill]") {
    redis_server server;
    marker_dir dir;
    worker_process a(server.url(), "q");
    corio::redis_pool pool(server.url(), {.queue = "q", .max_retries = 0, .lease = 500ms});
    terminate_at_exit pool_guard{pool};
    auto result = pool.apply_async(hold, dir.path, 1);
    REQUIRE(eventually([&] { return dir.started(1); }));
    a.signal(SIGKILL);
    a.wait();
    worker_process b(server.url(), "q"); // its reaper finds the dead worker
    try {
        result.get(60s);
        FAIL("no exception");
    } catch (const corio::worker_lost_error& e) {
        CHECK(std::string(e.what()).find("max_retries is 0") != std::string::npos);
    }
    CHECK(pool.counts().dead == 1);
    auto failed = pool.failed_jobs();
    REQUIRE(failed.size() == 1);
    CHECK(failed[0].state == "dead");
    CHECK(failed[0].error_type == "corio::worker_lost_error");
    dir.release();
}

TEST_CASE("a job over its timeout is killed and fails with timeout_error",
          "[redis_pool][timeout]") {
    redis_server server;
    worker_process w(server.url(), "q");
    corio::redis_pool pool(server.url(), {.queue = "q", .job_timeout = 300ms});
    terminate_at_exit pool_guard{pool};
    const auto start = std::chrono::steady_clock::now();
    CHECK_THROWS_AS(pool.apply(sleep_ms, 20000), corio::timeout_error);
    CHECK(std::chrono::steady_clock::now() - start >= 300ms);
    CHECK(pool.apply(sleep_ms, 1) == 1); // the worker serves on
    auto failed = pool.failed_jobs();
    REQUIRE(failed.size() == 1);
    CHECK(failed[0].error_type == "corio::timeout_error");
}

TEST_CASE("a queued job and a running job can be cancelled", "[redis_pool][cancel]") {
    redis_server server;
    marker_dir dir;
    corio::redis_pool pool(server.url(), {.queue = "q"});
    terminate_at_exit pool_guard{pool};
    auto submitted2 = pool.submit(square, 4);
    const std::string queued_id = submitted2.first; // (clang 14: no lambda capture of bindings)
    auto& queued = submitted2.second;
    CHECK(pool.counts().queued == 1);
    CHECK(pool.cancel(queued_id));
    CHECK_THROWS_AS(queued.get(60s), corio::cancelled_error);
    CHECK(pool.counts().queued == 0);
    CHECK_FALSE(pool.cancel(queued_id)); // already cancelled
    CHECK_FALSE(pool.cancel("no-such-job"));

    worker_process w(server.url(), "q");
    auto submitted3 = pool.submit(hold, dir.path, 5);
    const std::string running_id = submitted3.first; // (clang 14: no lambda capture of bindings)
    auto& running = submitted3.second;
    REQUIRE(eventually([&] { return dir.started(1); }));
    CHECK(pool.cancel(running_id));
    CHECK_THROWS_AS(running.get(60s), corio::cancelled_error);
    CHECK(pool.apply(square, 6) == 36); // the worker serves on
}

TEST_CASE("results expire after their TTL", "[redis_pool][ttl]") {
    redis_server server;
    worker_process w(server.url(), "q");
    corio::redis_pool pool(server.url(), {.queue = "q", .result_ttl = 400ms});
    terminate_at_exit pool_guard{pool};
    auto submitted4 = pool.submit(square, 2);
    const std::string id = submitted4.first; // (clang 14: no lambda capture of bindings)
    auto& r = submitted4.second;
    CHECK(r.get(60s) == 4);
    const long long ttl = query(server.url(), {"PTTL", "corio:job:" + id}).integer();
    CHECK(ttl > 0);
    CHECK(ttl <= 400);
    CHECK(eventually(
        [&] {
            return query(server.url(), {"EXISTS", "corio:job:" + id}).integer() == 0;
        },
        5s));
}

TEST_CASE("Redis restarted with AOF during a run: nothing is lost", "[redis_pool][restart]") {
    redis_server server({.aof = true});
    worker_process w(server.url(), "q", 2);
    corio::redis_pool pool(server.url(), {.queue = "q"});
    terminate_at_exit pool_guard{pool};
    std::vector<int> in(40, 30);
    auto res = pool.map_async(sleep_ms, in, 1);
    REQUIRE(eventually([&] {
        return query(server.url(), {"GET", "corio:{q}:finished"}).optional_str().value_or("0") !=
               "0";
    }));
    server.restart();
    CHECK(res.get(60s) == in);
}

TEST_CASE("Redis restarted without persistence: every caller still gets its result",
          "[redis_pool][restart]") {
    redis_server server;
    worker_process w(server.url(), "q", 2);
    corio::redis_pool pool(server.url(), {.queue = "q"});
    terminate_at_exit pool_guard{pool};
    std::vector<int> in(40, 30);
    auto res = pool.map_async(sleep_ms, in, 1);
    REQUIRE(eventually([&] {
        return query(server.url(), {"GET", "corio:{q}:finished"}).optional_str().value_or("0") !=
               "0";
    }));
    server.restart();
    CHECK(res.get(60s) == in);
}

TEST_CASE("SIGTERM: the worker hands its job back and exits 0; another finishes it",
          "[redis_pool][signal]") {
    redis_server server;
    marker_dir dir;
    worker_process a(server.url(), "q", 1, true, 200);
    corio::redis_pool pool(server.url(), {.queue = "q"});
    terminate_at_exit pool_guard{pool};
    auto submitted5 = pool.submit(hold, dir.path, 7);
    const std::string id = submitted5.first; // (clang 14: no lambda capture of bindings)
    auto& r = submitted5.second;
    REQUIRE(eventually([&] { return dir.started(1); }));
    a.signal(SIGTERM);
    CHECK(a.wait() == 0);
    CHECK(query(server.url(), {"HGET", "corio:job:" + id, "attempts"}).str() == "0");
    worker_process b(server.url(), "q");
    REQUIRE(eventually([&] { return dir.started(2); }));
    dir.release();
    CHECK(r.get(60s) == 7);
}

TEST_CASE("two clients share the workers and each gets only its own results",
          "[redis_pool][clients]") {
    redis_server server;
    worker_process w1(server.url(), "q", 2), w2(server.url(), "q", 2, false);
    corio::redis_pool p1(server.url(), {.queue = "q"});
    terminate_at_exit p1_guard{p1};
    corio::redis_pool p2(server.url(), {.queue = "q"});
    terminate_at_exit p2_guard{p2};
    std::vector<int> a(300), b(300);
    std::iota(a.begin(), a.end(), 0);
    std::iota(b.begin(), b.end(), 1000);
    auto ra = p1.map_async(square, a, 1);
    auto rb = p2.map_async(square, b, 1);
    auto va = ra.get(60s);
    auto vb = rb.get(60s);
    for (std::size_t i = 0; i < a.size(); ++i) {
        CHECK(va[i] == a[i] * a[i]);
        CHECK(vb[i] == b[i] * b[i]);
    }
}

TEST_CASE("a 10 MiB payload round-trips intact", "[redis_pool][large]") {
    redis_server server;
    worker_process w(server.url(), "q");
    corio::redis_pool pool(server.url(), {.queue = "q"});
    terminate_at_exit pool_guard{pool};
    std::string big(10 << 20, '\0');
    for (std::size_t i = 0; i < big.size(); ++i) {
        big[i] = static_cast<char>((i * 7919) >> 3);
    }
    CHECK(pool.apply(echo, big) == big);
}

TEST_CASE("an unreachable Redis fails the pool's constructor naming the URL, in bounded time",
          "[redis_pool][error]") {
    int port = 0;
    {
        redis_server server;
        port = server.port();
    }
    const auto start = std::chrono::steady_clock::now();
    try {
        corio::redis_pool pool("redis://127.0.0.1:" + std::to_string(port));
        FAIL("no exception");
    } catch (const redis::error& e) {
        CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
    }
    CHECK(std::chrono::steady_clock::now() - start < 10s);
    CHECK_THROWS_AS(corio::redis_pool("http://x"), redis::error);
    CHECK_THROWS_AS(corio::redis_worker("redis://h", {.queues = {}}), corio::error);
}

TEST_CASE("terminate fails what the pool waits for with pool_terminated and cancels the jobs",
          "[redis_pool][terminate]") {
    redis_server server;
    corio::redis_pool pool(server.url(), {.queue = "q"}); // no worker: the jobs stay queued
    auto r = pool.apply_async(square, 2);
    auto m = pool.map_async(square, std::vector<int>{1, 2, 3}, 1);
    CHECK(pool.counts().queued == 4); // sent before this call, on the same connection
    pool.terminate();
    CHECK_THROWS_AS(r.get(10s), corio::pool_terminated);
    CHECK_THROWS_AS(m.get(10s), corio::pool_terminated);
    CHECK_THROWS_AS(pool.apply_async(square, 1), corio::pool_not_running);
    pool.join();
    CHECK(query(server.url(), {"LLEN", "corio:{q}:ready"}).integer() == 0);
}

TEST_CASE("a SIGTERM that arrives before run() is held and stops the worker gracefully",
          "[redis_pool][signal]") {
    // The constructor holds SIGTERM: one sent between construction and run() (a
    // supervisor stopping a worker that is still starting) must not kill the process
    // with the default action; run() reads it and returns normally.
    redis_server server;
    corio::redis_worker worker(server.url(), {.queues = {"q"}, .use_processes = false});
    REQUIRE(::pthread_kill(::pthread_self(), SIGTERM) == 0);
    worker.run(); // returns: the held SIGTERM stopped it
    CHECK(worker.jobs_done() == 0);
    sigset_t pending;
    sigpending(&pending);
    CHECK(sigismember(&pending, SIGTERM) == 0); // consumed, not left for later
}
