// Ctrl+C in corio::run, tested in forked children (this test program's own SIGINT
// disposition belongs to Catch2): each child restores SIGINT's default action, as a
// fresh program has it, and sends SIGINT to itself.
#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <csignal>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>

using namespace std::chrono_literals;

namespace {

// Runs `child` in a forked process and returns its wait status.
template <class F>
int in_child(F child) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        std::signal(SIGINT, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        pthread_sigmask(SIG_SETMASK, &none, nullptr);
        std::_Exit(child());
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    return status;
}

constexpr int cleaned_and_interrupted = 42;

corio::task<int> interrupted_main(bool& cleaned) {
    ::kill(::getpid(), SIGINT);
    bool cancelled = false;
    try {
        co_await corio::sleep(30s); // Ctrl+C ends this
    } catch (const corio::cancelled_error&) {
        cancelled = true;
    }
    if (cancelled) {
        co_await corio::sleep(1ms); // cleanup may still await
        cleaned = true;
        throw corio::cancelled_error();
    }
    co_return 0;
}

} // namespace

TEST_CASE("the first SIGINT cancels the main task, which cleans up; run throws "
          "keyboard_interrupt",
          "[interrupt]") {
    int status = in_child([] {
        bool cleaned = false;
        try {
            corio::run(interrupted_main(cleaned));
        } catch (const corio::keyboard_interrupt& e) {
            // derived from corio::error, and not a cancellation
            const corio::error& as_error = e;
            (void)as_error;
            return cleaned ? cleaned_and_interrupted : 2;
        } catch (...) {
            return 3;
        }
        return 4;
    });
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == cleaned_and_interrupted);
}

TEST_CASE("a second SIGINT during cleanup ends the process at once", "[interrupt]") {
    int status = in_child([] {
        auto body = []() -> corio::task<int> {
            ::kill(::getpid(), SIGINT);
            try {
                co_await corio::sleep(30s);
            } catch (const corio::cancelled_error&) {
                ::kill(::getpid(), SIGINT); // Ctrl+C again while cleaning up
            }
            co_await corio::sleep(30s); // a cleanup that would take too long
            co_return 5;
        };
        try {
            corio::run(body());
        } catch (...) {
            return 6;
        }
        return 7;
    });
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGINT);
}

TEST_CASE("a main task that handles the cancellation returns its value; no SIGINT handling "
          "off the main thread or when SIGINT is not at its default",
          "[interrupt]") {
    int status = in_child([] {
        auto body = []() -> corio::task<int> {
            ::kill(::getpid(), SIGINT);
            try {
                co_await corio::sleep(30s);
            } catch (const corio::cancelled_error&) {
                co_return 9; // refused: run returns the value, as asyncio.run does
            }
            co_return 0;
        };
        return corio::run(body());
    });
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 9);
    // Here (Catch2 owns SIGINT), run leaves SIGINT alone: a blocked SIGINT would show.
    corio::run([]() -> corio::task<> { co_await corio::yield_now(); }());
    sigset_t mask;
    pthread_sigmask(SIG_SETMASK, nullptr, &mask);
    CHECK_FALSE(sigismember(&mask, SIGINT));
}
