// Signals delivered on the loop: add_signal_handler, remove_signal_handler, wait_signal.
#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>

namespace {

bool blocked(int sig) {
    sigset_t cur;
    pthread_sigmask(SIG_BLOCK, nullptr, &cur);
    return sigismember(&cur, sig) == 1;
}

} // namespace

TEST_CASE("a raised signal runs its handler on the loop", "[signal][handler]") {
    corio::event_loop loop;
    int calls = 0;
    loop.add_signal_handler(SIGUSR1, [&] {
        ++calls;
        loop.stop();
    });
    CHECK(blocked(SIGUSR1));
    loop.call_soon([] { ::raise(SIGUSR1); });
    loop.run_forever();
    CHECK(calls == 1);
    CHECK(loop.remove_signal_handler(SIGUSR1));
    CHECK_FALSE(loop.remove_signal_handler(SIGUSR1));
    CHECK_FALSE(blocked(SIGUSR1));
}

TEST_CASE("wait_signal returns when the process signals itself", "[signal][wait]") {
    auto body = []() -> corio::task<> {
        corio::get_running_loop().call_soon([] { ::kill(::getpid(), SIGUSR2); });
        co_await corio::wait_signal(SIGUSR2);
    };
    corio::run(body());
    CHECK_FALSE(blocked(SIGUSR2));
}

TEST_CASE("a handler and a waiter on one signal both see it", "[signal][wait]") {
    corio::event_loop loop;
    int calls = 0;
    corio::future<> handled(loop);
    loop.add_signal_handler(SIGUSR1, [&] {
        ++calls;
        if (!handled.done()) {
            handled.set_result();
        }
    });
    auto body = [](corio::future<> handler_ran) -> corio::task<> {
        corio::get_running_loop().call_soon([] { ::raise(SIGUSR1); });
        co_await corio::wait_signal(SIGUSR1);
        // The handler runs through call_soon, maybe after this waiter resumed:
        // wait for it, bounded so that a handler never called fails the test.
        co_await corio::wait_for(handler_ran, std::chrono::seconds(10));
    };
    loop.run_until_complete(body(handled));
    CHECK(calls == 1);
    CHECK(blocked(SIGUSR1)); // the handler still holds it
    loop.close();
    CHECK_FALSE(blocked(SIGUSR1)); // close() restored the mask
}

TEST_CASE("a cancelled wait_signal restores the signal mask", "[signal][cancel]") {
    corio::event_loop loop;
    auto f = loop.create_task(corio::wait_signal(SIGUSR2));
    loop.call_soon([&] {
        CHECK(blocked(SIGUSR2));
        f.cancel();
    });
    CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
    CHECK_FALSE(blocked(SIGUSR2));
}

TEST_CASE("a signal already blocked stays blocked after its handler is removed", "[signal][mask]") {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    {
        corio::event_loop loop;
        loop.add_signal_handler(SIGUSR1, [] {});
        CHECK(loop.remove_signal_handler(SIGUSR1));
        CHECK(blocked(SIGUSR1));
    }
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

TEST_CASE("signals that cannot be handled are rejected", "[signal][error]") {
    corio::event_loop loop;
    CHECK_THROWS_AS(loop.add_signal_handler(SIGKILL, [] {}), std::invalid_argument);
    CHECK_THROWS_AS(loop.add_signal_handler(SIGSTOP, [] {}), std::invalid_argument);
    CHECK_THROWS_AS(loop.add_signal_handler(0, [] {}), std::invalid_argument);
    CHECK_THROWS_AS(loop.add_signal_handler(NSIG, [] {}), std::invalid_argument);
    CHECK_THROWS_AS(corio::run(corio::wait_signal(SIGKILL)), std::invalid_argument);
}

TEST_CASE("a handler replaced before the signal arrives is not called", "[signal][handler]") {
    corio::event_loop loop;
    int first = 0;
    int second = 0;
    loop.add_signal_handler(SIGUSR1, [&] { ++first; });
    loop.add_signal_handler(SIGUSR1, [&] {
        ++second;
        loop.stop();
    });
    loop.call_soon([] { ::raise(SIGUSR1); });
    loop.run_forever();
    CHECK(first == 0);
    CHECK(second == 1);
}
