#pragma once
// The internal io_uring operation interface (kept out of the public API).
//
// One immovable `uring_op` per await, living in the awaiting coroutine's frame; its
// address is the SQE's user_data, so no allocation happens per operation. `prep`
// fills the SQE (defined in src/, where <liburing.h> is visible); `complete` is
// called on the loop thread with the CQE's res and flags (a multishot op sees
// IORING_CQE_F_MORE and stays in flight). If the submission queue is full the loop
// parks the op on its pending list and prepares it once space frees: never a crash,
// never a drop. `event_loop::cancel_op` submits IORING_OP_ASYNC_CANCEL (or unparks
// a pending op, completing it with -ECANCELED); the op's own completion still
// arrives and is the only point at which its buffers may be released. The ring
// keeps every in-flight op on a list, so that close() can cancel them all and reap
// their completions before it destroys the frames of tasks that never finished.
//
// `op_awaitable` adapts an op to co_await with corio's cancellation protocol.

#include <corio/detail/cancel.hpp>
#include <corio/detail/running_loop.hpp>
#include <corio/error.hpp>

#include <cerrno>
#include <coroutine>
#include <cstddef>
#include <cstdint>

struct io_uring_sqe;

namespace corio {
class event_loop;
}

namespace corio::detail {

struct uring_op {
    enum class op_state : std::uint8_t { idle, pending, in_flight };
    void (*prep)(uring_op&, ::io_uring_sqe&) noexcept = nullptr;
    void (*complete)(uring_op&, int res, unsigned flags) noexcept = nullptr;
    // Links on the ring's pending list or its in-flight list: an op is on the one its
    // state names (an idle op is on neither). Owned by the ring.
    uring_op* prev_op = nullptr;
    uring_op* next_op = nullptr;
    op_state state = op_state::idle;
    // Set while uring::cancel_all waits for this op's final completion.
    bool draining = false;

    uring_op() = default;
    uring_op(const uring_op&) = delete;
    uring_op& operator=(const uring_op&) = delete;
};

/// The running loop, for an operation about to be awaited; throws corio::error if none.
inline event_loop& loop_for_io() {
    return get_running_loop();
}
void submit_op(event_loop& loop, uring_op& op) noexcept;
void cancel_op(event_loop& loop, uring_op& op) noexcept;
void schedule_on(event_loop& loop, std::coroutine_handle<> h, task_root* root);

/// The `limit_submissions` value that removes the limit.
inline constexpr unsigned unlimited_submissions = ~0U;
/// Test hook: from now on the loop's ring hands out at most `per_iteration` SQEs
/// before its next wait on the kernel and after each one, as if its submission
/// queue stayed full (0: none at all); what does not fit is parked on the pending
/// list (operations) or the parked-cancel list (cancel requests) and submitted on
/// later iterations. `unlimited_submissions` restores the normal behaviour.
/// **Thread safety:** the loop's thread only.
void limit_submissions(event_loop& loop, unsigned per_iteration) noexcept;
/// Test hook: the number of operations parked on the loop's pending list.
/// **Thread safety:** the loop's thread only.
std::size_t parked_ops(event_loop& loop) noexcept;
/// Test hook: the number of cancel requests parked for want of an SQE.
/// **Thread safety:** the loop's thread only.
std::size_t parked_cancels(event_loop& loop) noexcept;

/// Awaitable base for a single-shot io_uring operation: `co_await` returns the
/// CQE's res (>= 0, or -errno for the caller to turn into a system_error); throws
/// cancelled_error if the task was cancelled and the kernel op ended as cancelled.
/// If the op completed anyway, its result is returned and the cancel is delivered
/// at the task's next suspension point, so no data is ever lost.
class op_awaitable : public uring_op {
public:
    explicit op_awaitable(void (*prep_fn)(uring_op&, ::io_uring_sqe&) noexcept)
        : loop_(&loop_for_io()) {
        prep = prep_fn;
        complete = &on_complete;
        slot_.on_cancel = &on_cancel;
        slot_.context = this;
    }

    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
        root_ = root_of(h);
        if (root_ != nullptr && root_->take_pending_cancel()) {
            cancelled_early_ = true;
            return false;
        }
        waiter_ = h;
        submit_op(*loop_, *this);
        if (root_ != nullptr) {
            root_->arm(slot_);
        }
        return true;
    }
    int await_resume() {
        if (root_ != nullptr) {
            root_->disarm();
        }
        if (cancelled_early_) {
            throw cancelled_error();
        }
        if (slot_.requested) {
            if (result_ == -ECANCELED || result_ == -EINTR) {
                throw cancelled_error();
            }
            root_->repost_cancel();
        }
        return result_;
    }

    /// The CQE flags of the completion (for buffer selection and the like).
    unsigned flags() const noexcept { return flags_; }
    /// The CQE's res once the completion arrived (-ECANCELED for an op the kernel
    /// or the pending list cancelled); 0 before.
    int result() const noexcept { return result_; }

protected:
    event_loop& loop() const noexcept { return *loop_; }

private:
    // Defined next to the ring (src/uring.cpp), where scheduling inlines.
    static void on_complete(uring_op& op, int res, unsigned flags) noexcept;
    static void on_cancel(cancel_slot& slot) noexcept {
        auto* self = static_cast<op_awaitable*>(slot.context);
        cancel_op(*self->loop_, *self);
    }

    event_loop* loop_;
    task_root* root_ = nullptr;
    std::coroutine_handle<> waiter_;
    cancel_slot slot_;
    int result_ = 0;
    unsigned flags_ = 0;
    bool cancelled_early_ = false;
};

} // namespace corio::detail
