#pragma once
// Cancellation plumbing shared by every awaitable that suspends a task.
//
// Every coroutine chain scheduled on a loop (a root task made by create_task,
// run_until_complete or a combinator child) has one `task_root`. Nested `task<T>`s
// awaited directly share their parent's root. An awaitable that suspends:
//   1. in await_suspend: `if (root && root->take_pending_cancel()) -> do not suspend,
//      make await_resume throw cancelled_error`; otherwise `root->arm(slot)`;
//   2. when cancel() arrives while armed, the loop calls `slot.on_cancel(slot)` once
//      (slot.requested becomes true); the awaitable then arranges to be resumed
//      (remove its timer, submit IORING_OP_ASYNC_CANCEL, cancel the awaited future...);
//   3. in await_resume: `root->disarm()`; throw cancelled_error if the wait was
//      cancelled, or, if the operation completed anyway, return its result and call
//      `root->repost_cancel()` so the cancel is delivered at the next suspension.

#include <coroutine>
#include <cstdint>
#include <corio/source_location.hpp>

namespace corio::detail {

struct cancel_slot {
    void (*on_cancel)(cancel_slot&) noexcept = nullptr;
    void* context = nullptr; // the awaitable that armed the slot
    bool requested = false;
};

class task_root {
public:
    /// True if a cancel arrived while the task was not suspended; consumes it.
    bool take_pending_cancel() noexcept {
        bool p = cancel_pending_;
        cancel_pending_ = false;
        return p;
    }
    void arm(cancel_slot& s) noexcept { slot_ = &s; }
    void disarm() noexcept { slot_ = nullptr; }
    void repost_cancel() noexcept { cancel_pending_ = true; }
    bool cancel_pending() const noexcept { return cancel_pending_; }

    /// Delivers a cancel request: to the armed suspension point if there is one,
    /// otherwise at the next suspension point. Every request is counted
    /// (asyncio's Task.cancelling()).
    void deliver_cancel() noexcept {
        ++cancel_requests_;
        if (slot_ != nullptr) {
            if (!slot_->requested) {
                slot_->requested = true;
                slot_->on_cancel(*slot_);
            }
        } else {
            cancel_pending_ = true;
        }
    }

    /// The number of cancel requests not yet withdrawn by uncancel().
    std::uint32_t cancelling() const noexcept { return cancel_requests_; }
    /// Withdraws one cancel request (asyncio's Task.uncancel()): when none is left, a
    /// cancel not yet delivered is dropped. Returns the requests left.
    std::uint32_t uncancel() noexcept {
        if (cancel_requests_ > 0 && --cancel_requests_ == 0) {
            cancel_pending_ = false;
        }
        return cancel_requests_;
    }

protected:
    task_root() = default;
    ~task_root() = default;

private:
    cancel_slot* slot_ = nullptr;
    bool cancel_pending_ = false;
    std::uint32_t cancel_requests_ = 0;
};

/// The root coroutine of the task whose root is `r` finished (its final suspend):
/// the task stores the outcome and destroys the frame (future.cpp).
void finish_root(task_root& r) noexcept;

/// Promise types of corio coroutines expose `root()`; awaitables find the task_root
/// of the awaiting coroutine through it (nullptr when not running under a loop task).
template <class Promise>
task_root* root_of(std::coroutine_handle<Promise> h) noexcept {
    if constexpr (requires { h.promise().root(); }) {
        return h.promise().root();
    } else {
        return nullptr;
    }
}

/// Yields the task_root of the awaiting coroutine without suspending.
struct current_root_awaiter {
    task_root* root = nullptr;
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
        root = root_of(h);
        return false;
    }
    task_root* await_resume() const noexcept { return root; }
};

} // namespace corio::detail
