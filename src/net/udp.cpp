// UDP: udp_socket.

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

using detail::bind_endpoint;
using detail::bound_socket;
using detail::socket_name;
using detail::throw_errno;

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
    return send_to(detail::readable_bytes(bytes), peer);
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
