// Sockets on io_uring: TCP streams, listeners and servers, UDP, Unix sockets,
// resolve. Loopback only. Tests that matter for both the fast paths (multishot
// accept, provided-buffer receive) and the plain ones run once per mode: the
// environment variable CORIO_IO_FALLBACK=1 forces the plain paths on loops that
// start their socket I/O while it is set.
#include "loop_steps.hpp"

#include <corio/combinators.hpp>
#include <corio/corio.hpp>
#include "net/io_features.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Selects the fast or the plain I/O paths for loops created while it lives.
struct io_mode {
    explicit io_mode(bool plain) {
        if (plain) {
            ::setenv("CORIO_IO_FALLBACK", "1", 1);
        } else {
            ::unsetenv("CORIO_IO_FALLBACK");
        }
    }
    ~io_mode() { ::unsetenv("CORIO_IO_FALLBACK"); }
    io_mode(const io_mode&) = delete;
    io_mode& operator=(const io_mode&) = delete;
};

int errno_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::system_error& se) {
        return se.code().value();
    } catch (...) {
        return -1;
    }
}

using corio_test::in_kernel;
using corio_test::yield_until;

// Bytes queued in the kernel for reading on `fd` (FIONREAD).
int unread(int fd) {
    int n = -1;
    REQUIRE(::ioctl(fd, FIONREAD, &n) == 0);
    return n;
}

// The errno of the std::system_error a finished future holds; 0 if it holds a
// value, -1 for any other outcome (timeout_error from a bounding wait_for too).
template <class Future>
corio::task<int> error_of(Future f, const char* operation) {
    auto settle = [](Future g) -> corio::task<> { (void)co_await g; };
    try {
        co_await corio::wait_for(settle(f), 10s);
    } catch (const std::system_error& e) {
        CHECK(std::string(e.what()).rfind(operation, 0) == 0);
        co_return e.code().value();
    } catch (...) {
        co_return -1;
    }
    co_return 0;
}

bool kernel_at_least(int major, int minor) {
    ::utsname u{};
    int ma = 0;
    int mi = 0;
    if (::uname(&u) != 0 || std::sscanf(u.release, "%d.%d", &ma, &mi) != 2) {
        return false;
    }
    return ma > major || (ma == major && mi >= minor);
}

// A connected TCP pair on 127.0.0.1: {client, server side}.
corio::task<std::pair<corio::tcp_stream, corio::tcp_stream>> tcp_pair() {
    corio::tcp_listener l = corio::tcp_listener::bind("127.0.0.1", 0);
    corio::tcp_stream client = co_await corio::tcp_stream::connect("127.0.0.1", l.local_port());
    corio::tcp_stream server = co_await l.accept();
    co_return std::pair{std::move(client), std::move(server)};
}

void raise_fd_limit() {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
}

// A position-sensitive checksum of a byte stream fed in arbitrary pieces: a
// multiply-xor hash over 8-byte words (cheap enough for 100 MB in a debug build).
struct stream_sum {
    std::uint64_t h = 1469598103934665603ULL;
    std::uint64_t word = 0;
    unsigned have = 0;
    void add(std::span<const std::byte> bytes) {
        std::size_t i = 0;
        while (have != 0 && i < bytes.size()) {
            push_byte(bytes[i++]);
        }
        for (; i + 8 <= bytes.size(); i += 8) {
            std::uint64_t w;
            std::memcpy(&w, bytes.data() + i, 8);
            h = (h ^ w) * 1099511628211ULL;
        }
        for (; i < bytes.size(); ++i) {
            push_byte(bytes[i]);
        }
    }
    void push_byte(std::byte b) {
        word |= static_cast<std::uint64_t>(b) << (8 * have);
        if (++have == 8) {
            h = (h ^ word) * 1099511628211ULL;
            word = 0;
            have = 0;
        }
    }
    std::uint64_t value() const { return (h ^ word ^ have) * 1099511628211ULL; }
};

corio::task<> echo_handler(corio::tcp_stream s) {
    std::array<char, 4096> buf;
    for (;;) {
        std::size_t n = co_await s.read_some(std::span<char>(buf));
        if (n == 0) {
            co_return;
        }
        co_await s.write_all(std::string_view(buf.data(), n));
    }
}

} // namespace

TEST_CASE("the fast paths are on where the kernel has them and off in fallback mode",
          "[net][features]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    corio::event_loop loop;
    corio::detail::io_features f = corio::detail::io_features_of(loop);
    if (plain) {
        CHECK_FALSE(f.multishot_accept);
        CHECK_FALSE(f.buffer_receive);
    } else if (kernel_at_least(6, 0)) {
        CHECK(f.multishot_accept);
        CHECK(f.buffer_receive);
    } else {
        WARN("kernel older than 6.0; multishot accept: "
             << f.multishot_accept << ", provided-buffer receive: " << f.buffer_receive);
    }
}

TEST_CASE("connecting to a port nobody listens on fails with ECONNREFUSED", "[net][error]") {
    auto body = []() -> corio::task<int> {
        std::uint16_t port = 0;
        {
            corio::tcp_listener l = corio::tcp_listener::bind("127.0.0.1", 0);
            port = l.local_port();
        } // closed: nothing listens there now
        try {
            co_await corio::tcp_stream::connect("127.0.0.1", port);
        } catch (const std::system_error& e) {
            CHECK(std::string(e.what()).rfind("connect", 0) == 0);
            co_return e.code().value();
        }
        co_return 0;
    };
    CHECK(corio::run(body()) == ECONNREFUSED);
}

TEST_CASE("a TCP round trip over IPv4 echoes the bytes", "[net][echo]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<std::string> {
        auto [client, server] = co_await tcp_pair();
        co_await client.write_all("hello, corio");
        std::array<char, 64> buf;
        std::size_t n = co_await server.read_some(std::span<char>(buf));
        co_await server.write_all(std::string_view(buf.data(), n));
        co_return co_await client.read_exactly(n);
    };
    CHECK(corio::run(body()) == "hello, corio");
}

TEST_CASE("a TCP round trip over IPv6 echoes the bytes", "[net][echo][ipv6]") {
    auto body = []() -> corio::task<std::string> {
        corio::tcp_listener l = corio::tcp_listener::bind("::1", 0);
        CHECK(l.local_endpoint().family() == AF_INET6);
        corio::tcp_stream client = co_await corio::tcp_stream::connect("::1", l.local_port());
        corio::tcp_stream server = co_await l.accept();
        CHECK(server.remote_endpoint().address() == "::1");
        co_await client.write_all("six");
        co_return co_await server.read_exactly(3);
    };
    CHECK(corio::run(body()) == "six");
}

TEST_CASE("read_some returns 0 at the end of the stream, repeatedly", "[net][eof]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<> {
        auto [client, server] = co_await tcp_pair();
        co_await client.write_all("ab");
        client.shutdown_write();
        std::array<char, 8> buf;
        {
            auto got_ = co_await server.read_some(std::span<char>(buf));
            CHECK(got_ == 2);
        }
        {
            auto got_ = co_await server.read_some(std::span<char>(buf));
            CHECK(got_ == 0);
        }
        {
            auto got_ = co_await server.read_some(std::span<char>(buf));
            CHECK(got_ == 0);
        }
        // The other direction still works after shutdown_write.
        co_await server.write_all("back");
        {
            auto got_ = co_await client.read_exactly(4);
            CHECK(got_ == "back");
        }
    };
    corio::run(body());
}

TEST_CASE(
    "read_exactly at the end of the stream throws incomplete_read_error with the partial bytes",
    "[net][eof]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<> {
        auto [client, server] = co_await tcp_pair();
        co_await client.write_all("12345");
        client.close();
        {
            auto got_ = co_await server.read_exactly(2);
            CHECK(got_ == "12");
        }
        bool thrown = false;
        try {
            co_await server.read_exactly(10);
        } catch (const corio::incomplete_read_error& e) {
            thrown = true;
            CHECK(e.partial() == "345");
            CHECK(e.expected() == std::optional<std::size_t>(10));
        }
        CHECK(thrown);
    };
    corio::run(body());
}

TEST_CASE(
    "read_until keeps the delimiter and throws incomplete_read_error at the end of the stream",
    "[net][eof]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<> {
        auto [client, server] = co_await tcp_pair();
        co_await client.write_all("GET / HTTP/1.1\r\nHost: x\r\n\r\nbody-without-end");
        client.close();
        {
            auto got_ = co_await server.read_until("\r\n");
            CHECK(got_ == "GET / HTTP/1.1\r\n");
        }
        {
            auto got_ = co_await server.read_until("\r\n\r\n");
            CHECK(got_ == "Host: x\r\n\r\n");
        }
        bool thrown = false;
        try {
            co_await server.read_until("\n");
        } catch (const corio::incomplete_read_error& e) {
            thrown = true;
            CHECK(e.partial() == "body-without-end");
            CHECK_FALSE(e.expected().has_value());
        }
        CHECK(thrown);
        std::array<char, 4> buf;
        {
            auto got_ = co_await server.read_some(std::span<char>(buf));
            CHECK(got_ == 0);
        }
    };
    corio::run(body());
}

TEST_CASE("read_until past its limit throws limit_overrun_error and keeps the data",
          "[net][limit]") {
    auto body = []() -> corio::task<> {
        auto [client, server] = co_await tcp_pair();
        co_await client.write_all("0123456789\n");
        bool thrown = false;
        try {
            co_await server.read_until("\n", 5);
        } catch (const corio::limit_overrun_error& e) {
            thrown = true;
            CHECK(e.consumed() >= 5);
        }
        CHECK(thrown);
        {
            auto got_ = co_await server.read_until("\n", 64);
            CHECK(got_ == "0123456789\n"); // nothing was lost
        }
        CHECK_THROWS_AS(co_await server.read_until(""), std::invalid_argument);
    };
    corio::run(body());
}

TEST_CASE("read_some returns what read_until read ahead", "[net][buffer]") {
    auto body = []() -> corio::task<> {
        auto [client, server] = co_await tcp_pair();
        co_await client.write_all("line\nrest");
        client.shutdown_write();
        {
            auto got_ = co_await server.read_until("\n");
            CHECK(got_ == "line\n");
        }
        std::string rest;
        std::array<char, 2> buf; // smaller than what is buffered
        for (;;) {
            std::size_t n = co_await server.read_some(std::span<char>(buf));
            if (n == 0) {
                break;
            }
            rest.append(buf.data(), n);
        }
        CHECK(rest == "rest");
    };
    corio::run(body());
}

TEST_CASE("a peer reset during a read surfaces as ECONNRESET and the process lives",
          "[net][reset]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<int> {
        auto [client, server] = co_await tcp_pair();
        std::array<char, 16> buf;
        auto reader = corio::create_task(server.read_some(std::span<char>(buf)));
        co_await corio::yield_now(); // the receive is in flight
        ::linger lg{1, 0};           // close with RST
        REQUIRE(::setsockopt(client.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
        client.close();
        try {
            co_await reader;
        } catch (...) {
            co_return errno_of(std::current_exception());
        }
        co_return 0;
    };
    CHECK(corio::run(body()) == ECONNRESET);
}

TEST_CASE("a peer reset during a write surfaces as an error without SIGPIPE", "[net][reset]") {
    auto body = []() -> corio::task<int> {
        auto [client, server] = co_await tcp_pair();
        std::string chunk(1 << 20, 'x');
        auto writer =
            corio::create_task([](corio::tcp_stream& s, const std::string& c) -> corio::task<> {
                for (int i = 0; i < 256; ++i) {
                    co_await s.write_all(c); // fills the socket buffers, then blocks
                }
            }(server, chunk));
        std::array<char, 1024> buf;
        {
            auto got_ = co_await client.read_some(std::span<char>(buf));
            CHECK(got_ > 0); // the write is under way
        }
        ::linger lg{1, 0};
        REQUIRE(::setsockopt(client.fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
        client.close();
        try {
            co_await writer;
        } catch (...) {
            co_return errno_of(std::current_exception());
        }
        co_return 0;
    };
    int e = corio::run(body());
    CHECK((e == ECONNRESET || e == EPIPE));
}

TEST_CASE("a cancelled receive consumes no data", "[net][cancel]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<std::string> {
        auto [client, server] = co_await tcp_pair();
        std::array<char, 16> buf{};
        auto reader = corio::create_task(server.read_some(std::span<char>(buf)));
        co_await in_kernel();
        REQUIRE_FALSE(reader.done());
        reader.cancel();
        CHECK_THROWS_AS(co_await reader, corio::cancelled_error);
        bool fast = corio::detail::io_features_of(corio::get_running_loop()).buffer_receive;
        co_await client.write_all("kept");
        if (fast) {
            // The socket's multishot receive stays armed across the cancel (by
            // design, see docs/net.md): it takes the bytes into the socket's queue.
            co_await yield_until([fd = server.fd()] { return unread(fd) == 0; });
        } else {
            // The receive was cancelled in the kernel: the bytes stay in the socket.
            co_await yield_until([fd = server.fd()] { return unread(fd) == 4; });
            co_await in_kernel();
            CHECK(unread(server.fd()) == 4);
        }
        CHECK(buf == std::array<char, 16>{}); // the cancelled read wrote nothing
        co_return co_await corio::wait_for(server.read_exactly(4), 10s);
    };
    CHECK(corio::run(body()) == "kept");
}

TEST_CASE("a receive timed out by wait_for consumes no data", "[net][cancel][timeout]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<std::string> {
        auto [client, server] = co_await tcp_pair();
        std::array<char, 16> buf{};
        CHECK_THROWS_AS(co_await corio::wait_for(server.read_some(std::span<char>(buf)), 5ms),
                        corio::timeout_error);
        co_await client.write_all("after");
        std::size_t n = co_await corio::wait_for(server.read_some(std::span<char>(buf)), 5s);
        co_return std::string(buf.data(), n);
    };
    CHECK(corio::run(body()) == "after");
}

TEST_CASE("a receive cancelled as its data arrives delivers that data exactly once",
          "[net][cancel]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<> {
        auto [client, server] = co_await tcp_pair();
        for (int round = 0; round < 50; ++round) {
            std::array<char, 64> buf{};
            auto reader = corio::create_task(server.read_some(std::span<char>(buf)));
            co_await corio::yield_now();
            // Data lands and the cancel is requested in the same loop iteration:
            // the kernel op may complete or be cancelled; either way nothing is lost.
            REQUIRE(::send(client.fd(), "xyz", 3, MSG_NOSIGNAL) == 3);
            reader.cancel();
            std::string got;
            try {
                std::size_t n = co_await reader;
                got.assign(buf.data(), n);
            } catch (const corio::cancelled_error&) {
            }
            while (got.size() < 3) {
                std::array<char, 64> more{};
                std::size_t n = co_await server.read_some(std::span<char>(more));
                REQUIRE(n > 0);
                got.append(more.data(), n);
            }
            CHECK(got == "xyz");
        }
    };
    corio::run(body());
}

TEST_CASE("a read_exactly cancelled midway keeps the bytes it had for the next read",
          "[net][cancel]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<std::string> {
        auto [client, server] = co_await tcp_pair();
        co_await client.write_all("abc");
        auto reader = corio::create_task(server.read_exactly(6));
        // The reader takes the three bytes from the socket, then waits for more.
        co_await yield_until([fd = server.fd()] { return unread(fd) == 0; });
        co_await in_kernel();
        REQUIRE_FALSE(reader.done());
        CHECK(server.buffered() == 0); // the bytes are inside the pending read_exactly
        reader.cancel();
        CHECK_THROWS_AS(co_await reader, corio::cancelled_error);
        CHECK(server.buffered() == 3); // ... and back in the stream after the cancel
        co_await client.write_all("def");
        co_return co_await corio::wait_for(server.read_exactly(6), 10s);
    };
    CHECK(corio::run(body()) == "abcdef");
}

TEST_CASE("an accept cancelled as a connection arrives loses no connection",
          "[net][cancel][accept]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<> {
        corio::tcp_listener l = corio::tcp_listener::bind("127.0.0.1", 0);
        corio::endpoint target = l.local_endpoint();
        for (int round = 0; round < 100; ++round) {
            auto acceptor = corio::create_task(l.accept());
            co_await in_kernel();
            REQUIRE_FALSE(acceptor.done());
            // The connection lands and the cancel is requested in the same loop
            // iteration, or up to three iterations later (the accept's completion
            // is then on its way or in): the accept may complete or be cancelled;
            // either way the connection is accepted exactly once.
            int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            REQUIRE(fd >= 0);
            int rc = ::connect(fd, target.data(), target.size());
            int err = rc == 0 ? 0 : errno;
            REQUIRE((err == 0 || err == EINPROGRESS));
            for (int i = 0; i < round % 4; ++i) {
                co_await corio::yield_now();
            }
            acceptor.cancel();
            std::optional<corio::tcp_stream> accepted;
            try {
                accepted.emplace(std::move(co_await acceptor));
            } catch (const corio::cancelled_error&) {
            }
            if (!accepted) { // the connection waits in the listener for the next accept
                accepted.emplace(co_await corio::wait_for(l.accept(), 10s));
            }
            corio::endpoint client;
            ::socklen_t len = corio::endpoint::capacity();
            REQUIRE(::getsockname(fd, client.data(), &len) == 0);
            client.resize(len);
            CHECK(accepted->remote_endpoint() == client); // this round's connection
            ::close(fd);
        }
    };
    corio::run(body());
}

TEST_CASE("closing a stream ends a pending read with EBADF", "[net][close]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<> {
        auto [client, server] = co_await tcp_pair();
        std::array<char, 16> buf{};
        auto reader = corio::create_task(server.read_some(std::span<char>(buf)));
        co_await in_kernel();
        REQUIRE_FALSE(reader.done());
        server.close();
        CHECK_FALSE(server.is_open());
        CHECK(server.fd() == -1);
        {
            auto got_ = co_await error_of(reader, "recv");
            CHECK(got_ == EBADF);
        }
        // A read_until waiting on a stream closed under it fails the same way and
        // leaves nothing buffered in the closed stream.
        auto [c2, s2] = co_await tcp_pair();
        co_await c2.write_all("no newline yet");
        auto liner = corio::create_task(s2.read_until("\n"));
        co_await yield_until([fd = s2.fd()] { return unread(fd) == 0; });
        co_await in_kernel();
        REQUIRE_FALSE(liner.done());
        s2.close();
        {
            auto got_ = co_await error_of(liner, "recv");
            CHECK(got_ == EBADF);
        }
        CHECK(s2.buffered() == 0);
    };
    corio::run(body());
}

TEST_CASE("closing a stream ends a write blocked on a full socket with EBADF", "[net][close]") {
    auto body = []() -> corio::task<int> {
        auto [client, server] = co_await tcp_pair();
        std::string big(64 << 20, 'x'); // far more than the socket buffers hold; nobody reads
        auto writer = corio::create_task(server.write_all(big));
        co_await yield_until([out = server.fd(), in = client.fd()] {
            int queued = -1;
            return ::ioctl(out, TIOCOUTQ, &queued) == 0 && queued > 0 && unread(in) > 0;
        });
        co_await in_kernel();
        REQUIRE_FALSE(writer.done());
        server.close();
        co_return co_await error_of(writer, "send");
    };
    CHECK(corio::run(body()) == EBADF);
}

TEST_CASE("closing a listener ends a pending accept with EBADF", "[net][close][accept]") {
    // Fast paths on, the plain accept asked for with listener_options, and the
    // fallback mode.
    auto [plain, multishot] =
        GENERATE(std::pair{false, true}, std::pair{false, false}, std::pair{true, true});
    io_mode mode(plain);
    auto body = [](bool ms) -> corio::task<> {
        corio::tcp_listener l = corio::tcp_listener::bind("127.0.0.1", 0, 16, {.multishot = ms});
        CHECK(l.is_open());
        CHECK(l.fd() >= 0);
        auto acceptor = corio::create_task(l.accept());
        co_await in_kernel();
        REQUIRE_FALSE(acceptor.done());
        l.close();
        CHECK_FALSE(l.is_open());
        CHECK(l.fd() == -1);
        CHECK(l.local_port() == 0);
        {
            auto got_ = co_await error_of(acceptor, "accept");
            CHECK(got_ == EBADF);
        }
        l.close(); // idempotent
        {
            auto got_ = co_await error_of(corio::create_task(l.accept()), "accept");
            CHECK(got_ == EBADF);
        }
    };
    corio::run(body(multishot));
}

TEST_CASE("closing a Unix listener ends a pending accept with EBADF and removes its file",
          "[unix][close][accept]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    std::string path = "/tmp/corio-unix-close-" + std::to_string(::getpid()) + ".sock";
    auto body = [](std::string p) -> corio::task<> {
        corio::unix_listener l = corio::unix_listener::bind(p);
        CHECK(l.path() == p);
        CHECK(l.fd() >= 0);
        auto acceptor = corio::create_task(l.accept());
        co_await in_kernel();
        REQUIRE_FALSE(acceptor.done());
        l.close();
        CHECK(l.fd() == -1);
        CHECK(l.path().empty());
        CHECK(::access(p.c_str(), F_OK) != 0);
        {
            auto got_ = co_await error_of(acceptor, "accept");
            CHECK(got_ == EBADF);
        }
    };
    corio::run(body(path));
}

TEST_CASE("closing a UDP socket ends a pending recv_from with EBADF", "[udp][close]") {
    auto body = []() -> corio::task<int> {
        corio::udp_socket s = corio::udp_socket::bind("127.0.0.1", 0);
        std::array<char, 8> buf;
        auto receiver = corio::create_task(s.recv_from(std::span<char>(buf)));
        co_await in_kernel();
        REQUIRE_FALSE(receiver.done());
        s.close();
        CHECK(s.fd() == -1);
        co_return co_await error_of(receiver, "recvmsg");
    };
    CHECK(corio::run(body()) == EBADF);
}

TEST_CASE("a stream moved while its read is pending is still closed by its new owner",
          "[net][close]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<int> {
        auto [client, server] = co_await tcp_pair();
        std::array<char, 16> buf{};
        // The reading coroutine is bound to `server`; only the descriptor and the
        // in-flight request move on.
        auto reader = corio::create_task(server.read_some(std::span<char>(buf)));
        co_await in_kernel();
        REQUIRE_FALSE(reader.done());
        corio::tcp_stream owner = std::move(server);
        CHECK_FALSE(server.is_open());
        CHECK(owner.is_open());
        owner.close();
        co_return co_await error_of(reader, "recv");
    };
    CHECK(corio::run(body()) == EBADF);
}

TEST_CASE("1,000 concurrent clients echo 100 messages each with zero failures", "[net][stress]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    raise_fd_limit();
    auto client = [](std::uint16_t port, int id, int& failures) -> corio::task<> {
        try {
            corio::tcp_stream s = co_await corio::tcp_stream::connect("127.0.0.1", port);
            for (int i = 0; i < 100; ++i) {
                std::string msg =
                    "client " + std::to_string(id) + " message " + std::to_string(i) + "\n";
                co_await s.write_all(msg);
                std::string back = co_await s.read_until("\n");
                if (back != msg) {
                    ++failures;
                }
            }
        } catch (...) {
            ++failures;
        }
    };
    auto body = [](auto make_client) -> corio::task<int> {
        corio::server srv =
            co_await corio::start_server(&echo_handler, "127.0.0.1", 0, {.backlog = 1024});
        int failures = 0;
        std::vector<corio::future<>> clients;
        for (int i = 0; i < 1000; ++i) {
            clients.push_back(corio::create_task(make_client(srv.local_port(), i, failures)));
        }
        for (auto& c : clients) {
            co_await c;
        }
        srv.close();
        co_await srv.wait_closed();
        CHECK(srv.connection_count() == 0);
        co_return failures;
    };
    CHECK(corio::run(body(client)) == 0);
}

TEST_CASE("a 100 MB transfer arrives intact", "[net][bulk]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<> {
        auto [client, server] = co_await tcp_pair();
        constexpr std::size_t total = 100u * 1024 * 1024;
        stream_sum sent;
        auto sender =
            corio::create_task([](corio::tcp_stream& s, stream_sum& sum) -> corio::task<> {
                std::vector<std::uint64_t> words((1 << 20) / 8);
                std::uint64_t x = 88172645463325252ULL; // xorshift: every chunk differs
                for (std::size_t off = 0; off < total; off += words.size() * 8) {
                    for (auto& w : words) {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        w = x;
                    }
                    auto bytes = std::as_bytes(std::span<const std::uint64_t>(words));
                    sum.add(bytes);
                    co_await s.write_all(bytes);
                }
                s.shutdown_write();
            }(client, sent));
        stream_sum received;
        std::size_t got = 0;
        std::vector<std::byte> buf(64 * 1024 + 3); // odd size: pieces straddle words
        for (;;) {
            std::size_t n = co_await server.read_some(buf);
            if (n == 0) {
                break;
            }
            received.add(std::span<const std::byte>(buf.data(), n));
            got += n;
        }
        co_await sender;
        CHECK(got == total);
        CHECK(received.value() == sent.value());
    };
    corio::run(body());
}

namespace {

// Runs `fn` in a child process; returns its exit status (0 = success).
template <class F>
int in_child(F fn) {
    pid_t pid = ::fork();
    if (pid == 0) {
        int rc = 99;
        try {
            rc = fn();
        } catch (...) {
            rc = 98;
        }
        ::_exit(rc);
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Lowers RLIMIT_NOFILE. Do it first: io_uring takes the limit an accept request
// obeys when the request is prepared, and a multishot accept is prepared once.
void lower_fd_limit(rlim_t limit) {
    rlimit rl{};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = limit;
    ::setrlimit(RLIMIT_NOFILE, &rl);
}

// Under the sanitizers, UBSan's vptr check needs a pipe the first time it meets a
// type, which it cannot get under EMFILE: meet the types involved beforehand.
void warm_up_type_checks() {
    try {
        throw std::system_error(EMFILE, std::system_category(), "warm-up");
    } catch (const std::system_error& e) {
        (void)e.code();
        (void)e.what();
    }
}

// Uses up every free descriptor but `spare`; returns the fillers.
std::vector<int> exhaust_fds(int spare) {
    warm_up_type_checks();
    std::vector<int> fillers;
    for (;;) {
        int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            break;
        }
        fillers.push_back(fd);
    }
    for (int i = 0; i < spare && !fillers.empty(); ++i) {
        ::close(fillers.back());
        fillers.pop_back();
    }
    return fillers;
}

} // namespace

TEST_CASE("accept under EMFILE throws and accepts the connection once descriptors are free",
          "[net][emfile]") {
    bool plain = GENERATE(false, true);
    int rc = in_child([plain]() -> int {
        io_mode mode(plain);
        lower_fd_limit(256);
        auto body = []() -> corio::task<int> {
            corio::tcp_listener l = corio::tcp_listener::bind("127.0.0.1", 0);
            {
                // Warm-up with descriptors to spare (see the server test below).
                corio::tcp_stream warm =
                    co_await corio::tcp_stream::connect("127.0.0.1", l.local_port());
                corio::tcp_stream peer = co_await l.accept();
                co_await warm.write_all("w");
                co_await peer.read_exactly(1);
            }
            std::vector<int> fillers = exhaust_fds(1);
            // The client takes the last descriptor; the server has none left.
            corio::tcp_stream client =
                co_await corio::tcp_stream::connect("127.0.0.1", l.local_port());
            int err = 0;
            try {
                co_await l.accept();
            } catch (const std::system_error& e) {
                err = e.code().value();
            }
            if (err != EMFILE) {
                co_return 10;
            }
            ::close(fillers.back());
            fillers.pop_back();
            corio::tcp_stream server = co_await l.accept();
            co_await client.write_all("ok");
            std::string got = co_await server.read_exactly(2);
            for (int fd : fillers) {
                ::close(fd);
            }
            co_return got == "ok" ? 0 : 11;
        };
        return corio::run(body());
    });
    CHECK(rc == 0);
}

TEST_CASE("a server under EMFILE reports the error and serves again once descriptors are free",
          "[net][emfile][server]") {
    bool plain = GENERATE(false, true);
    int rc = in_child([plain]() -> int {
        io_mode mode(plain);
        lower_fd_limit(256);
        auto body = []() -> corio::task<int> {
            corio::event_loop& loop = corio::get_running_loop();
            corio::future<int> reported;
            loop.set_exception_handler([&](const corio::exception_context& ctx) {
                if (!reported.done()) {
                    reported.set_result(errno_of(ctx.exception));
                }
            });
            corio::server srv = co_await corio::start_server(&echo_handler, "127.0.0.1", 0,
                                                             {.accept_retry_delay = 10ms});
            {
                // Warm-up with descriptors to spare: UBSan's vptr check needs a pipe
                // the first time it meets a type, which it cannot get under EMFILE.
                corio::tcp_stream warm =
                    co_await corio::tcp_stream::connect("127.0.0.1", srv.local_port());
                co_await warm.write_all("warm\n");
                co_await warm.read_until("\n");
                corio::future<int> f;
                loop.call_soon([f]() mutable { f.set_result(1); });
                co_await f;
            }
            while (srv.connection_count() > 0) { // the warm-up connection's task ends too
                co_await corio::yield_now();
            }
            std::vector<int> fillers = exhaust_fds(1);
            corio::tcp_stream client =
                co_await corio::tcp_stream::connect("127.0.0.1", srv.local_port());
            int err = co_await reported;
            if (err != EMFILE) {
                co_return 20;
            }
            for (int fd : fillers) {
                ::close(fd);
            }
            co_await client.write_all("again\n");
            std::string got = co_await corio::wait_for(client.read_until("\n"), 10s);
            srv.close();
            co_return got == "again\n" ? 0 : 21;
        };
        return corio::run(body());
    });
    CHECK(rc == 0);
}

TEST_CASE("closing a server cancels its connection tasks and serve_forever returns",
          "[net][server]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    auto body = []() -> corio::task<> {
        corio::server srv = co_await corio::start_server(&echo_handler, "127.0.0.1", 0);
        CHECK(srv.is_serving());
        auto forever = corio::create_task(srv.serve_forever());
        corio::tcp_stream a = co_await corio::tcp_stream::connect("127.0.0.1", srv.local_port());
        corio::tcp_stream b = co_await corio::tcp_stream::connect("127.0.0.1", srv.local_port());
        co_await a.write_all("1\n");
        co_await b.write_all("2\n");
        {
            auto got_ = co_await a.read_until("\n");
            CHECK(got_ == "1\n");
        }
        {
            auto got_ = co_await b.read_until("\n");
            CHECK(got_ == "2\n");
        }
        CHECK(srv.connection_count() == 2);
        srv.close();
        CHECK_FALSE(srv.is_serving());
        co_await forever;
        co_await srv.wait_closed();
        CHECK(srv.connection_count() == 0);
        std::array<char, 4> buf;
        {
            auto got_ = co_await a.read_some(std::span<char>(buf));
            CHECK(got_ == 0); // the handler's stream closed
        }
        {
            auto got_ = co_await b.read_some(std::span<char>(buf));
            CHECK(got_ == 0);
        }
    };
    corio::run(body());
}

TEST_CASE("an exception escaping a connection handler is reported and ends only that connection",
          "[net][server]") {
    auto body = []() -> corio::task<int> {
        int reports = 0;
        corio::get_running_loop().set_exception_handler(
            [&](const corio::exception_context&) { ++reports; });
        auto handler = [](corio::tcp_stream s) -> corio::task<> {
            std::string line = co_await s.read_until("\n");
            if (line == "boom\n") {
                throw std::runtime_error("boom");
            }
            co_await s.write_all(line);
        };
        corio::server srv = co_await corio::start_server(handler, "127.0.0.1", 0);
        corio::tcp_stream bad = co_await corio::tcp_stream::connect("127.0.0.1", srv.local_port());
        co_await bad.write_all("boom\n");
        std::array<char, 4> buf;
        {
            auto got_ = co_await bad.read_some(std::span<char>(buf));
            CHECK(got_ == 0);
        }
        corio::tcp_stream good = co_await corio::tcp_stream::connect("127.0.0.1", srv.local_port());
        co_await good.write_all("fine\n");
        {
            auto got_ = co_await good.read_until("\n");
            CHECK(got_ == "fine\n");
        }
        co_return reports;
    };
    CHECK(corio::run(body()) == 1);
}

TEST_CASE("cancelling serve_forever closes the server", "[net][server][cancel]") {
    auto body = []() -> corio::task<> {
        corio::server srv = co_await corio::start_server(&echo_handler, "127.0.0.1", 0);
        auto forever = corio::create_task(srv.serve_forever());
        co_await corio::yield_now();
        forever.cancel();
        CHECK_THROWS_AS(co_await forever, corio::cancelled_error);
        CHECK_FALSE(srv.is_serving());
    };
    corio::run(body());
}

TEST_CASE("a UDP datagram round trip reports its sender", "[udp][roundtrip]") {
    auto body = []() -> corio::task<> {
        corio::udp_socket a = corio::udp_socket::bind("127.0.0.1", 0);
        corio::udp_socket b = corio::udp_socket::bind("127.0.0.1", 0);
        {
            auto got_ = co_await a.send_to("ping", "127.0.0.1", b.local_port());
            CHECK(got_ == 4);
        }
        std::array<char, 64> buf;
        auto [size, sender] = co_await b.recv_from(std::span<char>(buf));
        CHECK(std::string(buf.data(), size) == "ping");
        CHECK(sender.port() == a.local_port());
        CHECK(sender.address() == "127.0.0.1");
        co_await b.send_to(std::as_bytes(std::span<const char>("pong", 4)), sender);
        auto [n, from] = co_await a.recv_from(std::span<char>(buf));
        CHECK(std::string(buf.data(), n) == "pong");
        CHECK(from.port() == b.local_port());
    };
    corio::run(body());
}

TEST_CASE("a UDP round trip works over IPv6", "[udp][ipv6]") {
    auto body = []() -> corio::task<std::string> {
        corio::udp_socket a = corio::udp_socket::bind("::1", 0);
        corio::udp_socket b = corio::udp_socket::bind("::1", 0);
        co_await a.send_to("v6", "::1", b.local_port());
        std::array<char, 8> buf;
        auto [size, sender] = co_await b.recv_from(std::span<char>(buf));
        CHECK(sender.family() == AF_INET6);
        co_return std::string(buf.data(), size);
    };
    CHECK(corio::run(body()) == "v6");
}

TEST_CASE("a cancelled recv_from consumes no datagram", "[udp][cancel]") {
    auto body = []() -> corio::task<std::string> {
        corio::udp_socket a = corio::udp_socket::bind("127.0.0.1", 0);
        corio::udp_socket b = corio::udp_socket::bind("127.0.0.1", 0);
        std::array<char, 8> buf;
        auto r = corio::create_task(b.recv_from(std::span<char>(buf)));
        co_await corio::yield_now();
        r.cancel();
        CHECK_THROWS_AS(co_await r, corio::cancelled_error);
        co_await a.send_to("late", "127.0.0.1", b.local_port());
        auto [size, sender] = co_await b.recv_from(std::span<char>(buf));
        co_return std::string(buf.data(), size);
    };
    CHECK(corio::run(body()) == "late");
}

TEST_CASE("a Unix socket round trip works and the socket file is removed on close",
          "[unix][roundtrip]") {
    bool plain = GENERATE(false, true);
    io_mode mode(plain);
    std::string path = "/tmp/corio-unix-" + std::to_string(::getpid()) + ".sock";
    auto body = [](std::string p) -> corio::task<std::string> {
        corio::unix_listener l = corio::unix_listener::bind(p);
        CHECK(::access(p.c_str(), F_OK) == 0);
        corio::unix_stream client = co_await corio::unix_stream::connect(p);
        corio::unix_stream server = co_await l.accept();
        co_await client.write_all("over unix\n");
        std::string line = co_await server.read_until("\n");
        co_await server.write_all(line);
        l.close();
        CHECK(::access(p.c_str(), F_OK) != 0);
        co_return co_await client.read_until("\n");
    };
    CHECK(corio::run(body(path)) == "over unix\n");
}

TEST_CASE("a Unix socket in the abstract namespace and a socket pair both carry data",
          "[unix][abstract]") {
    auto body = []() -> corio::task<> {
        std::string name = "@corio-test-" + std::to_string(::getpid());
        corio::unix_listener l = corio::unix_listener::bind(name);
        corio::unix_stream client = co_await corio::unix_stream::connect(name);
        corio::unix_stream server = co_await l.accept();
        co_await client.write_all("abstract");
        {
            auto got_ = co_await server.read_exactly(8);
            CHECK(got_ == "abstract");
        }
        auto [x, y] = corio::unix_stream::pair();
        co_await x.write_all("pair");
        {
            auto got_ = co_await y.read_exactly(4);
            CHECK(got_ == "pair");
        }
    };
    corio::run(body());
}

TEST_CASE("udp_socket sends characters to an endpoint and knows its own address",
          "[udp][roundtrip]") {
    auto body = []() -> corio::task<std::string> {
        corio::udp_socket a = corio::udp_socket::bind("127.0.0.1", 0);
        corio::udp_socket b = corio::udp_socket::bind("localhost", 0);
        corio::endpoint to_b = b.local_endpoint();
        CHECK(to_b.address() == "127.0.0.1");
        CHECK(to_b.port() == b.local_port());
        {
            auto got_ = co_await a.send_to(std::string_view("chars"), to_b);
            CHECK(got_ == 5);
        }
        std::array<char, 16> buf;
        auto [size, sender] = co_await b.recv_from(std::span<char>(buf));
        CHECK(sender == a.local_endpoint());
        a.close();
        CHECK(a.fd() == -1);
        CHECK(a.local_port() == 0);
        a.close(); // idempotent
        co_return std::string(buf.data(), size);
    };
    CHECK(corio::run(body()) == "chars");
}

TEST_CASE("a stream reports its endpoints, its read-ahead and whether it is open",
          "[net][stream]") {
    auto body = []() -> corio::task<> {
        auto [client, server] = co_await tcp_pair();
        CHECK(client.is_open());
        CHECK(client.local_endpoint() == server.remote_endpoint());
        CHECK(server.local_endpoint() == client.remote_endpoint());
        CHECK(client.local_endpoint().address() == "127.0.0.1");
        CHECK(client.buffered() == 0);
        co_await client.write_all("line\nrest"); // one send: one segment
        {
            auto got_ = co_await server.read_until("\n");
            CHECK(got_ == "line\n");
        }
        CHECK(server.buffered() == 4);
        server.close();
        CHECK_FALSE(server.is_open());
        CHECK(server.buffered() == 0);
        CHECK_THROWS_AS(server.local_endpoint(), std::system_error);
        corio::tcp_stream empty;
        CHECK_FALSE(empty.is_open());
        CHECK(empty.fd() == -1);
    };
    corio::run(body());
}

TEST_CASE("set_nodelay turns TCP_NODELAY off and on; connected streams start with it on",
          "[net][stream]") {
    auto nodelay = [](int fd) {
        int v = -1;
        ::socklen_t len = sizeof v;
        REQUIRE(::getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0);
        return v != 0;
    };
    auto body = [](auto check) -> corio::task<> {
        auto [client, server] = co_await tcp_pair();
        CHECK(check(client.fd()));
        CHECK(check(server.fd()));
        client.set_nodelay(false);
        CHECK_FALSE(check(client.fd()));
        client.set_nodelay(true);
        CHECK(check(client.fd()));
        corio::tcp_stream closed;
        CHECK_THROWS_AS(closed.set_nodelay(true), std::system_error);
    };
    corio::run(body(nodelay));
}

TEST_CASE("endpoints compare by address bytes and expose their raw address", "[net][endpoint]") {
    auto a = corio::endpoint::parse("127.0.0.1", 8080);
    auto b = corio::endpoint::parse("127.0.0.1", 8080);
    auto other_port = corio::endpoint::parse("127.0.0.1", 8081);
    auto v6 = corio::endpoint::parse("::1", 8080);
    REQUIRE((a && b && other_port && v6));
    CHECK(*a == *b);
    CHECK_FALSE(*a == *other_port);
    CHECK_FALSE(*a == *v6);
    CHECK(a->size() == sizeof(sockaddr_in));
    CHECK(v6->size() == sizeof(sockaddr_in6));
    CHECK(a->data()->sa_family == AF_INET);
    CHECK(v6->data()->sa_family == AF_INET6);
    corio::endpoint copy(a->data(), a->size());
    CHECK(copy == *a);
    CHECK(copy.to_string() == "127.0.0.1:8080");
    corio::endpoint empty;
    CHECK(empty.family() == AF_UNSPEC);
    CHECK(empty.size() == 0);
    CHECK(empty == corio::endpoint());
    CHECK_FALSE(empty == *a);
}

TEST_CASE("endpoints parse and print IPv4 and IPv6 addresses", "[net][endpoint]") {
    auto v4 = corio::endpoint::parse("127.0.0.1", 80);
    REQUIRE(v4);
    CHECK(v4->to_string() == "127.0.0.1:80");
    auto v6 = corio::endpoint::parse("[::1]", 443);
    REQUIRE(v6);
    CHECK(v6->to_string() == "[::1]:443");
    CHECK(v6->port() == 443);
    CHECK_FALSE(corio::endpoint::parse("localhost", 80));
    CHECK(corio::endpoint::unix_path("/tmp/x.sock").address() == "/tmp/x.sock");
    CHECK(corio::endpoint::unix_path("@abstract").address() == "@abstract");
    CHECK_THROWS_AS(corio::tcp_listener::bind("not-an-address", 0), std::invalid_argument);
}

TEST_CASE("resolving localhost gives 127.0.0.1 and/or ::1", "[resolve]") {
    auto body = []() -> corio::task<std::vector<corio::endpoint>> {
        co_return co_await corio::resolve("localhost", "80");
    };
    std::vector<corio::endpoint> eps = corio::run(body());
    REQUIRE_FALSE(eps.empty());
    for (const auto& ep : eps) {
        CHECK((ep.address() == "127.0.0.1" || ep.address() == "::1"));
        CHECK(ep.port() == 80);
    }
}

namespace {

// Holds back jobs of the default blocking pool until the loop thread opens it (or
// 10 s pass, so that a broken resolve fails the test instead of hanging it).
struct pool_gate {
    std::mutex m;
    std::condition_variable cv;
    bool open = false;

    bool wait() {
        std::unique_lock lock(m);
        return cv.wait_for(lock, 10s, [this] { return open; });
    }
    void release() {
        {
            std::lock_guard lock(m);
            open = true;
        }
        cv.notify_all();
    }
};

} // namespace

TEST_CASE("resolve leaves the loop free: other tasks run during the lookup", "[resolve]") {
    pool_gate gate;
    auto body = [](pool_gate* g) -> corio::task<int> {
        // Occupy every thread of the default blocking pool (at most 32): the
        // lookup queues behind these jobs and can run only after the ticker below,
        // a task on this loop, opened the gate.
        std::vector<corio::async_result<bool>> blockers;
        for (int i = 0; i < 32; ++i) {
            blockers.push_back(corio::to_thread([](pool_gate* pg) { return pg->wait(); }, g));
        }
        bool resolved = false;
        int ticks = 0;
        auto ticker =
            corio::create_task([](const bool& stop, int& count, pool_gate* pg) -> corio::task<> {
                while (!stop) {
                    if (++count == 10) {
                        pg->release();
                    }
                    co_await corio::yield_now();
                }
            }(resolved, ticks, g));
        std::vector<corio::endpoint> eps = co_await corio::resolve("localhost", "80");
        resolved = true;
        CHECK_FALSE(eps.empty());
        co_await ticker;
        for (auto& b : blockers) {
            auto released_ = co_await b;
            CHECK(released_); // opened by the ticker, not timed out
        }
        co_return ticks;
    };
    CHECK(corio::run(body(&gate)) >= 10);
}

TEST_CASE("connecting by host name resolves it first", "[resolve][net]") {
    auto body = []() -> corio::task<std::string> {
        corio::tcp_listener l = corio::tcp_listener::bind("localhost", 0);
        corio::tcp_stream client = co_await corio::tcp_stream::connect("localhost", l.local_port());
        corio::tcp_stream server = co_await l.accept();
        co_await client.write_all("named");
        co_return co_await server.read_exactly(5);
    };
    CHECK(corio::run(body()) == "named");
}

TEST_CASE("close() ends even when a stuck task holds a listener with an armed accept",
          "[net][close]") {
    // An armed multishot accept counts as in flight forever; close() must not wait on
    // it without bound once the task holding it ignores its cancellation.
    auto stuck = []() -> corio::task<> {
        corio::tcp_listener l = corio::tcp_listener::bind("127.0.0.1", 0);
        try {
            (void)co_await l.accept();
        } catch (const corio::cancelled_error&) {
        }
        corio::future<> never;
        co_await never; // swallowed the cancel: only forced destruction ends this
    };
    auto start = std::chrono::steady_clock::now();
    {
        corio::event_loop loop;
        auto f = loop.create_task(stuck());
        loop.call_later(5ms, [&] { loop.stop(); });
        loop.run_forever();
        loop.close();
        CHECK(f.cancelled());
    }
    CHECK(std::chrono::steady_clock::now() - start < 30s);
}
