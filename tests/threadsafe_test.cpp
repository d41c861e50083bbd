#include "counting.hpp"

#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/sleep.hpp>
#include <corio/sync.hpp>
#include <corio/threadsafe.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <optional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using corio_test::counted;

namespace {

// A loop running on its own thread until stop() (run_forever), for the tests that
// submit work to it from the test thread.
class loop_thread {
public:
    loop_thread() {
        std::promise<void> ready;
        auto got = ready.get_future();
        thread_ = std::thread([this, &ready] {
            corio::event_loop loop;
            loop_ = &loop;
            ready.set_value();
            loop.run_forever();
            loop.close();
        });
        got.get();
    }
    ~loop_thread() {
        loop_->call_soon_threadsafe([l = loop_] { l->stop(); });
        thread_.join();
    }
    corio::event_loop& loop() { return *loop_; }

private:
    corio::event_loop* loop_ = nullptr; // published to the test thread by the promise
    std::thread thread_;
};

corio::task<int> add_on_loop(int a, int b) {
    co_await corio::yield_now();
    co_return a + b;
}

corio::task<std::string> which_thread() {
    co_await corio::yield_now();
    std::ostringstream s;
    s << std::this_thread::get_id();
    co_return s.str();
}

// Waits for the test thread to release it through a thread-safe queue.
corio::task<int> wait_released(std::shared_ptr<corio::threadsafe_queue<int>> gate) {
    int v = co_await gate->get();
    co_return v * 10;
}

} // namespace

TEST_CASE("run_coroutine_threadsafe runs the task on the loop's thread; get blocks",
          "[threadsafe][concurrent_future]") {
    loop_thread lt;
    auto f = corio::run_coroutine_threadsafe(add_on_loop(2, 3), lt.loop());
    CHECK(f.get() == 5);
    CHECK(f.done());
    CHECK_FALSE(f.cancelled());
    CHECK_FALSE(f.cancel()); // already done
    std::ostringstream here;
    here << std::this_thread::get_id();
    auto t = corio::run_coroutine_threadsafe(which_thread(), lt.loop());
    CHECK(t.get(10s) != here.str());
    // Exceptions cross with their type.
    auto failing = []() -> corio::task<int> {
        co_await corio::yield_now();
        throw std::invalid_argument("bad input");
    };
    auto bad = corio::run_coroutine_threadsafe(failing(), lt.loop());
    CHECK_THROWS_AS(bad.get(), std::invalid_argument);
    // void and move-only results.
    auto v = corio::run_coroutine_threadsafe(
        []() -> corio::task<> { co_await corio::yield_now(); }(), lt.loop());
    v.get();
    auto m = corio::run_coroutine_threadsafe(
        []() -> corio::task<std::unique_ptr<int>> { co_return std::make_unique<int>(9); }(),
        lt.loop());
    CHECK(*m.get() == 9);
}

TEST_CASE("concurrent_future::get(timeout) throws timeout_error and leaves the task running",
          "[threadsafe][concurrent_future][timeout]") {
    loop_thread lt;
    auto gate = std::make_shared<corio::threadsafe_queue<int>>();
    auto f = corio::run_coroutine_threadsafe(wait_released(gate), lt.loop());
    CHECK_THROWS_AS(f.get(2ms), corio::timeout_error);
    CHECK_FALSE(f.done());
    gate->put_blocking(4);
    CHECK(f.get() == 40);
}

TEST_CASE("concurrent_future::cancel cancels the task on its loop; get throws cancelled_error",
          "[threadsafe][concurrent_future][cancel]") {
    loop_thread lt;
    auto gate = std::make_shared<corio::threadsafe_queue<int>>();
    std::atomic<bool> cleaned{false};
    corio::threadsafe_queue<int> started;
    auto body = [](std::shared_ptr<corio::threadsafe_queue<int>> g, std::atomic<bool>& c,
                   corio::threadsafe_queue<int>& s) -> corio::task<int> {
        s.put_nowait(1);
        try {
            co_return co_await g->get();
        } catch (const corio::cancelled_error&) {
            c = true;
            throw;
        }
    };
    auto f = corio::run_coroutine_threadsafe(body(gate, cleaned, started), lt.loop());
    CHECK(started.get_blocking() == 1); // the task runs on its loop
    CHECK(f.cancel());
    CHECK(f.cancelled());
    CHECK_THROWS_AS(f.get(), corio::cancelled_error);
    CHECK_FALSE(f.cancel());
    // The task's cleanup ran on its loop: a later submission is ordered after it.
    auto probe = corio::run_coroutine_threadsafe(add_on_loop(0, 0), lt.loop());
    probe.get();
    auto probe2 = corio::run_coroutine_threadsafe(add_on_loop(0, 0), lt.loop());
    probe2.get();
    CHECK(cleaned.load());
    CHECK(gate->empty());
    // Cancelled before it started: it never starts.
    auto never = corio::run_coroutine_threadsafe(body(gate, cleaned, started), lt.loop());
    never.cancel();
    corio::run_coroutine_threadsafe(add_on_loop(0, 0), lt.loop()).get();
    CHECK(never.cancelled());
    CHECK(started.size() <= 1); // at most: it had started before cancel() got there
}

TEST_CASE("a concurrent_future is awaited from a task on another loop",
          "[threadsafe][concurrent_future]") {
    loop_thread lt;
    corio::event_loop here;
    int r = here.run_until_complete([](corio::event_loop& there) -> corio::task<int> {
        auto f = corio::run_coroutine_threadsafe(add_on_loop(20, 22), there);
        int v = co_await f;
        co_return v;
    }(lt.loop()));
    CHECK(r == 42);
    // Cancelling the awaiting task cancels the concurrent future (and its task).
    auto gate = std::make_shared<corio::threadsafe_queue<int>>();
    auto f = corio::run_coroutine_threadsafe(wait_released(gate), lt.loop());
    auto waiter = here.create_task(
        [](corio::concurrent_future<int> cf) -> corio::task<int> { co_return co_await cf; }(f));
    here.run_until_complete([]() -> corio::task<> { co_await corio::yield_now(); }());
    waiter.cancel();
    CHECK_THROWS_AS(here.run_until_complete(waiter), corio::cancelled_error);
    CHECK(f.cancelled());
    // get() on the loop thread that runs the coroutine would deadlock: refused.
    auto self = here.run_until_complete([](corio::event_loop& l) -> corio::task<bool> {
        auto g = corio::run_coroutine_threadsafe(add_on_loop(1, 1), l);
        bool refused = false;
        try {
            g.get();
        } catch (const corio::error&) {
            refused = true;
        }
        int v = co_await g; // awaiting works on the same loop
        co_return refused&& v == 2;
    }(here));
    CHECK(self);
}

TEST_CASE("run_coroutine_threadsafe on a closed loop throws; a loop closing first cancels",
          "[threadsafe][concurrent_future][error]") {
    corio::event_loop closed;
    closed.close();
    CHECK_THROWS_AS(corio::run_coroutine_threadsafe(add_on_loop(1, 2), closed), corio::error);
    corio::concurrent_future<int> orphan = [] {
        corio::event_loop loop;
        auto f = corio::run_coroutine_threadsafe(add_on_loop(1, 2), loop);
        loop.close(); // never ran: the submission is dropped
        return f;
    }();
    CHECK(orphan.done());
    CHECK_THROWS_AS(orphan.get(), corio::cancelled_error);
    corio::concurrent_future<int> stuck = [] {
        corio::event_loop loop;
        auto gate = std::make_shared<corio::threadsafe_queue<int>>();
        auto f = corio::run_coroutine_threadsafe(wait_released(gate), loop);
        loop.run_until_complete([]() -> corio::task<> {
            co_await corio::yield_now();
            co_await corio::yield_now();
        }());
        loop.close(); // the task is cancelled at close
        return f;
    }();
    CHECK_THROWS_AS(stuck.get(1s), corio::cancelled_error);
}

// ---- threadsafe_queue --------------------------------------------------------------

TEST_CASE("threadsafe_queue hands items from threads to tasks and back, in order",
          "[threadsafe][queue]") {
    corio::threadsafe_queue<int> to_loop(4);
    corio::threadsafe_queue<int> to_thread;
    constexpr int n = 2000;
    std::atomic<long> thread_sum{0};
    std::thread producer([&] {
        for (int i = 0; i < n; ++i) {
            to_loop.put_blocking(i); // blocks while 4 are queued
        }
    });
    std::thread consumer([&] {
        long s = 0;
        for (int i = 0; i < n; ++i) {
            s += to_thread.get_blocking();
        }
        thread_sum = s;
    });
    corio::event_loop loop;
    bool in_order =
        loop.run_until_complete([](corio::threadsafe_queue<int>& in,
                                   corio::threadsafe_queue<int>& out) -> corio::task<bool> {
            bool ordered = true;
            for (int i = 0; i < n; ++i) {
                int v = co_await in.get();
                ordered = ordered && v == i;
                co_await out.put(v * 2);
            }
            co_return ordered;
        }(to_loop, to_thread));
    producer.join();
    consumer.join();
    CHECK(in_order);
    CHECK(thread_sum.load() == 2L * (n - 1) * n / 2);
    CHECK(to_loop.empty());
}

TEST_CASE("threadsafe_queue: a task put waits for room made by a thread", "[threadsafe][queue]") {
    corio::threadsafe_queue<counted> q(1);
    corio::event_loop loop;
    q.put_nowait(counted{});
    CHECK_THROWS_AS(q.put_nowait(counted{}), corio::queue_full);
    auto putter = loop.create_task([](corio::threadsafe_queue<counted>& qq) -> corio::task<> {
        co_await qq.put(counted{});
    }(q));
    loop.run_until_complete([]() -> corio::task<> { co_await corio::yield_now(); }());
    CHECK_FALSE(putter.done());
    std::thread taker([&] { (void)q.get_blocking(); });
    loop.run_until_complete(putter);
    taker.join();
    CHECK(q.size() == 1);
    (void)q.get_nowait();
    CHECK_THROWS_AS(q.get_nowait(), corio::queue_empty);
    CHECK(counted::live == 0);
}

TEST_CASE("threadsafe_queue: a cancelled getter takes no item and loses no wake-up",
          "[threadsafe][queue][cancel]") {
    corio::threadsafe_queue<int> q;
    corio::event_loop loop;
    auto getter = [](corio::threadsafe_queue<int>& qq) -> corio::task<int> {
        co_return co_await qq.get();
    };
    auto a = loop.create_task(getter(q));
    auto b = loop.create_task(getter(q));
    loop.run_until_complete([]() -> corio::task<> { co_await corio::yield_now(); }());
    q.put_nowait(7); // signals `a` ...
    a.cancel();      // ... which is cancelled before it resumes: `b` gets the item
    CHECK_THROWS_AS(loop.run_until_complete(a), corio::cancelled_error);
    CHECK(loop.run_until_complete(b) == 7);
    CHECK(q.empty());
    // Cancelled while waiting with nothing put: no item is consumed later.
    auto c = loop.create_task(getter(q));
    loop.run_until_complete([]() -> corio::task<> { co_await corio::yield_now(); }());
    c.cancel();
    CHECK_THROWS_AS(loop.run_until_complete(c), corio::cancelled_error);
    q.put_nowait(8);
    CHECK(q.get_nowait() == 8);
}

TEST_CASE("threadsafe_queue: timeouts and shutdown", "[threadsafe][queue][error]") {
    corio::threadsafe_queue<int> q(1);
    CHECK_THROWS_AS(q.get_blocking(2ms), corio::queue_empty);
    q.put_blocking(1, 1s);
    CHECK_THROWS_AS(q.put_blocking(2, 2ms), corio::queue_full);
    CHECK(q.maxsize() == 1);
    corio::event_loop loop;
    corio::threadsafe_queue<int> empty;
    auto waiting = loop.create_task([](corio::threadsafe_queue<int>& qq) -> corio::task<int> {
        co_return co_await qq.get();
    }(empty));
    loop.run_until_complete([]() -> corio::task<> { co_await corio::yield_now(); }());
    std::atomic<int> blocked_outcome{0};
    std::thread blocked([&] {
        try {
            (void)empty.get_blocking();
            blocked_outcome = 1;
        } catch (const corio::queue_shut_down&) {
            blocked_outcome = 2;
        }
    });
    empty.shutdown();
    blocked.join();
    CHECK(blocked_outcome.load() == 2);
    CHECK_THROWS_AS(loop.run_until_complete(waiting), corio::queue_shut_down);
    // Graceful: what is queued is still delivered, then gets throw; puts throw at once.
    q.shutdown();
    CHECK_THROWS_AS(q.put_nowait(3), corio::queue_shut_down);
    CHECK_THROWS_AS(q.put_blocking(3), corio::queue_shut_down);
    CHECK(q.get_blocking() == 1);
    CHECK_THROWS_AS(q.get_blocking(), corio::queue_shut_down);
    CHECK_THROWS_AS(loop.run_until_complete(q.get()), corio::queue_shut_down);
    corio::threadsafe_queue<int> dropped;
    dropped.put_nowait(1);
    dropped.shutdown(true);
    CHECK(dropped.empty());
    CHECK_THROWS_AS(dropped.get_nowait(), corio::queue_shut_down);
}

TEST_CASE("a cancel that arrives after the awaited concurrent_future completed is not lost",
          "[threadsafe][concurrent_future][cancel]") {
    // The awaiting task is cancelled once the concurrent future is done but before the
    // task resumed: it gets the value, and the cancel at its next suspension.
    corio::event_loop here;
    std::optional<corio::future<>> outer;
    std::optional<corio::concurrent_future<int>> cf;
    std::vector<std::string> log;
    std::function<void()> cancel_when_done = [&] {
        if (!cf || !cf->done()) {
            here.call_soon(cancel_when_done);
            return;
        }
        CHECK(outer->cancel());
    };
    auto body = [](corio::event_loop& l, std::optional<corio::concurrent_future<int>>& g,
                   std::vector<std::string>& lg) -> corio::task<> {
        g = corio::run_coroutine_threadsafe(add_on_loop(1, 1), l);
        lg.push_back("got " + std::to_string(co_await *g));
        co_await corio::yield_now();
        lg.push_back("not cancelled");
    };
    outer = here.create_task(body(here, cf, log));
    here.call_soon(cancel_when_done);
    CHECK_THROWS_AS(here.run_until_complete(*outer), corio::cancelled_error);
    CHECK(log == std::vector<std::string>{"got 2"});
}
