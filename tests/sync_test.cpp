#include "counting.hpp"

#include <corio/event_loop.hpp>
#include <corio/sleep.hpp>
#include <corio/sync.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

// Lets every ready task run a few steps (no timers involved).
void settle(corio::event_loop& loop, int rounds = 3) {
    loop.run_until_complete([](int n) -> corio::task<> {
        for (int i = 0; i < n; ++i) {
            co_await corio::yield_now();
        }
    }(rounds));
}

corio::task<> hold_lock(corio::lock& l, std::vector<int>& order, int id) {
    co_await l.acquire();
    order.push_back(id);
    co_await corio::yield_now();
    l.release();
}

} // namespace

// ---- event ----------------------------------------------------------------------

TEST_CASE("event set wakes every waiter and clear re-arms it", "[sync][event]") {
    corio::event_loop loop;
    corio::event e;
    CHECK_FALSE(e.is_set());
    int woken = 0;
    auto waiter = [](corio::event& ev, int& w) -> corio::task<> {
        co_await ev.wait();
        ++w;
    };
    for (int i = 0; i < 3; ++i) {
        (void)loop.create_task(waiter(e, woken));
    }
    settle(loop);
    CHECK(woken == 0);
    e.set();
    CHECK(e.is_set());
    e.set(); // no effect
    settle(loop);
    CHECK(woken == 3);
    loop.run_until_complete(waiter(e, woken)); // set: returns at once
    CHECK(woken == 4);
    e.clear();
    CHECK_FALSE(e.is_set());
    auto late = loop.create_task(waiter(e, woken));
    settle(loop);
    CHECK_FALSE(late.done());
    e.set();
    loop.run_until_complete(late);
    CHECK(woken == 5);
}

TEST_CASE("a cancelled event waiter throws and leaves the others waiting",
          "[sync][event][cancel]") {
    corio::event_loop loop;
    corio::event e;
    auto waiter = [](corio::event& ev) -> corio::task<> { co_await ev.wait(); };
    auto a = loop.create_task(waiter(e));
    auto b = loop.create_task(waiter(e));
    settle(loop);
    a.cancel();
    settle(loop);
    CHECK(a.cancelled());
    CHECK_FALSE(b.done());
    e.set();
    loop.run_until_complete(b);
}

// ---- lock -----------------------------------------------------------------------

TEST_CASE("lock is granted in FIFO order to 3 waiters", "[sync][lock][fairness]") {
    corio::event_loop loop;
    corio::lock l;
    std::vector<int> order;
    auto body = [](corio::lock& lk, std::vector<int>& o) -> corio::task<> {
        co_await lk.acquire(); // held while the three queue up
        auto a = corio::create_task(hold_lock(lk, o, 1));
        auto b = corio::create_task(hold_lock(lk, o, 2));
        auto c = corio::create_task(hold_lock(lk, o, 3));
        co_await corio::yield_now();
        co_await corio::yield_now();
        CHECK(o.empty());
        lk.release();
        // A newcomer cannot overtake the queued waiters.
        auto d = corio::create_task(hold_lock(lk, o, 4));
        co_await a;
        co_await b;
        co_await c;
        co_await d;
    };
    loop.run_until_complete(body(l, order));
    CHECK(order == std::vector<int>{1, 2, 3, 4});
    CHECK_FALSE(l.locked());
}

TEST_CASE("a cancelled lock waiter does not deadlock the lock", "[sync][lock][cancel]") {
    corio::event_loop loop;
    corio::lock l;
    std::vector<int> order;
    loop.run_until_complete([](corio::lock& lk) -> corio::task<> { co_await lk.acquire(); }(l));
    CHECK(l.locked());
    auto a = loop.create_task(hold_lock(l, order, 1));
    auto b = loop.create_task(hold_lock(l, order, 2));
    settle(loop);
    a.cancel();
    settle(loop);
    CHECK(a.cancelled());
    l.release();
    loop.run_until_complete(b);
    CHECK(order == std::vector<int>{2});
    CHECK_FALSE(l.locked());
}

TEST_CASE("a lock waiter cancelled after the handoff passes the lock on", "[sync][lock][cancel]") {
    corio::event_loop loop;
    corio::lock l;
    std::vector<int> order;
    loop.run_until_complete([](corio::lock& lk) -> corio::task<> { co_await lk.acquire(); }(l));
    auto a = loop.create_task(hold_lock(l, order, 1));
    auto b = loop.create_task(hold_lock(l, order, 2));
    settle(loop);
    l.release(); // ownership handed to `a`, which has not resumed yet
    CHECK(l.locked());
    a.cancel();
    loop.run_until_complete(b);
    CHECK(a.cancelled());
    CHECK(order == std::vector<int>{2});
    CHECK_FALSE(l.locked());
}

TEST_CASE("lock release when unlocked throws", "[sync][lock][error]") {
    corio::lock l;
    CHECK_FALSE(l.locked());
    CHECK_THROWS_AS(l.release(), corio::error);
}

TEST_CASE("a scoped lock guard releases on destruction", "[sync][lock]") {
    auto body = []() -> corio::task<> {
        corio::lock l;
        {
            auto guard = co_await l.scoped();
            CHECK(guard);
            CHECK(l.locked());
            corio::lock_guard moved = std::move(guard);
            CHECK_FALSE(guard);
            CHECK(l.locked());
        }
        CHECK_FALSE(l.locked());
        auto guard = co_await l.scoped();
        guard.reset();
        CHECK_FALSE(l.locked());
        guard.reset(); // no effect
    };
    corio::run(body());
}

// ---- semaphore ------------------------------------------------------------------

TEST_CASE("a semaphore admits value tasks at a time, FIFO", "[sync][semaphore]") {
    corio::event_loop loop;
    corio::semaphore sem(2);
    CHECK(sem.value() == 2);
    std::vector<int> entered;
    corio::event gate;
    auto worker = [](corio::semaphore& s, corio::event& g, std::vector<int>& e,
                     int id) -> corio::task<> {
        co_await s.acquire();
        e.push_back(id);
        co_await g.wait();
        s.release();
    };
    std::vector<corio::future<>> fs;
    for (int id = 1; id <= 4; ++id) {
        fs.push_back(loop.create_task(worker(sem, gate, entered, id)));
    }
    settle(loop);
    CHECK(entered == std::vector<int>{1, 2});
    CHECK(sem.locked());
    CHECK(sem.value() == 0);
    gate.set();
    for (auto& f : fs) {
        loop.run_until_complete(f);
    }
    CHECK(entered == std::vector<int>{1, 2, 3, 4});
    CHECK(sem.value() == 2);
}

TEST_CASE("a semaphore cancellation race loses no permit", "[sync][semaphore][cancel]") {
    corio::event_loop loop;
    corio::semaphore sem(0);
    int acquired = 0;
    auto taker = [](corio::semaphore& s, int& a) -> corio::task<> {
        co_await s.acquire();
        ++a;
    };
    auto a = loop.create_task(taker(sem, acquired));
    auto b = loop.create_task(taker(sem, acquired));
    settle(loop);
    sem.release(); // the permit is handed to `a` ...
    a.cancel();    // ... which is cancelled before it resumes: the permit moves to `b`
    loop.run_until_complete(b);
    CHECK(a.cancelled());
    CHECK(acquired == 1);
    CHECK(sem.value() == 0);
    sem.release();
    CHECK(sem.value() == 1); // nothing lost, nothing duplicated

    // The same race with nobody else waiting returns the permit to the semaphore.
    corio::semaphore lone(0);
    auto c = loop.create_task(taker(lone, acquired));
    settle(loop);
    lone.release();
    c.cancel();
    settle(loop);
    CHECK(c.cancelled());
    CHECK(lone.value() == 1);
}

TEST_CASE("semaphore::scoped holds a permit until the guard goes", "[sync][semaphore][guard]") {
    corio::event_loop loop;
    corio::semaphore sem(1);
    std::vector<int> order;
    corio::event gate;
    auto worker = [](corio::semaphore& s, corio::event& g, std::vector<int>& o,
                     int id) -> corio::task<> {
        auto permit = co_await s.scoped();
        CHECK(static_cast<bool>(permit));
        o.push_back(id);
        co_await g.wait();
        if (id == 1) {
            throw std::runtime_error("body failed"); // the guard still returns the permit
        }
    };
    auto a = loop.create_task(worker(sem, gate, order, 1));
    auto b = loop.create_task(worker(sem, gate, order, 2));
    settle(loop);
    CHECK(order == std::vector<int>{1});
    CHECK(sem.value() == 0);
    gate.set();
    CHECK_THROWS_AS(loop.run_until_complete(a), std::runtime_error);
    loop.run_until_complete(b);
    CHECK(order == std::vector<int>{1, 2});
    CHECK(sem.value() == 1);

    // reset() returns the permit early; moving a guard moves the permit.
    loop.run_until_complete([](corio::semaphore& s) -> corio::task<> {
        auto p1 = co_await s.scoped();
        CHECK(s.value() == 0);
        corio::semaphore_guard p2 = std::move(p1);
        CHECK_FALSE(static_cast<bool>(p1));
        CHECK(static_cast<bool>(p2));
        p2.reset();
        CHECK(s.value() == 1);
        p2.reset(); // no effect
        CHECK(s.value() == 1);
    }(sem));
    CHECK(sem.value() == 1);
}

TEST_CASE("a task cancelled while waiting in semaphore::scoped holds no permit",
          "[sync][semaphore][guard][cancel]") {
    corio::event_loop loop;
    corio::bounded_semaphore sem(1);
    int entered = 0;
    auto worker = [](corio::bounded_semaphore& s, int& n) -> corio::task<> {
        auto permit = co_await s.scoped();
        ++n;
    };
    auto holder = [](corio::bounded_semaphore& s) -> corio::task<corio::semaphore_guard> {
        co_return co_await s.scoped();
    };
    auto held = loop.run_until_complete(holder(sem));
    auto w = loop.create_task(worker(sem, entered));
    settle(loop);
    w.cancel();
    CHECK_THROWS_AS(loop.run_until_complete(w), corio::cancelled_error);
    CHECK(entered == 0);
    CHECK(sem.value() == 0);
    held.reset();
    CHECK(sem.value() == 1);
    // A bounded semaphore released by hand while a guard holds it is not overfilled.
    auto again = loop.run_until_complete(holder(sem));
    sem.release();
    again.reset();
    CHECK(sem.value() == 1);
    CHECK_THROWS_AS(sem.release(), corio::error);
}

TEST_CASE("condition::scoped holds the condition's lock", "[sync][condition][guard]") {
    corio::event_loop loop;
    corio::condition cond;
    loop.run_until_complete([](corio::condition& c) -> corio::task<> {
        {
            auto guard = co_await c.scoped();
            CHECK(c.locked());
        }
        CHECK_FALSE(c.locked());
    }(cond));
}

TEST_CASE("a negative semaphore value is an error", "[sync][semaphore][error]") {
    CHECK_THROWS_AS(corio::semaphore(-1), corio::error);
    CHECK_THROWS_AS(corio::bounded_semaphore(-1), corio::error);
}

TEST_CASE("a bounded_semaphore released too often throws", "[sync][semaphore][error]") {
    auto body = []() -> corio::task<> {
        corio::bounded_semaphore sem(2);
        co_await sem.acquire();
        sem.release();
        CHECK(sem.value() == 2);
        CHECK_THROWS_AS(sem.release(), corio::error);
        CHECK(sem.value() == 2);
        corio::semaphore unbounded(0);
        unbounded.release();
        unbounded.release();
        CHECK(unbounded.value() == 2);
    };
    corio::run(body());
}

// ---- condition ------------------------------------------------------------------

TEST_CASE("condition wait_for returns once the predicate holds", "[sync][condition]") {
    corio::event_loop loop;
    corio::condition cond;
    int stock = 0;
    std::vector<std::string> log;
    auto consumer = [](corio::condition& c, int& s, std::vector<std::string>& l) -> corio::task<> {
        auto guard = co_await c.scoped();
        bool ok = co_await c.wait_for([&s] { return s >= 3; });
        CHECK(ok);
        CHECK(c.locked()); // re-acquired
        l.push_back("consumed " + std::to_string(s));
        s = 0;
    };
    auto f = loop.create_task(consumer(cond, stock, log));
    auto producer = [](corio::condition& c, int& s) -> corio::task<> {
        for (int i = 0; i < 3; ++i) {
            co_await c.acquire();
            ++s;
            c.notify();
            c.release();
            co_await corio::yield_now();
        }
    };
    loop.run_until_complete(producer(cond, stock));
    loop.run_until_complete(f);
    CHECK(log == std::vector<std::string>{"consumed 3"});
    CHECK_FALSE(cond.locked());
}

TEST_CASE("condition notify wakes n waiters in FIFO order and notify_all the rest",
          "[sync][condition]") {
    corio::event_loop loop;
    corio::condition cond;
    std::vector<int> woken;
    auto waiter = [](corio::condition& c, std::vector<int>& w, int id) -> corio::task<> {
        co_await c.acquire();
        co_await c.wait();
        w.push_back(id);
        c.release();
    };
    std::vector<corio::future<>> fs;
    for (int id = 1; id <= 4; ++id) {
        fs.push_back(loop.create_task(waiter(cond, woken, id)));
    }
    settle(loop);
    loop.run_until_complete([](corio::condition& c) -> corio::task<> {
        co_await c.acquire();
        c.notify(2);
        c.release();
    }(cond));
    settle(loop);
    CHECK(woken == std::vector<int>{1, 2});
    loop.run_until_complete([](corio::condition& c) -> corio::task<> {
        auto guard = co_await c.scoped();
        c.notify_all();
    }(cond));
    for (auto& f : fs) {
        loop.run_until_complete(f);
    }
    CHECK(woken == std::vector<int>{1, 2, 3, 4});
}

TEST_CASE("condition wait and notify without the lock throw", "[sync][condition][error]") {
    corio::event_loop loop;
    corio::condition cond;
    CHECK_THROWS_AS(cond.notify(), corio::error);
    CHECK_THROWS_AS(cond.notify_all(), corio::error);
    CHECK_THROWS_AS(cond.release(), corio::error);
    CHECK_THROWS_AS(loop.run_until_complete(cond.wait()), corio::error);
}

TEST_CASE("a cancelled condition waiter re-acquires the lock before it throws",
          "[sync][condition][cancel]") {
    corio::event_loop loop;
    corio::lock shared;
    corio::condition cond(shared);
    std::vector<std::string> log;
    auto waiter = [](corio::condition& c, std::vector<std::string>& l) -> corio::task<> {
        co_await c.acquire();
        try {
            co_await c.wait();
        } catch (const corio::cancelled_error&) {
            l.push_back(c.locked() ? "cancelled holding the lock" : "cancelled without the lock");
            c.release();
            throw;
        }
    };
    auto f = loop.create_task(waiter(cond, log));
    settle(loop);
    CHECK_FALSE(shared.locked());
    loop.run_until_complete([](corio::lock& l) -> corio::task<> { co_await l.acquire(); }(shared));
    f.cancel(); // the waiter must wait for the lock before its cancellation completes
    settle(loop);
    CHECK_FALSE(f.done());
    shared.release();
    CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
    CHECK(log == std::vector<std::string>{"cancelled holding the lock"});
    CHECK_FALSE(shared.locked());
}

TEST_CASE("a condition waiter cancelled after notify passes the notification on",
          "[sync][condition][cancel]") {
    corio::event_loop loop;
    corio::condition cond;
    std::vector<int> woken;
    auto waiter = [](corio::condition& c, std::vector<int>& w, int id) -> corio::task<> {
        auto guard = co_await c.scoped();
        co_await c.wait();
        w.push_back(id);
    };
    auto a = loop.create_task(waiter(cond, woken, 1));
    auto b = loop.create_task(waiter(cond, woken, 2));
    settle(loop);
    loop.run_until_complete([](corio::condition& c, corio::future<>& first) -> corio::task<> {
        auto guard = co_await c.scoped();
        c.notify(1);    // wakes `a` ...
        first.cancel(); // ... which is cancelled before it resumes: `b` gets the wake-up
    }(cond, a));
    loop.run_until_complete(b);
    CHECK_THROWS_AS(loop.run_until_complete(a), corio::cancelled_error);
    CHECK(woken == std::vector<int>{2});
    CHECK_FALSE(cond.locked());
}

// ---- barrier --------------------------------------------------------------------

TEST_CASE("a barrier with 3 parties passes 2 rounds", "[sync][barrier]") {
    corio::event_loop loop;
    corio::barrier b(3);
    CHECK(b.parties() == 3);
    std::vector<std::string> log;
    auto party = [](corio::barrier& br, std::vector<std::string>& l,
                    int id) -> corio::task<std::vector<std::size_t>> {
        std::vector<std::size_t> indices;
        for (int round = 1; round <= 2; ++round) {
            l.push_back("p" + std::to_string(id) + " r" + std::to_string(round));
            indices.push_back(co_await br.wait());
        }
        co_return indices;
    };
    auto p1 = loop.create_task(party(b, log, 1));
    auto p2 = loop.create_task(party(b, log, 2));
    settle(loop);
    CHECK(b.n_waiting() == 2);
    auto p3 = loop.create_task(party(b, log, 3));
    auto i1 = loop.run_until_complete(p1);
    auto i2 = loop.run_until_complete(p2);
    auto i3 = loop.run_until_complete(p3);
    // Every round-1 arrival precedes every round-2 arrival.
    for (int i = 0; i < 3; ++i) {
        CHECK(log[static_cast<std::size_t>(i)].substr(3) == "r1");
        CHECK(log[static_cast<std::size_t>(i) + 3].substr(3) == "r2");
    }
    for (std::size_t round = 0; round < 2; ++round) {
        std::vector<std::size_t> got{i1[round], i2[round], i3[round]};
        std::sort(got.begin(), got.end());
        CHECK(got == std::vector<std::size_t>{0, 1, 2});
    }
    CHECK(i1[0] == 0);
    CHECK(i2[0] == 1);
    CHECK(i3[0] == 2);
    CHECK(b.n_waiting() == 0);
    CHECK_FALSE(b.broken());
}

TEST_CASE("an aborted barrier breaks current and future waits until reset",
          "[sync][barrier][error]") {
    corio::event_loop loop;
    corio::barrier b(2);
    auto waiter = [](corio::barrier& br) -> corio::task<std::size_t> {
        co_return co_await br.wait();
    };
    auto w = loop.create_task(waiter(b));
    settle(loop);
    b.abort();
    CHECK(b.broken());
    CHECK_THROWS_AS(loop.run_until_complete(w), corio::broken_barrier_error);
    CHECK_THROWS_AS(loop.run_until_complete(waiter(b)), corio::broken_barrier_error);
    b.reset();
    CHECK_FALSE(b.broken());
    auto x = loop.create_task(waiter(b));
    auto y = loop.create_task(waiter(b));
    CHECK(loop.run_until_complete(x) + loop.run_until_complete(y) == 1);
}

TEST_CASE("resetting a barrier fails the tasks waiting in it", "[sync][barrier]") {
    corio::event_loop loop;
    corio::barrier b(3);
    auto waiter = [](corio::barrier& br) -> corio::task<std::size_t> {
        co_return co_await br.wait();
    };
    auto w = loop.create_task(waiter(b));
    settle(loop);
    CHECK(b.n_waiting() == 1);
    b.reset();
    CHECK_THROWS_AS(loop.run_until_complete(w), corio::broken_barrier_error);
    CHECK_FALSE(b.broken());
    CHECK(b.n_waiting() == 0);
}

TEST_CASE("a cancelled barrier waiter leaves the count", "[sync][barrier][cancel]") {
    corio::event_loop loop;
    corio::barrier b(2);
    auto waiter = [](corio::barrier& br) -> corio::task<std::size_t> {
        co_return co_await br.wait();
    };
    auto w = loop.create_task(waiter(b));
    settle(loop);
    CHECK(b.n_waiting() == 1);
    w.cancel();
    settle(loop);
    CHECK(w.cancelled());
    CHECK(b.n_waiting() == 0);
    CHECK_FALSE(b.broken());
}

TEST_CASE("a barrier needs at least one party", "[sync][barrier][error]") {
    CHECK_THROWS_AS(corio::barrier(0), corio::error);
    static_assert(std::is_base_of_v<corio::error, corio::broken_barrier_error>);
}

TEST_CASE("primitives destroyed with pending waiters do not touch freed memory",
          "[sync][lifetime]") {
    corio::event_loop loop;
    std::vector<corio::future<>> fs;
    {
        corio::event e;
        corio::lock l;
        fs.push_back(
            loop.create_task([](corio::event& ev) -> corio::task<> { co_await ev.wait(); }(e)));
        loop.run_until_complete([](corio::lock& lk) -> corio::task<> { co_await lk.acquire(); }(l));
        fs.push_back(
            loop.create_task([](corio::lock& lk) -> corio::task<> { co_await lk.acquire(); }(l)));
        settle(loop);
    }
    loop.close(); // the waiters are cancelled and finish
    for (auto& f : fs) {
        CHECK(f.cancelled());
    }
}

TEST_CASE("random cancellations of semaphore and lock waiters lose no permit",
          "[sync][cancel][stress]") {
    corio::event_loop loop;
    corio::semaphore sem(2);
    corio::lock l;
    std::mt19937 rng(777);
    int inside = 0;
    int max_inside = 0;
    std::vector<corio::future<>> tasks;
    auto worker = [](corio::semaphore& s, corio::lock& lk, int& in, int& max_in) -> corio::task<> {
        co_await s.acquire();
        ++in;
        max_in = std::max(max_in, in);
        try {
            co_await corio::yield_now();
        } catch (const corio::cancelled_error&) {
            --in;
            s.release();
            throw;
        }
        --in;
        s.release();
        auto guard = co_await lk.scoped();
        co_await corio::yield_now();
    };
    for (int round = 0; round < 200; ++round) {
        for (int i = 0; i < 3; ++i) {
            tasks.push_back(loop.create_task(worker(sem, l, inside, max_inside)));
        }
        settle(loop, static_cast<int>(rng() % 3));
        tasks[rng() % tasks.size()].cancel();
    }
    settle(loop, 10);
    for (auto& t : tasks) {
        try {
            loop.run_until_complete(t); // every task can finish: no hang
        } catch (const corio::cancelled_error&) {
        }
    }
    CHECK(max_inside <= 2);
    CHECK(inside == 0);
    CHECK(sem.value() == 2);
    CHECK_FALSE(sem.locked());
    CHECK_FALSE(l.locked());
}
