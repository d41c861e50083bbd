// Sockets on io_uring: endpoint, socket_stream, tcp/unix streams and listeners, UDP.

#include "io_context.hpp"

#include <corio/detail/io_ops.hpp>
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

namespace {

[[noreturn]] void throw_errno(int err, const char* what) {
    throw std::system_error(err, std::system_category(), what);
}

constexpr std::size_t max_io = std::size_t{1} << 30;

std::uint32_t io_len(std::size_t n) noexcept {
    return static_cast<std::uint32_t>(std::min(n, max_io));
}

// Hosts the synchronous bind() calls accept without resolving.
endpoint bind_endpoint(std::string_view host, std::uint16_t port) {
    if (host.empty()) {
        host = "0.0.0.0";
    } else if (host == "localhost") {
        host = "127.0.0.1";
    }
    std::optional<endpoint> ep = endpoint::parse(host, port);
    if (!ep) {
        throw std::invalid_argument(
            "corio: bind needs a numeric address, \"localhost\" or \"\" (got '" +
            std::string(host) + "'); resolve() names first");
    }
    return *ep;
}

int open_socket(int family, int type) {
    int fd = ::socket(family, type | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        throw_errno(errno, "socket");
    }
    return fd;
}

void set_int_option(int fd, int level, int name, int value, const char* what) {
    if (::setsockopt(fd, level, name, &value, sizeof value) != 0) {
        throw_errno(errno, what);
    }
}

int bound_socket(const endpoint& local, int type, bool reuse) {
    int fd = open_socket(local.family(), type);
    try {
        if (reuse && local.family() != AF_UNIX) {
            set_int_option(fd, SOL_SOCKET, SO_REUSEADDR, 1, "setsockopt");
        }
        if (::bind(fd, local.data(), local.size()) != 0) {
            throw_errno(errno, "bind");
        }
    } catch (...) {
        ::close(fd);
        throw;
    }
    return fd;
}

int listening_socket(const endpoint& local, int backlog, bool reuse) {
    int fd = bound_socket(local, SOCK_STREAM, reuse);
    if (::listen(fd, backlog) != 0) {
        int e = errno;
        ::close(fd);
        throw_errno(e, "listen");
    }
    return fd;
}

endpoint socket_name(int fd, bool peer) {
    endpoint ep;
    ::socklen_t len = endpoint::capacity();
    int rc = peer ? ::getpeername(fd, ep.data(), &len) : ::getsockname(fd, ep.data(), &len);
    if (rc != 0) {
        throw_errno(errno, peer ? "getpeername" : "getsockname");
    }
    ep.resize(len);
    return ep;
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
    : error(std::move(message)), consumed_(consumed) {}

// ---- endpoint --------------------------------------------------------------------------

endpoint::endpoint() noexcept : storage_{} {
    storage_.ss_family = AF_UNSPEC;
}

endpoint::endpoint(const ::sockaddr* address, ::socklen_t size) noexcept : storage_{} {
    size_ = std::min<::socklen_t>(size, sizeof storage_);
    std::memcpy(&storage_, address, size_);
}

std::optional<endpoint> endpoint::parse(std::string_view address, std::uint16_t port) {
    std::string text(address);
    if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
        text = text.substr(1, text.size() - 2);
    }
    endpoint ep;
    sockaddr_in v4{};
    if (::inet_pton(AF_INET, text.c_str(), &v4.sin_addr) == 1) {
        v4.sin_family = AF_INET;
        v4.sin_port = htons(port);
        std::memcpy(&ep.storage_, &v4, sizeof v4);
        ep.size_ = sizeof v4;
        return ep;
    }
    sockaddr_in6 v6{};
    std::string scope;
    if (auto pct = text.find('%'); pct != std::string::npos) {
        scope = text.substr(pct + 1);
        text.resize(pct);
    }
    if (::inet_pton(AF_INET6, text.c_str(), &v6.sin6_addr) == 1) {
        v6.sin6_family = AF_INET6;
        v6.sin6_port = htons(port);
        if (!scope.empty()) {
            unsigned idx = ::if_nametoindex(scope.c_str());
            if (idx == 0) {
                return std::nullopt;
            }
            v6.sin6_scope_id = idx;
        }
        std::memcpy(&ep.storage_, &v6, sizeof v6);
        ep.size_ = sizeof v6;
        return ep;
    }
    return std::nullopt;
}

endpoint endpoint::unix_path(std::string_view path) {
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof un.sun_path) {
        throw std::invalid_argument("corio: bad Unix socket path '" + std::string(path) + "'");
    }
    std::memcpy(un.sun_path, path.data(), path.size());
    if (path.front() == '@') {
        un.sun_path[0] = '\0'; // abstract namespace: no terminator, exact length
    }
    auto len = static_cast<::socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                        (path.front() == '@' ? 0 : 1));
    return endpoint(reinterpret_cast<const ::sockaddr*>(&un), len);
}

std::string endpoint::address() const {
    char buf[INET6_ADDRSTRLEN] = {};
    switch (family()) {
    case AF_INET:
        ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf,
                    sizeof buf);
        return buf;
    case AF_INET6:
        ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf,
                    sizeof buf);
        return buf;
    case AF_UNIX: {
        const auto* un = reinterpret_cast<const sockaddr_un*>(&storage_);
        std::size_t n =
            size_ > offsetof(sockaddr_un, sun_path) ? size_ - offsetof(sockaddr_un, sun_path) : 0;
        if (n == 0) {
            return {};
        }
        if (un->sun_path[0] == '\0') {
            return "@" + std::string(un->sun_path + 1, n - 1);
        }
        return std::string(un->sun_path, ::strnlen(un->sun_path, n));
    }
    default:
        return {};
    }
}

std::uint16_t endpoint::port() const noexcept {
    switch (family()) {
    case AF_INET:
        return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
    case AF_INET6:
        return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
    default:
        return 0;
    }
}

std::string endpoint::to_string() const {
    switch (family()) {
    case AF_INET:
        return address() + ":" + std::to_string(port());
    case AF_INET6:
        return "[" + address() + "]:" + std::to_string(port());
    default:
        return address();
    }
}

bool operator==(const endpoint& a, const endpoint& b) noexcept {
    return a.size_ == b.size_ && std::memcmp(&a.storage_, &b.storage_, a.size_) == 0;
}

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
    // A request in flight holds the file: closing the descriptor alone would not
    // end it. Cancelled, it ends with EBADF. The kernel drops its reference only
    // when the cancellation completes (a later loop iteration), so the connection
    // is shut down here: the peer sees end of stream when close() returns.
    const bool in_kernel = recv_ != nullptr || reading_ != nullptr || writing_ != nullptr;
    if (recv_ != nullptr) {
        std::exchange(recv_, nullptr)->orphan();
    }
    detail::closable_op::abort(reading_);
    detail::closable_op::abort(writing_);
    if (fd_ >= 0) {
        if (in_kernel) {
            ::shutdown(fd_, SHUT_RDWR);
        }
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

// ---- tcp_stream / unix_stream -------------------------------------------------------------

task<tcp_stream> tcp_stream::connect(std::string host, std::uint16_t port) {
    std::vector<endpoint> peers;
    if (std::optional<endpoint> ep = endpoint::parse(host, port)) {
        peers.push_back(*ep);
    } else {
        peers = co_await resolve(host, std::to_string(port));
    }
    std::exception_ptr last;
    for (const endpoint& peer : peers) {
        try {
            co_return co_await connect(peer);
        } catch (const std::system_error&) {
            last = std::current_exception();
        }
    }
    if (last) {
        std::rethrow_exception(last);
    }
    throw_errno(EHOSTUNREACH, "connect");
}

task<tcp_stream> tcp_stream::connect(endpoint peer) {
    tcp_stream stream(open_socket(peer.family(), SOCK_STREAM));
    int res = co_await detail::io_op(
        &detail::prep_connect,
        {.fd = stream.fd(), .addr = const_cast<::sockaddr*>(peer.data()), .len = peer.size()});
    if (res < 0) {
        throw_errno(-res, "connect");
    }
    stream.set_nodelay(true);
    co_return stream;
}

void tcp_stream::set_nodelay(bool on) {
    set_int_option(fd(), IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0, "setsockopt");
}

task<unix_stream> unix_stream::connect(std::string path) {
    endpoint peer = endpoint::unix_path(path);
    unix_stream stream(open_socket(AF_UNIX, SOCK_STREAM));
    int res = co_await detail::io_op(
        &detail::prep_connect,
        {.fd = stream.fd(), .addr = const_cast<::sockaddr*>(peer.data()), .len = peer.size()});
    if (res < 0) {
        throw_errno(-res, "connect");
    }
    co_return stream;
}

std::pair<unix_stream, unix_stream> unix_stream::pair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        throw_errno(errno, "socketpair");
    }
    return {unix_stream(fds[0]), unix_stream(fds[1])};
}

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
        io_context& ctx = io_context_of(loop);
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

tcp_listener tcp_listener::bind(std::string_view host, std::uint16_t port, int backlog,
                                listener_options options) {
    return bind(bind_endpoint(host, port), backlog, options);
}

tcp_listener tcp_listener::bind(const endpoint& local, int backlog, listener_options options) {
    tcp_listener l;
    l.acceptor_ = detail::socket_acceptor(listening_socket(local, backlog, options.reuse_address),
                                          options.multishot);
    return l;
}

task<tcp_stream> tcp_listener::accept() {
    int fd = co_await acceptor_.accept_fd();
    tcp_stream stream(fd);
    stream.set_nodelay(true);
    co_return stream;
}

std::uint16_t tcp_listener::local_port() const {
    return is_open() ? local_endpoint().port() : 0;
}

endpoint tcp_listener::local_endpoint() const {
    return socket_name(acceptor_.fd(), false);
}

unix_listener::unix_listener(unix_listener&& other) noexcept
    : acceptor_(std::move(other.acceptor_)), path_(std::move(other.path_)) {
    other.path_.clear();
}

unix_listener& unix_listener::operator=(unix_listener&& other) noexcept {
    if (this != &other) {
        close();
        acceptor_ = std::move(other.acceptor_);
        path_ = std::move(other.path_);
        other.path_.clear();
    }
    return *this;
}

unix_listener::~unix_listener() {
    close();
}

unix_listener unix_listener::bind(std::string path, int backlog, listener_options options) {
    endpoint local = endpoint::unix_path(path);
    if (path.front() != '@') {
        struct stat st {};
        if (::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) {
            ::unlink(path.c_str()); // a stale socket from an earlier run
        }
    }
    unix_listener l;
    l.acceptor_ =
        detail::socket_acceptor(listening_socket(local, backlog, false), options.multishot);
    l.path_ = std::move(path);
    return l;
}

task<unix_stream> unix_listener::accept() {
    int fd = co_await acceptor_.accept_fd();
    co_return unix_stream(fd);
}

void unix_listener::close() noexcept {
    bool was_open = acceptor_.fd() >= 0;
    acceptor_.close();
    if (was_open && !path_.empty() && path_.front() != '@') {
        ::unlink(path_.c_str());
    }
    path_.clear();
}

// ---- udp_socket -----------------------------------------------------------------------------

udp_socket::udp_socket(udp_socket&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), receiving_(std::exchange(other.receiving_, nullptr)),
      sending_(std::exchange(other.sending_, nullptr)) {
    detail::closable_op::relink(receiving_);
    detail::closable_op::relink(sending_);
}

udp_socket& udp_socket::operator=(udp_socket&& other) noexcept {
    if (this != &other) {
        close();
        fd_ = std::exchange(other.fd_, -1);
        receiving_ = std::exchange(other.receiving_, nullptr);
        sending_ = std::exchange(other.sending_, nullptr);
        detail::closable_op::relink(receiving_);
        detail::closable_op::relink(sending_);
    }
    return *this;
}

udp_socket::~udp_socket() {
    close();
}

void udp_socket::close() noexcept {
    detail::closable_op::abort(receiving_); // see socket_stream::close()
    detail::closable_op::abort(sending_);
    if (fd_ >= 0) {
        ::close(std::exchange(fd_, -1));
    }
}

udp_socket udp_socket::bind(std::string_view host, std::uint16_t port) {
    return bind(bind_endpoint(host, port));
}

udp_socket udp_socket::bind(const endpoint& local) {
    return udp_socket(bound_socket(local, SOCK_DGRAM, false));
}

std::uint16_t udp_socket::local_port() const {
    return fd_ >= 0 ? local_endpoint().port() : 0;
}

endpoint udp_socket::local_endpoint() const {
    return socket_name(fd_, false);
}

task<std::size_t> udp_socket::send_to(std::span<const std::byte> bytes, std::string host,
                                      std::uint16_t port) {
    std::optional<endpoint> peer = endpoint::parse(host, port);
    if (!peer) {
        int family = local_endpoint().family();
        std::vector<endpoint> found = co_await resolve(host, std::to_string(port));
        for (const endpoint& ep : found) {
            if (ep.family() == family) {
                peer = ep;
                break;
            }
        }
        if (!peer) {
            throw_errno(EAFNOSUPPORT, "sendmsg");
        }
    }
    co_return co_await send_to(bytes, *peer);
}

task<std::size_t> udp_socket::send_to(std::string_view bytes, std::string host,
                                      std::uint16_t port) {
    return send_to(detail::readable_bytes(bytes), std::move(host), port);
}

task<std::size_t> udp_socket::send_to(std::string_view bytes, endpoint peer) {
    return send_to(detail::readable_bytes(bytes), std::move(peer));
}

task<std::size_t> udp_socket::send_to(std::span<const std::byte> bytes, endpoint peer) {
    ::iovec iov{const_cast<std::byte*>(bytes.data()), bytes.size()};
    ::msghdr msg{};
    msg.msg_name = const_cast<::sockaddr*>(peer.data());
    msg.msg_namelen = peer.size();
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    int res = co_await detail::closable_op(
        &detail::prep_sendmsg, {.fd = fd_, .addr = &msg, .flags = MSG_NOSIGNAL}, sending_);
    if (res < 0) {
        throw_errno(-res, "sendmsg");
    }
    co_return static_cast<std::size_t>(res);
}

task<datagram> udp_socket::recv_from(std::span<std::byte> buffer) {
    endpoint sender;
    ::iovec iov{buffer.data(), buffer.size()};
    ::msghdr msg{};
    msg.msg_name = sender.data();
    msg.msg_namelen = endpoint::capacity();
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    int res =
        co_await detail::closable_op(&detail::prep_recvmsg, {.fd = fd_, .addr = &msg}, receiving_);
    if (res < 0) {
        throw_errno(-res, "recvmsg");
    }
    sender.resize(msg.msg_namelen);
    co_return datagram{static_cast<std::size_t>(res), sender};
}

task<datagram> udp_socket::recv_from(std::span<char> buffer) {
    return recv_from(detail::writable_bytes(buffer));
}

} // namespace corio
