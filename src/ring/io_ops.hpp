#pragma once
// The single-shot io_uring operations of the I/O layer, each an `op_awaitable`
// with its arguments in the awaiting frame (no allocation per operation). The
// prep functions live in src/io_ops.cpp, where <liburing.h> is visible.
//
// `co_await` yields the CQE's res: >= 0 on success, -errno on failure (the caller
// turns it into a std::system_error naming the operation).

#include <corio/detail/uring_op.hpp>

#include <cerrno>
#include <coroutine>
#include <cstdint>
#include <utility>

namespace corio::detail {

/// Arguments of an I/O operation; which fields matter depends on the prep function.
struct io_args {
    int fd = -1;
    void* addr = nullptr;    // buffer, path, sockaddr, msghdr or statx
    std::uint32_t len = 0;   // buffer length, sockaddr length or open mode
    std::uint64_t off = 0;   // file offset
    std::uint32_t flags = 0; // open flags, msg flags, fsync flags or poll mask
    int fd_out = -1;         // splice: where the bytes go (from `fd` at `off`, ~0: none)
};

void prep_read(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_write(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_recv(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_send(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_recvmsg(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_sendmsg(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_accept(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_connect(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_openat(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_statx_size(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_fsync(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_close(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_poll(uring_op& op, ::io_uring_sqe& sqe) noexcept;
void prep_splice(uring_op& op, ::io_uring_sqe& sqe) noexcept;

/// One awaited io_uring operation: `co_await io_op(&prep_read, {.fd = fd, ...})`.
class io_op : public op_awaitable {
public:
    io_op(void (*prep_fn)(uring_op&, ::io_uring_sqe&) noexcept, const io_args& a)
        : op_awaitable(prep_fn), args(a) {}
    io_args args;
};

/// An io_op that the socket it works on can abort when it closes. A kernel request
/// holds a reference to its file, so a bare close(2) of the descriptor does not end
/// it: a receive or an accept would wait for data or a connection that may never
/// come. While suspended, the op is registered in a slot of its socket (`link`);
/// the socket's close() calls `abort(link)`, which cancels the request in the
/// kernel, and the op then yields -EBADF, as a blocking call on a descriptor closed
/// under it. An op that completed anyway keeps its result.
class closable_op : public io_op {
public:
    closable_op(void (*prep_fn)(uring_op&, ::io_uring_sqe&) noexcept, const io_args& a,
                closable_op*& link)
        : io_op(prep_fn, a), link_(&link) {}
    closable_op(const closable_op&) = delete;
    closable_op& operator=(const closable_op&) = delete;
    /// A frame destroyed while suspended here (a task the loop gave up on at close)
    /// leaves its socket's slot empty.
    ~closable_op() { unlink(); }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
        *link_ = this;
        if (!op_awaitable::await_suspend(h)) {
            unlink(); // cancelled before it started: never submitted
            return false;
        }
        return true;
    }
    int await_resume() {
        unlink();
        int res = op_awaitable::await_resume();
        if (aborted_ && (res == -ECANCELED || res == -EINTR)) {
            res = -EBADF;
        }
        return res;
    }

    /// The socket is closing: cancels the op registered in `link`, if any, and
    /// empties the slot. **Thread safety:** the op's loop thread.
    static void abort(closable_op*& link) noexcept {
        if (closable_op* op = std::exchange(link, nullptr)) {
            op->link_ = nullptr;
            op->aborted_ = true;
            cancel_op(op->loop(), *op); // no effect if it already completed
        }
    }
    /// The slot moved (its socket was moved) to `slot`: the op follows it.
    static void relink(closable_op*& slot) noexcept {
        if (slot != nullptr) {
            slot->link_ = &slot;
        }
    }

private:
    void unlink() noexcept {
        if (link_ != nullptr && *link_ == this) {
            *link_ = nullptr;
        }
        link_ = nullptr;
    }

    closable_op** link_;
    bool aborted_ = false;
};

} // namespace corio::detail
