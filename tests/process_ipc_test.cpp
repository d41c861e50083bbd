// corio/ipc.hpp: pipes, process queues, shared memory and process-shared locks
// between real processes, blocking and awaitable; killed peers and lock holders.
// (Named process_ipc so that it carries the label "pool", which TSan runs.)
//
// The fork server is started by a static initializer, before Catch2's main() and any
// thread (the equivalent of corio::init() first thing in main()).
#include "pool_semantics.hpp"

#include <corio/corio.hpp>
#include <corio/ipc.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

using namespace std::chrono_literals;

namespace {

const bool fork_server_started = [] {
    corio::init();
    return true;
}();

struct record {
    int id = 0;
    std::string label;
    std::vector<double> values;
};

using kinds = std::tuple<int, double, std::string, std::vector<int>, std::map<std::string, int>,
                         std::optional<std::string>, std::variant<int, std::string>,
                         std::pair<char, long>, record>;

kinds sample_kinds() {
    return {-7,
            2.5,
            std::string("hello\0world", 11),
            {1, 2, 3},
            {{"a", 1}, {"b", 2}},
            std::nullopt,
            std::string("variant"),
            {'x', 1L << 40},
            record{3, "r", {0.5, 1.5}}};
}

bool same(const kinds& a, const kinds& b) {
    const record& ra = std::get<8>(a);
    const record& rb = std::get<8>(b);
    return std::get<0>(a) == std::get<0>(b) && std::get<1>(a) == std::get<1>(b) &&
           std::get<2>(a) == std::get<2>(b) && std::get<3>(a) == std::get<3>(b) &&
           std::get<4>(a) == std::get<4>(b) && std::get<5>(a) == std::get<5>(b) &&
           std::get<6>(a) == std::get<6>(b) && std::get<7>(a) == std::get<7>(b) && ra.id == rb.id &&
           ra.label == rb.label && ra.values == rb.values;
}

std::string big_payload(std::size_t n) {
    std::string s(n, '\0');
    for (std::size_t i = 0; i < n; ++i)
        s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
    return s;
}

void echo_kinds(corio::connection<kinds> c) {
    for (;;) {
        kinds v;
        try {
            v = c.recv();
        } catch (const corio::end_of_stream_error&) {
            return;
        }
        c.send(v);
    }
}

void echo_strings(corio::connection<std::string> c) {
    for (;;) {
        std::string v;
        try {
            v = c.recv();
        } catch (const corio::end_of_stream_error&) {
            return;
        }
        c.send(v);
    }
}

void hold_forever(corio::connection<int> c) {
    c.send(1);
    for (;;)
        ::pause();
}

} // namespace

// ---------------------------------------------------------------------------- pipes

TEST_CASE("values of every serializable kind travel through a pipe to a process and back",
          "[ipc][pipe]") {
    REQUIRE(fork_server_started);
    pool_semantics::watchdog dog("pipe kinds");
    auto [mine, theirs] = corio::pipe<kinds>();
    corio::process p(echo_kinds, theirs);
    p.start();
    theirs.close(); // the child holds the only other copy now
    const kinds v = sample_kinds();
    for (int i = 0; i < 3; ++i) {
        mine.send(v);
        CHECK(same(mine.recv(), v));
    }
    mine.close();
    p.join();
    CHECK(p.exitcode() == 0);
}

TEST_CASE("a 10 MiB message and one just above the inline limit arrive intact", "[ipc][pipe]") {
    pool_semantics::watchdog dog("pipe large");
    auto [mine, theirs] = corio::pipe<std::string>();
    corio::process p(echo_strings, theirs);
    p.start();
    theirs.close();
    for (std::size_t size :
         {std::size_t(0), std::size_t(70000), std::size_t(200 * 1024), std::size_t(10u << 20)}) {
        const std::string s = big_payload(size);
        mine.send(s);
        const std::string back = mine.recv();
        CHECK(back.size() == size);
        CHECK(back == s);
    }
    mine.close();
    p.join();
}

TEST_CASE("messages on one connection keep their order and boundaries", "[ipc][pipe]") {
    auto [a, b] = corio::pipe<std::string>();
    for (int i = 0; i < 100; ++i)
        a.send(std::string(static_cast<std::size_t>(i), static_cast<char>('a' + i % 26)));
    for (int i = 0; i < 100; ++i)
        CHECK(b.recv() ==
              std::string(static_cast<std::size_t>(i), static_cast<char>('a' + i % 26)));
    CHECK_FALSE(b.poll());
}

TEST_CASE("poll waits at most its timeout and sees a message or the end", "[ipc][pipe][timeout]") {
    auto [a, b] = corio::pipe<int>();
    CHECK_FALSE(b.poll(10ms));
    a.send(5);
    CHECK(b.poll(0ms));
    CHECK(b.recv() == 5);
    a.close();
    CHECK(b.poll(1s)); // the end of the stream is readable too
    CHECK_THROWS_AS(b.recv(), corio::end_of_stream_error);
}

TEST_CASE("a closed peer gives end_of_stream_error on recv and on send", "[ipc][pipe][error]") {
    auto [a, b] = corio::pipe<int>();
    a.send(1);
    a.close();
    CHECK(b.recv() == 1); // what was sent before the close still arrives
    CHECK_THROWS_AS(b.recv(), corio::end_of_stream_error);
    CHECK_THROWS_AS(b.send(2), corio::end_of_stream_error);
    CHECK_THROWS_AS(a.send(3), corio::error); // this end is closed
    CHECK_THROWS_AS((void)a.recv(), corio::error);
}

TEST_CASE("a one-way pipe refuses the wrong direction", "[ipc][pipe][error]") {
    auto [r, w] = corio::pipe<int>(false);
    w.send(4);
    CHECK(r.recv() == 4);
    CHECK_THROWS_AS(r.send(1), corio::error);
    CHECK_THROWS_AS((void)w.recv(), corio::error);
}

TEST_CASE("a peer process killed by SIGKILL turns into end_of_stream_error, never a hang",
          "[ipc][pipe][kill]") {
    pool_semantics::watchdog dog("killed peer");
    auto [mine, theirs] = corio::pipe<int>();
    corio::process p(hold_forever, theirs);
    p.start();
    theirs.close();
    CHECK(mine.recv() == 1);
    p.kill();
    p.join();
    CHECK(p.exitcode() == -SIGKILL);
    CHECK_THROWS_AS(mine.recv(), corio::end_of_stream_error);
    CHECK_THROWS_AS(mine.send(2), corio::end_of_stream_error);
}

TEST_CASE("a connection cannot travel through a plain serialize (a pool or a pipe)",
          "[ipc][pipe][error]") {
    auto [a, b] = corio::pipe<int>();
    corio::byte_writer w;
    CHECK_THROWS_AS(corio::serialize(w, a), corio::error);
    CHECK_THROWS_AS(corio::serialize(w, b), corio::error);
}

TEST_CASE("async_recv keeps the loop responsive: a timer fires while a task waits",
          "[ipc][pipe][async]") {
    pool_semantics::watchdog dog("async_recv");
    auto [a, b] = corio::pipe<std::string>();
    std::vector<std::string> order;
    corio::run([](corio::connection<std::string>& a, corio::connection<std::string>& b,
                  std::vector<std::string>& order) -> corio::task<void> {
        auto receiver =
            corio::create_task([](corio::connection<std::string>& b,
                                  std::vector<std::string>& order) -> corio::task<void> {
                order.push_back("waiting");
                std::string v = co_await b.async_recv();
                order.push_back("received " + v);
            }(b, order));
        corio::get_running_loop().call_later(5ms, [&] {
            order.push_back("timer");
            a.send("ping");
        });
        co_await receiver;
        // And the other direction, awaited on both sides.
        co_await b.async_send(std::string(300 * 1024, 'z'));
        std::string big = co_await a.async_recv();
        order.push_back("big " + std::to_string(big.size()));
    }(a, b, order));
    CHECK(order == std::vector<std::string>{"waiting", "timer", "received ping", "big 307200"});
}

TEST_CASE("async_recv on a closed peer throws end_of_stream_error", "[ipc][pipe][async][error]") {
    auto [a, b] = corio::pipe<int>();
    a.close();
    bool thrown = false;
    corio::run([](corio::connection<int>& b, bool& thrown) -> corio::task<void> {
        try {
            (void)co_await b.async_recv();
        } catch (const corio::end_of_stream_error&) {
            thrown = true;
        }
    }(b, thrown));
    CHECK(thrown);
}

// ---------------------------------------------------------------------------- shared memory

TEST_CASE("named shared memory: create, attach, unlink and their errors", "[ipc][shm]") {
    const std::string name = "corio-test-" + std::to_string(::getpid());
    auto m = corio::shared_memory::create(name, 4096);
    CHECK(m.size() == 4096);
    CHECK(m.name() == name);
    m.data()[10] = std::byte{42};
    {
        auto other = corio::shared_memory::attach(name);
        CHECK(other.size() == 4096);
        CHECK(other.data()[10] == std::byte{42});
        other.data()[11] = std::byte{7};
    }
    CHECK(m.data()[11] == std::byte{7});
    CHECK_THROWS_AS(corio::shared_memory::create(name, 10), std::system_error);
    m.unlink();
    CHECK_THROWS_AS(corio::shared_memory::attach(name), std::system_error);
    CHECK_THROWS_AS(m.unlink(), std::system_error);
    CHECK_THROWS_AS(corio::shared_memory::create("/" + name, 10), corio::error);
    CHECK_THROWS_AS(corio::shared_memory::create("", 10), corio::error);
    CHECK_THROWS_AS(corio::shared_memory::create(name, 0), corio::error);
    CHECK_THROWS_AS(corio::shared_memory(0), corio::error);
    corio::shared_memory anon(100);
    CHECK(anon.name().empty());
    CHECK_THROWS_AS(anon.unlink(), corio::error);
}

TEST_CASE("shared arrays and values passed to children are seen by the parent",
          "[ipc][shm][array]") {
    pool_semantics::watchdog dog("shared array");
    corio::shared_array<long> squares(8);
    corio::shared_value<double> value(1.5);
    corio::shared_memory raw(64);
    CHECK(squares.size() == 8);
    for (long x : squares)
        CHECK(x == 0);
    std::vector<corio::process> procs;
    for (int i = 0; i < 4; ++i) {
        procs.emplace_back(
            [](corio::shared_array<long> a, int first, corio::shared_value<double> v,
               corio::shared_memory m) {
                a[static_cast<std::size_t>(first)] = first * first;
                a[static_cast<std::size_t>(first) + 4] = (first + 4) * (first + 4);
                if (first == 0) {
                    v.set(*v * 2);
                    m.data()[0] = std::byte{9};
                }
            },
            squares, i, value, raw);
        procs.back().start();
    }
    for (auto& p : procs) {
        p.join();
        CHECK(p.exitcode() == 0);
    }
    for (std::size_t i = 0; i < 8; ++i)
        CHECK(squares[i] == static_cast<long>(i * i));
    CHECK(value.get() == 3.0);
    CHECK(raw.data()[0] == std::byte{9});
    CHECK_THROWS_AS(corio::shared_array<int>(0), corio::error);
}

// ---------------------------------------------------------------------------- locks

TEST_CASE("a shared counter under a process_lock counts every increment", "[ipc][lock]") {
    pool_semantics::watchdog dog("shared counter");
    corio::shared_value<long> counter(0);
    corio::process_lock lock;
    std::vector<corio::process> procs;
    for (int i = 0; i < 4; ++i) {
        procs.emplace_back(
            [](corio::shared_value<long> c, corio::process_lock l) {
                for (int k = 0; k < 2000; ++k) {
                    std::lock_guard guard(l);
                    // A read-modify-write that loses updates without the lock.
                    const long v = *c;
                    *c = v + 1;
                }
            },
            counter, lock);
        procs.back().start();
    }
    for (auto& p : procs)
        p.join();
    CHECK(counter.get() == 8000);
}

TEST_CASE("a lock holder killed: the next locker gets owner_died, once", "[ipc][lock][kill]") {
    pool_semantics::watchdog dog("owner died");
    corio::process_lock lock;
    corio::process_event held;
    corio::process p(
        [](corio::process_lock l, corio::process_event e) {
            l.acquire();
            e.set();
            for (;;)
                ::pause();
        },
        lock, held);
    p.start();
    held.wait();
    CHECK_FALSE(lock.try_acquire());
    CHECK_FALSE(lock.acquire(20ms));
    p.kill();
    p.join();
    lock.acquire();
    CHECK(lock.owner_died());
    lock.release();
    lock.acquire();
    CHECK_FALSE(lock.owner_died());
    CHECK_THROWS_AS(lock.acquire(), corio::error); // not recursive: this thread holds it
    lock.release();
    CHECK_THROWS_AS(lock.release(), corio::error);
}

TEST_CASE("async_acquire of a lock held by a killed process: the loop stays responsive",
          "[ipc][lock][async][kill]") {
    pool_semantics::watchdog dog("async owner died");
    corio::process_lock lock;
    corio::process_event held;
    corio::process p(
        [](corio::process_lock l, corio::process_event e) {
            l.acquire();
            e.set();
            for (;;)
                ::pause();
        },
        lock, held);
    p.start();
    held.wait();
    std::vector<std::string> order;
    corio::run([](corio::process_lock& lock, corio::process& p,
                  std::vector<std::string>& order) -> corio::task<void> {
        auto locker = corio::create_task(
            [](corio::process_lock& lock, std::vector<std::string>& order) -> corio::task<void> {
                co_await lock.async_acquire();
                order.push_back(lock.owner_died() ? "acquired after owner died" : "acquired");
                lock.release();
            }(lock, order));
        corio::get_running_loop().call_later(5ms, [&] {
            order.push_back("timer");
            p.kill();
        });
        co_await locker;
    }(lock, p, order));
    p.join();
    CHECK(order == std::vector<std::string>{"timer", "acquired after owner died"});
}

TEST_CASE("a recursive lock is taken again by its owner and released as often",
          "[ipc][lock][rlock]") {
    corio::process_rlock r;
    r.acquire();
    r.acquire();
    r.release();
    corio::process p([](corio::process_rlock l) { std::exit(l.try_acquire() ? 1 : 0); }, r);
    p.start();
    p.join();
    CHECK(p.exitcode() == 0); // still held by the parent
    r.release();
    corio::process q([](corio::process_rlock l) { std::exit(l.try_acquire() ? 0 : 1); }, r);
    q.start();
    q.join();
    CHECK(q.exitcode() == 0);
}

TEST_CASE("event, semaphore, condition and barrier across processes, blocking and awaited",
          "[ipc][sync]") {
    pool_semantics::watchdog dog("sync primitives");
    corio::process_event go;
    corio::process_semaphore slots(0);
    corio::process_barrier barrier(3);
    corio::process_condition cond;
    corio::shared_value<int> stage(0);
    CHECK(barrier.parties() == 3);
    std::vector<corio::process> procs;
    for (int i = 0; i < 2; ++i) {
        procs.emplace_back(
            [](corio::process_event go, corio::process_semaphore s, corio::process_barrier b,
               corio::process_condition c, corio::shared_value<int> stage) {
                go.wait();
                s.release();
                (void)b.wait();
                std::lock_guard guard(c);
                c.wait([&] { return *stage >= 1; });
                *stage += 10;
            },
            go, slots, barrier, cond, stage);
        procs.back().start();
    }
    CHECK_FALSE(go.is_set());
    CHECK_FALSE(slots.acquire(10ms));
    std::vector<std::string> order;
    std::set<std::uint32_t> indexes;
    corio::run([](corio::process_event& go, corio::process_semaphore& slots,
                  corio::process_barrier& barrier, corio::process_condition& cond,
                  corio::shared_value<int>& stage, std::vector<std::string>& order,
                  std::set<std::uint32_t>& indexes) -> corio::task<void> {
        corio::get_running_loop().call_later(5ms, [&] {
            order.push_back("timer");
            go.set();
        });
        co_await slots.async_acquire();
        co_await slots.async_acquire();
        order.push_back("two permits");
        indexes.insert(co_await barrier.async_wait());
        order.push_back("barrier passed");
        co_await cond.async_acquire();
        *stage = 1;
        cond.notify_all();
        cond.release();
    }(go, slots, barrier, cond, stage, order, indexes));
    for (auto& p : procs) {
        p.join();
        CHECK(p.exitcode() == 0);
    }
    CHECK(order == std::vector<std::string>{"timer", "two permits", "barrier passed"});
    CHECK(indexes.size() == 1);
    CHECK(*indexes.begin() < 3);
    CHECK(stage.get() == 21);
    CHECK(slots.value() == 0);
    slots.release(2);
    CHECK(slots.try_acquire());
    CHECK(slots.value() == 1);
    go.clear();
    CHECK_FALSE(go.wait(5ms));
    CHECK_THROWS_AS(corio::process_barrier(0), corio::error);
    CHECK_THROWS_AS(slots.release(0x7fffffff), corio::error);
}

TEST_CASE("a cancelled async wait leaves no trace and the primitive still works",
          "[ipc][sync][cancel]") {
    corio::process_event e;
    corio::run([](corio::process_event& e) -> corio::task<void> {
        auto waiter = corio::create_task(e.async_wait());
        co_await corio::sleep(1ms);
        waiter.cancel();
        bool cancelled = false;
        try {
            co_await waiter;
        } catch (const corio::cancelled_error&) {
            cancelled = true;
        }
        CHECK(cancelled);
        auto second = corio::create_task(e.async_wait());
        corio::get_running_loop().call_soon([&] { e.set(); });
        co_await second;
    }(e));
    CHECK(e.is_set());
}
