#pragma once
// Per-ring state of the I/O layer: which fast paths the kernel supports (probed
// once), the provided-buffer ring shared by every multishot receive of the loop,
// and the multishot receive and accept states of sockets. Attached to the ring
// (uring::io_state), so it is torn down after the ring.

#include "ring/uring.hpp"

#include <corio/detail/intrusive_list.hpp>
#include <corio/detail/loop_access.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>

namespace corio::detail {

/// The socket state of one ring (one loop): fast paths, the provided-buffer ring.
/// **Thread safety:** the loop's thread only.
class ring_socket_state {
public:
    explicit ring_socket_state(uring& ring);
    ring_socket_state(const ring_socket_state&) = delete;
    ring_socket_state& operator=(const ring_socket_state&) = delete;
    ~ring_socket_state();

    uring& ring() noexcept { return *ring_; }
    /// Multishot accept is usable (and not disabled by CORIO_IO_FALLBACK=1).
    bool multishot_accept() const noexcept { return multishot_accept_; }
    /// Multishot receive into provided buffers is usable; sets the buffer ring up
    /// on first use (false if the kernel refuses it).
    bool buffer_receive();

    std::uint16_t group() const noexcept { return group_id; }
    std::byte* buffer(std::uint16_t id) noexcept {
        return buffers_ + std::size_t{id} * buffer_size;
    }
    /// Gives a buffer back to the kernel.
    void recycle(std::uint16_t id) noexcept;

    /// Sockets' multishot states, so that the ones still in flight when the loop
    /// goes away are freed with it.
    list_hook states;

    static constexpr std::uint16_t group_id = 0;
    static constexpr unsigned buffer_count = 512; // a power of two
    static constexpr unsigned buffer_size = 8192;

private:
    uring* ring_;
    bool multishot_accept_ = false;
    bool multishot_recv_ = false;
    bool buffers_tried_ = false;
    bool buffers_ok_ = false;
    io_uring_buf_ring* buf_ring_ = nullptr;
    std::byte* buffers_ = nullptr;
    std::size_t ring_bytes_ = 0;
};

/// The I/O state of `loop`, created on first use.
ring_socket_state& socket_state_of(event_loop& loop);

/// Where one suspended reader or accepter waits; the completion handler fills it
/// (result) and resumes the coroutine, so the awaiter never looks at the socket
/// state after waking.
struct io_waiter {
    std::coroutine_handle<> coroutine;
    task_root* root = nullptr;
    std::span<std::byte> buffer; // receive: where to copy
    int result = 0;
    bool done = false;
};

/// Base of the per-socket multishot states: lives on the heap (sockets move), is
/// freed by its socket when idle or, once orphaned, by its final completion.
class multishot_state : public uring_op {
public:
    multishot_state(ring_socket_state& ctx, event_loop& loop, int fd);
    virtual ~multishot_state();
    /// The socket is closing: wake a waiter with -EBADF, cancel the kernel op and
    /// free this state now or at the final completion.
    void orphan() noexcept;

    event_loop& loop() noexcept { return *loop_; }
    io_waiter* waiter = nullptr;

protected:
    void wake(int result) noexcept;
    void arm() noexcept;
    void stop() noexcept;
    /// Called for each completion while not orphaned.
    virtual void on_result(int res, unsigned flags) noexcept = 0;
    /// Called once orphaned, for each completion (e.g. to close an accepted fd).
    virtual void on_orphan_result(int res, unsigned flags) noexcept = 0;

    ring_socket_state* ctx_;
    event_loop* loop_;
    int fd_;
    bool armed_ = false;
    bool stopping_ = false;
    bool orphaned_ = false;

private:
    static void on_complete(uring_op& op, int res, unsigned flags) noexcept;
    list_hook hook_;
};

/// A multishot receive into provided buffers; queued chunks wait for the reader.
class recv_state final : public multishot_state {
public:
    recv_state(ring_socket_state& ctx, event_loop& loop, int fd) : multishot_state(ctx, loop, fd) {
        prep = &prep_fn;
    }
    ~recv_state() override;
    /// Copies queued data into `dst`: > 0 bytes, 0 at end of stream, -errno after
    /// an error, -EAGAIN when nothing is there yet, -ENOBUFS when the buffer ring
    /// ran dry (the caller then receives once without it).
    int take(std::span<std::byte> dst) noexcept;
    /// Starts the multishot receive if it is not running.
    void start() noexcept;
    void clear_nobufs() noexcept { nobufs_ = false; }

private:
    struct chunk {
        std::uint16_t id;
        std::uint32_t offset;
        std::uint32_t size;
    };
    static void prep_fn(uring_op& op, ::io_uring_sqe& sqe) noexcept;
    void on_result(int res, unsigned flags) noexcept override;
    void on_orphan_result(int res, unsigned flags) noexcept override;

    std::deque<chunk> chunks_;
    int end_ = 1; // 1: open, 0: end of stream, < 0: -errno
    bool nobufs_ = false;
};

/// A multishot accept; accepted descriptors queue until accept() takes them.
class accept_state final : public multishot_state {
public:
    accept_state(ring_socket_state& ctx, event_loop& loop, int fd)
        : multishot_state(ctx, loop, fd) {
        prep = &prep_fn;
    }
    ~accept_state() override;
    /// A queued descriptor (>= 0), a pending error (-errno, reported once), or
    /// -EAGAIN when nothing is there.
    int take() noexcept;
    void start() noexcept { arm(); }

private:
    static void prep_fn(uring_op& op, ::io_uring_sqe& sqe) noexcept;
    void on_result(int res, unsigned flags) noexcept override;
    void on_orphan_result(int res, unsigned flags) noexcept override;

    std::deque<int> fds_;
    int error_ = 0;
};

/// co_await: waits on a multishot state until its completion handler fills the
/// waiter; cancellation unhooks the waiter without touching the kernel op (data
/// or connections arriving later stay queued for the next call).
class multishot_awaiter {
public:
    multishot_awaiter(multishot_state& state, std::span<std::byte> buffer) : state_(&state) {
        waiter_.buffer = buffer;
        slot_.on_cancel = &on_cancel;
        slot_.context = this;
    }
    multishot_awaiter(const multishot_awaiter&) = delete;
    multishot_awaiter& operator=(const multishot_awaiter&) = delete;
    /// A frame destroyed while suspended here (a task the loop gave up on at close)
    /// unhooks itself. While linked and not woken, the state is alive: orphaning it
    /// wakes the waiter first.
    ~multishot_awaiter() {
        if (linked_ && !waiter_.done && state_->waiter == &waiter_) {
            state_->waiter = nullptr;
        }
    }

    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
        root_ = root_of(h);
        if (root_ != nullptr && root_->take_pending_cancel()) {
            cancelled_early_ = true;
            return false;
        }
        waiter_.coroutine = h;
        waiter_.root = root_;
        state_->waiter = &waiter_;
        linked_ = true;
        if (root_ != nullptr) {
            root_->arm(slot_);
        }
        return true;
    }
    int await_resume() {
        if (root_ != nullptr) {
            root_->disarm();
        }
        if (cancelled_early_ || !waiter_.done) {
            throw cancelled_error();
        }
        if (slot_.requested) {
            root_->repost_cancel(); // completed anyway: deliver the cancel later
        }
        return waiter_.result;
    }

private:
    static void on_cancel(cancel_slot& slot) noexcept {
        auto* self = static_cast<multishot_awaiter*>(slot.context);
        if (!self->waiter_.done && self->state_->waiter == &self->waiter_) {
            self->state_->waiter = nullptr;
            self->linked_ = false;
            schedule_on(self->state_->loop(), self->waiter_.coroutine, self->root_);
        }
    }

    multishot_state* state_;
    io_waiter waiter_;
    task_root* root_ = nullptr;
    cancel_slot slot_;
    bool cancelled_early_ = false;
    bool linked_ = false;
};

} // namespace corio::detail
