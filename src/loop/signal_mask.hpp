#pragma once
// Threads that corio starts (pool workers, result and dispatcher threads) block every
// signal, so that a process-directed signal is left pending for the loop's signalfd
// (add_signal_handler / wait_signal) instead of being delivered to a pool thread.
// New threads inherit the creating thread's mask: block around std::thread creation.

#include <csignal>
#include <pthread.h>

namespace corio::detail {

class signals_blocked_scope {
public:
    signals_blocked_scope() noexcept {
        sigset_t all;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &saved_);
    }
    signals_blocked_scope(const signals_blocked_scope&) = delete;
    signals_blocked_scope& operator=(const signals_blocked_scope&) = delete;
    ~signals_blocked_scope() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }

private:
    sigset_t saved_;
};

} // namespace corio::detail
