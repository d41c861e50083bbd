// Signals on the loop: one signalfd per handled signal, polled through the ring.
//
// The poll (not a read) is what the ring does: the kernel writes nothing into our
// memory, so the registry may go at close() with a poll still armed; the read(2)
// of the signalfd itself happens on the loop thread, non-blocking.

#include "ring/uring.hpp"

#include "ring/io_ops.hpp"
#include <corio/detail/loop_access.hpp>
#include <corio/event_loop.hpp>
#include <corio/signal.hpp>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace corio::detail {

struct signal_waiter {
    std::coroutine_handle<> coroutine;
    task_root* root = nullptr;
    bool done = false;
};

class signal_entry : public uring_op {
public:
    signal_entry(event_loop& loop, std::vector<signal_entry*>& retiring, int sig)
        : loop_(&loop), retiring_(&retiring), sig_(sig) {
        prep = &prep_fn;
        complete = &on_complete;
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, sig);
        sigset_t old;
        pthread_sigmask(SIG_BLOCK, &set, &old);
        was_blocked_ = sigismember(&old, sig) == 1;
        fd_ = ::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
        if (fd_ < 0) {
            int e = errno;
            restore_mask();
            throw std::system_error(e, std::system_category(), "signalfd");
        }
        submit_op(loop, *this);
    }

    std::function<void()> handler;
    std::vector<signal_waiter*> waiters;

    bool unused() const noexcept { return !handler && waiters.empty(); }

    /// Stops watching: drains what is pending (so unblocking cannot deliver it with
    /// the default action), restores the mask and frees this entry now or, if the
    /// poll is in flight, at its completion (or with the registry at close()).
    void retire() noexcept {
        drain();
        restore_mask();
        ::close(fd_);
        fd_ = -1;
        if (state == op_state::idle) {
            delete this;
            return;
        }
        dead_ = true;
        retiring_->push_back(this);
        cancel_op(*loop_, *this); // may complete (and delete this) at once
    }

private:
    void restore_mask() noexcept {
        if (!was_blocked_) {
            sigset_t set;
            sigemptyset(&set);
            sigaddset(&set, sig_);
            pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
        }
    }
    int drain() noexcept {
        int count = 0;
        signalfd_siginfo info;
        while (fd_ >= 0 && ::read(fd_, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
            ++count;
        }
        return count;
    }
    static void prep_fn(uring_op& op, ::io_uring_sqe& sqe) noexcept {
        auto& self = static_cast<signal_entry&>(op);
        io_uring_prep_poll_add(&sqe, self.fd_, POLLIN);
    }
    static void on_complete(uring_op& op, int, unsigned) noexcept {
        auto& self = static_cast<signal_entry&>(op);
        if (self.dead_) {
            std::erase(*self.retiring_, &self);
            delete &self;
            return;
        }
        if (self.drain() > 0) {
            if (self.handler) {
                try {
                    self.loop_->call_soon(self.handler);
                } catch (...) {
                    self.loop_->call_exception_handler(
                        {"corio: could not schedule a signal handler",
                         std::current_exception(),
                         {}});
                }
            }
            for (signal_waiter* w : self.waiters) {
                w->done = true;
                schedule_on(*self.loop_, w->coroutine, w->root);
            }
            self.waiters.clear();
        }
        submit_op(*self.loop_, self); // a spurious wake-up or more to come: poll again
    }

    event_loop* loop_;
    std::vector<signal_entry*>* retiring_; // the registry's, while dead_
    int sig_;
    int fd_ = -1;
    bool was_blocked_ = false;
    bool dead_ = false;
};

class signal_registry {
public:
    explicit signal_registry(event_loop& loop) : loop_(&loop) {}
    signal_registry(const signal_registry&) = delete;
    signal_registry& operator=(const signal_registry&) = delete;
    ~signal_registry() {
        // Reset by close() after the last reap: no completion can come any more,
        // and the kernel only polls (it writes nothing into these entries).
        for (auto& [sig, entry] : entries_) {
            entry->retire();
        }
        for (signal_entry* e : retiring_) {
            delete e;
        }
    }

    signal_entry& entry(int sig) {
        auto it = entries_.find(sig);
        if (it == entries_.end()) {
            it = entries_.emplace(sig, new signal_entry(*loop_, retiring_, sig)).first;
        }
        return *it->second;
    }
    signal_entry* find(int sig) noexcept {
        auto it = entries_.find(sig);
        return it == entries_.end() ? nullptr : it->second;
    }
    void drop_if_unused(int sig) noexcept {
        auto it = entries_.find(sig);
        if (it != entries_.end() && it->second->unused()) {
            signal_entry* e = it->second;
            entries_.erase(it);
            e->retire();
        }
    }

private:
    event_loop* loop_;
    std::map<int, signal_entry*> entries_;
    std::vector<signal_entry*> retiring_; // cancelled, waiting for their completion
};

namespace {

void check_signal(int sig) {
    if (sig <= 0 || sig >= NSIG || sig == SIGKILL || sig == SIGSTOP) {
        throw std::invalid_argument("corio: signal " + std::to_string(sig) + " cannot be handled");
    }
}

signal_registry& registry_of(event_loop& loop) {
    auto& slot = loop_access::signals(loop);
    if (!slot) {
        slot = {new signal_registry(loop), [](signal_registry* r) { delete r; }};
    }
    return *slot;
}

class signal_awaiter {
public:
    signal_awaiter(event_loop& loop, int sig) : loop_(&loop), sig_(sig) {
        slot_.on_cancel = &on_cancel;
        slot_.context = this;
    }
    signal_awaiter(const signal_awaiter&) = delete;
    signal_awaiter& operator=(const signal_awaiter&) = delete;
    /// A frame destroyed while waiting (a task the loop gave up on) unhooks itself.
    ~signal_awaiter() {
        if (linked_ && !waiter_.done) {
            if (auto& reg = loop_access::signals(*loop_); reg) {
                if (signal_entry* e = reg->find(sig_)) {
                    std::erase(e->waiters, &waiter_);
                }
                reg->drop_if_unused(sig_);
            }
        }
    }

    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        root_ = root_of(h);
        if (root_ != nullptr && root_->take_pending_cancel()) {
            cancelled_early_ = true;
            return false;
        }
        waiter_.coroutine = h;
        waiter_.root = root_;
        registry_of(*loop_).entry(sig_).waiters.push_back(&waiter_); // may throw: not suspended
        linked_ = true;
        if (root_ != nullptr) {
            root_->arm(slot_);
        }
        return true;
    }
    void await_resume() {
        if (root_ != nullptr) {
            root_->disarm();
        }
        if (cancelled_early_ || !waiter_.done) {
            throw cancelled_error();
        }
        if (slot_.requested) {
            root_->repost_cancel();
        }
        registry_of(*loop_).drop_if_unused(sig_);
    }

private:
    static void on_cancel(cancel_slot& slot) noexcept {
        auto* self = static_cast<signal_awaiter*>(slot.context);
        if (self->waiter_.done) {
            return;
        }
        self->linked_ = false;
        signal_registry& reg = *loop_access::signals(*self->loop_);
        if (signal_entry* e = reg.find(self->sig_)) {
            std::erase(e->waiters, &self->waiter_);
        }
        reg.drop_if_unused(self->sig_);
        schedule_on(*self->loop_, self->waiter_.coroutine, self->root_);
    }

    event_loop* loop_;
    int sig_;
    signal_waiter waiter_;
    task_root* root_ = nullptr;
    cancel_slot slot_;
    bool cancelled_early_ = false;
    bool linked_ = false;
};

} // namespace
} // namespace corio::detail

namespace corio {

void event_loop::add_signal_handler(int sig, std::function<void()> fn) {
    detail::check_signal(sig);
    if (closed_) {
        throw error("corio: add_signal_handler on a closed event loop");
    }
    if (!fn) {
        throw std::invalid_argument("corio: add_signal_handler with an empty function");
    }
    detail::registry_of(*this).entry(sig).handler = std::move(fn);
}

bool event_loop::remove_signal_handler(int sig) {
    detail::check_signal(sig);
    if (!signals_) {
        return false;
    }
    detail::signal_entry* e = signals_->find(sig);
    if (e == nullptr || !e->handler) {
        return false;
    }
    e->handler = nullptr;
    signals_->drop_if_unused(sig);
    return true;
}

task<> wait_signal(int sig) {
    detail::check_signal(sig);
    co_await detail::signal_awaiter(get_running_loop(), sig);
}

} // namespace corio
