// resolve(): getaddrinfo on the default blocking pool (to_thread), never on the loop.

#include <corio/net.hpp>
#include <corio/to_thread.hpp>

#include <netdb.h>
#include <sys/socket.h>

#include <cerrno>
#include <stdexcept>
#include <utility>
#include <system_error>

namespace corio {

namespace {

struct lookup_result {
    int status = 0; // getaddrinfo's return value
    int err = 0;    // errno, for EAI_SYSTEM
    std::vector<endpoint> endpoints;
};

lookup_result lookup(const std::string& host, const std::string& service) {
    lookup_result out;
    ::addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    ::addrinfo* list = nullptr;
    out.status = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                               service.empty() ? nullptr : service.c_str(), &hints, &list);
    if (out.status == EAI_SYSTEM) {
        out.err = errno;
    }
    if (out.status == EAI_NONAME || out.status == EAI_ADDRFAMILY) {
        // AI_ADDRCONFIG hides loopback-only families on hosts without other
        // addresses (containers): ask once more without it.
        hints.ai_flags = 0;
        out.status = ::getaddrinfo(host.empty() ? nullptr : host.c_str(),
                                   service.empty() ? nullptr : service.c_str(), &hints, &list);
    }
    if (out.status == 0) {
        for (::addrinfo* ai = list; ai != nullptr; ai = ai->ai_next) {
            endpoint ep(ai->ai_addr, ai->ai_addrlen);
            bool seen = false;
            for (const endpoint& e : out.endpoints) {
                seen = seen || e == ep;
            }
            if (!seen) {
                out.endpoints.push_back(ep);
            }
        }
        ::freeaddrinfo(list);
    }
    return out;
}

} // namespace

task<std::vector<endpoint>> resolve(std::string host, std::string service) {
    lookup_result r = co_await to_thread(&lookup, std::move(host), std::move(service));
    if (r.status == EAI_SYSTEM) {
        throw std::system_error(r.err, std::system_category(), "getaddrinfo");
    }
    if (r.status != 0) {
        throw error(std::string("corio: getaddrinfo: ") + ::gai_strerror(r.status));
    }
    co_return std::move(r.endpoints);
}

namespace {

struct name_result {
    int status = 0;
    int err = 0;
    std::string host;
    std::string service;
};

name_result reverse_lookup(const endpoint& address, int flags) {
    name_result out;
    char host[NI_MAXHOST] = {};
    char service[NI_MAXSERV] = {};
    out.status = ::getnameinfo(address.data(), address.size(), host, sizeof host, service,
                               sizeof service, flags);
    if (out.status == EAI_SYSTEM) {
        out.err = errno;
    }
    out.host = host;
    out.service = service;
    return out;
}

} // namespace

task<std::pair<std::string, std::string>> getnameinfo(endpoint address, int flags) {
    if (address.family() != AF_INET && address.family() != AF_INET6) {
        throw std::invalid_argument("corio: getnameinfo needs an IPv4 or IPv6 endpoint");
    }
    name_result r = co_await to_thread(&reverse_lookup, address, flags);
    if (r.status == EAI_SYSTEM) {
        throw std::system_error(r.err, std::system_category(), "getnameinfo");
    }
    if (r.status != 0) {
        throw error(std::string("corio: getnameinfo: ") + ::gai_strerror(r.status));
    }
    co_return std::pair<std::string, std::string>(std::move(r.host), std::move(r.service));
}

} // namespace corio
