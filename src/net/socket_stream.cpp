// socket_stream (the byte stream under tcp_stream and unix_stream) and the stream errors.

#include "net/socket_ops.hpp"
#include "net/io_context.hpp"

#include "ring/io_ops.hpp"
#include <corio/net.hpp>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace corio {

using detail::io_len;
using detail::socket_name;
using detail::throw_errno;

// ---- errors --------------------------------------------------------------------------

incomplete_read_error::incomplete_read_error(std::string partial,
                                             std::optional<std::size_t> expected)
    : error(expected ? "corio: " + std::to_string(partial.size()) + " bytes read on a total of " +
                           std::to_string(*expected) + " expected bytes"
                     : "corio: " + std::to_string(partial.size()) +
                           " bytes read before the end of the stream, delimiter not found"),
      partial_(std::move(partial)), expected_(expected) {}

limit_overrun_error::limit_overrun_error(std::string message, std::size_t consumed)
    : error(std::move(message)), consumed_(consumed) {}

// ---- socket_stream ---------------------------------------------------------------------

socket_stream::socket_stream(socket_stream&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), recv_(std::exchange(other.recv_, nullptr)),
      rbuf_(std::move(other.rbuf_)), rpos_(std::exchange(other.rpos_, 0)),
      reading_(std::exchange(other.reading_, nullptr)),
      writing_(std::exchange(other.writing_, nullptr)), plain_(other.plain_) {
    other.rbuf_.clear();
    detail::closable_op::relink(reading_);
    detail::closable_op::relink(writing_);
}

socket_stream& socket_stream::operator=(socket_stream&& other) noexcept {
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
        plain_ = other.plain_;
    }
    return *this;
}

socket_stream::~socket_stream() {
    close();
}

void socket_stream::close() noexcept {
    if (recv_ != nullptr) {
        std::exchange(recv_, nullptr)->orphan();
    }
    // A request in flight holds the file: closing the descriptor alone would not
    // end it. Cancelled, it ends with EBADF.
    detail::closable_op::abort(reading_);
    detail::closable_op::abort(writing_);
    if (fd_ >= 0) {
        ::close(std::exchange(fd_, -1));
    }
    rbuf_.clear();
    rpos_ = 0;
}

void socket_stream::shutdown_write() {
    if (::shutdown(fd_, SHUT_WR) != 0) {
        throw_errno(errno, "shutdown");
    }
}

endpoint socket_stream::local_endpoint() const {
    return socket_name(fd_, false);
}
endpoint socket_stream::remote_endpoint() const {
    return socket_name(fd_, true);
}

task<std::size_t> socket_stream::read_some(std::span<std::byte> buffer) {
    if (buffer.empty() || rpos_ < rbuf_.size()) {
        return take_buffered(buffer);
    }
    return receive(buffer);
}

task<std::size_t> socket_stream::read_some(std::span<char> buffer) {
    return read_some(detail::writable_bytes(buffer));
}

task<std::size_t> socket_stream::take_buffered(std::span<std::byte> buffer) {
    std::size_t n = std::min(buffer.size(), rbuf_.size() - rpos_);
    std::memcpy(buffer.data(), rbuf_.data() + rpos_, n);
    rpos_ += n;
    if (rpos_ == rbuf_.size()) {
        rbuf_.clear();
        rpos_ = 0;
    }
    co_return n;
}

task<std::size_t> socket_stream::receive(std::span<std::byte> buffer) {
    if (fd_ < 0) {
        throw_errno(EBADF, "recv");
    }
    if (recv_ == nullptr && !plain_) {
        event_loop& loop = get_running_loop();
        detail::io_context& ctx = detail::io_context_of(loop);
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
                throw_errno(-res, "recv");
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
        throw_errno(-res, "recv");
    }
    co_return static_cast<std::size_t>(res);
}

task<std::string> socket_stream::read_exactly(std::size_t n) {
    std::string out(n, '\0');
    std::size_t have = 0;
    while (have < n) {
        std::size_t k = 0;
        try {
            k = co_await read_some(std::span<char>(out.data() + have, n - have));
        } catch (...) {
            // Cancelled or failed midway: keep what arrived for the next read
            // (read_some drained the read-ahead before touching the socket),
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

task<std::string> socket_stream::read_until(std::string delimiter, std::size_t limit) {
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

task<> socket_stream::write_all(std::span<const std::byte> bytes) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        int res = co_await detail::closable_op(&detail::prep_send,
                                               {.fd = fd_,
                                                .addr = const_cast<std::byte*>(bytes.data() + done),
                                                .len = io_len(bytes.size() - done),
                                                .flags = MSG_NOSIGNAL},
                                               writing_);
        if (res < 0) {
            throw_errno(-res, "send");
        }
        done += static_cast<std::size_t>(res);
    }
}

task<> socket_stream::write_all(std::string_view bytes) {
    return write_all(detail::readable_bytes(bytes));
}

} // namespace corio
