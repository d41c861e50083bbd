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

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
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
    for (std::size_t i = 0; i < n; ++i) {
        s[i] = static_cast<char>((i * 131 + i / 7) & 0xff);
    }
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
    for (;;) {
        ::pause();
    }
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
    for (int i = 0; i < 100; ++i) {
        a.send(std::string(static_cast<std::size_t>(i), static_cast<char>('a' + i % 26)));
    }
    for (int i = 0; i < 100; ++i) {
        CHECK(b.recv() ==
              std::string(static_cast<std::size_t>(i), static_cast<char>('a' + i % 26)));
    }
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
    for (long x : squares) {
        CHECK(x == 0);
    }
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
    for (std::size_t i = 0; i < 8; ++i) {
        CHECK(squares[i] == static_cast<long>(i * i));
    }
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
    for (auto& p : procs) {
        p.join();
    }
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
            for (;;) {
                ::pause();
            }
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
            for (;;) {
                ::pause();
            }
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

// ---------------------------------------------------------------------------- queues

namespace {

using item = std::pair<int, int>; // (producer, sequence number)

void produce(corio::process_queue<item> q, int producer, int count) {
    for (int i = 0; i < count; ++i) {
        q.put({producer, i});
    }
}

// Takes items until the sentinel (-1, -1); sends back what it took, in order.
void consume(corio::process_queue<item> q, corio::process_queue<std::vector<item>> results) {
    std::vector<item> got;
    for (;;) {
        item v = q.get();
        if (v.first < 0) {
            break;
        }
        got.push_back(v);
    }
    results.put(got);
}

} // namespace

TEST_CASE("values of every serializable kind travel through a process queue", "[ipc][queue]") {
    pool_semantics::watchdog dog("queue kinds");
    corio::process_queue<kinds> q;
    corio::process_queue<kinds> back;
    corio::process p(
        [](corio::process_queue<kinds> in, corio::process_queue<kinds> out) {
            for (int i = 0; i < 3; ++i) {
                out.put(in.get());
            }
        },
        q, back);
    p.start();
    const kinds v = sample_kinds();
    for (int i = 0; i < 3; ++i) {
        q.put(v);
    }
    for (int i = 0; i < 3; ++i) {
        CHECK(same(back.get(10s), v));
    }
    p.join();
    CHECK(p.exitcode() == 0);
    CHECK(q.empty());
}

TEST_CASE("many producer and consumer processes: nothing lost, nothing duplicated, per-producer "
          "order",
          "[ipc][queue][many]") {
    pool_semantics::watchdog dog("many producers and consumers", 120s);
    constexpr int producers = 3;
    constexpr int consumers = 3;
    constexpr int per_producer = 3000;
    corio::process_queue<item> q(64); // bounded: producers wait for room
    corio::process_queue<std::vector<item>> results;
    std::vector<corio::process> procs;
    for (int c = 0; c < consumers; ++c) {
        procs.emplace_back(consume, q, results);
        procs.back().start();
    }
    std::vector<corio::process> makers;
    for (int p = 0; p < producers; ++p) {
        makers.emplace_back(produce, q, p, per_producer);
        makers.back().start();
    }
    for (auto& m : makers) {
        m.join();
        CHECK(m.exitcode() == 0);
    }
    for (int c = 0; c < consumers; ++c) {
        q.put({-1, -1});
    }
    std::set<item> seen;
    std::size_t total = 0;
    bool ordered = true;
    for (int c = 0; c < consumers; ++c) {
        const std::vector<item> got = results.get(60s);
        std::vector<int> last(producers, -1);
        for (const item& v : got) {
            seen.insert(v);
            ++total;
            // Each consumer sees each producer's items in the order they were put.
            if (v.second <= last[static_cast<std::size_t>(v.first)]) {
                ordered = false;
            }
            last[static_cast<std::size_t>(v.first)] = v.second;
        }
    }
    for (auto& p : procs) {
        p.join();
        CHECK(p.exitcode() == 0);
    }
    CHECK(total == std::size_t(producers * per_producer));
    CHECK(seen.size() == std::size_t(producers * per_producer));
    CHECK(ordered);
}

TEST_CASE("queue items larger than a pipe's buffer, up to 10 MiB, arrive intact",
          "[ipc][queue][large]") {
    pool_semantics::watchdog dog("queue large");
    corio::process_queue<std::string> q(2);
    corio::process_queue<std::string> back;
    corio::process p(
        [](corio::process_queue<std::string> in, corio::process_queue<std::string> out) {
            for (int i = 0; i < 4; ++i) {
                out.put(in.get());
            }
        },
        q, back);
    p.start();
    const std::vector<std::size_t> sizes{100 * 1024, 1u << 20, 10u << 20, 3};
    for (std::size_t n : sizes) {
        q.put(big_payload(n));
    }
    for (std::size_t n : sizes) {
        const std::string s = back.get(30s);
        CHECK(s.size() == n);
        CHECK(s == big_payload(n));
    }
    p.join();
}

TEST_CASE("queue timeouts and the nowait forms", "[ipc][queue][timeout]") {
    corio::process_queue<int> q(2);
    CHECK(q.maxsize() == 2);
    CHECK_THROWS_AS(q.get_nowait(), corio::queue_empty);
    CHECK_THROWS_AS(q.get(10ms), corio::queue_empty);
    q.put(1);
    q.put_nowait(2);
    CHECK(q.full());
    CHECK(q.qsize() == 2);
    CHECK_THROWS_AS(q.put_nowait(3), corio::queue_full);
    CHECK_THROWS_AS(q.put(3, 10ms), corio::queue_full);
    CHECK(q.get_nowait() == 1);
    CHECK(q.get(1s) == 2);
    CHECK(q.empty());
    q.close();
    CHECK_THROWS_AS(q.put(1), corio::error);
    CHECK_THROWS_AS((void)q.get(), corio::error);
    CHECK_THROWS_AS(corio::process_queue<int>(std::size_t(1) << 40), corio::error);
}

TEST_CASE("processes killed while putting or waiting to get leave the queue whole for the "
          "survivors",
          "[ipc][queue][kill]") {
    pool_semantics::watchdog dog("queue kill");
    corio::process_queue<std::string> q;
    corio::process_event started;
    // A producer that puts large items forever, killed in the middle of its stream.
    corio::process producer(
        [](corio::process_queue<std::string> q, corio::process_event started) {
            for (int i = 0;; ++i) {
                q.put(std::to_string(i) + ":" + std::string(300 * 1024, 'p'));
                if (i == 3) {
                    started.set();
                }
            }
        },
        q, started);
    // A consumer that waits in get and is killed there.
    corio::process idle_consumer([](corio::process_queue<int> q) { (void)q.get(); },
                                 corio::process_queue<int>());
    idle_consumer.start();
    producer.start();
    started.wait();
    producer.kill();
    idle_consumer.kill();
    producer.join();
    idle_consumer.join();
    // Every item that is in the queue is whole, numbered in order, and then it is empty.
    int expected = 0;
    for (;;) {
        std::string s;
        try {
            s = q.get(200ms);
        } catch (const corio::queue_empty&) {
            break;
        }
        const auto colon = s.find(':');
        REQUIRE(colon != std::string::npos);
        CHECK(std::stoi(s.substr(0, colon)) == expected);
        CHECK(s.size() == colon + 1 + 300 * 1024);
        ++expected;
    }
    CHECK(expected >= 4);
    // The queue still works.
    q.put("after");
    CHECK(q.get(1s) == "after");
}

TEST_CASE("a consumer killed while blocked in get takes nothing with it", "[ipc][queue][kill]") {
    pool_semantics::watchdog dog("blocked consumer killed");
    corio::process_queue<int> q;
    corio::process_event waiting;
    corio::process consumer(
        [](corio::process_queue<int> q, corio::process_event e) {
            e.set();
            (void)q.get();
            std::exit(3);
        },
        q, waiting);
    consumer.start();
    waiting.wait();
    consumer.kill();
    consumer.join();
    // Whether it was already inside get or not, it never took an item: all arrive here.
    for (int i = 0; i < 5; ++i) {
        q.put(i);
    }
    for (int i = 0; i < 5; ++i) {
        CHECK(q.get(1s) == i);
    }
    CHECK(consumer.exitcode() == -SIGKILL);
}

TEST_CASE("a joinable queue's join waits for task_done of every item", "[ipc][queue][join]") {
    pool_semantics::watchdog dog("joinable queue");
    corio::joinable_process_queue<int> q;
    corio::shared_value<int> sum(0);
    corio::process worker(
        [](corio::joinable_process_queue<int> q, corio::shared_value<int> sum) {
            for (;;) {
                const int v = q.get();
                if (v < 0) {
                    q.task_done();
                    return;
                }
                *sum += v;
                q.task_done();
            }
        },
        q, sum);
    worker.start();
    for (int i = 1; i <= 100; ++i) {
        q.put(i);
    }
    q.join();
    CHECK(sum.get() == 5050); // every item was processed before join returned
    q.put(-1);
    CHECK(q.join(10s));
    worker.join();
    CHECK_THROWS_AS(q.task_done(), corio::error);
    CHECK(q.join(0ms));
}

TEST_CASE("awaitable queue forms keep the loop responsive", "[ipc][queue][async]") {
    pool_semantics::watchdog dog("async queue");
    corio::joinable_process_queue<int> q(1);
    corio::process helper(
        [](corio::joinable_process_queue<int> q) {
            // Takes two items, after the parent filled the queue and waits for room.
            for (int i = 0; i < 2; ++i) {
                (void)q.get();
                q.task_done();
            }
        },
        q);
    std::vector<std::string> order;
    corio::run([](corio::joinable_process_queue<int>& q, corio::process& helper,
                  std::vector<std::string>& order) -> corio::task<void> {
        auto getter = corio::create_task([](corio::joinable_process_queue<int>& q,
                                            std::vector<std::string>& order) -> corio::task<void> {
            const int v = co_await q.async_get();
            q.task_done();
            order.push_back("got " + std::to_string(v));
        }(q, order));
        corio::get_running_loop().call_later(5ms, [&] {
            order.push_back("timer");
            q.put(7);
        });
        co_await getter;
        co_await q.async_put(1); // fills the queue (maxsize 1)
        auto putter = corio::create_task([](corio::joinable_process_queue<int>& q,
                                            std::vector<std::string>& order) -> corio::task<void> {
            co_await q.async_put(2); // waits for room
            order.push_back("put after room");
        }(q, order));
        co_await corio::sleep(1ms);
        order.push_back("start helper");
        helper.start();
        co_await putter;
        co_await q.async_join();
        order.push_back("joined");
        co_await helper.async_join();
    }(q, helper, order));
    CHECK(order ==
          std::vector<std::string>{"timer", "got 7", "start helper", "put after room", "joined"});
    CHECK(helper.exitcode() == 0);
}

// ---------------------------------------------------------------------------- processes

namespace {
int add(int a, int b) {
    return a + b;
}
std::string fail_with(std::string what) {
    throw std::invalid_argument(what);
}
} // namespace

TEST_CASE("a process returns its result after join, and rethrows its exception",
          "[ipc][process][result]") {
    pool_semantics::watchdog dog("process result");
    corio::process p(add, 2, 40);
    CHECK_THROWS_AS(p.result(), corio::error); // not started
    p.start();
    p.join();
    int r = p.result();
    CHECK(r == 42);
    CHECK(p.result().get<int>() == 42);
    CHECK_THROWS_AS(p.result().get<long>(), corio::error);

    corio::process big([](std::size_t n) { return big_payload(n); }, std::size_t(3u << 20));
    big.start();
    big.join(); // reads the 3 MiB answer while it waits
    CHECK(big.result().get<std::string>() == big_payload(3u << 20));

    corio::process f(fail_with, std::string("bad input"));
    f.start();
    f.join();
    CHECK(f.exitcode() == 1);
    CHECK_THROWS_AS(f.result(), std::invalid_argument);
    try {
        (void)f.result();
    } catch (const std::invalid_argument& e) {
        CHECK(std::string(e.what()) == "bad input");
    }

    corio::process k([] {
        for (;;) {
            ::pause();
        }
        return 1;
    });
    k.start();
    k.kill();
    k.join();
    CHECK_THROWS_AS(k.result(), corio::broken_worker_error);

    corio::process v([] {});
    v.start();
    v.join();
    CHECK_NOTHROW(v.result());
}

TEST_CASE("process names, current_process, parent_process, active_children, daemon",
          "[ipc][process][identity]") {
    pool_semantics::watchdog dog("process identity");
    CHECK(corio::current_process().name == "MainProcess");
    CHECK(corio::current_process().pid == ::getpid());
    CHECK_FALSE(corio::parent_process().has_value());
    corio::process p([] {
        const auto self = corio::current_process();
        const auto parent = corio::parent_process();
        return std::make_tuple(self.name, self.pid == ::getpid(), self.daemon,
                               parent ? parent->pid : 0, parent ? parent->name : std::string());
    });
    CHECK(p.name().rfind("Process-", 0) == 0);
    p.name("worker-one");
    p.daemon(true);
    CHECK(p.daemon());
    corio::process_event release;
    corio::process waiting([](corio::process_event e) { e.wait(); }, release);
    waiting.start();
    bool listed = false;
    for (const auto& c : corio::active_children()) {
        listed = listed || c.pid == waiting.pid();
    }
    CHECK(listed);
    p.start();
    CHECK_THROWS_AS(p.daemon(false), corio::error);
    p.join();
    const auto [name, self_pid, daemon, parent_pid, parent_name] =
        p.result().get<std::tuple<std::string, bool, bool, pid_t, std::string>>();
    CHECK(name == "worker-one");
    CHECK(self_pid);
    CHECK(daemon);
    CHECK(parent_pid == ::getpid());
    CHECK(parent_name == "MainProcess");
    release.set();
    waiting.join();
    for (const auto& c : corio::active_children()) {
        CHECK(c.pid != waiting.pid());
    }
}

TEST_CASE("async_join waits on the loop without blocking it", "[ipc][process][async]") {
    pool_semantics::watchdog dog("async_join");
    corio::process_event release;
    corio::process p(
        [](corio::process_event e) {
            e.wait();
            return std::string("done");
        },
        release);
    std::vector<std::string> order;
    corio::run([](corio::process& p, corio::process_event& release,
                  std::vector<std::string>& order) -> corio::task<void> {
        p.start();
        corio::get_running_loop().call_later(5ms, [&] {
            order.push_back("timer");
            release.set();
        });
        co_await p.async_join();
        order.push_back("joined");
    }(p, release, order));
    CHECK(order == std::vector<std::string>{"timer", "joined"});
    CHECK(p.result().get<std::string>() == "done");
    corio::process never([] {});
    CHECK_THROWS_AS(corio::run(never.async_join()), corio::error);
}

namespace {

corio::process_event* terminated_event = nullptr;

void on_sigterm(int) {
    terminated_event->set(); // a futex word and a wake: async-signal-safe
    ::_exit(0);
}

} // namespace

TEST_CASE("when a process's function returns, its non-daemon children are waited for and its "
          "daemon children terminated",
          "[ipc][process][daemon][exit]") {
#if defined(__SANITIZE_THREAD__)
    // The middle process starts processes of its own, which needs a single-threaded
    // process for its fork server; under TSan every forked child runs TSan's
    // background thread as well.
    WARN("skipped under ThreadSanitizer: a nested fork server needs a single thread");
    return;
#endif
    pool_semantics::watchdog dog("exit rule");
    corio::process_event go;         // lets the non-daemon grandchild finish
    corio::process_event ready;      // the daemon's SIGTERM handler is installed
    corio::process_event terminated; // the daemon got SIGTERM
    corio::shared_array<int> seen(2);
    corio::process middle(
        [](corio::process_event go, corio::process_event ready, corio::process_event terminated,
           corio::shared_array<int> seen) {
            corio::process worker(
                [](corio::process_event go, corio::shared_array<int> seen) {
                    go.wait();
                    seen[0] = 1;
                },
                go, seen);
            worker.start();
            corio::process daemon(
                [](corio::process_event ready, corio::process_event terminated) {
                    terminated_event = &terminated;
                    ::signal(SIGTERM, on_sigterm);
                    ready.set();
                    for (;;) {
                        ::pause();
                    }
                },
                ready, terminated);
            daemon.daemon(true);
            daemon.start();
            if (!ready.wait(10s)) {
                std::exit(3);
            }
            seen[1] = 1;
            // Both objects are destroyed here while their children run; the
            // function's return is this process's exit.
        },
        go, ready, terminated, seen);
    middle.start();
    // The daemon is told to end while the middle process waits for its worker.
    REQUIRE(terminated.wait(10s));
    CHECK(seen[1] == 1);
    CHECK(middle.is_alive()); // its worker waits for `go`, so it cannot have exited
    CHECK(seen[0] == 0);
    go.set();
    REQUIRE(middle.join(10s));
    CHECK(middle.exitcode() == 0);
    CHECK(seen[0] == 1); // the worker finished, it was not killed with its parent
}

TEST_CASE("a process object destroyed while its child runs: the child stays listed until it "
          "ends, holding no descriptor",
          "[ipc][process][lifetime]") {
    pool_semantics::watchdog dog("dropped child");
    corio::process_event release;
    pid_t pid = 0;
    {
        corio::process p([](corio::process_event e) { e.wait(); }, release);
        p.start();
        pid = p.pid();
    }
    bool listed = false;
    for (const auto& c : corio::active_children()) {
        listed = listed || c.pid == pid;
    }
    CHECK(listed);
    // The fork server keeps it unreaped while it is listed: its pid is still its own.
    const int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    REQUIRE(fd >= 0);
    release.set();
    pollfd p{fd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    ::close(fd);
    for (const auto& c : corio::active_children()) {
        CHECK(c.pid != pid);
    }
}
