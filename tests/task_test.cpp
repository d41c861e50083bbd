#include "counting.hpp"

#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <pthread.h>

#include <cstddef>
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

using namespace std::chrono_literals;

namespace {

corio::task<int> value(int v) {
    co_return v;
}
corio::task<> nothing() {
    co_return;
}
corio::task<int&> ref_to(int& x) {
    co_return x;
}

corio::task<long> sum_sequential(int n) {
    long total = 0;
    for (int i = 0; i < n; ++i) {
        total += co_await value(1);
    }
    co_return total;
}

corio::task<long> deep(int depth) {
    if (depth == 0) {
        co_return 0;
    }
    co_return 1 + co_await deep(depth - 1);
}

corio::task<int> level3() {
    co_await corio::yield_now();
    throw std::out_of_range("level3 failed");
}
corio::task<int> level2() {
    co_return co_await level3() + 1;
}
corio::task<int> level1() {
    co_return co_await level2() + 1;
}

/// Runs `fn` on a new thread with a `stack_bytes` stack, waits for it and rethrows
/// what it threw: code whose stack grows with the length of a chain overflows it
/// and crashes.
template <class F>
void on_small_stack(std::size_t stack_bytes, F fn) {
    struct job {
        F fn;
        std::exception_ptr error;
        static void* run(void* p) {
            auto* self = static_cast<job*>(p);
            try {
                self->fn();
            } catch (...) {
                self->error = std::current_exception();
            }
            return nullptr;
        }
    } j{std::move(fn), nullptr};
    pthread_attr_t attr;
    REQUIRE(::pthread_attr_init(&attr) == 0);
    REQUIRE(::pthread_attr_setstacksize(&attr, stack_bytes) == 0);
    pthread_t thread;
    int rc = ::pthread_create(&thread, &attr, &job::run, &j);
    ::pthread_attr_destroy(&attr);
    REQUIRE(rc == 0);
    REQUIRE(::pthread_join(thread, nullptr) == 0);
    if (j.error) {
        std::rethrow_exception(j.error);
    }
}

constexpr std::size_t small_stack = 256 * 1024;

constexpr bool optimized_build() {
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    return false;
#endif
#endif
    return true;
#else
    return false;
#endif
}

} // namespace

TEST_CASE("a task yields its value, a reference, or nothing", "[task]") {
    CHECK(corio::run(value(7)) == 7);
    int x = 1;
    int& r = corio::run(ref_to(x));
    CHECK(&r == &x);
    corio::run(nothing());
}

TEST_CASE("a task is lazy: nothing runs until it is awaited", "[task]") {
    bool ran = false;
    auto make = [](bool& flag) -> corio::task<> {
        flag = true;
        co_return;
    };
    {
        auto t = make(ran);
        CHECK_FALSE(ran);
    } // destroyed unstarted: the frame is freed (ASan checks)
    CHECK_FALSE(ran);
    corio::run(make(ran));
    CHECK(ran);
}

TEST_CASE("a task is move-only and a moved-from task is empty", "[task]") {
    auto t = value(3);
    auto u = std::move(t);
    CHECK_FALSE(static_cast<bool>(t));
    CHECK(static_cast<bool>(u));
    CHECK(corio::run(std::move(u)) == 3);
    STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<corio::task<int>>);
}

TEST_CASE("exceptions propagate through three levels of awaits", "[task][error]") {
    CHECK_THROWS_MATCHES(corio::run(level1()), std::out_of_range,
                         Catch::Matchers::Message("level3 failed"));
}

TEST_CASE("destroying a suspended task chain frees every frame", "[task][lifetime]") {
    auto holder = [](corio_test::counted) -> corio::task<> { co_await corio::sleep(1h); };
    auto outer = [](corio::task<> inner, corio_test::counted) -> corio::task<> {
        co_await std::move(inner);
    };
    {
        corio::event_loop loop;
        auto f = loop.create_task(outer(holder(corio_test::counted{}), corio_test::counted{}));
        loop.call_soon([&] { loop.stop(); });
        loop.run_forever();
        CHECK(corio_test::counted::live == 2);
        CHECK_FALSE(f.done());
    } // close() cancels the task: the sleep throws, both frames unwind
    CHECK(corio_test::counted::live == 0);
}

TEST_CASE("a million sequential awaits of synchronous tasks run on a 256 KiB stack",
          "[task][stack]") {
    if (!optimized_build()) {
        WARN("skipped: symmetric transfer is only a guaranteed tail call in optimized builds");
        return;
    }
    long total = 0;
    on_small_stack(small_stack, [&total] { total = corio::run(sum_sequential(1'000'000)); });
    CHECK(total == 1'000'000);
}

TEST_CASE("a 100,000-deep recursive chain completes on a 256 KiB stack", "[task][stack]") {
    if (!optimized_build()) {
        WARN("skipped: symmetric transfer is only a guaranteed tail call in optimized builds");
        return;
    }
    long depth = 0;
    on_small_stack(small_stack, [&depth] { depth = corio::run(deep(100'000)); });
    CHECK(depth == 100'000);
}

TEST_CASE("short chains work in every build type", "[task]") {
    CHECK(corio::run(sum_sequential(10'000)) == 10'000);
    CHECK(corio::run(deep(1'000)) == 1'000);
}
