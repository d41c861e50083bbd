// Plain socket calls shared by the protocol files of src/net/.

#include "net/socket_ops.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>

namespace corio::detail {

[[noreturn]] void throw_errno(int err, const char* what) {
    throw std::system_error(err, std::system_category(), what);
}

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

} // namespace corio::detail
