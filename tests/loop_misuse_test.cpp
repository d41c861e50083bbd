// Misuse of an event loop that probing found (issue 12, defects 1, 2, 3 and 5): a
// loop used after fork(), close() with a task that swallows its cancellation, a
// refused run_until_complete, and loop methods called from another thread.
#include "loop_steps.hpp"

#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

// Turns a hang into a failure: aborts the test program with `what` if not destroyed
// within `limit` (a bound on a defect, not a wait for something to happen).
class watchdog {
public:
    watchdog(const char* what, std::chrono::seconds limit) : what_(what) {
        thread_ = std::thread([this, limit] {
            std::unique_lock lock(mutex_);
            if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
                std::fprintf(stderr, "watchdog: %s did not finish\n", what_);
                std::abort();
            }
        });
    }
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }

private:
    const char* what_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

corio::task<int> seven() {
    co_await corio::yield_now();
    co_return 7;
}

corio::task<> read_into(corio::unix_stream& s, std::string& out) {
    out = co_await s.read_exactly(5);
}

corio::task<> write_to(corio::unix_stream& s, std::string_view bytes) {
    co_await s.write_all(bytes);
}

// Exit codes of the forked child below.
enum child_result : int {
    refused_clearly = 0,
    ran_parent_loop = 1,
    wrong_message = 2,
    other_exception = 3,
    close_threw = 4,
    own_loop_failed = 5,
};

int child_uses_parent_loop(corio::event_loop& loop) noexcept {
    ::alarm(20); // a spinning child dies of SIGALRM instead of hanging the test
    int result = refused_clearly;
    try {
        loop.run_until_complete(seven());
        result = ran_parent_loop;
    } catch (const corio::error& e) {
        if (std::string(e.what()).find("another process") == std::string::npos) {
            result = wrong_message;
        }
    } catch (...) {
        result = other_exception;
    }
    if (result != refused_clearly) {
        return result;
    }
    try {
        loop.close(); // must not submit to or reap from the shared ring
    } catch (...) {
        return close_threw;
    }
    try {
        if (corio::run(seven()) != 7) { // a loop of its own works
            return own_loop_failed;
        }
    } catch (...) {
        return own_loop_failed;
    }
    return refused_clearly;
}

} // namespace

TEST_CASE("fork: the child refuses its parent's loop and the parent's loop keeps working",
          "[fork]") {
    corio::event_loop loop;
    auto [a, b] = corio::unix_stream::pair();
    std::string got;
    auto reader = loop.create_task(read_into(a, got));
    loop.run_until_complete(corio_test::in_kernel()); // the read is in the kernel now
    REQUIRE_FALSE(reader.done());

    std::fflush(nullptr);
    const pid_t child = ::fork();
    REQUIRE(child >= 0);
    if (child == 0) {
        ::_exit(child_uses_parent_loop(loop));
    }
    int status = 0;
    REQUIRE(::waitpid(child, &status, 0) == child);
    INFO("child wait status " << status);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == refused_clearly);

    // The parent's ring lost nothing: the pending read completes with the bytes.
    loop.run_until_complete(write_to(b, "hello"));
    loop.run_until_complete(std::move(reader));
    CHECK(got == "hello");
    CHECK(loop.run_until_complete(seven()) == 7);
}

TEST_CASE("close() destroys a task that swallows its cancellation while a timer is pending") {
    watchdog guard("close() of a loop with a stubborn sleeping task", 60s);
    corio::event_loop loop;
    int rounds = 0;
    auto stubborn = [](int& n) -> corio::task<> {
        for (;;) {
            try {
                co_await corio::sleep(5ms);
            } catch (const corio::cancelled_error&) {
                // swallowed: the task goes on sleeping
            }
            ++n;
        }
    };
    auto f = loop.create_task(stubborn(rounds));
    loop.run_until_complete(corio_test::in_kernel());
    loop.close();
    CHECK(loop.is_closed());
    REQUIRE(f.done());
    CHECK(f.cancelled());
    CHECK(loop.timer_count() == 0);
}

TEST_CASE("close() destroys a task that swallows its cancellation and keeps yielding") {
    watchdog guard("close() of a loop with a stubborn yielding task", 60s);
    corio::event_loop loop;
    auto stubborn = []() -> corio::task<> {
        for (;;) {
            try {
                co_await corio::yield_now();
            } catch (const corio::cancelled_error&) {
            }
        }
    };
    auto f = loop.create_task(stubborn());
    loop.run_until_complete(corio_test::in_kernel());
    loop.close();
    REQUIRE(f.done());
    CHECK(f.cancelled());
}

TEST_CASE("a cancelled task's cleanup that sleeps briefly still completes at close()") {
    corio::event_loop loop;
    bool cleaned = false;
    auto polite = [](bool& done) -> corio::task<> {
        bool cancelled = false;
        try {
            co_await corio::sleep(1h);
        } catch (const corio::cancelled_error&) {
            cancelled = true;
        }
        if (cancelled) {
            co_await corio::sleep(1ms); // cleanup that needs the loop
            done = true;
            throw corio::cancelled_error();
        }
    };
    auto f = loop.create_task(polite(cleaned));
    loop.run_until_complete(corio_test::in_kernel());
    loop.close();
    CHECK(cleaned);
    CHECK(f.cancelled());
}

TEST_CASE("a refused run_until_complete creates no task, and the loop's destructor does not "
          "throw") {
    bool started = false;
    auto flag = [](bool& s) -> corio::task<> {
        s = true;
        co_return;
    };
    corio::run([](bool& s, decltype(flag)& make) -> corio::task<> {
        corio::event_loop inner; // destroyed while `outer` runs on this thread
        CHECK_THROWS_WITH(inner.run_until_complete(make(s)),
                          Catch::Contains("another event loop is already running"));
        co_return;
    }(started, flag));
    CHECK_FALSE(started);

    // The wrong thread: refused, nothing left behind.
    corio::event_loop loop;
    std::string message;
    std::thread t([&] {
        try {
            loop.run_until_complete(flag(started));
        } catch (const corio::error& e) {
            message = e.what();
        }
    });
    t.join();
    CHECK_THAT(message, Catch::Contains("thread that created it"));
    CHECK_FALSE(started);
    loop.close();
}

TEST_CASE("a loop destroyed with pending tasks while another loop runs reports and does not "
          "throw") {
    std::string reported;
    corio::run([](std::string& out) -> corio::task<> {
        auto inner = std::make_unique<corio::event_loop>();
        inner->set_exception_handler(
            [&out](const corio::exception_context& ctx) { out = ctx.message; });
        auto pending = inner->create_task(seven());
        inner.reset(); // close() cannot run the inner loop here: it reports instead
        co_return;
    }(reported));
    CHECK_THAT(reported, Catch::Contains("could not be closed"));
}

TEST_CASE("call_soon, call_later, call_at and create_task from another thread throw in every "
          "build") {
    corio::event_loop loop;
    REQUIRE_FALSE(loop.get_debug());
    int refused = 0;
    std::string first;
    std::thread t([&] {
        auto attempt = [&](auto&& fn) {
            try {
                fn();
            } catch (const corio::error& e) {
                if (first.empty()) {
                    first = e.what();
                }
                ++refused;
            }
        };
        attempt([&] { loop.call_soon([] {}); });
        attempt([&] { loop.call_later(1ms, [] {}); });
        attempt([&] { loop.call_at(loop.time(), [] {}); });
        attempt([&] { (void)loop.create_task(seven()); });
    });
    t.join();
    CHECK(refused == 4);
    CHECK_THAT(first, Catch::Contains("call_soon_threadsafe"));
    // Nothing was queued, and the loop works.
    CHECK(loop.timer_count() == 0);
    CHECK(loop.run_until_complete(seven()) == 7);
    // call_soon_threadsafe is the way in from another thread.
    std::atomic<bool> ran{false};
    std::thread poster([&] { loop.call_soon_threadsafe([&] { ran = true; }); });
    poster.join();
    loop.run_until_complete(corio_test::yield_until([&] { return ran.load(); }));
    CHECK(ran);
}
