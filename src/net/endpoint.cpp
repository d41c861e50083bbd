// endpoint: an IPv4, IPv6 or Unix-domain socket address.

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

} // namespace corio
