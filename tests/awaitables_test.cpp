// Every awaitable the library returns is accepted by every combinator (issue 12,
// defect 9: `wait_for(sleep(d), t)` did not compile because the sleep awaiter could
// not be moved into the combinator).
#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

template <class A>
constexpr bool accepted = corio::detail::combinator_awaitable<A>;

// The awaitable types that public functions return.
using sleep_t = decltype(corio::sleep(1ms));
using sleep_until_t = decltype(corio::sleep_until(std::chrono::steady_clock::now()));
using yield_t = decltype(corio::yield_now());
using queue_get_t = decltype(std::declval<corio::queue<int>&>().get());
using queue_put_t = decltype(std::declval<corio::queue<std::string>&>().put(std::string()));
using queue_join_t = decltype(std::declval<corio::queue<int>&>().join());
using lifo_get_t = decltype(std::declval<corio::lifo_queue<int>&>().get());
using prio_get_t = decltype(std::declval<corio::priority_queue<int>&>().get());
using event_wait_t = decltype(std::declval<corio::event&>().wait());
using lock_acquire_t = decltype(std::declval<corio::lock&>().acquire());
using lock_scoped_t = decltype(std::declval<corio::lock&>().scoped());
using sem_acquire_t = decltype(std::declval<corio::semaphore&>().acquire());
using cond_acquire_t = decltype(std::declval<corio::condition&>().acquire());
using cond_wait_t = decltype(std::declval<corio::condition&>().wait());
using gen_next_t = decltype(std::declval<corio::async_generator<int>&>().next());
using gen_aclose_t = decltype(std::declval<corio::async_generator<int>&>().aclose());

static_assert(accepted<sleep_t> && accepted<sleep_until_t> && accepted<yield_t>);
static_assert(accepted<queue_get_t> && accepted<queue_put_t> && accepted<queue_join_t>);
static_assert(accepted<lifo_get_t> && accepted<prio_get_t>);
static_assert(accepted<event_wait_t>);
static_assert(accepted<lock_acquire_t> && accepted<lock_scoped_t> && accepted<sem_acquire_t>);
static_assert(accepted<cond_acquire_t> && accepted<cond_wait_t>);
static_assert(accepted<gen_next_t> && accepted<gen_aclose_t>);
static_assert(accepted<corio::task<int>> && accepted<corio::future<int>>);

corio::async_generator<int> count_to(int n) {
    for (int i = 1; i <= n; ++i) {
        co_yield i;
    }
}

} // namespace

TEST_CASE("wait_for, gather, gather_settled, wait_any and shield accept sleeps", "[awaitables]") {
    corio::run([]() -> corio::task<> {
        co_await corio::wait_for(corio::sleep(1ms), 10s);
        CHECK_THROWS_AS(co_await corio::wait_for(corio::sleep(1h), 1ms), corio::timeout_error);
        co_await corio::wait_for(corio::yield_now(), 10s);
        co_await corio::wait_for(corio::sleep_until(std::chrono::steady_clock::now()), 10s);
        auto [a, b] = co_await corio::gather(corio::sleep(1ms), corio::yield_now());
        (void)a;
        (void)b;
        auto settled = co_await corio::gather_settled(corio::sleep(1ms));
        CHECK(std::get<0>(settled).has_value());
        auto [index, value] = co_await corio::wait_any(corio::sleep(1h), corio::sleep(1ms));
        (void)value;
        CHECK(index == 1);
        co_await corio::shield(corio::sleep(1ms));
        std::vector<decltype(corio::sleep(1ms))> sleeps;
        sleeps.push_back(corio::sleep(1ms));
        sleeps.push_back(corio::sleep(2ms));
        auto all = co_await corio::gather(std::move(sleeps));
        CHECK(all.size() == 2);
    }());
}

TEST_CASE("combinators accept queue, event, lock, semaphore and generator awaitables",
          "[awaitables]") {
    corio::run([]() -> corio::task<> {
        corio::queue<std::string> q;
        co_await corio::wait_for(q.put("one"), 10s);
        std::string one = co_await corio::wait_for(q.get(), 10s);
        CHECK(one == "one");
        CHECK_THROWS_AS(co_await corio::wait_for(q.get(), 1ms), corio::timeout_error);
        auto [got, put] = co_await corio::gather(q.get(), q.put("two"));
        (void)put;
        CHECK(got == "two");
        q.task_done();
        q.task_done();
        co_await corio::wait_for(q.join(), 10s);

        corio::event e;
        e.set();
        co_await corio::wait_for(e.wait(), 10s);
        co_await corio::shield(e.wait());

        corio::lock l;
        co_await corio::wait_for(l.acquire(), 10s);
        CHECK(l.locked());
        l.release();
        {
            auto guard = co_await corio::wait_for(l.scoped(), 10s);
            CHECK(l.locked());
        }
        CHECK_FALSE(l.locked());

        corio::semaphore s(1);
        co_await corio::wait_for(s.acquire(), 10s);
        CHECK_THROWS_AS(co_await corio::wait_for(s.acquire(), 1ms), corio::timeout_error);
        s.release();

        auto gen = count_to(2);
        auto first = co_await corio::wait_for(gen.next(), 10s);
        CHECK(first == 1);
        auto [i, second] = co_await corio::wait_any(gen.next());
        CHECK(i == 0);
        CHECK(second == 2);
        co_await corio::wait_for(gen.aclose(), 10s);
    }());
}
