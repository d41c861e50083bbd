// Ctrl+C for corio::run (asyncio.Runner's SIGINT handling).
//
// A plain sigaction handler, not the loop's signalfd: a signalfd poll would stay in
// flight on the ring for the whole run and cost every loop iteration a system call.
// The handler does only async-signal-safe things: it gives SIGINT its default action
// back (so a second Ctrl+C ends the process at once, even if the cleanup hangs) and
// posts a static node to the loop (a lock-free list plus an eventfd write). The node,
// run on the loop's thread, cancels the main task if the guard is still armed.

#include <corio/event_loop.hpp>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <sys/syscall.h>
#include <unistd.h>

namespace corio::detail {

namespace {

struct interrupt_node : remote_node {
    event_loop* loop = nullptr;       // set before the handler is installed
    interrupt_guard* guard = nullptr; // loop thread only: null once disarmed
};

// Static: a posted node may still sit in the loop's list after the guard is gone
// (the loop runs it at close, when it finds no guard).
interrupt_node node;
std::atomic<bool> armed{false};

bool on_main_thread() noexcept {
    return static_cast<pid_t>(::syscall(SYS_gettid)) == ::getpid();
}

bool sigint_has_default_action() noexcept {
    struct sigaction current {};
    return ::sigaction(SIGINT, nullptr, &current) == 0 && (current.sa_flags & SA_SIGINFO) == 0 &&
           current.sa_handler == SIG_DFL;
}

void restore_default() noexcept {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGINT, &dfl, nullptr);
}

} // namespace

void interrupt_guard::on_sigint(int) noexcept {
    int saved_errno = errno;
    restore_default();
    if (armed.exchange(false)) {
        node.loop->post_remote(node);
    }
    errno = saved_errno;
}

void interrupt_guard::on_node(remote_node&) noexcept {
    if (interrupt_guard* g = node.guard) {
        g->interrupted_ = true;
        if (!g->main_.done()) {
            g->main_.cancel();
        }
    }
}

interrupt_guard::interrupt_guard(event_loop& loop, task_handle main) : main_(main) {
    if (!on_main_thread() || !sigint_has_default_action() || node.guard != nullptr) {
        return; // someone else handles Ctrl+C (or it is ignored): leave it to them
    }
    node.run = &interrupt_guard::on_node;
    node.loop = &loop;
    node.guard = this;
    armed.store(true);
    struct sigaction action {};
    action.sa_handler = &interrupt_guard::on_sigint;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    if (::sigaction(SIGINT, &action, nullptr) != 0) {
        armed.store(false);
        node.guard = nullptr;
        return;
    }
    installed_ = true;
}

void interrupt_guard::disarm() noexcept {
    if (!installed_) {
        return;
    }
    installed_ = false;
    node.guard = nullptr;
    // If the handler has not run, SIGINT still points at it: give back the default.
    if (armed.exchange(false)) {
        restore_default();
    }
}

interrupt_guard::~interrupt_guard() {
    disarm();
}

} // namespace corio::detail
