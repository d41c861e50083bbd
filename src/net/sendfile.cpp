// sendfile(): a file's bytes to a stream socket without passing through user memory:
// splice from the file into a pipe, then from the pipe into the socket, both on the
// ring (IORING_OP_SPLICE, 5.7).

#include "net/socket_ops.hpp"

#include "ring/io_ops.hpp"
#include <corio/net.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

namespace corio {

using detail::throw_errno;

namespace {

// The pipe between the two splices, closed on scope exit.
struct splice_pipe {
    int r = -1;
    int w = -1;
    splice_pipe() {
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            throw_errno(errno, "pipe2");
        }
        r = fds[0];
        w = fds[1];
        // A larger pipe means fewer, larger splices; the default (64 KiB) still works.
        (void)::fcntl(w, F_SETPIPE_SZ, 1 << 20);
    }
    splice_pipe(const splice_pipe&) = delete;
    splice_pipe& operator=(const splice_pipe&) = delete;
    ~splice_pipe() {
        ::close(r);
        ::close(w);
    }
};

constexpr std::uint64_t no_offset = ~std::uint64_t{0};

} // namespace

task<std::uint64_t> sendfile(socket_stream& out, file& in, std::uint64_t offset,
                             std::optional<std::uint64_t> count) {
    if (!out.is_open()) {
        throw_errno(EBADF, "sendfile");
    }
    if (!in.is_open()) {
        throw_errno(EBADF, "sendfile");
    }
    std::uint64_t total = 0;
    if (count) {
        total = *count;
    } else {
        std::uint64_t size = co_await in.size();
        total = size > offset ? size - offset : 0;
    }
    splice_pipe pipe;
    constexpr std::uint64_t chunk = 1 << 20;
    std::uint64_t sent = 0;
    while (sent < total) {
        std::uint32_t want = static_cast<std::uint32_t>(std::min(chunk, total - sent));
        int n = co_await detail::io_op(
            &detail::prep_splice,
            {.fd = in.fd(), .len = want, .off = offset + sent, .fd_out = pipe.w});
        if (n < 0) {
            throw_errno(-n, "splice");
        }
        if (n == 0) {
            break; // the end of the file came first
        }
        std::uint32_t left = static_cast<std::uint32_t>(n);
        while (left > 0) {
            int m = co_await detail::io_op(
                &detail::prep_splice,
                {.fd = pipe.r, .len = left, .off = no_offset, .fd_out = out.fd()});
            if (m < 0) {
                throw_errno(-m, "splice");
            }
            if (m == 0) {
                throw_errno(EPIPE, "splice"); // the socket took nothing: never spin
            }
            left -= static_cast<std::uint32_t>(m);
        }
        sent += static_cast<std::uint64_t>(n);
    }
    co_return sent;
}

} // namespace corio
