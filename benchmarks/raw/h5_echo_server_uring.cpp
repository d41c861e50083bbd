// H5 physical limit: a raw liburing echo server: accept (TCP_NODELAY, as corio sets
// it), then per connection a recv followed by a send of what arrived (a short send
// sends the rest), in a loop; all completions of one io_uring_enter handled before
// the next. Prints "PORT <n>", serves until killed.
// Usage: h5_raw_uring_server [--port 0]
#include <liburing.h>
#include <unistd.h>

#include <cstdint>

#include "../report.hpp"
#include "listen_socket.hpp"
#include "ring_setup.hpp"

namespace {

enum op_kind : std::uintptr_t { op_accept = 0, op_recv = 1, op_send = 2 };

struct connection {
    int fd;
    unsigned len = 0;
    unsigned sent = 0;
    alignas(16) char buffer[4096];
};

io_uring ring;

io_uring_sqe* sqe_for(connection* c, op_kind kind) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    while (sqe == nullptr) {
        io_uring_submit(&ring);
        sqe = io_uring_get_sqe(&ring);
    }
    io_uring_sqe_set_data64(sqe, reinterpret_cast<std::uintptr_t>(c) | kind);
    return sqe;
}

void arm_accept(int listen_fd) {
    io_uring_prep_accept(sqe_for(nullptr, op_accept), listen_fd, nullptr, nullptr, 0);
}
void arm_recv(connection* c) {
    io_uring_prep_recv(sqe_for(c, op_recv), c->fd, c->buffer, sizeof c->buffer, 0);
}
void arm_send(connection* c) {
    io_uring_prep_send(sqe_for(c, op_send), c->fd, c->buffer + c->sent, c->len - c->sent,
                       MSG_NOSIGNAL);
}
void drop(connection* c) {
    close(c->fd);
    delete c;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    bench::raise_fd_limit(); // 1,000 connections
    const int listen_fd =
        bench::listen_on_loopback(static_cast<std::uint16_t>(opt.get_int("port", 0)), 0);
    bench::init_ring(ring, 1024);
    arm_accept(listen_fd);
    for (;;) {
        io_uring_submit_and_wait(&ring, 1);
        io_uring_cqe* cqe = nullptr;
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            ++seen;
            const std::uintptr_t data = io_uring_cqe_get_data64(cqe);
            auto* c = reinterpret_cast<connection*>(data & ~std::uintptr_t{3});
            const int res = cqe->res;
            switch (static_cast<op_kind>(data & 3)) {
            case op_accept:
                if (res >= 0) {
                    bench::no_delay(res);
                    auto* fresh = new connection{};
                    fresh->fd = res;
                    arm_recv(fresh);
                }
                arm_accept(listen_fd);
                break;
            case op_recv:
                if (res <= 0) {
                    drop(c);
                } else {
                    c->len = static_cast<unsigned>(res);
                    c->sent = 0;
                    arm_send(c);
                }
                break;
            case op_send:
                if (res < 0) {
                    drop(c);
                } else {
                    c->sent += static_cast<unsigned>(res);
                    if (c->sent < c->len) {
                        arm_send(c);
                    } else {
                        arm_recv(c);
                    }
                }
                break;
            }
        }
        io_uring_cq_advance(&ring, seen);
    }
}
