// The fork server's children start clean and the fork server comes back (issue 12,
// defects 6 and 7). Unlike process_pool_test, this program does NOT start the fork
// server before Catch2's main(): the first pool below forks it while the program has
// non-default signal handlers (Catch2's and ours) and a blocked mask, which is what
// the children must not inherit.
#include <corio/process.hpp>
#include <corio/process_error.hpp>
#include <corio/process_pool.hpp>

#include <catch2/catch.hpp>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

volatile std::sig_atomic_t caught = 0;
void on_signal(int sig) {
    caught = sig;
}

// Restores the dispositions of SIGUSR1 and SIGTERM and the thread's mask.
class signal_state_scope {
public:
    signal_state_scope() {
        struct sigaction sa {};
        sa.sa_handler = &on_signal;
        sigemptyset(&sa.sa_mask);
        REQUIRE(::sigaction(SIGUSR1, &sa, &old_usr1_) == 0);
        REQUIRE(::sigaction(SIGTERM, &sa, &old_term_) == 0);
        sigset_t block;
        sigemptyset(&block);
        sigaddset(&block, SIGUSR2);
        sigaddset(&block, SIGTERM);
        REQUIRE(::pthread_sigmask(SIG_BLOCK, &block, &old_mask_) == 0);
    }
    signal_state_scope(const signal_state_scope&) = delete;
    signal_state_scope& operator=(const signal_state_scope&) = delete;
    ~signal_state_scope() {
        ::pthread_sigmask(SIG_SETMASK, &old_mask_, nullptr);
        ::sigaction(SIGUSR1, &old_usr1_, nullptr);
        ::sigaction(SIGTERM, &old_term_, nullptr);
    }

private:
    struct sigaction old_usr1_ {};
    struct sigaction old_term_ {};
    sigset_t old_mask_{};
};

// In a child: the signals with a disposition other than SIG_DFL, a 0, then the
// blocked ones.
std::vector<int> signal_state(int) {
    std::vector<int> out;
    for (int sig = 1; sig < NSIG; ++sig) {
        struct sigaction sa {};
        if (::sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler != SIG_DFL) {
            out.push_back(sig);
        }
    }
    out.push_back(0);
    sigset_t mask;
    ::sigprocmask(SIG_SETMASK, nullptr, &mask);
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sigismember(&mask, sig) == 1) {
            out.push_back(sig);
        }
    }
    return out;
}

// A spawned child: exit status 0 if its signal state is clean, else the number of
// the first signal found handled or blocked.
void exit_with_signal_state() {
    std::vector<int> st = signal_state(0);
    for (int sig : st) {
        if (sig != 0) {
            std::_Exit(sig);
        }
    }
    std::_Exit(0);
}

void wait_forever() {
    for (;;) {
        ::pause();
    }
}

int parent_pid(int) {
    return static_cast<int>(::getppid());
}

int twice(int x) {
    return 2 * x;
}

// The fork server's pid (the workers' parent); the pool is gone when this returns.
int fork_server_pid() {
    corio::process_pool pool(1);
    return pool.apply(parent_pid, 0);
}

// SIGKILLs the fork server and waits (on a pidfd) until it has exited.
void kill_fork_server(int pid) {
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    REQUIRE(pidfd >= 0);
    REQUIRE(::kill(pid, SIGKILL) == 0);
    pollfd p{pidfd, POLLIN, 0};
    REQUIRE(::poll(&p, 1, 30'000) == 1);
    ::close(pidfd);
}

} // namespace

TEST_CASE("workers and spawned children start with default signal dispositions and an empty "
          "mask",
          "[signals]") {
    signal_state_scope program_state; // in force when the fork server is forked
    corio::process_pool pool(2);
    const std::vector<int> clean{0};
    CHECK(pool.apply(signal_state, 0) == clean);
    for (const auto& st : pool.map(signal_state, std::vector<int>{1, 2, 3, 4})) {
        CHECK(st == clean);
    }

    corio::process child(exit_with_signal_state);
    child.start();
    child.join();
    CHECK(child.exitcode() == 0);

    // SIGTERM (blocked and handled in the program) ends a child.
    corio::process sleeper(wait_forever);
    sleeper.start();
    sleeper.terminate();
    REQUIRE(sleeper.join(std::chrono::seconds(30)));
    CHECK(sleeper.exitcode() == -SIGTERM);
    CHECK(caught == 0);
}

TEST_CASE("a pool made after the fork server was SIGKILLed starts a new fork server",
          "[fork_server]") {
    const int first = fork_server_pid();
    kill_fork_server(first);

    corio::process_pool pool(2);
    CHECK(pool.map(twice, std::vector<int>{1, 2, 3}) == std::vector<int>{2, 4, 6});
    const int second = pool.apply(parent_pid, 0);
    CHECK(second != first);
    CHECK(second != static_cast<int>(::getpid()));

    corio::process child(exit_with_signal_state);
    child.start();
    child.join();
    CHECK(child.exitcode() == 0);
}

TEST_CASE("a pool that cannot start a new fork server says exactly why", "[fork_server]") {
    const int server = fork_server_pid();
    kill_fork_server(server);

    // Another thread runs, so no new fork server may be forked now.
    std::mutex m;
    std::condition_variable cv;
    bool release = false;
    std::thread other([&] {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return release; });
    });
    std::string message;
    try {
        corio::process_pool pool(1);
    } catch (const corio::broken_pool_error& e) {
        message = e.what();
    }
    {
        std::lock_guard lock(m);
        release = true;
    }
    cv.notify_one();
    other.join();
    CHECK_THAT(message, Catch::Contains("fork server (pid " + std::to_string(server) +
                                        ") was killed by signal 9"));
    CHECK_THAT(message, Catch::Contains("single-threaded"));

    // Single-threaded again: the next pool starts a new server.
    corio::process_pool pool(1);
    CHECK(pool.apply(twice, 21) == 42);
}
