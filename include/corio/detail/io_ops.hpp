#pragma once
// The single-shot io_uring operations of the I/O layer, each an `op_awaitable`
// with its arguments in the awaiting frame (no allocation per operation). The
// prep functions live in src/io_ops.cpp, where <liburing.h> is visible.
//
// `co_await` yields the CQE's res: >= 0 on success, -errno on failure (the caller
// turns it into a std::system_error naming the operation).

#include <corio/detail/uring_op.hpp>

#include <cstdint>

namespace corio::detail {

/// Arguments of an I/O operation; which fields matter depends on the prep function.
struct io_args {
    int fd = -1;
    void* addr = nullptr;   // buffer, path, sockaddr, msghdr or statx
    std::uint32_t len = 0;  // buffer length, sockaddr length or open mode
    std::uint64_t off = 0;  // file offset
    std::uint32_t flags = 0; // open flags, msg flags, fsync flags or poll mask
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

/// One awaited io_uring operation: `co_await io_op(&prep_read, {.fd = fd, ...})`.
class io_op : public op_awaitable {
public:
    io_op(void (*prep_fn)(uring_op&, ::io_uring_sqe&) noexcept, const io_args& a)
        : op_awaitable(prep_fn), args(a) {}
    io_args args;
};

} // namespace corio::detail
