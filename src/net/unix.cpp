// Unix-domain sockets: unix_stream (connect, pair) and unix_listener.

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

using detail::listening_socket;
using detail::open_socket;
using detail::throw_errno;

// ---- unix_stream ----------------------------------------------------------------------------

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

} // namespace corio
