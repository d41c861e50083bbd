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
#include <corio/detail/frame_allocator.hpp>
#include <corio/detail/live_counts.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <new>
#include <stdexcept>
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
// The nothrow forms too (Catch2 uses them): every form pairs with free() below.
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
    try {
        return allocate(n, 0);
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, const std::nothrow_t& tag) noexcept {
    return ::operator new(n, tag);
}
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
    try {
        return allocate(n, static_cast<std::size_t>(a));
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t& tag) noexcept {
    return ::operator new(n, a, tag);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
    std::free(p);
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

// What the producer and the consumer share. They own it with the scenario: when an
// allocation of the loop itself fails, corio::run throws and the loop's teardown
// destroys the scenario's frame before the cancelled children finish.
struct exchange {
    corio::queue<std::string> q{4};
    int put_ok = 0;
    int received = 0;
    bool in_order = true;
    bool producer_running = false; // set while a child's body runs
    bool consumer_running = false;
};

struct running_flag {
    explicit running_flag(bool& f) noexcept : flag(f) { flag = true; }
    running_flag(const running_flag&) = delete;
    running_flag& operator=(const running_flag&) = delete;
    ~running_flag() { flag = false; }
    bool& flag;
};

corio::task<> producer(std::shared_ptr<exchange> x) {
    running_flag running(x->producer_running);
    for (int i = 0; i < 20; ++i) {
        co_await x->q.put(std::to_string(i));
        ++x->put_ok;
    }
}

corio::task<> consumer(std::shared_ptr<exchange> x) {
    running_flag running(x->consumer_running);
    for (int i = 0; i < 20; ++i) {
        std::string v = co_await x->q.get();
        x->in_order = x->in_order && v == std::to_string(x->received);
        ++x->received;
        x->q.task_done();
    }
}

// A producer and a consumer in a task group: an allocation failure in either (its
// frame, an item's copy, the queue's buffer) fails that child with bad_alloc, which
// cancels the other one; join() rethrows it. Whatever failed, once both children
// ended, every item put is either received (in order) or still in the queue.
corio::task<> producer_consumer() {
    auto x = std::make_shared<exchange>();
    std::exception_ptr failure;
    {
        corio::task_group group;
        std::exception_ptr body;
        try {
            group.spawn(producer(x));
            group.spawn(consumer(x));
        } catch (...) {
            body = std::current_exception();
        }
        try {
            co_await group.join(body);
        } catch (...) {
            failure = std::current_exception();
        }
    }
    if (x->producer_running || x->consumer_running) {
        throw std::logic_error("queue scenario: a child still runs after join()");
    }
    if (!x->in_order || x->received + static_cast<int>(x->q.size()) != x->put_ok) {
        throw std::logic_error("queue scenario: an item was lost or duplicated");
    }
    if (failure) {
        std::rethrow_exception(failure);
    }
    if (x->received != 20) {
        throw std::logic_error("queue scenario: the consumer did not get every item");
    }
}

// Regression: a getter handed an item and cancelled before it resumed gives the
// item back in a noexcept path. With 8 items queued behind it, the item used to go
// into a full ring buffer, which grew there: an allocation failure terminated the
// program. The queue now reserves room when an item arrives.
// The getter of both regressions shares its queue (the scenario may end with
// bad_alloc while the getter still waits).
corio::task<std::string> get_one(std::shared_ptr<corio::queue<std::string>> q) {
    co_return co_await q->get();
}

corio::task<> cancelled_getter_gives_back() {
    auto q = std::make_shared<corio::queue<std::string>>();
    auto getter = corio::create_task(get_one(q));
    co_await corio::yield_now();         // the getter waits
    q->put_nowait(std::string(40, 'x')); // handed to the waiting getter
    for (int i = 0; i < 8; ++i) {
        q->put_nowait(std::to_string(i));
    }
    getter.cancel();
    try {
        (void)co_await getter;
        throw std::logic_error("queue scenario: the cancelled getter returned an item");
    } catch (const corio::cancelled_error&) {
    }
    if (q->size() != 9 || q->get_nowait() != std::string(40, 'x')) {
        throw std::logic_error("queue scenario: the given-back item is not first");
    }
}

// Regression: a putter blocked on a queue of 1 whose only item was handed to a
// getter is admitted (noexcept) when the getter takes it; the store's first buffer
// used to be allocated there.
corio::task<> admitted_putter() {
    auto q = std::make_shared<corio::queue<std::string>>(1);
    auto getter = corio::create_task(get_one(q));
    co_await corio::yield_now(); // the getter waits
    co_await q->put("a");        // handed to the getter: the queue is full
    co_await q->put("b");        // waits until the getter takes "a", then is admitted
    if (co_await getter != "a" || q->get_nowait() != "b") {
        throw std::logic_error("queue scenario: wrong items");
    }
}

corio::task<> queue_scenario() {
    co_await producer_consumer();
    co_await cancelled_getter_gives_back();
    co_await admitted_putter();
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
    if (smallest != 1) {
        throw std::logic_error("queue scenario computed a wrong result");
    }
}

struct sweep_result {
    long points = 0;
    long succeeded = 0;
    long bad_alloc = 0;
    bool last_succeeded = false; // the run past the last allocation point
};

// Allocations made by one corio::run of `scenario`.
long count_allocations(const std::function<corio::task<>()>& scenario) {
    counted = 0;
    counting = true;
    corio::run(scenario());
    counting = false;
    return counted.load();
}

corio::task<> empty_scenario() {
    co_return;
}

// The floor a scenario's allocation points are checked against: what an empty
// scenario allocates (the loop, the ring, the root task), plus the allocations the
// scenario's own code makes for sure: `explicit_allocations` (vectors, shared
// state, queue buffers, long strings), and, where frames are not pooled (ASan
// builds: every coroutine frame is its own operator new), one per coroutine frame
// it creates besides its root. Pooled frames come from slabs carved earlier.
long floor_for(long explicit_allocations, long frames) {
    return count_allocations(empty_scenario) + explicit_allocations +
           (corio::detail::frame_allocator::unpooled ? frames : 0);
}

// Runs `scenario` under corio::run once per allocation point, failing that point.
sweep_result sweep(const char* name, const std::function<corio::task<>()>& scenario) {
    sweep_result r;
    r.points = count_allocations(scenario);
    const std::size_t states = corio::detail::live_future_states();
    const std::size_t loops = corio::detail::live_event_loops();
    for (long n = 1; n <= r.points + 1; ++n) {
        countdown = n;
        try {
            corio::run(scenario());
            ++r.succeeded;
            r.last_succeeded = n == r.points + 1;
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
    // Frames: value_after_yield x2, thrower, the sleeping lambda.
    const long floor = floor_for(0, 4);
    INFO("floor " << floor);
    CHECK(r.points >= floor);
    CHECK(r.bad_alloc >= floor);
    CHECK(r.last_succeeded);
}

TEST_CASE("every allocation of the combinator scenario can fail cleanly", "[fault][alloc]") {
    auto r = sweep("combinators", combinator_scenario);
    // Explicit: the vectors `many` (grown to 1, 2, 4) and `racers` (1, 2), gather's
    // result vector. Frames: the 14 value_after_yield/thrower calls, as_completed.
    const long floor = floor_for(6, 15);
    INFO("floor " << floor);
    CHECK(r.points >= floor);
    CHECK(r.bad_alloc >= floor);
    CHECK(r.last_succeeded);
}

TEST_CASE("every allocation of the queue scenario can fail cleanly", "[fault][alloc]") {
    auto r = sweep("queues", queue_scenario);
    // Explicit: three shared queues (make_shared) and their ring buffers, the
    // 40-character string. Frames: producer_consumer, producer, consumer, the two
    // regressions, get_one x2, the event waiter.
    const long floor = floor_for(7, 8);
    INFO("floor " << floor);
    CHECK(r.points >= floor);
    CHECK(r.bad_alloc >= floor);
    CHECK(r.last_succeeded);
}
