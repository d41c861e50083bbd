// H5 peer: a raw epoll echo server (level-triggered, non-blocking sockets, MSG_NOSIGNAL
// sends: a client that closes mid-echo must not kill it with SIGPIPE; a short write
// parks the rest and waits for EPOLLOUT). Prints "PORT <n>", serves until killed.
// Usage: h5_epoll_server [--port 0]
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

#include "../report.hpp"
#include "listen_socket.hpp"

namespace {

struct connection {
    int fd;
    unsigned len = 0;
    unsigned sent = 0;
    char buffer[4096];
};

int epoll_fd;

void drop(connection* c) {
    epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, nullptr);
    close(c->fd);
    delete c;
}

void watch(connection* c, std::uint32_t events, int op) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = c;
    epoll_ctl(epoll_fd, op, c->fd, &ev);
}

enum class flushed { all, pending, failed };

// Writes what is pending.
flushed flush(connection* c) {
    while (c->sent < c->len) {
        ssize_t w = send(c->fd, c->buffer + c->sent, c->len - c->sent, MSG_NOSIGNAL);
        if (w < 0) {
            return errno == EAGAIN || errno == EWOULDBLOCK ? flushed::pending : flushed::failed;
        }
        c->sent += static_cast<unsigned>(w);
    }
    return flushed::all;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    bench::raise_fd_limit(); // 1,000 connections
    const int listen_fd = bench::listen_on_loopback(
        static_cast<std::uint16_t>(opt.get_int("port", 0)), SOCK_NONBLOCK);
    epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    epoll_event lev{};
    lev.events = EPOLLIN;
    lev.data.ptr = nullptr;
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &lev);

    epoll_event events[256];
    for (;;) {
        const int n = epoll_wait(epoll_fd, events, 256, -1);
        for (int i = 0; i < n; ++i) {
            auto* c = static_cast<connection*>(events[i].data.ptr);
            if (c == nullptr) {
                for (;;) {
                    int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0) {
                        break;
                    }
                    bench::no_delay(fd);
                    auto* fresh = new connection{};
                    fresh->fd = fd;
                    watch(fresh, EPOLLIN, EPOLL_CTL_ADD);
                }
                continue;
            }
            if (c->sent < c->len) {
                const flushed f = flush(c);
                if (f == flushed::failed) {
                    drop(c);
                }
                if (f == flushed::all) {
                    watch(c, EPOLLIN, EPOLL_CTL_MOD);
                }
                continue;
            }
            ssize_t r = read(c->fd, c->buffer, sizeof c->buffer);
            if (r == 0 || (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) {
                drop(c);
                continue;
            }
            if (r < 0) {
                continue;
            }
            c->len = static_cast<unsigned>(r);
            c->sent = 0;
            const flushed f = flush(c);
            if (f == flushed::failed) {
                drop(c);
            }
            if (f == flushed::pending) {
                watch(c, EPOLLOUT, EPOLL_CTL_MOD);
            }
        }
    }
}
