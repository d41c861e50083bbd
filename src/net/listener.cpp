// socket_acceptor: what tcp_listener and unix_listener share (multishot accept on the ring, or one
// accept at a time).

#include "net/socket_ops.hpp"
#include "net/ring_socket_state.hpp"

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

using detail::throw_errno;

// ---- listeners ---------------------------------------------------------------------------------

namespace detail {

socket_acceptor::socket_acceptor(socket_acceptor&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), multishot_(other.multishot_),
      state_(std::exchange(other.state_, nullptr)),
      accepting_(std::exchange(other.accepting_, nullptr)) {
    closable_op::relink(accepting_);
}

socket_acceptor& socket_acceptor::operator=(socket_acceptor&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = std::exchange(other.fd_, -1);
        multishot_ = other.multishot_;
        state_ = std::exchange(other.state_, nullptr);
        accepting_ = std::exchange(other.accepting_, nullptr);
        closable_op::relink(accepting_);
    }
    return *this;
}

socket_acceptor::~socket_acceptor() {
    close();
}

void socket_acceptor::close() noexcept {
    const bool in_kernel = state_ != nullptr || accepting_ != nullptr;
    if (state_ != nullptr) {
        std::exchange(state_, nullptr)->orphan();
    }
    closable_op::abort(accepting_); // see socket_stream::close()
    if (fd_ >= 0) {
        if (in_kernel) {
            ::shutdown(fd_, SHUT_RDWR); // stops listening now, not when the cancel lands
        }
        ::close(std::exchange(fd_, -1));
    }
}

task<int> socket_acceptor::accept_fd() {
    if (fd_ < 0) {
        throw_errno(EBADF, "accept");
    }
    if (state_ == nullptr && multishot_) {
        event_loop& loop = get_running_loop();
        ring_socket_state& ctx = socket_state_of(loop);
        if (ctx.multishot_accept()) {
            state_ = new accept_state(ctx, loop, fd_);
        } else {
            multishot_ = false;
        }
    }
    int res = 0;
    if (state_ != nullptr) {
        res = state_->take();
        if (res == -EAGAIN) {
            state_->start();
            res = co_await multishot_awaiter(*state_, {});
        }
    } else {
        res = co_await closable_op(&prep_accept, {.fd = fd_}, accepting_);
    }
    if (res < 0) {
        throw_errno(-res, "accept");
    }
    co_return res;
}

} // namespace detail

} // namespace corio
