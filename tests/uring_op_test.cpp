// The internal io_uring op interface, proven with NOP and a read that only a
// cancel can end (the pattern the I/O layer builds on).
#include <corio/corio.hpp>
#include <corio/detail/nop.hpp>

#include <catch2/catch.hpp>

#include <liburing.h>
#include <unistd.h>

#include <array>
#include <cerrno>

using namespace std::chrono_literals;

namespace {

struct pipe_read : corio::detail::op_awaitable {
    int fd;
    std::array<char, 16> buf{};
    explicit pipe_read(int f) : op_awaitable(&prep), fd(f) {}
    static void prep(corio::detail::uring_op& op, io_uring_sqe& sqe) noexcept {
        auto& self = static_cast<pipe_read&>(op);
        io_uring_prep_read(&sqe, self.fd, self.buf.data(), static_cast<unsigned>(self.buf.size()), 0);
    }
};

corio::task<int> read_pipe(int fd, std::string& out) {
    pipe_read op(fd);
    int n = co_await op;
    if (n > 0) {
        out.assign(op.buf.data(), static_cast<std::size_t>(n));
    }
    co_return n;
}

} // namespace

TEST_CASE("a NOP round trip through the ring returns 0", "[uring][nop]") {
    auto body = []() -> corio::task<int> {
        int sum = 0;
        for (int i = 0; i < 1000; ++i) {
            sum += co_await corio::detail::nop();
        }
        co_return sum;
    };
    CHECK(corio::run(body()) == 0);
}

TEST_CASE("a full submission queue parks operations instead of failing", "[uring][nop]") {
    // A 4-entry ring with 1,000 NOPs in flight at once: every one completes.
    corio::event_loop loop{{.entries = 4}};
    int done = 0;
    auto one = [](int& d) -> corio::task<> {
        co_await corio::detail::nop();
        ++d;
    };
    loop.run_until_complete([](int& d, auto make) -> corio::task<> {
        std::vector<corio::future<>> all;
        for (int i = 0; i < 1000; ++i) {
            all.push_back(corio::create_task(make(d)));
        }
        for (auto& f : all) {
            co_await f;
        }
    }(done, one));
    CHECK(done == 1000);
}

TEST_CASE("cancelling a task in an in-flight kernel op cancels it in the kernel", "[uring][cancel]") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    corio::event_loop loop;
    std::string got;
    auto f = loop.create_task(read_pipe(fds[0], got));
    loop.call_later(2ms, [&] { f.cancel(); });
    CHECK_THROWS_AS(loop.run_until_complete(f), corio::cancelled_error);
    // The kernel op is gone: data written now stays in the pipe for the next reader.
    REQUIRE(::write(fds[1], "abc", 3) == 3);
    auto g = loop.create_task(read_pipe(fds[0], got));
    CHECK(loop.run_until_complete(g) == 3);
    CHECK(got == "abc");
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_CASE("an op that completes despite a cancel returns its data and cancels later", "[uring][cancel]") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    REQUIRE(::write(fds[1], "xyz", 3) == 3);
    auto body = [](int fd) -> corio::task<std::string> {
        std::string got;
        corio::current_task().cancel(); // pending: the read's submission sees it
        try {
            co_await read_pipe(fd, got);
        } catch (const corio::cancelled_error&) {
            got += "|cancelled before reading";
        }
        co_return got;
    };
    // A pending cancel is delivered before the op is submitted: nothing is read.
    CHECK(corio::run(body(fds[0])) == "|cancelled before reading");
    std::string rest;
    CHECK(corio::run(read_pipe(fds[0], rest)) == 3);
    CHECK(rest == "xyz");
    ::close(fds[0]);
    ::close(fds[1]);
}
