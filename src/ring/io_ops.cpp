// Prep functions of the I/O operations (src/ring/io_ops.hpp).

#include "ring/io_ops.hpp"

#include <liburing.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>

namespace corio::detail {

namespace {
const io_args& args_of(uring_op& op) noexcept {
    return static_cast<io_op&>(op).args;
}
} // namespace

void prep_read(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_read(&sqe, a.fd, a.addr, a.len, a.off);
}

void prep_write(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_write(&sqe, a.fd, a.addr, a.len, a.off);
}

void prep_recv(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_recv(&sqe, a.fd, a.addr, a.len, static_cast<int>(a.flags));
}

void prep_send(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_send(&sqe, a.fd, a.addr, a.len, static_cast<int>(a.flags));
}

void prep_recvmsg(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_recvmsg(&sqe, a.fd, static_cast<msghdr*>(a.addr), a.flags);
}

void prep_sendmsg(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_sendmsg(&sqe, a.fd, static_cast<const msghdr*>(a.addr), a.flags);
}

void prep_accept(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_accept(&sqe, a.fd, nullptr, nullptr, SOCK_CLOEXEC);
}

void prep_connect(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_connect(&sqe, a.fd, static_cast<const sockaddr*>(a.addr), a.len);
}

void prep_openat(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_openat(&sqe, AT_FDCWD, static_cast<const char*>(a.addr),
                         static_cast<int>(a.flags), a.len);
}

void prep_statx_size(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_statx(&sqe, a.fd, "", AT_EMPTY_PATH, STATX_SIZE,
                        static_cast<struct statx*>(a.addr));
}

void prep_fsync(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_fsync(&sqe, a.fd, a.flags);
}

void prep_close(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    io_uring_prep_close(&sqe, args_of(op).fd);
}

void prep_poll(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    io_uring_prep_poll_add(&sqe, a.fd, a.flags);
}

void prep_splice(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    const io_args& a = args_of(op);
    std::int64_t off_in = a.off == ~std::uint64_t{0} ? -1 : static_cast<std::int64_t>(a.off);
    io_uring_prep_splice(&sqe, a.fd, off_in, a.fd_out, -1, a.len, 0);
}

} // namespace corio::detail
