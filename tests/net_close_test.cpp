// close() takes effect when it returns (issue 12, defect 8): with a read, a write or
// an accept in flight, the kernel holds the file until the cancellation completes on
// a later loop iteration, yet the peer must see end of stream (and a listener must
// refuse connections) at once, without the loop running again.
#include "loop_steps.hpp"

#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <system_error>

namespace {

// A plain listening socket on 127.0.0.1 (blocking), and its port.
struct raw_listener {
    int fd = -1;
    std::uint16_t port = 0;
    raw_listener() {
        fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
        REQUIRE(::listen(fd, 8) == 0);
        socklen_t len = sizeof a;
        REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);
        port = ntohs(a.sin_port);
    }
    raw_listener(const raw_listener&) = delete;
    raw_listener& operator=(const raw_listener&) = delete;
    ~raw_listener() { ::close(fd); }
};

// What the peer reads without waiting: 0 = end of stream, -errno otherwise.
long peek_peer(int fd) {
    char c = 0;
    const ssize_t n = ::recv(fd, &c, 1, MSG_DONTWAIT);
    return n >= 0 ? static_cast<long>(n) : -static_cast<long>(errno);
}

corio::task<> read_one(corio::tcp_stream& s, int& error) {
    char buf[16];
    try {
        (void)co_await s.read_some(std::span<char>(buf));
    } catch (const std::system_error& e) {
        error = e.code().value();
    }
}

} // namespace

TEST_CASE("tcp_stream::close() with a read in flight: the peer reads end of stream when close() "
          "returns",
          "[net][close]") {
    raw_listener server;
    corio::run([](raw_listener& srv) -> corio::task<> {
        corio::tcp_stream client = co_await corio::tcp_stream::connect("127.0.0.1", srv.port);
        const int peer = ::accept4(srv.fd, nullptr, nullptr, SOCK_CLOEXEC);
        REQUIRE(peer >= 0);
        int error = 0;
        auto reader = corio::create_task(read_one(client, error));
        co_await corio_test::in_kernel(); // the receive is in the kernel
        REQUIRE_FALSE(reader.done());
        CHECK(peek_peer(peer) == -EAGAIN);

        client.close();
        CHECK_FALSE(client.is_open());
        CHECK(peek_peer(peer) == 0); // before the loop runs again

        co_await reader;
        CHECK(error == EBADF);
        ::close(peer);
    }(server));
}

TEST_CASE("tcp_listener::close() with an accept in flight refuses connections when it returns",
          "[net][close]") {
    corio::run([]() -> corio::task<> {
        auto listener = corio::tcp_listener::bind("127.0.0.1", 0);
        const std::uint16_t port = listener.local_port();
        auto acceptor = corio::create_task([](corio::tcp_listener& l) -> corio::task<int> {
            try {
                (void)co_await l.accept();
                co_return 0;
            } catch (const std::system_error& e) {
                co_return e.code().value();
            }
        }(listener));
        co_await corio_test::in_kernel();
        REQUIRE_FALSE(acceptor.done());

        listener.close();
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        a.sin_port = htons(port);
        const int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
        const int connect_errno = rc == 0 ? 0 : errno;
        ::close(fd);
        CHECK(rc == -1);
        CHECK(connect_errno == ECONNREFUSED);

        CHECK((co_await acceptor) != 0);
    }());
}
