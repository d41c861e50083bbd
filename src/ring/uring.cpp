#include "ring/uring.hpp"

#include <corio/detail/loop_access.hpp>

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <corio/detail/live_counts.hpp>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <thread>
#include <system_error>
#include <vector>

namespace corio::detail {

// Bumped in every child forked (through fork(), which runs the atfork handlers)
// after the first ring was created; a ring remembers the value it was made under.
std::atomic<unsigned> fork_generation{0};

namespace {
constexpr std::uint64_t ignore_user_data = 0; // completions of our cancel SQEs

void on_fork_child() noexcept {
    fork_generation.fetch_add(1, std::memory_order_relaxed);
}

unsigned current_generation() {
    static const bool registered = [] {
        if (int rc = ::pthread_atfork(nullptr, nullptr, &on_fork_child); rc != 0) {
            throw std::system_error(rc, std::system_category(), "corio: pthread_atfork");
        }
        return true;
    }();
    (void)registered;
    return fork_generation.load(std::memory_order_relaxed);
}

// io_uring_enter results that only mean "look at the completion queue".
bool benign_enter_result(int rc) noexcept {
    return rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EBUSY || rc == -EAGAIN;
}
} // namespace

// Every ring alive, with the thread that created it (for the leak gate).
struct ring_registry {
    struct entry {
        const uring* ring;
        std::thread::id owner;
        bool loop; // an event loop's (driven by its owner), not a pool dispatcher's
    };
    std::mutex mutex;
    std::vector<entry> rings;
};
ring_registry& registry() noexcept {
    static ring_registry r;
    return r;
}

std::size_t live_rings() noexcept {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    return r.rings.size();
}

std::size_t pending_kernel_ops() noexcept {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    std::size_t n = 0;
    for (const auto& e : r.rings) {
        if (e.loop && e.owner == std::this_thread::get_id()) {
            n += e.ring->in_flight() + e.ring->pending_count() + e.ring->parked_cancel_count();
        }
    }
    return n;
}

void uring::mark_loop_ring() noexcept {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    for (auto& e : r.rings) {
        if (e.ring == this) {
            e.loop = true;
        }
    }
}

uring::uring(const loop_options& options) : generation_(current_generation()) {
    io_uring_params params{};
    int rc = -EINVAL;
    if (options.single_issuer) {
        // Probed at run time: kernels before 6.1 refuse DEFER_TASKRUN with -EINVAL.
        params.flags =
            IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SUBMIT_ALL;
        rc = io_uring_queue_init_params(options.entries, &ring_, &params);
        if (rc == 0) {
            defer_taskrun_ = true;
        }
    }
    if (rc < 0) {
        params = {};
        params.flags = IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL;
        rc = io_uring_queue_init_params(options.entries, &ring_, &params);
    }
    if (rc < 0) {
        params = {};
        rc = io_uring_queue_init_params(options.entries, &ring_, &params);
    }
    if (rc < 0) {
        throw std::system_error(-rc, std::system_category(), "corio: io_uring_queue_init");
    }
    flags_ = params.flags;
    eventfd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (eventfd_ < 0) {
        int e = errno;
        io_uring_queue_exit(&ring_);
        throw std::system_error(e, std::system_category(), "corio: eventfd");
    }
    doorbell_.owner = this;
    doorbell_.prep = &prep_doorbell;
    doorbell_.complete = &on_doorbell;
    arm_doorbell();
    try {
        auto& r = registry();
        std::lock_guard lock(r.mutex);
        r.rings.push_back({this, std::this_thread::get_id(), false});
    } catch (...) {
        io_uring_queue_exit(&ring_);
        ::close(eventfd_);
        throw;
    }
}

uring::~uring() {
    {
        auto& r = registry();
        std::lock_guard lock(r.mutex);
        std::erase_if(r.rings, [this](const auto& e) { return e.ring == this; });
    }
    // What is still in flight is owned by the loop's own structures (signal polls,
    // multishot states, freed after this) or by frames close() had to leak; the
    // kernel cancels everything when the ring is torn down.
    io_uring_queue_exit(&ring_);
    ::close(eventfd_);
}

io_uring_sqe* uring::get_sqe() noexcept {
    if (sqes_since_wait_ >= sqe_limit_) {
        return nullptr; // test hook: as if the kernel had not consumed the queue yet
    }
    if (foreign()) [[unlikely]] {
        return nullptr; // a forked child: never write into the parent's queue
    }
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
        // A failed submit leaves the queue full: the op parks and the next poll
        // reports the error.
        if (io_uring_submit(&ring_) < 0) {
            return nullptr;
        }
        sqe = io_uring_get_sqe(&ring_);
    }
    if (sqe != nullptr && sqe_limit_ != unlimited_submissions) {
        ++sqes_since_wait_;
    }
    return sqe;
}

void uring::unlink_rare(uring_op& op) noexcept {
    if (op.draining) {
        op.draining = false;
        --draining_;
    }
    if (!parked_cancels_.empty()) {
        // A cancel parked for an op that has ended must not reach it: the op may be
        // gone once its completion handler returns.
        std::erase(parked_cancels_, &op);
    }
}

void uring::park(uring_op& op) noexcept {
    op.state = uring_op::op_state::pending;
    op.next_op = nullptr;
    op.prev_op = pending_tail_;
    if (pending_tail_ != nullptr) {
        pending_tail_->next_op = &op;
    } else {
        pending_head_ = &op;
    }
    pending_tail_ = &op;
}

void uring::unpark(uring_op& op) noexcept {
    if (op.prev_op != nullptr) {
        op.prev_op->next_op = op.next_op;
    } else {
        pending_head_ = op.next_op;
    }
    if (op.next_op != nullptr) {
        op.next_op->prev_op = op.prev_op;
    } else {
        pending_tail_ = op.prev_op;
    }
    op.prev_op = op.next_op = nullptr;
    op.state = uring_op::op_state::idle;
    op.draining = false;
}

std::size_t uring::pending_count() const noexcept {
    std::size_t n = 0;
    for (const uring_op* op = pending_head_; op != nullptr; op = op->next_op) {
        ++n;
    }
    return n;
}

void uring::submit_slow(uring_op& op) noexcept {
    // Behind parked ops, a new one parks too: submission order is kept.
    io_uring_sqe* sqe = pending_head_ == nullptr ? get_sqe() : nullptr;
    if (sqe == nullptr) {
        park(op);
        return;
    }
    start(op, *sqe);
}

void uring::cancel(uring_op& op) noexcept {
    if (op.state == uring_op::op_state::pending) {
        unpark(op);
        op.complete(op, -ECANCELED, 0);
        return;
    }
    if (op.state != uring_op::op_state::in_flight) {
        return;
    }
    io_uring_sqe* sqe = get_sqe();
    if (sqe == nullptr) {
        parked_cancels_.push_back(&op);
        return;
    }
    io_uring_prep_cancel(sqe, &op, 0);
    io_uring_sqe_set_data64(sqe, ignore_user_data);
}

void uring::flush_parked() noexcept {
    if (!parked_cancels_.empty()) {
        // No completion is dispatched in this loop, so every op listed is alive; a
        // cancel that still finds no SQE parks again.
        std::vector<uring_op*> cancels;
        cancels.swap(parked_cancels_);
        for (uring_op* op : cancels) {
            cancel(*op);
        }
    }
    while (pending_head_ != nullptr) {
        io_uring_sqe* sqe = get_sqe();
        if (sqe == nullptr) {
            return;
        }
        uring_op& op = *pending_head_;
        unpark(op);
        start(op, *sqe);
    }
}

bool uring::cancel_all(std::chrono::nanoseconds limit) {
    // Parked ops never reached the kernel: complete them now, oldest first. What
    // their handlers submit parks behind them, unmarked, and is left alone.
    for (uring_op* op = pending_head_; op != nullptr; op = op->next_op) {
        op->draining = true;
    }
    while (pending_head_ != nullptr && pending_head_->draining) {
        cancel(*pending_head_);
    }
    // Cancelling an in-flight op dispatches nothing, so the list stays as it is
    // while it is walked.
    draining_ = 0;
    for (uring_op* op = in_flight_head_; op != nullptr; op = op->next_op) {
        if (op != &doorbell_) {
            op->draining = true;
            ++draining_;
        }
    }
    for (uring_op* op = in_flight_head_; op != nullptr; op = op->next_op) {
        if (op->draining) {
            cancel(*op);
        }
    }
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (draining_ > 0) {
        auto left = deadline - std::chrono::steady_clock::now();
        if (left <= left.zero()) {
            return false;
        }
        submit_and_wait(true, std::chrono::ceil<std::chrono::nanoseconds>(left));
    }
    return true;
}

void uring::submit_and_wait(bool block, std::optional<std::chrono::nanoseconds> timeout) {
    if (foreign()) {
        throw std::system_error(EPERM, std::system_category(),
                                "corio: io_uring of a loop created by another process (the "
                                "program forked)");
    }
    sqes_since_wait_ = 0;
    flush_parked();
    if (block) {
        __kernel_timespec ts{};
        __kernel_timespec* tsp = nullptr;
        if (timeout) {
            ts.tv_sec = timeout->count() / 1'000'000'000;
            ts.tv_nsec = timeout->count() % 1'000'000'000;
            tsp = &ts;
        }
        io_uring_cqe* cqe = nullptr;
        // -ETIME (deadline), -EINTR (signal), -EBUSY (CQ overflow) and -EAGAIN just
        // fall through to reaping what is there; anything else is a broken ring.
        int rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, tsp, nullptr);
        if (!benign_enter_result(rc)) {
            throw std::system_error(-rc, std::system_category(), "corio: io_uring_enter");
        }
    } else if (io_uring_sq_ready(&ring_) > 0 || (defer_taskrun_ && in_flight_ > 0)) {
        int rc = defer_taskrun_ ? io_uring_submit_and_get_events(&ring_) : io_uring_submit(&ring_);
        if (!benign_enter_result(rc)) {
            throw std::system_error(-rc, std::system_category(), "corio: io_uring_enter");
        }
    }
    reap();
}

void uring::reap() noexcept {
    // liburing's io_uring_for_each_cqe, inlined, each completion consumed before it is
    // dispatched (a handler may submit, or reap again through cancel_all).
    io_uring_cq& cq = ring_.cq;
    bool flushed = false;
    for (;;) {
        unsigned head = *cq.khead;
        unsigned tail = io_uring_smp_load_acquire(cq.ktail);
        if (head == tail) {
            // Completions the kernel could not post (CQ overflow) or deferred task
            // work are flushed once, as io_uring_peek_batch_cqe does.
            if (flushed || (IO_URING_READ_ONCE(*ring_.sq.kflags) &
                            (IORING_SQ_CQ_OVERFLOW | IORING_SQ_TASKRUN)) == 0) {
                return;
            }
            io_uring_get_events(&ring_);
            flushed = true;
            continue;
        }
        // The head is read again after each dispatch: a handler that reaped further
        // completions (cancel_all does) has moved it.
        do {
            dispatch(cq.cqes[head & cq.ring_mask]);
            head = *cq.khead;
        } while (static_cast<std::int32_t>(tail - head) > 0);
    }
}

inline void uring::dispatch(io_uring_cqe& cqe) noexcept {
    const std::uint64_t data = cqe.user_data;
    const int res = cqe.res;
    const unsigned flags = cqe.flags;
    io_uring_cqe_seen(&ring_, &cqe);
    if (data == ignore_user_data || data == LIBURING_UDATA_TIMEOUT) [[unlikely]] {
        return;
    }
    auto* op = reinterpret_cast<uring_op*>(data);
    if ((flags & IORING_CQE_F_MORE) == 0) [[likely]] {
        unlink_in_flight(*op);
    }
    op->complete(*op, res, flags);
}

void uring::wake() noexcept {
    std::uint64_t one = 1;
    // EAGAIN means the counter is saturated: the loop is being woken anyway.
    [[maybe_unused]] ssize_t r = ::write(eventfd_, &one, sizeof one);
}

void uring::arm_doorbell() noexcept {
    submit(doorbell_);
}

void uring::prep_doorbell(uring_op& op, io_uring_sqe& sqe) noexcept {
    uring* self = static_cast<doorbell_op&>(op).owner;
    io_uring_prep_read(&sqe, self->eventfd_, &self->doorbell_value_, sizeof self->doorbell_value_,
                       0);
}

void uring::on_doorbell(uring_op& op, int, unsigned) noexcept {
    uring* self = static_cast<doorbell_op&>(op).owner;
    // The loop drains its incoming list on every iteration; this only re-arms.
    self->arm_doorbell();
}

void submit_op(event_loop& loop, uring_op& op) noexcept {
    loop_access::ring(loop).submit(op);
}
void cancel_op(event_loop& loop, uring_op& op) noexcept {
    loop_access::ring(loop).cancel(op);
}
void op_awaitable::on_complete(uring_op& op, int res, unsigned flags) noexcept {
    auto& self = static_cast<op_awaitable&>(op);
    self.result_ = res;
    self.flags_ = flags;
    self.loop_->schedule(self.waiter_, self.root_);
}

void prep_nop(uring_op&, ::io_uring_sqe& sqe) noexcept {
    io_uring_prep_nop(&sqe);
}

bool uring::supports(unsigned opcode) noexcept {
    if (!probed_) {
        probed_ = true;
        if (io_uring_probe* probe = io_uring_get_probe_ring(&ring_); probe != nullptr) {
            for (unsigned op = 0; op < 256; ++op) {
                if (io_uring_opcode_supported(probe, static_cast<int>(op))) {
                    supported_ops_[op / 64] |= std::uint64_t{1} << (op % 64);
                }
            }
            io_uring_free_probe(probe);
        }
    }
    return opcode < 256 && ((supported_ops_[opcode / 64] >> (opcode % 64)) & 1U) != 0;
}

void limit_submissions(event_loop& loop, unsigned per_iteration) noexcept {
    loop_access::ring(loop).limit_sqes(per_iteration);
}
std::size_t parked_ops(event_loop& loop) noexcept {
    return loop_access::ring(loop).pending_count();
}
std::size_t parked_cancels(event_loop& loop) noexcept {
    return loop_access::ring(loop).parked_cancel_count();
}

} // namespace corio::detail
