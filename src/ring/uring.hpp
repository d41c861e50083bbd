#pragma once
// The one place that talks to io_uring (liburing). Everything else goes through
// detail::uring_op and the event loop.

#include <corio/detail/uring_op.hpp>
#include <corio/event_loop.hpp>

#include <liburing.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace corio::detail {

/// Fork generation of this process (bumped in each forked child; see uring::foreign).
extern std::atomic<unsigned> fork_generation;

/// One io_uring instance: submission (a pending list absorbs a full queue), reaping
/// into each `uring_op`, cancellation, the doorbell and the kernel wait of a loop.
/// **Thread safety:** the owning thread only, except `wake()` (any thread).
class uring {
public:
    explicit uring(const loop_options& options);
    uring(const uring&) = delete;
    uring& operator=(const uring&) = delete;
    ~uring();

    /// Queues an SQE for `op`, or parks it if the submission queue is full.
    void submit(uring_op& op) noexcept {
        // The common case inline: nothing parked ahead, no test limit, not a forked
        // child's copy of the ring (foreign: get_sqe refuses it), a free SQE.
        if (pending_head_ == nullptr && sqe_limit_ == unlimited_submissions && !foreign())
            [[likely]] {
            if (io_uring_sqe* sqe = io_uring_get_sqe(&ring_)) [[likely]] {
                start(op, *sqe);
                return;
            }
        }
        submit_slow(op);
    }
    /// Cancels `op`: unparks it (completing it with -ECANCELED) or submits an
    /// IORING_OP_ASYNC_CANCEL; the op's own completion follows.
    void cancel(uring_op& op) noexcept;
    /// Submits what is queued, waits (when `block`) for a completion or `timeout`,
    /// and dispatches every completion that arrived.
    void submit_and_wait(bool block, std::optional<std::chrono::nanoseconds> timeout);
    /// Any thread: rings the eventfd doorbell.
    void wake() noexcept;
    /// Ends every operation: parked ones complete with -ECANCELED at once, in-flight
    /// ones (except the doorbell) get an IORING_OP_ASYNC_CANCEL; then dispatches
    /// completions until each of those has delivered its final one, for at most
    /// `limit`. True if they all did; false leaves the rest in flight (the kernel may
    /// still write into their memory). Operations submitted meanwhile by completion
    /// handlers are not waited for.
    bool cancel_all(std::chrono::nanoseconds limit);

    /// Operations in flight, not counting the loop's own eventfd doorbell read (the
    /// loop drains its incoming list every iteration, so it needs the doorbell only
    /// to wake from a blocking wait).
    std::size_t in_flight() const noexcept {
        return in_flight_ - (doorbell_.state == uring_op::op_state::in_flight ? 1 : 0);
    }
    bool has_pending() const noexcept {
        return pending_head_ != nullptr || !parked_cancels_.empty();
    }
    /// Operations parked on the pending list.
    std::size_t pending_count() const noexcept;
    /// Cancel requests parked for want of an SQE.
    std::size_t parked_cancel_count() const noexcept { return parked_cancels_.size(); }
    /// Test hook: at most `per_wait` SQEs are handed out from now until the next
    /// submit_and_wait and between two after it (unlimited_submissions: no limit).
    void limit_sqes(unsigned per_wait) noexcept {
        sqe_limit_ = per_wait;
        sqes_since_wait_ = 0;
    }
    unsigned setup_flags() const noexcept { return flags_; }
    /// True in a child forked after this ring was created: the ring's memory and
    /// kernel instance are shared with the parent, so the child must neither submit
    /// nor reap (get_sqe hands out nothing, poll throws). A plain load: the fork
    /// generation is bumped by a pthread_atfork child handler.
    bool foreign() const noexcept {
        return generation_ != fork_generation.load(std::memory_order_relaxed);
    }
    /// Marks this ring as an event loop's, driven by the thread that created it: the
    /// leak gate's pending_kernel_ops() reads its counters from that thread.
    void mark_loop_ring() noexcept;

    /// The liburing ring itself (to register provided-buffer rings and the like).
    io_uring* native() noexcept { return &ring_; }
    /// True if the kernel supports `opcode` (IORING_OP_*); probed once per ring.
    bool supports(unsigned opcode) noexcept;
    /// State of the I/O layer (src/net/ring_socket_state.cpp) attached to this ring; being a
    /// member, it is destroyed after the destructor has torn the ring down, so the
    /// kernel no longer references the memory it owns.
    std::unique_ptr<void, void (*)(void*)> io_state{nullptr, nullptr};

private:
    io_uring_sqe* get_sqe() noexcept;
    void submit_slow(uring_op& op) noexcept;
    void start(uring_op& op, io_uring_sqe& sqe) noexcept {
        op.prep(op, sqe);
        io_uring_sqe_set_data(&sqe, &op);
        op.state = uring_op::op_state::in_flight;
        op.draining = false;
        op.prev_op = nullptr;
        op.next_op = in_flight_head_;
        if (in_flight_head_ != nullptr) {
            in_flight_head_->prev_op = &op;
        }
        in_flight_head_ = &op;
        ++in_flight_;
    }
    void unlink_in_flight(uring_op& op) noexcept {
        if (op.prev_op != nullptr) {
            op.prev_op->next_op = op.next_op;
        } else {
            in_flight_head_ = op.next_op;
        }
        if (op.next_op != nullptr) {
            op.next_op->prev_op = op.prev_op;
        }
        op.prev_op = op.next_op = nullptr;
        op.state = uring_op::op_state::idle;
        --in_flight_;
        if (op.draining || !parked_cancels_.empty()) [[unlikely]] {
            unlink_rare(op);
        }
    }
    void unlink_rare(uring_op& op) noexcept;
    void dispatch(io_uring_cqe& cqe) noexcept;
    void park(uring_op& op) noexcept;
    void unpark(uring_op& op) noexcept;
    void flush_parked() noexcept;
    void reap() noexcept;
    void arm_doorbell() noexcept;
    static void prep_doorbell(uring_op& op, io_uring_sqe& sqe) noexcept;
    static void on_doorbell(uring_op& op, int res, unsigned flags) noexcept;

    io_uring ring_{};
    unsigned generation_ = 0;             // fork generation of the creating process
    std::uint64_t supported_ops_[4] = {}; // bit per opcode, valid once probed_
    bool probed_ = false;
    unsigned flags_ = 0;
    bool defer_taskrun_ = false;
    std::size_t in_flight_ = 0;
    uring_op* in_flight_head_ = nullptr; // doubly linked through prev_op/next_op
    uring_op* pending_head_ = nullptr;   // FIFO, doubly linked through prev_op/next_op
    uring_op* pending_tail_ = nullptr;
    std::vector<uring_op*> parked_cancels_;
    std::size_t draining_ = 0;                   // in-flight ops cancel_all still waits for
    unsigned sqe_limit_ = unlimited_submissions; // test hook: SQEs per wait
    unsigned sqes_since_wait_ = 0;
    int eventfd_ = -1;
    std::uint64_t doorbell_value_ = 0;
    struct doorbell_op : uring_op {
        uring* owner = nullptr;
    } doorbell_;
};

} // namespace corio::detail
