#pragma once
// The listening socket of the raw echo servers: 127.0.0.1:<port>, port 0 picks one;
// prints "PORT <n>" for the runner.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>

namespace bench {

inline int listen_on_loopback(std::uint16_t port, int extra_flags) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | extra_flags, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(fd, 1024) != 0) {
        std::perror("listen");
        std::exit(2);
    }
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    std::printf("PORT %u\n", static_cast<unsigned>(ntohs(addr.sin_port)));
    std::fflush(stdout);
    return fd;
}

/// TCP_NODELAY on an accepted connection, as corio and asyncio set it: without it a
/// message echoed in several writes (16 KiB through a 4 KiB buffer) waits for the
/// peer's delayed ACK (Nagle), about 40 ms per round trip.
inline void no_delay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

} // namespace bench
