// TCP: tcp_stream (connect, options) and tcp_listener.

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
using detail::listening_socket;
using detail::open_socket;
using detail::set_int_option;
using detail::socket_name;
using detail::throw_errno;

// ---- tcp_stream ------------------------------------------------------------------------------

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

} // namespace corio
