// Allocation fault injection (built with -DCORIO_FAULT_INJECTION=ON, ctest label
// `fault`). This program replaces the global operator new: once armed with N, the
// Nth allocation throws std::bad_alloc. Each scenario (core, combinators, queues and
// primitives: nothing but corio calls) is run once to count its allocations, then
// once per allocation point with that allocation failing. Every run must either
// succeed or end in std::bad_alloc, cleanly: no crash (a bad_alloc escaping a
// noexcept path would terminate), no other exception, and no leak (the leak gate
// checks states, loops, rings and descriptors after every run here too; LSan checks
// memory under ASan).
#include <corio/corio.hpp>
#include <corio/detail/live_counts.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <new>
#include <string>
#include <vector>

namespace {

std::atomic<long> countdown{0}; // 0: disarmed; else allocations left before the failure
std::atomic<long> counted{0};   // allocations seen while counting
std::atomic<bool> counting{false};

void* allocate(std::size_t n, std::size_t align) {
    if (counting.load(std::memory_order_relaxed)) {
        counted.fetch_add(1, std::memory_order_relaxed);
    }
    long left = countdown.load(std::memory_order_relaxed);
    if (left > 0) {
        left = countdown.fetch_sub(1, std::memory_order_relaxed);
        if (left == 1) {
            throw std::bad_alloc();
        }
    }
    if (n == 0) {
        n = 1;
    }
    void* p = align <= alignof(std::max_align_t)
                  ? std::malloc(n)
                  : std::aligned_alloc(align, (n + align - 1) / align * align);
    if (p == nullptr) {
        throw std::bad_alloc();
    }
    return p;
}

} // namespace

void* operator new(std::size_t n) {
    return allocate(n, 0);
}
void* operator new[](std::size_t n) {
    return allocate(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
    return allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
    return allocate(n, static_cast<std::size_t>(a));
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
void operator delete(void* p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
    std::free(p);
}

namespace {

using namespace std::chrono_literals;

corio::task<int> value_after_yield(int v) {
    co_await corio::yield_now();
    co_return v;
}

corio::task<int> thrower() {
    co_await corio::yield_now();
    throw std::runtime_error("expected");
}

corio::task<> core_scenario() {
    auto a = corio::create_task(value_after_yield(1));
    auto b = corio::create_task(value_after_yield(2), "named");
    int called = 0;
    corio::get_running_loop().call_soon([&called] { ++called; });
    co_await corio::sleep(0ms);
    int sum = co_await a + co_await b;
    try {
        co_await thrower();
    } catch (const std::runtime_error&) {
        ++sum;
    }
    auto slow = corio::create_task([]() -> corio::task<> { co_await corio::sleep(1h); }());
    co_await corio::yield_now();
    slow.cancel();
    try {
        co_await slow;
    } catch (const corio::cancelled_error&) {
        ++sum;
    }
    if (sum != 5 || called != 1) {
        throw std::logic_error("core scenario computed a wrong result");
    }
}

corio::task<> combinator_scenario() {
    auto [x, y] = co_await corio::gather(value_after_yield(1), value_after_yield(2));
    std::vector<corio::task<int>> many;
    for (int i = 0; i < 4; ++i) {
        many.push_back(value_after_yield(i));
    }
    auto all = co_await corio::gather(std::move(many));
    int w = co_await corio::wait_for(value_after_yield(3), 10s);
    try {
        co_await corio::wait_for(corio::sleep(1h), 1ms);
    } catch (const corio::timeout_error&) {
        ++w;
    }
    auto [index, first] = co_await corio::wait_any(value_after_yield(5), value_after_yield(6));
    int s = co_await corio::shield(value_after_yield(7));
    auto settled = co_await corio::gather_settled(value_after_yield(8), thrower());
    std::vector<corio::task<int>> racers;
    racers.push_back(value_after_yield(1));
    racers.push_back(value_after_yield(2));
    int total = 0;
    auto gen = corio::as_completed(std::move(racers));
    while (auto next = co_await gen.next()) {
        total += next->value();
    }
    // A child that failed to allocate settles with bad_alloc: rethrown here.
    const int eight = std::get<0>(settled).value();
    bool thrower_failed = false;
    try {
        (void)std::get<1>(settled).value();
    } catch (const std::runtime_error&) {
        thrower_failed = true;
    }
    if (x + y != 3 || all.size() != 4 || w != 4 || index > 1 || first < 5 || s != 7 || eight != 8 ||
        !thrower_failed || total != 3) {
        throw std::logic_error("combinator scenario computed a wrong result");
    }
}

corio::task<> queue_scenario() {
    corio::queue<std::string> q(4);
    auto producer = corio::create_task([](corio::queue<std::string>& qq) -> corio::task<> {
        for (int i = 0; i < 20; ++i) {
            co_await qq.put(std::to_string(i));
        }
    }(q));
    int received = 0;
    for (int i = 0; i < 20; ++i) {
        std::string v = co_await q.get();
        received += v == std::to_string(i) ? 1 : 0;
        q.task_done();
    }
    co_await producer;
    co_await q.join();
    corio::priority_queue<int> pq;
    pq.put_nowait(3);
    pq.put_nowait(1);
    int smallest = co_await pq.get();
    corio::event e;
    corio::lock l;
    corio::semaphore sem(1);
    auto waiter =
        corio::create_task([](corio::event& ev) -> corio::task<> { co_await ev.wait(); }(e));
    co_await corio::yield_now();
    e.set();
    co_await waiter;
    {
        auto guard = co_await l.scoped();
        co_await sem.acquire();
        sem.release();
    }
    if (received != 20 || smallest != 1) {
        throw std::logic_error("queue scenario computed a wrong result");
    }
}

struct sweep_result {
    long points = 0;
    long succeeded = 0;
    long bad_alloc = 0;
};

// Runs `scenario` under corio::run once per allocation point, failing that point.
sweep_result sweep(const char* name, const std::function<corio::task<>()>& scenario) {
    sweep_result r;
    counted = 0;
    counting = true;
    corio::run(scenario());
    counting = false;
    r.points = counted.load();
    const std::size_t states = corio::detail::live_future_states();
    const std::size_t loops = corio::detail::live_event_loops();
    for (long n = 1; n <= r.points + 1; ++n) {
        countdown = n;
        try {
            corio::run(scenario());
            ++r.succeeded;
        } catch (const std::bad_alloc&) {
            ++r.bad_alloc;
        } catch (const std::exception& e) {
            countdown = 0;
            FAIL(name << ": allocation " << n << " of " << r.points << " failed with '" << e.what()
                      << "' instead of std::bad_alloc");
        }
        countdown = 0;
        INFO(name << ": allocation " << n << " of " << r.points);
        REQUIRE(corio::detail::live_future_states() == states);
        REQUIRE(corio::detail::live_event_loops() == loops);
    }
    std::printf("fault injection: %s: %ld allocation points, each failed once: %ld runs "
                "succeeded, %ld ended in std::bad_alloc\n",
                name, r.points, r.succeeded, r.bad_alloc);
    return r;
}

} // namespace

TEST_CASE("every allocation of the core scenario can fail cleanly", "[fault][alloc]") {
    auto r = sweep("core", core_scenario);
    CHECK(r.points > 10);
    CHECK(r.bad_alloc > 0);
    CHECK(r.succeeded >= 1); // the run past the last allocation point
}

TEST_CASE("every allocation of the combinator scenario can fail cleanly", "[fault][alloc]") {
    auto r = sweep("combinators", combinator_scenario);
    CHECK(r.points > 10);
    CHECK(r.bad_alloc > 0);
    CHECK(r.succeeded >= 1);
}

TEST_CASE("every allocation of the queue scenario can fail cleanly", "[fault][alloc]") {
    auto r = sweep("queues", queue_scenario);
    CHECK(r.points > 10);
    CHECK(r.bad_alloc > 0);
    CHECK(r.succeeded >= 1);
}
