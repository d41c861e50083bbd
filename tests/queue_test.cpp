#include "counting.hpp"

#include <corio/combinators.hpp>
#include <corio/event_loop.hpp>
#include <corio/queue.hpp>
#include <corio/sleep.hpp>
#include <corio/sync.hpp>
#include <corio/task.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <functional>
#include <new>
#include <random>
#include <string>
#include <vector>

namespace {

// Allocation counting for the [allocation] tests: the replaced global operator new
// below counts only on a thread inside an allocation_window, so the other tests (and
// Catch2 around the window) behave exactly as with the default operator new.
thread_local bool counting_allocations = false;
thread_local long allocations_counted = 0;

// Counts this thread's allocations from construction until stop().
class allocation_window {
public:
    allocation_window() noexcept {
        allocations_counted = 0;
        counting_allocations = true;
    }
    allocation_window(const allocation_window&) = delete;
    allocation_window& operator=(const allocation_window&) = delete;
    ~allocation_window() { counting_allocations = false; }
    long stop() noexcept {
        counting_allocations = false;
        return allocations_counted;
    }
};

void* counted_malloc(std::size_t n) noexcept {
    if (counting_allocations) {
        ++allocations_counted;
    }
    return std::malloc(n == 0 ? 1 : n);
}

} // namespace

// The replaceable non-aligned forms, all of them: a sanitizer runtime defines its
// own, so replacing only some would pair its new with our delete. (The aligned
// forms stay the runtime's, new and delete alike; nothing here uses them.)
void* operator new(std::size_t n) {
    if (void* p = counted_malloc(n)) {
        return p;
    }
    throw std::bad_alloc();
}
void* operator new[](std::size_t n) {
    return ::operator new(n);
}
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    return counted_malloc(n);
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
    return counted_malloc(n);
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete[](void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
    std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}

namespace {

// A queue item that counts its live instances.
struct item : corio_test::counted {
    int value = 0;
    explicit item(int v) noexcept : value(v) {}
};

// Lets every ready task run a few steps (no timers involved).
void settle(corio::event_loop& loop, int rounds = 3) {
    loop.run_until_complete([](int n) -> corio::task<> {
        for (int i = 0; i < n; ++i) {
            co_await corio::yield_now();
        }
    }(rounds));
}

template <class Queue>
corio::task<int> get_value(Queue& q) {
    auto it = co_await q.get();
    co_return it.value;
}
template <class Queue>
corio::task<int> get_int(Queue& q) {
    co_return co_await q.get();
}

} // namespace

TEST_CASE("three producers and three consumers move every item", "[queue][concurrency]") {
    auto body = []() -> corio::task<long> {
        corio::queue<item> q(5);
        long sum = 0;
        auto producer = [](corio::queue<item>& qq) -> corio::task<> {
            for (int i = 0; i < 100; ++i) {
                co_await qq.put(item(i));
            }
        };
        auto consumer = [](corio::queue<item>& qq, long& s) -> corio::task<> {
            for (;;) {
                item it = co_await qq.get();
                s += it.value;
                qq.task_done();
            }
        };
        std::vector<corio::future<>> consumers;
        for (int i = 0; i < 3; ++i) {
            consumers.push_back(corio::create_task(consumer(q, sum)));
        }
        std::vector<corio::future<>> producers;
        for (int i = 0; i < 3; ++i) {
            producers.push_back(corio::create_task(producer(q)));
        }
        for (auto& p : producers) {
            co_await p;
        }
        co_await q.join();
        for (auto& c : consumers) {
            c.cancel();
        }
        for (auto& c : consumers) {
            try {
                co_await c;
            } catch (const corio::cancelled_error&) {
            }
        }
        CHECK(q.empty());
        co_return sum;
    };
    CHECK(corio::run(body()) == 14850);
    CHECK(corio_test::counted::live == 0);
}

TEST_CASE("join completes after task_done for every item", "[queue][join]") {
    auto body = []() -> corio::task<> {
        corio::queue<int> q;
        for (int i = 0; i < 100; ++i) {
            q.put_nowait(i);
        }
        int sum = 0;
        bool joined = false;
        auto joiner = [](corio::queue<int>& qq, bool& j) -> corio::task<> {
            co_await qq.join();
            j = true;
        };
        auto f = corio::create_task(joiner(q, joined));
        co_await corio::yield_now();
        for (int i = 0; i < 100; ++i) {
            sum += q.get_nowait();
            CHECK_FALSE(joined);
            q.task_done();
            if (i < 99) {
                co_await corio::yield_now();
            }
        }
        co_await f;
        CHECK(joined);
        CHECK(sum == 4950);
        co_await q.join(); // nothing unfinished: returns at once
    };
    corio::run(body());
}

TEST_CASE("task_done called once too often throws", "[queue][join][error]") {
    corio::queue<int> q;
    CHECK_THROWS_AS(q.task_done(), corio::error);
    q.put_nowait(1);
    (void)q.get_nowait();
    q.task_done();
    CHECK_THROWS_WITH(q.task_done(), Catch::Contains("too many"));
}

TEST_CASE("put_nowait on a full queue throws queue_full", "[queue][error]") {
    corio::queue<item> q(2);
    q.put_nowait(item(1));
    q.put_nowait(item(2));
    CHECK(q.full());
    CHECK(q.size() == 2);
    CHECK(q.maxsize() == 2);
    CHECK_THROWS_AS(q.put_nowait(item(3)), corio::queue_full);
    CHECK(q.size() == 2);
    CHECK(corio_test::counted::live == 2);
}

TEST_CASE("get_nowait on an empty queue throws queue_empty", "[queue][error]") {
    corio::queue<int> q;
    CHECK(q.empty());
    CHECK_FALSE(q.full()); // unbounded
    CHECK(q.maxsize() == 0);
    CHECK_THROWS_AS(q.get_nowait(), corio::queue_empty);
    static_assert(std::is_base_of_v<corio::error, corio::queue_empty>);
    static_assert(std::is_base_of_v<corio::error, corio::queue_full>);
    static_assert(std::is_base_of_v<corio::error, corio::queue_shut_down>);
}

TEST_CASE("a negative maxsize is an error", "[queue][error]") {
    CHECK_THROWS_AS(corio::queue<int>(-1), corio::error);
    CHECK_THROWS_AS(corio::lifo_queue<int>(-1), corio::error);
    CHECK_THROWS_AS(corio::priority_queue<int>(-1), corio::error);
}

TEST_CASE("maxsize blocks the producer until a get", "[queue][bounded]") {
    corio::event_loop loop;
    corio::queue<int> q(1);
    std::vector<std::string> log;
    auto producer = [](corio::queue<int>& qq, std::vector<std::string>& l) -> corio::task<> {
        co_await qq.put(1);
        l.push_back("put 1");
        co_await qq.put(2);
        l.push_back("put 2");
    };
    auto f = loop.create_task(producer(q, log));
    settle(loop);
    CHECK(log == std::vector<std::string>{"put 1"});
    CHECK(q.full());
    CHECK(q.get_nowait() == 1); // makes room: the blocked put inserts at once
    CHECK(q.size() == 1);
    settle(loop);
    CHECK(log == std::vector<std::string>{"put 1", "put 2"});
    CHECK(f.done());
    CHECK(q.get_nowait() == 2);
}

TEST_CASE("a cancelled getter does not lose the item", "[queue][cancel]") {
    corio::event_loop loop;
    corio::queue<item> q;
    auto getter = loop.create_task(get_value(q));
    settle(loop);
    getter.cancel();
    settle(loop);
    CHECK(getter.cancelled());
    q.put_nowait(item(42));
    auto next = loop.create_task(get_value(q));
    CHECK(loop.run_until_complete(next) == 42);
    CHECK(q.empty());
    CHECK(corio_test::counted::live == 0);
}

TEST_CASE("a getter cancelled after being handed an item gives it to the next getter",
          "[queue][cancel]") {
    corio::event_loop loop;
    corio::queue<item> q;
    auto first = loop.create_task(get_value(q));
    auto second = loop.create_task(get_value(q));
    settle(loop);
    q.put_nowait(item(7)); // handed to `first`, which has not resumed yet
    CHECK(q.size() == 1);
    CHECK(first.cancel());
    CHECK(loop.run_until_complete(second) == 7);
    CHECK(first.cancelled());
    CHECK(q.empty());
    CHECK(corio_test::counted::live == 0);
}

TEST_CASE("a getter cancelled after being handed an item puts it back at the head",
          "[queue][cancel]") {
    corio::event_loop loop;
    corio::queue<int> q(2);
    auto getter = loop.create_task(get_int(q));
    settle(loop);
    q.put_nowait(1); // handed to the getter
    q.put_nowait(2);
    CHECK(q.full()); // the handed item still counts
    CHECK_THROWS_AS(q.put_nowait(3), corio::queue_full);
    getter.cancel();
    settle(loop);
    CHECK(getter.cancelled());
    CHECK(q.size() == 2);
    CHECK(q.get_nowait() == 1); // back at the head, FIFO order kept
    CHECK(q.get_nowait() == 2);
}

TEST_CASE("a cancelled put never inserts its item", "[queue][cancel]") {
    corio::event_loop loop;
    corio::queue<item> q(1);
    q.put_nowait(item(1));
    auto putter = loop.create_task(
        [](corio::queue<item>& qq) -> corio::task<> { co_await qq.put(item(2)); }(q));
    settle(loop);
    putter.cancel();
    settle(loop);
    CHECK(putter.cancelled());
    CHECK(q.size() == 1);
    CHECK(q.get_nowait().value == 1);
    CHECK(q.empty());
    CHECK_THROWS_AS(q.get_nowait(), corio::queue_empty);
    CHECK(corio_test::counted::live == 0);
}

TEST_CASE("a put cancelled after its item went in completes and is cancelled later",
          "[queue][cancel]") {
    corio::event_loop loop;
    corio::queue<int> q(1);
    q.put_nowait(1);
    std::vector<std::string> log;
    auto putter =
        loop.create_task([](corio::queue<int>& qq, std::vector<std::string>& l) -> corio::task<> {
            co_await qq.put(2);
            l.push_back("put returned");
            co_await corio::yield_now();
            l.push_back("never");
        }(q, log));
    settle(loop);
    CHECK(q.get_nowait() == 1); // admits the blocked put: 2 is in
    putter.cancel();
    settle(loop);
    CHECK(log == std::vector<std::string>{"put returned"});
    CHECK(putter.cancelled());
    CHECK(q.get_nowait() == 2);
}

TEST_CASE("getters are served in FIFO order", "[queue][fairness]") {
    corio::event_loop loop;
    corio::queue<int> q;
    std::vector<int> order;
    auto getter = [](corio::queue<int>& qq, std::vector<int>& o, int id) -> corio::task<> {
        int v = co_await qq.get();
        o.push_back(id * 10 + v);
    };
    for (int id = 1; id <= 3; ++id) {
        (void)loop.create_task(getter(q, order, id));
    }
    settle(loop);
    q.put_nowait(1);
    q.put_nowait(2);
    q.put_nowait(3);
    settle(loop);
    CHECK(order == std::vector<int>{11, 22, 33});
}

TEST_CASE("a lifo_queue returns the newest item first", "[queue][lifo]") {
    auto body = []() -> corio::task<std::vector<int>> {
        corio::lifo_queue<int> q;
        for (int i = 1; i <= 4; ++i) {
            co_await q.put(i);
        }
        std::vector<int> out;
        while (!q.empty()) {
            out.push_back(co_await q.get());
        }
        co_return out;
    };
    CHECK(corio::run(body()) == std::vector<int>{4, 3, 2, 1});
}

TEST_CASE("a priority_queue returns the smallest item first", "[queue][priority]") {
    auto body = []() -> corio::task<std::vector<int>> {
        corio::priority_queue<int> q;
        for (int v : {5, 1, 4, 2, 3}) {
            co_await q.put(v);
        }
        std::vector<int> out;
        while (!q.empty()) {
            out.push_back(co_await q.get());
        }
        co_return out;
    };
    CHECK(corio::run(body()) == std::vector<int>{1, 2, 3, 4, 5});
}

TEST_CASE("a priority_queue takes a comparator", "[queue][priority]") {
    corio::priority_queue<std::pair<int, std::string>, std::greater<>> q;
    q.put_nowait({1, "low"});
    q.put_nowait({9, "high"});
    q.put_nowait({5, "mid"});
    CHECK(q.get_nowait().second == "high");
    CHECK(q.get_nowait().second == "mid");
    CHECK(q.get_nowait().second == "low");
}

TEST_CASE("a graceful shutdown lets gets drain, then they throw", "[queue][shutdown]") {
    corio::event_loop loop;
    corio::queue<item> q(3);
    q.put_nowait(item(1));
    q.put_nowait(item(2));
    q.shutdown();
    CHECK(q.is_shut_down());
    CHECK_THROWS_AS(q.put_nowait(item(3)), corio::queue_shut_down);
    CHECK(loop.run_until_complete(get_value(q)) == 1);
    CHECK(q.get_nowait().value == 2);
    CHECK_THROWS_AS(q.get_nowait(), corio::queue_shut_down);
    CHECK_THROWS_AS(loop.run_until_complete(get_value(q)), corio::queue_shut_down);
    CHECK_THROWS_AS(loop.run_until_complete([](corio::queue<item>& qq) -> corio::task<> {
        co_await qq.put(item(4));
    }(q)),
                    corio::queue_shut_down);
    CHECK(corio_test::counted::live == 0);
}

TEST_CASE("a graceful shutdown wakes blocked getters and putters with queue_shut_down",
          "[queue][shutdown]") {
    corio::event_loop loop;
    corio::queue<int> empty_q;
    corio::queue<int> full_q(1);
    full_q.put_nowait(1);
    auto getter = loop.create_task(get_int(empty_q));
    auto putter = loop.create_task(
        [](corio::queue<int>& qq) -> corio::task<> { co_await qq.put(2); }(full_q));
    settle(loop);
    empty_q.shutdown();
    full_q.shutdown();
    settle(loop);
    CHECK_THROWS_AS(getter.result(), corio::queue_shut_down);
    CHECK_THROWS_AS(putter.result(), corio::queue_shut_down);
    CHECK(full_q.get_nowait() == 1); // what was in stays gettable
}

TEST_CASE("an immediate shutdown empties the queue, fails pending gets and releases join",
          "[queue][shutdown]") {
    corio::event_loop loop;
    corio::queue<item> q;
    corio::queue<item> other;
    q.put_nowait(item(1));
    q.put_nowait(item(2));
    auto joiner =
        loop.create_task([](corio::queue<item>& qq) -> corio::task<> { co_await qq.join(); }(q));
    auto getter = loop.create_task(get_value(other));
    auto handed = loop.create_task(get_value(other));
    settle(loop);
    other.put_nowait(item(3)); // handed to `getter`, not resumed yet
    other.shutdown(true);
    q.shutdown(true);
    CHECK(q.empty());
    CHECK(other.empty());
    settle(loop);
    CHECK(joiner.done());
    CHECK_NOTHROW(joiner.result());
    CHECK_THROWS_AS(getter.result(), corio::queue_shut_down);
    CHECK_THROWS_AS(handed.result(), corio::queue_shut_down);
    CHECK_THROWS_AS(q.get_nowait(), corio::queue_shut_down);
    CHECK_THROWS_AS(q.task_done(), corio::error); // the drained items counted as done
    CHECK(corio_test::counted::live == 0);
}

TEST_CASE("a get awaited with a pending cancel throws without taking anything", "[queue][cancel]") {
    auto body = []() -> corio::task<> {
        corio::queue<int> q;
        corio::current_task().cancel(); // lands at the next suspension
        bool cancelled = false;
        try {
            (void)co_await q.get();
        } catch (const corio::cancelled_error&) {
            cancelled = true;
        }
        CHECK(cancelled);
        q.put_nowait(5);
        int v = co_await q.get(); // an available item is taken without suspending
        CHECK(v == 5);
    };
    corio::run(body());
}

TEST_CASE("a queue left with items and waiters frees everything", "[queue][lifetime]") {
    {
        corio::event_loop loop;
        corio::queue<item> q(2);
        q.put_nowait(item(1));
        q.put_nowait(item(2));
        (void)loop.create_task(
            [](corio::queue<item>& qq) -> corio::task<> { co_await qq.put(item(3)); }(q));
        settle(loop);
        loop.close();
    }
    CHECK(corio_test::counted::live == 0);
}

TEST_CASE("steady state put and get pairs allocate nothing", "[queue][allocation]") {
    constexpr int warm_up = 100;
    constexpr int measured = 10000;
    long allocations = -1;
    auto body = [](long& counted) -> corio::task<long> {
        corio::queue<int> q(4);
        long sum = 0;
        auto consumer = [](corio::queue<int>& qq, long& s, int n) -> corio::task<> {
            for (int i = 0; i < n; ++i) {
                s += co_await qq.get();
            }
        };
        auto f = corio::create_task(consumer(q, sum, warm_up + measured));
        // Warm-up: the ring buffer, the loop's ready queue and the frame allocator
        // reach their steady-state sizes.
        for (int i = 0; i < warm_up; ++i) {
            co_await q.put(i);
        }
        {
            allocation_window window; // no Catch2 assertion inside: it may allocate
            for (int i = warm_up; i < warm_up + measured; ++i) {
                co_await q.put(i); // a blocking put and the consumer's get both run here
            }
            counted = window.stop();
        }
        co_await f;
        co_return sum;
    };
    constexpr long n = warm_up + measured;
    CHECK(corio::run(body(allocations)) == n * (n - 1) / 2);
    CHECK(allocations == 0);
}

TEST_CASE("random cancellations of getters and putters never lose or duplicate an item",
          "[queue][cancel][stress]") {
    {
        corio::event_loop loop;
        corio::queue<item> q(3);
        std::mt19937 rng(12345);
        long put_sum = 0;
        long got_sum = 0;
        std::vector<corio::future<>> tasks;
        auto putter = [](corio::queue<item>& qq, int v, long& sum) -> corio::task<> {
            co_await qq.put(item(v));
            sum += v; // counted only once the put completed
        };
        auto getter = [](corio::queue<item>& qq, long& sum) -> corio::task<> {
            item it = co_await qq.get();
            sum += it.value;
        };
        for (int round = 0; round < 200; ++round) {
            for (int i = 0; i < 3; ++i) {
                int v = static_cast<int>(rng() % 1000);
                tasks.push_back(loop.create_task(putter(q, v, put_sum)));
                tasks.push_back(loop.create_task(getter(q, got_sum)));
            }
            settle(loop, static_cast<int>(rng() % 3));
            // Cancel a few random unfinished tasks, some right after they were woken.
            for (int k = 0; k < 2; ++k) {
                tasks[rng() % tasks.size()].cancel();
            }
        }
        // Cancel whatever is still pending (a put that already completed still counts).
        for (auto& t : tasks) {
            t.cancel();
        }
        settle(loop, 5);
        for (auto& t : tasks) {
            CHECK(t.done());
        }
        long left = 0;
        while (!q.empty()) {
            left += q.get_nowait().value;
        }
        CHECK(put_sum == got_sum + left);
    }
    CHECK(corio_test::counted::live == 0);
}

// Regression (issue 12, the stress suite's lost items): a consumer awaiting
// wait_for(q.get(), t) is cancelled after wait_for started its child but before that
// child ran; the item put meanwhile must stay in the queue or reach the consumer.
TEST_CASE("a get under wait_for cancelled before the get ran loses no item",
          "[queue][cancel][combinators]") {
    corio::event_loop loop;
    corio::queue<item> q;
    auto body = [](corio::queue<item>& qq) -> corio::task<int> {
        auto consumer = corio::create_task([](corio::queue<item>& q2) -> corio::task<int> {
            item it = co_await corio::wait_for(q2.get(), std::chrono::hours(1));
            co_return it.value;
        }(qq));
        co_await corio::yield_now(); // the consumer is in wait_for; its child has not run
        CHECK_FALSE(consumer.done());
        qq.put_nowait(item(7)); // in the store: a get would take it without suspending
        consumer.cancel();
        try {
            co_return co_await consumer;
        } catch (const corio::cancelled_error&) {
            co_return -1;
        }
    };
    const int got = loop.run_until_complete(body(q));
    if (got == 7) {
        CHECK(q.empty()); // delivered to the consumer: once
    } else {
        CHECK(got == -1);
        REQUIRE(q.size() == 1); // still in the queue
        CHECK(q.get_nowait().value == 7);
    }
    CHECK(corio_test::counted::live == 0);
}

// An outer cancel that arrives after a put under wait_for went in (completion wins
// for a put): wait_for returns normally, as a put awaited inline would, and the
// cancel lands at the next suspension point. A cancelled_error would tell the caller
// that nothing was inserted.
TEST_CASE("a put under wait_for that went in before the outer cancel returns normally",
          "[queue][cancel][combinators]") {
    corio::event_loop loop;
    corio::queue<int> q(1);
    q.put_nowait(1);
    std::vector<std::string> log;
    auto body = [](corio::queue<int>& qq, std::vector<std::string>& l) -> corio::task<> {
        auto producer = corio::create_task(
            [](corio::queue<int>& q2, std::vector<std::string>& l2) -> corio::task<> {
                co_await corio::wait_for(q2.put(2), std::chrono::hours(1));
                l2.push_back("put returned");
                co_await corio::yield_now();
                l2.push_back("never");
            }(qq, l));
        co_await corio::yield_now(); // the producer is in wait_for; its child has not run
        co_await corio::yield_now(); // the child waits in put() (the queue is full)
        CHECK(qq.get_nowait() == 1); // admits the put: 2 is in, the child is woken
        producer.cancel();           // before the child resumed
        try {
            co_await producer;
        } catch (const corio::cancelled_error&) {
            l.push_back("cancelled");
        }
    };
    loop.run_until_complete(body(q, log));
    CHECK(log == std::vector<std::string>{"put returned", "cancelled"});
    REQUIRE(q.size() == 1);
    CHECK(q.get_nowait() == 2);
}

TEST_CASE("a get losing a wait_any before it ran takes no item", "[queue][cancel][combinators]") {
    corio::event_loop loop;
    corio::queue<int> q;
    corio::event ev;
    ev.set();
    q.put_nowait(3);
    auto body = [](corio::queue<int>& qq, corio::event& e) -> corio::task<std::size_t> {
        auto [index, value] = co_await corio::wait_any(e.wait(), qq.get());
        (void)value;
        co_return index;
    };
    CHECK(loop.run_until_complete(body(q, ev)) == 0); // the event, which ran first
    REQUIRE(q.size() == 1);
    CHECK(q.get_nowait() == 3);
}
