#pragma once
/// \file sleep.hpp
/// `sleep`, `sleep_until` and `yield_now` (asyncio.sleep, asyncio.sleep(0)).

#include <corio/detail/assert.hpp>
#include <corio/detail/loop_access.hpp>
#include <corio/event_loop.hpp>

#include <chrono>
#include <coroutine>

namespace corio {

namespace detail {

/// Suspends until a deadline (or for one loop iteration when `yield_only`). The
/// timer node lives in the awaiting frame; cancellation removes it from the heap.
class sleep_awaiter {
public:
    sleep_awaiter(std::chrono::steady_clock::time_point deadline, bool yield_only)
        : loop_(&get_running_loop()), yield_only_(yield_only) {
        node_.deadline = deadline;
        node_.fire = &on_fire;
        node_.context = this;
        slot_.on_cancel = &on_cancel;
        slot_.context = this;
    }
    /// Moves a sleep that has not been awaited yet (combinators take awaitables by
    /// value); the node and cancel slot are rebuilt for the new address.
    sleep_awaiter(sleep_awaiter&& other) noexcept
        : loop_(other.loop_), yield_only_(other.yield_only_) {
        CORIO_ASSERT(!other.waiter_, "a sleep awaiter was moved while suspended");
        node_.deadline = other.node_.deadline;
        node_.fire = &on_fire;
        node_.context = this;
        slot_.on_cancel = &on_cancel;
        slot_.context = this;
    }
    sleep_awaiter(const sleep_awaiter&) = delete;
    sleep_awaiter& operator=(const sleep_awaiter&) = delete;
    sleep_awaiter& operator=(sleep_awaiter&&) = delete;
    ~sleep_awaiter() { loop_access::remove_timer(*loop_, node_); }

    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        root_ = root_of(h);
        if (root_ != nullptr && root_->take_pending_cancel()) {
            cancelled_early_ = true;
            return false;
        }
        waiter_ = h;
        if (yield_only_) {
            scheduled_ = true;
            loop_->schedule(h, root_);
        } else {
            loop_access::add_timer(*loop_, node_);
        }
        if (root_ != nullptr) {
            root_->arm(slot_);
        }
        return true;
    }
    void await_resume() {
        if (root_ != nullptr) {
            root_->disarm();
        }
        if (cancelled_early_ || slot_.requested) {
            throw cancelled_error();
        }
    }

private:
    static void on_fire(timer_node& n) noexcept {
        sleep_awaiter& self = *static_cast<sleep_awaiter*>(n.context);
        self.scheduled_ = true;
        self.loop_->schedule(self.waiter_, self.root_);
    }
    static void on_cancel(cancel_slot& slot) noexcept {
        auto* self = static_cast<sleep_awaiter*>(slot.context);
        if (!self->scheduled_) {
            loop_access::remove_timer(*self->loop_, self->node_);
            self->scheduled_ = true;
            self->loop_->schedule(self->waiter_, self->root_);
        }
    }

    timer_node node_;
    event_loop* loop_;
    task_root* root_ = nullptr;
    std::coroutine_handle<> waiter_;
    cancel_slot slot_;
    bool yield_only_;
    bool scheduled_ = false;
    bool cancelled_early_ = false;
};

} // namespace detail

/// Suspends the calling task until `deadline` (never earlier); a deadline in the
/// past yields for one loop iteration. Throws cancelled_error if the task is
/// cancelled meanwhile (the timer is removed at once). Requires a running loop.
/// **Thread safety:** loop thread only.
[[nodiscard]] inline detail::sleep_awaiter
sleep_until(std::chrono::steady_clock::time_point deadline) {
    return detail::sleep_awaiter(deadline, deadline <= std::chrono::steady_clock::now());
}

/// Suspends the calling task for at least `delay`; zero or less yields once, as
/// asyncio.sleep(0). Throws cancelled_error if the task is cancelled meanwhile.
/// **Thread safety:** loop thread only.
template <class Rep, class Period>
[[nodiscard]] detail::sleep_awaiter sleep(std::chrono::duration<Rep, Period> delay) {
    if (delay <= delay.zero()) {
        return detail::sleep_awaiter({}, true);
    }
    return detail::sleep_awaiter(std::chrono::steady_clock::now() +
                                     std::chrono::ceil<std::chrono::steady_clock::duration>(delay),
                                 false);
}

/// Lets every other ready task run once before the caller continues (sleep(0)).
/// Throws cancelled_error if the task is cancelled meanwhile.
/// **Thread safety:** loop thread only.
[[nodiscard]] inline detail::sleep_awaiter yield_now() {
    return detail::sleep_awaiter({}, true);
}

} // namespace corio
