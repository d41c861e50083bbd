// byte_stream: the buffered stream over one descriptor that sockets and pipes share
// (read_some, read_exactly, read_until, read_to_end, write_all, close), and the
// errors of its reads. Sockets receive through the loop's multishot provided-buffer
// receive where the kernel has it; everything else reads and writes plainly.

#include "net/ring_socket_state.hpp"
#include "net/socket_ops.hpp"

#include "ring/io_ops.hpp"
#include <corio/byte_stream.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace corio {

using detail::io_len;
using detail::throw_errno;

namespace {

// Reads and writes at the current position: the offset of a stream is ignored.
constexpr std::uint64_t current_position = ~std::uint64_t{0};

bool is_socket_fd(int fd) noexcept {
    struct stat st {};
    return fd >= 0 && ::fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

} // namespace

// ---- errors --------------------------------------------------------------------------

incomplete_read_error::incomplete_read_error(std::string partial,
                                             std::optional<std::size_t> expected)
    : error(expected ? "corio: " + std::to_string(partial.size()) + " bytes read on a total of " +
                           std::to_string(*expected) + " expected bytes"
                     : "corio: " + std::to_string(partial.size()) +
                           " bytes read before the end of the stream, delimiter not found"),
      partial_(std::move(partial)), expected_(expected) {}

limit_overrun_error::limit_overrun_error(std::string message, std::size_t consumed)
    : error(message), consumed_(consumed) {}

// ---- byte_stream -----------------------------------------------------------------------

byte_stream::byte_stream(int fd) noexcept : fd_(fd), socket_(is_socket_fd(fd)) {}

byte_stream::byte_stream(byte_stream&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), recv_(std::exchange(other.recv_, nullptr)),
      rbuf_(std::move(other.rbuf_)), rpos_(std::exchange(other.rpos_, 0)),
      reading_(std::exchange(other.reading_, nullptr)),
      writing_(std::exchange(other.writing_, nullptr)), socket_(other.socket_),
      plain_(other.plain_) {
    other.rbuf_.clear();
    detail::closable_op::relink(reading_);
    detail::closable_op::relink(writing_);
}

byte_stream& byte_stream::operator=(byte_stream&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = std::exchange(other.fd_, -1);
        recv_ = std::exchange(other.recv_, nullptr);
        rbuf_ = std::move(other.rbuf_);
        other.rbuf_.clear();
        rpos_ = std::exchange(other.rpos_, 0);
        reading_ = std::exchange(other.reading_, nullptr);
        writing_ = std::exchange(other.writing_, nullptr);
        detail::closable_op::relink(reading_);
        detail::closable_op::relink(writing_);
        socket_ = other.socket_;
        plain_ = other.plain_;
    }
    return *this;
}

byte_stream::~byte_stream() {
    close();
}

void byte_stream::close() noexcept {
    // A request in flight holds the file: closing the descriptor alone would not
    // end it. Cancelled, it ends with EBADF. The kernel drops its reference only
    // when the cancellation completes (a later loop iteration), so a socket is shut
    // down here: the peer sees end of stream when close() returns.
    const bool in_kernel = recv_ != nullptr || reading_ != nullptr || writing_ != nullptr;
    if (recv_ != nullptr) {
        std::exchange(recv_, nullptr)->orphan();
    }
    detail::closable_op::abort(reading_);
    detail::closable_op::abort(writing_);
    if (fd_ >= 0) {
        if (in_kernel) {
            ::shutdown(fd_, SHUT_RDWR); // ENOTSOCK for a pipe: nothing to do
        }
        ::close(std::exchange(fd_, -1));
    }
    rbuf_.clear();
    rpos_ = 0;
}

task<std::size_t> byte_stream::read_some(std::span<std::byte> buffer) {
    if (buffer.empty() || rpos_ < rbuf_.size()) {
        return take_buffered(buffer);
    }
    return receive(buffer);
}

task<std::size_t> byte_stream::read_some(std::span<char> buffer) {
    return read_some(detail::writable_bytes(buffer));
}

task<std::size_t> byte_stream::take_buffered(std::span<std::byte> buffer) {
    std::size_t n = std::min(buffer.size(), rbuf_.size() - rpos_);
    std::memcpy(buffer.data(), rbuf_.data() + rpos_, n);
    rpos_ += n;
    if (rpos_ == rbuf_.size()) {
        rbuf_.clear();
        rpos_ = 0;
    }
    co_return n;
}

task<std::size_t> byte_stream::receive(std::span<std::byte> buffer) {
    const char* what = socket_ ? "recv" : "read";
    if (fd_ < 0) {
        throw_errno(EBADF, what);
    }
    if (!socket_) {
        int res = co_await detail::closable_op(&detail::prep_read,
                                               {.fd = fd_,
                                                .addr = buffer.data(),
                                                .len = io_len(buffer.size()),
                                                .off = current_position},
                                               reading_);
        if (res < 0) {
            throw_errno(-res, what);
        }
        co_return static_cast<std::size_t>(res);
    }
    if (recv_ == nullptr && !plain_) {
        event_loop& loop = get_running_loop();
        detail::ring_socket_state& ctx = detail::socket_state_of(loop);
        if (ctx.buffer_receive()) {
            recv_ = new detail::recv_state(ctx, loop, fd_);
        } else {
            plain_ = true;
        }
    }
    if (recv_ != nullptr) {
        int res = recv_->take(buffer);
        if (res == -EAGAIN) {
            recv_->start();
            res = co_await detail::multishot_awaiter(*recv_, buffer);
        }
        if (res != -ENOBUFS) {
            if (res < 0) {
                throw_errno(-res, what);
            }
            co_return static_cast<std::size_t>(res);
        }
        // The shared buffer ring ran dry: receive this once straight into the
        // caller's buffer; the next read tries the multishot receive again.
        recv_->clear_nobufs();
    }
    int res = co_await detail::closable_op(
        &detail::prep_recv, {.fd = fd_, .addr = buffer.data(), .len = io_len(buffer.size())},
        reading_);
    if (res < 0) {
        throw_errno(-res, what);
    }
    co_return static_cast<std::size_t>(res);
}

task<std::string> byte_stream::read_exactly(std::size_t n) {
    std::string out(n, '\0');
    std::size_t have = 0;
    while (have < n) {
        std::size_t k = 0;
        try {
            k = co_await read_some(std::span<char>(out.data() + have, n - have));
        } catch (...) {
            // Cancelled or failed midway: keep what arrived for the next read
            // (read_some drained the read-ahead before touching the descriptor),
            // unless close() dropped the stream's data meanwhile.
            if (is_open()) {
                rbuf_.assign(out.data(), have);
                rpos_ = 0;
            }
            throw;
        }
        if (k == 0) {
            out.resize(have);
            throw incomplete_read_error(std::move(out), n);
        }
        have += k;
    }
    co_return out;
}

task<std::string> byte_stream::read_until(std::string delimiter, std::size_t limit) {
    if (delimiter.empty()) {
        throw std::invalid_argument("corio: read_until with an empty delimiter");
    }
    constexpr std::size_t chunk = 16384;
    std::size_t search_from = rpos_;
    for (;;) {
        std::size_t pos = rbuf_.find(delimiter, std::max(search_from, rpos_));
        if (pos != std::string::npos) {
            std::size_t len = pos + delimiter.size() - rpos_;
            if (len > limit) {
                throw limit_overrun_error(
                    "corio: read_until found the delimiter, but the chunk is longer than the limit",
                    len);
            }
            std::string out = rbuf_.substr(rpos_, len);
            rpos_ += len;
            if (rpos_ == rbuf_.size()) {
                rbuf_.clear();
                rpos_ = 0;
            }
            co_return out;
        }
        std::size_t avail = rbuf_.size() - rpos_;
        if (avail >= limit) {
            throw limit_overrun_error(
                "corio: read_until did not find the delimiter within the limit", avail);
        }
        if (rpos_ > 0) {
            rbuf_.erase(0, rpos_);
            rpos_ = 0;
        }
        search_from = rbuf_.size() - std::min(rbuf_.size(), delimiter.size() - 1);
        std::size_t old = rbuf_.size();
        rbuf_.resize(old + chunk);
        std::size_t k = 0;
        try {
            k = co_await receive(
                std::span<std::byte>(reinterpret_cast<std::byte*>(rbuf_.data()) + old, chunk));
        } catch (...) {
            if (is_open()) { // else close() dropped the read-ahead already
                rbuf_.resize(old);
            }
            throw;
        }
        rbuf_.resize(old + k);
        if (k == 0) {
            std::string partial = std::move(rbuf_);
            rbuf_.clear();
            rpos_ = 0;
            throw incomplete_read_error(std::move(partial), std::nullopt);
        }
    }
}

task<std::string> byte_stream::read_to_end() {
    // The read-ahead first, then straight into the result's spare capacity, which
    // doubles as it fills (few large reads for a large output).
    std::string out = rbuf_.substr(rpos_);
    rbuf_.clear();
    rpos_ = 0;
    constexpr std::size_t min_chunk = 65536;
    for (;;) {
        std::size_t old = out.size();
        std::size_t room = std::max(min_chunk, out.capacity() - old);
        out.resize(old + room);
        std::size_t k = 0;
        try {
            k = co_await receive(
                std::span<std::byte>(reinterpret_cast<std::byte*>(out.data()) + old, room));
        } catch (...) {
            if (is_open()) { // keep what arrived for the next read
                out.resize(old);
                rbuf_ = std::move(out);
            }
            throw;
        }
        out.resize(old + k);
        if (k == 0) {
            co_return out;
        }
    }
}

task<> byte_stream::write_all(std::span<const std::byte> bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        auto* data = const_cast<std::byte*>(bytes.data() + done);
        std::uint32_t len = io_len(bytes.size() - done);
        int res = 0;
        if (socket_) {
            res = co_await detail::closable_op(
                &detail::prep_send, {.fd = fd_, .addr = data, .len = len, .flags = MSG_NOSIGNAL},
                writing_);
        } else {
            res = co_await detail::closable_op(
                &detail::prep_write, {.fd = fd_, .addr = data, .len = len, .off = current_position},
                writing_);
        }
        if (res < 0) {
            throw_errno(-res, socket_ ? "send" : "write");
        }
        done += static_cast<std::size_t>(res);
    }
}

task<> byte_stream::write_all(std::string_view bytes) {
    return write_all(detail::readable_bytes(bytes));
}

} // namespace corio
