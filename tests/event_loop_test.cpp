#include "counting.hpp"

#include <corio/detail/frame_allocator.hpp>
#include <corio/corio.hpp>
#include "ring/nop.hpp"

#include <catch2/catch.hpp>

#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

std::chrono::microseconds cpu_time() {
    rusage u{};
    getrusage(RUSAGE_THREAD, &u);
    return std::chrono::seconds(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
           std::chrono::microseconds(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

/// Sends everything written to stderr (fd 2) to a temporary file while alive.
class stderr_capture {
public:
    stderr_capture() : file_(std::tmpfile()), saved_(::dup(2)) {
        REQUIRE(file_ != nullptr);
        REQUIRE(saved_ >= 0);
        std::fflush(stderr);
        REQUIRE(::dup2(::fileno(file_), 2) == 2);
    }
    stderr_capture(const stderr_capture&) = delete;
    stderr_capture& operator=(const stderr_capture&) = delete;
    ~stderr_capture() {
        restore();
        std::fclose(file_);
    }
    /// Restores stderr and returns what was written meanwhile.
    std::string finish() {
        restore();
        std::string out;
        std::rewind(file_);
        char buf[512];
        std::size_t n = 0;
        while ((n = std::fread(buf, 1, sizeof buf, file_)) > 0) {
            out.append(buf, n);
        }
        return out;
    }

private:
    void restore() {
        if (saved_ >= 0) {
            std::fflush(stderr);
            ::dup2(saved_, 2);
            ::close(saved_);
            saved_ = -1;
        }
    }
    std::FILE* file_;
    int saved_;
};

corio::task<> yields(int n) {
    for (int i = 0; i < n; ++i) {
        co_await corio::yield_now();
    }
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string::npos) {
            end = text.size();
        }
        out.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    return out;
}

} // namespace

TEST_CASE("call_soon callbacks run in FIFO order", "[event_loop][callbacks]") {
    corio::event_loop loop;
    std::vector<int> order;
    for (int i = 0; i < 100; ++i) {
        loop.call_soon([&order, i] { order.push_back(i); });
    }
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    REQUIRE(order.size() == 100);
    for (int i = 0; i < 100; ++i) {
        CHECK(order[static_cast<std::size_t>(i)] == i);
    }
}

TEST_CASE("a callback scheduled by a callback runs on the next iteration",
          "[event_loop][callbacks]") {
    corio::event_loop loop;
    std::vector<std::string> order;
    loop.call_soon([&] {
        order.push_back("a");
        loop.call_soon([&] { order.push_back("c"); });
    });
    loop.call_soon([&] { order.push_back("b"); });
    loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
    loop.run_forever();
    CHECK(order == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("a cancelled call_soon handle never runs", "[event_loop][callbacks]") {
    corio::event_loop loop;
    bool ran = false;
    auto h = loop.call_soon([&] { ran = true; });
    h.cancel();
    CHECK(h.cancelled());
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    CHECK_FALSE(ran);
}

TEST_CASE("timers never fire early and fire in deadline order", "[event_loop][timers]") {
    corio::event_loop loop;
    auto start = loop.time();
    std::vector<std::pair<int, clock_type::duration>> fired;
    const int delays_ms[] = {30, 10, 20, 10, 0, 25};
    for (int i = 0; i < 6; ++i) {
        loop.call_later(std::chrono::milliseconds(delays_ms[i]),
                        [&fired, &loop, start, i] { fired.emplace_back(i, loop.time() - start); });
    }
    loop.call_later(40ms, [&] { loop.stop(); });
    loop.run_forever();
    REQUIRE(fired.size() == 6);
    // Deadline order, ties in scheduling order: 4(0) 1(10) 3(10) 2(20) 5(25) 0(30).
    std::vector<int> ids;
    for (auto& [id, at] : fired) {
        ids.push_back(id);
        CHECK(at >= std::chrono::milliseconds(delays_ms[id]));
    }
    CHECK(ids == std::vector<int>{4, 1, 3, 2, 5, 0});
}

TEST_CASE("call_at runs at its time point and its handle reports it", "[event_loop][timers]") {
    corio::event_loop loop;
    auto when = loop.time() + 5ms;
    clock_type::time_point ran_at{};
    auto h = loop.call_at(when, [&] {
        ran_at = loop.time();
        loop.stop();
    });
    CHECK(h.when() == when);
    loop.run_forever();
    CHECK(ran_at >= when);
}

TEST_CASE("an idle loop waiting 200 ms on a timer does not busy-wait", "[event_loop][timers]") {
    corio::event_loop loop;
    auto cpu_before = cpu_time();
    auto start = loop.time();
    loop.call_later(200ms, [&] { loop.stop(); });
    loop.run_forever();
    auto cpu_used = cpu_time() - cpu_before;
    CHECK(loop.time() - start >= 200ms);
    CHECK(cpu_used < 20ms);
}

TEST_CASE("100,000 timers created and cancelled leave the timer structure empty",
          "[event_loop][timers]") {
    corio::event_loop loop;
    std::vector<corio::timer_handle> handles;
    handles.reserve(100'000);
    int ran = 0;
    for (int i = 0; i < 100'000; ++i) {
        handles.push_back(loop.call_later(std::chrono::milliseconds(1 + i % 1000), [&] { ++ran; }));
    }
    CHECK(loop.timer_count() == 100'000);
    for (auto& h : handles) {
        h.cancel();
    }
    CHECK(loop.timer_count() == 0);
    // Sleeps cancelled through their tasks leave it too.
    std::vector<corio::future<>> sleepers;
    auto sleeper = []() -> corio::task<> { co_await corio::sleep(1h); };
    loop.run_until_complete([](std::vector<corio::future<>>& out, auto make) -> corio::task<> {
        for (int i = 0; i < 1000; ++i) {
            out.push_back(corio::create_task(make()));
        }
        co_await corio::yield_now(); // every sleeper is now in the heap
        co_return;
    }(sleepers, sleeper));
    CHECK(loop.timer_count() == 1000);
    for (auto& f : sleepers) {
        f.cancel();
    }
    CHECK(loop.timer_count() == 0);
    loop.run_until_complete([](std::vector<corio::future<>>& all) -> corio::task<> {
        for (auto& f : all) {
            CHECK_THROWS_AS(co_await f, corio::cancelled_error);
        }
    }(sleepers));
    CHECK(ran == 0);
}

TEST_CASE("call_soon_threadsafe from 4 threads x 10,000 calls runs each exactly once",
          "[event_loop][threads]") {
    corio::event_loop loop;
    constexpr int threads = 4;
    constexpr int per_thread = 10'000;
    std::vector<int> hits(threads * per_thread, 0);
    int total = 0;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&loop, &hits, &total, t] {
            for (int i = 0; i < per_thread; ++i) {
                loop.call_soon_threadsafe([&hits, &total, &loop, idx = t * per_thread + i] {
                    ++hits[static_cast<std::size_t>(idx)];
                    if (++total == threads * per_thread) {
                        loop.stop();
                    }
                });
            }
        });
    }
    loop.run_forever();
    for (auto& w : workers) {
        w.join();
    }
    CHECK(total == threads * per_thread);
    CHECK(std::all_of(hits.begin(), hits.end(), [](int h) { return h == 1; }));
}

TEST_CASE("call_soon_threadsafe keeps each thread's order", "[event_loop][threads]") {
    corio::event_loop loop;
    std::vector<int> seen;
    std::thread producer([&] {
        for (int i = 0; i < 1000; ++i) {
            loop.call_soon_threadsafe([&seen, i] { seen.push_back(i); });
        }
        loop.call_soon_threadsafe([&] { loop.stop(); });
    });
    loop.run_forever();
    producer.join();
    REQUIRE(seen.size() == 1000);
    CHECK(std::is_sorted(seen.begin(), seen.end()));
}

TEST_CASE("closing a loop with 1,000 pending tasks destroys all their frames",
          "[event_loop][lifetime]") {
    auto forever = [](corio_test::counted, corio::future<> never) -> corio::task<> {
        co_await never; // never completes: only close() can end this task
    };
    auto sleeper = [](corio_test::counted) -> corio::task<> { co_await corio::sleep(1h); };
    {
        corio::event_loop loop;
        corio::future<> never(loop);
        for (int i = 0; i < 500; ++i) {
            (void)loop.create_task(forever(corio_test::counted{}, never));
            (void)loop.create_task(sleeper(corio_test::counted{}));
        }
        loop.call_soon([&] { loop.stop(); });
        loop.run_forever();
        CHECK(corio_test::counted::live == 1000);
        loop.close();
        CHECK(corio_test::counted::live == 0);
        CHECK(loop.is_closed());
    }
    CHECK(corio_test::counted::live == 0);
}

TEST_CASE("close runs the cleanup of cancelled tasks", "[event_loop][lifetime]") {
    int cleaned = 0;
    auto worker = [](int& done) -> corio::task<> {
        bool cancelled = false;
        try {
            co_await corio::sleep(1h);
        } catch (const corio::cancelled_error&) {
            cancelled = true;
        }
        if (cancelled) {
            co_await corio::sleep(1ms); // asynchronous cleanup still runs during close
            ++done;
            throw corio::cancelled_error();
        }
    };
    corio::event_loop loop;
    for (int i = 0; i < 10; ++i) {
        (void)loop.create_task(worker(cleaned));
    }
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    loop.close();
    CHECK(cleaned == 10);
}

TEST_CASE("run() while a loop runs on this thread is a clear error", "[event_loop][error]") {
    auto inner = []() -> corio::task<int> { co_return 1; };
    auto outer = [](auto make) -> corio::task<std::string> {
        try {
            (void)corio::run(make());
        } catch (const corio::error& e) {
            co_return std::string(e.what());
        }
        co_return std::string();
    };
    auto msg = corio::run(outer(inner));
    CHECK_THAT(msg, Catch::Matchers::Contains("while an event loop is running"));
}

TEST_CASE("get_running_loop outside a loop throws corio::error", "[event_loop][error]") {
    CHECK_THROWS_AS(corio::get_running_loop(), corio::error);
    corio::event_loop loop;
    corio::event_loop* seen = nullptr;
    loop.call_soon([&] {
        seen = &corio::get_running_loop();
        loop.stop();
    });
    loop.run_forever();
    CHECK(seen == &loop);
}

TEST_CASE("loop state: is_running, is_closed, and misuse after close", "[event_loop][error]") {
    corio::event_loop loop;
    CHECK_FALSE(loop.is_running());
    bool running_inside = false;
    loop.call_soon([&] {
        running_inside = loop.is_running();
        CHECK_THROWS_AS(loop.close(), corio::error);
        CHECK_THROWS_AS(loop.run_forever(), corio::error);
        loop.stop();
    });
    loop.run_forever();
    CHECK(running_inside);
    loop.close();
    loop.close(); // idempotent
    CHECK(loop.is_closed());
    CHECK_THROWS_AS(loop.call_soon([] {}), corio::error);
    CHECK_THROWS_AS(loop.call_soon_threadsafe([] {}), corio::error);
    CHECK_THROWS_AS(loop.run_forever(), corio::error);
    CHECK_THROWS_AS(loop.run_until_complete([]() -> corio::task<> { co_return; }()), corio::error);
}

TEST_CASE("a second loop cannot run on a thread where one is running", "[event_loop][error]") {
    corio::event_loop a;
    corio::event_loop b;
    a.call_soon([&] {
        CHECK_THROWS_AS(b.run_forever(), corio::error);
        a.stop();
    });
    a.run_forever();
}

TEST_CASE("stop() before the task completes makes run_until_complete throw",
          "[event_loop][error]") {
    corio::event_loop loop;
    auto slow = []() -> corio::task<int> {
        co_await corio::sleep(1h);
        co_return 1;
    };
    loop.call_soon([&] { loop.stop(); });
    CHECK_THROWS_AS(loop.run_until_complete(slow()), corio::error);
}

TEST_CASE("an exception in a callback goes to the exception handler", "[event_loop][error]") {
    corio::event_loop loop;
    std::vector<std::string> reports;
    loop.set_exception_handler([&](const corio::exception_context& ctx) {
        reports.push_back(ctx.message);
        CHECK(ctx.exception);
    });
    loop.call_soon([] { throw std::runtime_error("boom"); });
    loop.call_soon([&] { loop.stop(); });
    loop.run_forever();
    CHECK(reports == std::vector<std::string>{"exception in a callback"});
}

TEST_CASE("loop options: a small ring and debug mode from the options", "[event_loop][options]") {
    corio::event_loop loop{{.entries = 4, .single_issuer = false, .debug = true}};
    CHECK(loop.get_debug());
    loop.set_debug(false);
    CHECK_FALSE(loop.get_debug());
    CHECK(loop.run_until_complete([]() -> corio::task<int> { co_return 5; }()) == 5);
}

TEST_CASE("the fallback ring setup (no SINGLE_ISSUER/DEFER_TASKRUN) runs ops, timers and wake-ups",
          "[event_loop][options]") {
    for (bool single_issuer : {false, true}) {
        corio::event_loop loop{{.single_issuer = single_issuer}};
        std::thread poster([&] { loop.call_soon_threadsafe([] {}); });
        int v = loop.run_until_complete([]() -> corio::task<int> {
            int sum = 0;
            for (int i = 0; i < 100; ++i) {
                sum += co_await corio::detail::nop();
            }
            co_await corio::sleep(1ms);
            co_return sum + 7;
        }());
        poster.join();
        CHECK(v == 7);
        // A cross-thread post wakes a loop blocked in the kernel.
        std::thread waker([&] { loop.call_soon_threadsafe([&] { loop.stop(); }); });
        loop.run_forever();
        waker.join();
    }
}

namespace {
// Swallows the first cancellation, then waits on a future nothing will complete:
// only close()'s forced destruction can end it.
corio::task<> stubborn(corio_test::counted) {
    corio::future<> first;
    try {
        co_await first;
    } catch (const corio::cancelled_error&) {
    }
    corio::future<> second;
    co_await second;
}
corio::task<> wait_on(corio::future<> other, corio_test::counted) {
    co_await other;
}
} // namespace

TEST_CASE("close destroys tasks stuck awaiting each other without resuming dead frames",
          "[event_loop][lifetime]") {
    // Regression: force-finishing a stuck task woke its waiter, whose frame was then
    // destroyed in the same sweep; a close hook made the loop run again and resume it.
    int hooks = 0;
    {
        corio::event_loop loop;
        loop.add_close_hook([&] { ++hooks; });
        auto a = loop.create_task(stubborn(corio_test::counted{}));
        auto b = loop.create_task(wait_on(a, corio_test::counted{}));
        auto c = loop.create_task(wait_on(b, corio_test::counted{}));
        loop.call_soon([&] { loop.stop(); });
        loop.run_forever();
        loop.close();
        CHECK(a.cancelled());
        CHECK(c.cancelled());
        CHECK(corio_test::counted::live == 0);
    }
    CHECK(hooks == 1);
}

TEST_CASE("done callbacks of a task destroyed at close release their future",
          "[event_loop][lifetime]") {
    // Regression: the callbacks queued when close() force-finishes a stuck task held
    // a raw reference that was leaked when close() dropped them (LeakSanitizer in the
    // asan build catches a regression).
    int called = 0;
    {
        corio::event_loop loop;
        auto f = loop.create_task(stubborn(corio_test::counted{}));
        f.add_done_callback([&](const corio::future<>&) { ++called; });
        loop.call_soon([&] { loop.stop(); });
        loop.run_forever();
        loop.close();
        CHECK(f.cancelled());
        CHECK(corio_test::counted::live == 0);
    }
    CHECK(called == 0); // dropped unrun with the loop's other pending callbacks
}

TEST_CASE("sleep_until never resumes before its deadline", "[event_loop][timers][sleep]") {
    auto body = []() -> corio::task<bool> {
        auto deadline = clock_type::now() + 20ms;
        co_await corio::sleep_until(deadline);
        co_return clock_type::now() >= deadline;
    };
    CHECK(corio::run(body()));
}

TEST_CASE("sleep_until a past deadline still yields once to the other ready tasks",
          "[event_loop][timers][sleep]") {
    corio::event_loop loop;
    std::vector<std::string> order;
    auto other = [](std::vector<std::string>& o) -> corio::task<> {
        o.push_back("other");
        co_return;
    };
    auto body = [](corio::event_loop& l, std::vector<std::string>& o, auto make) -> corio::task<> {
        (void)corio::create_task(make(o));
        auto awaiter = corio::sleep_until(clock_type::now() - 1s);
        CHECK(l.timer_count() == 0); // a yield, not a timer
        co_await awaiter;
        o.push_back("sleeper");
    };
    loop.run_until_complete(body(loop, order, other));
    CHECK(order == std::vector<std::string>{"other", "sleeper"});
}

TEST_CASE("cancelling a sleep_until removes its timer at once",
          "[event_loop][timers][sleep][cancel]") {
    corio::event_loop loop;
    auto sleeper = []() -> corio::task<> { co_await corio::sleep_until(clock_type::now() + 1h); };
    auto body = [](corio::event_loop& l, auto make) -> corio::task<> {
        auto s = corio::create_task(make());
        co_await corio::yield_now(); // the sleeper is in the timer heap
        CHECK(l.timer_count() == 1);
        CHECK(s.cancel());
        CHECK(l.timer_count() == 0);
        CHECK_THROWS_AS(co_await s, corio::cancelled_error);
    };
    loop.run_until_complete(body(loop, sleeper));
    CHECK(loop.timer_count() == 0);
}

TEST_CASE("the default exception handler writes one line with the task name and the message",
          "[event_loop][error]") {
    auto failing = []() -> corio::task<> {
        co_await corio::yield_now();
        throw std::runtime_error("lost on purpose");
    };
    std::string out;
    {
        stderr_capture capture;
        {
            corio::event_loop loop;
            (void)loop.create_task(failing(), "doomed");
            loop.run_until_complete(yields(2)); // the task has failed by now
            loop.close();
        }
        out = capture.finish();
    }
    auto lines = lines_of(out);
    REQUIRE(lines.size() == 1);
    CHECK_THAT(lines[0], Catch::Matchers::StartsWith("corio: Task exception was never retrieved"));
    CHECK_THAT(lines[0], Catch::Matchers::Contains("[task doomed]"));
    CHECK_THAT(lines[0], Catch::Matchers::EndsWith(": lost on purpose"));
}

TEST_CASE("call_exception_handler reaches the handler set, and a throwing or empty one falls back "
          "to stderr",
          "[event_loop][error]") {
    corio::event_loop loop;
    std::vector<std::string> seen;
    loop.set_exception_handler([&](const corio::exception_context& c) {
        seen.push_back(c.message + "|" + c.task_name);
        if (c.message == "throw") {
            throw std::logic_error("handler failed");
        }
    });
    loop.call_exception_handler({"hello", nullptr, "t1"});
    CHECK(seen == std::vector<std::string>{"hello|t1"});
    std::string out;
    {
        stderr_capture capture;
        loop.call_exception_handler({"throw", nullptr, {}}); // never throws itself
        loop.set_exception_handler({});                      // the default again
        loop.call_exception_handler(
            {"plain", std::make_exception_ptr(std::runtime_error("why")), "t2"});
        out = capture.finish();
    }
    CHECK(seen == std::vector<std::string>{"hello|t1", "throw|"});
    CHECK(lines_of(out) == std::vector<std::string>{"corio: throw", "corio: plain [task t2]: why"});
}

TEST_CASE("running a loop on a thread other than the one that created it is a clear error",
          "[event_loop][error][threads]") {
    corio::event_loop loop;
    std::string run_message;
    std::string close_message;
    // Pending work (made on the loop's thread: create_task checks the thread):
    // closing the loop needs the loop's thread.
    (void)loop.create_task(yields(1));
    std::thread other([&] {
        try {
            loop.run_forever();
        } catch (const corio::error& e) {
            run_message = e.what();
        }
        try {
            loop.close();
        } catch (const corio::error& e) {
            close_message = e.what();
        }
    });
    other.join();
    CHECK_THAT(run_message, Catch::Matchers::Contains("thread that created it"));
    CHECK_THAT(close_message, Catch::Matchers::Contains("thread that created it"));
    CHECK_FALSE(loop.is_running());
    CHECK_FALSE(loop.is_closed());
    // The loop still runs on its own thread.
    CHECK(loop.run_until_complete([]() -> corio::task<int> { co_return 4; }()) == 4);
}

TEST_CASE("a task_handle reports done, where its task was created, and compares by task",
          "[event_loop][task_handle]") {
    corio::event_loop loop;
    auto worker = []() -> corio::task<> { co_await corio::yield_now(); };
    const auto line = __LINE__ + 1;
    auto f = loop.create_task(worker(), "worker");
    corio::task_handle h = f.as_task();
    REQUIRE(h);
    CHECK_FALSE(h.done());
    CHECK(h.name() == "worker");
    CHECK(std::string(h.created_at().file_name()).find("event_loop_test.cpp") != std::string::npos);
    CHECK(h.created_at().line() == line);
    corio::task_handle copy = h;
    CHECK(copy == h);
    CHECK_FALSE(copy == loop.create_task(worker()).as_task());
    CHECK_FALSE(corio::task_handle() == h);
    CHECK(corio::task_handle() == corio::task_handle());
    CHECK_FALSE(corio::task_handle());
    loop.run_until_complete(f);
    CHECK(h.done());
    CHECK(copy.done());
}

TEST_CASE("the tasks from all_tasks can be named and cancelled",
          "[event_loop][task_handle][cancel]") {
    corio::event_loop loop;
    auto sleeper = []() -> corio::task<> { co_await corio::sleep(1h); };
    auto body = [](auto make) -> corio::task<std::vector<std::string>> {
        auto a = corio::create_task(make(), "a");
        auto b = corio::create_task(make(), "b");
        co_await corio::yield_now();
        std::vector<std::string> names;
        corio::task_handle self = corio::current_task();
        for (corio::task_handle& t : corio::all_tasks()) {
            names.push_back(t.name());
            if (!(t == self)) {
                CHECK(t.cancel());
                CHECK_FALSE(t.done()); // cancelled at its suspension point, later
            }
        }
        CHECK_THROWS_AS(co_await a, corio::cancelled_error);
        CHECK_THROWS_AS(co_await b, corio::cancelled_error);
        CHECK(a.as_task().done());
        CHECK_FALSE(a.as_task().cancel()); // already done
        co_return names;
    };
    auto f = loop.create_task(body(sleeper), "main");
    CHECK(loop.run_until_complete(f) == std::vector<std::string>{"main", "a", "b"});
}

TEST_CASE("a removed close hook does not run, the others do", "[event_loop][lifetime]") {
    std::vector<int> ran;
    {
        corio::event_loop loop;
        loop.add_close_hook([&] { ran.push_back(1); });
        auto id = loop.add_close_hook([&] { ran.push_back(2); });
        loop.add_close_hook([&] { ran.push_back(3); });
        loop.remove_close_hook(id);
        loop.remove_close_hook(id); // removing twice is harmless
        loop.close();
        CHECK(ran == std::vector<int>{1, 3});
    }
    CHECK(ran == std::vector<int>{1, 3});
}

TEST_CASE("frames and task states made on one thread can be freed on another, in bursts",
          "[event_loop][threads][lifetime]") {
    // More blocks than a thread caches (1 MiB), so that some are released to their
    // slabs, on a thread other than the one that carved them; every thread involved
    // then exits, and with it its cache: every slab they used goes back.
    const std::size_t slabs_before = corio::detail::frame_allocator::live_slabs();
    constexpr int n = 20'000;
    auto make = [](int i) -> corio::task<int> { co_return i; };
    std::vector<corio::task<int>> tasks;
    std::thread maker([&] {
        tasks.reserve(n);
        for (int i = 0; i < n; ++i) {
            tasks.push_back(make(i));
        }
    });
    maker.join();
    std::thread freer([&] { tasks.clear(); });
    freer.join();

    // A loop on a thread whose finished task states are released on this one.
    std::vector<corio::future<int>> results;
    std::thread runner([&] {
        corio::event_loop loop;
        loop.run_until_complete([](std::vector<corio::future<int>>& out, auto mk) -> corio::task<> {
            for (int i = 0; i < n; ++i) {
                out.push_back(corio::create_task(mk(i)));
            }
            for (auto& f : out) {
                co_await f;
            }
        }(results, make));
    });
    runner.join();
    long long sum = 0;
    for (auto& f : results) {
        sum += f.result();
    }
    CHECK(sum == static_cast<long long>(n) * (n - 1) / 2);
    std::thread releaser([&] { results.clear(); });
    releaser.join();
    if (corio::detail::frame_allocator::unpooled) {
        CHECK(corio::detail::frame_allocator::live_slabs() == 0);
    } else {
        CHECK(corio::detail::frame_allocator::live_slabs() == slabs_before);
    }
}
