// The internal io_uring op interface, proven with NOP and a read that only a
// cancel can end (the pattern the I/O layer builds on).
#include "counting.hpp"

#include <corio/corio.hpp>
#include "ring/nop.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
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
        io_uring_prep_read(&sqe, self.fd, self.buf.data(), static_cast<unsigned>(self.buf.size()),
                           0);
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

/// What a cancelled read saw when it resumed: whether its completion had been reaped
/// (the op idle, off the ring's lists) and the res it carried.
struct resume_view {
    bool reaped = false;
    int res = 0;
};

corio::task<> read_and_observe(int fd, resume_view& seen) {
    pipe_read op(fd);
    try {
        (void)co_await op;
    } catch (const corio::cancelled_error&) {
        seen.reaped = op.state == corio::detail::uring_op::op_state::idle &&
                      op.prev_op == nullptr && op.next_op == nullptr;
        seen.res = op.result();
        throw;
    }
}

/// A pipe whose ends are closed with the test.
struct test_pipe {
    int fds[2] = {-1, -1};
    test_pipe() { REQUIRE(::pipe(fds) == 0); }
    test_pipe(const test_pipe&) = delete;
    test_pipe& operator=(const test_pipe&) = delete;
    ~test_pipe() {
        ::close(fds[0]);
        ::close(fds[1]);
    }
    int in() const { return fds[0]; }
    int out() const { return fds[1]; }
    /// The bytes waiting in the pipe after `data` is written to it (the pipe holds
    /// exactly what no kernel read took).
    std::string left_after_writing(const std::string& data) const {
        REQUIRE(::write(out(), data.data(), data.size()) == static_cast<ssize_t>(data.size()));
        std::array<char, 64> b{};
        ssize_t n = ::read(in(), b.data(), b.size());
        return n > 0 ? std::string(b.data(), static_cast<std::size_t>(n)) : std::string();
    }
};

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

TEST_CASE(
    "ops parked behind a full submission queue complete in submission order and none is dropped",
    "[uring][nop][pending]") {
    corio::event_loop loop;
    constexpr int count = 100;
    std::vector<int> order;
    std::size_t parked_after_first_step = 0;
    auto one = [](int i, std::vector<int>& out) -> corio::task<> {
        int res = co_await corio::detail::nop();
        out.push_back(res == 0 ? i : -1);
    };
    loop.run_until_complete([](corio::event_loop& l, auto make, std::vector<int>& out,
                               std::size_t& parked) -> corio::task<> {
        corio::detail::limit_submissions(l, 3);
        std::vector<corio::future<>> all;
        for (int i = 0; i < count; ++i) {
            all.push_back(corio::create_task(make(i, out)));
        }
        co_await corio::yield_now(); // every child ran once: 3 SQEs, the rest parked
        parked = corio::detail::parked_ops(l);
        for (auto& f : all) {
            co_await f;
        }
        corio::detail::limit_submissions(l, corio::detail::unlimited_submissions);
    }(loop, one, order, parked_after_first_step));
    CHECK(parked_after_first_step == count - 3);
    CHECK(corio::detail::parked_ops(loop) == 0);
    REQUIRE(order.size() == count);
    for (int i = 0; i < count; ++i) {
        CHECK(order[static_cast<std::size_t>(i)] == i);
    }
}

TEST_CASE(
    "cancelling a parked op ends it at once with cancelled_error and it never reaches the kernel",
    "[uring][cancel][pending]") {
    test_pipe p;
    corio::event_loop loop;
    auto body = [](corio::event_loop& l, int fd) -> corio::task<std::string> {
        corio::detail::limit_submissions(l, 0); // no SQE at all: the read parks
        std::string got;
        auto reader = corio::create_task(read_pipe(fd, got));
        co_await corio::yield_now(); // the reader suspended on its parked read
        CHECK(corio::detail::parked_ops(l) == 1);
        CHECK(reader.cancel());
        CHECK(corio::detail::parked_ops(l) == 0); // unparked synchronously
        corio::detail::limit_submissions(l, corio::detail::unlimited_submissions);
        try {
            (void)co_await reader;
        } catch (const corio::cancelled_error&) {
            co_return "cancelled";
        }
        co_return "read " + got;
    };
    CHECK(loop.run_until_complete(body(loop, p.in())) == "cancelled");
    CHECK(p.left_after_writing("abc") == "abc");
}

TEST_CASE("a cancel request that finds no free SQE is parked and still ends the kernel op",
          "[uring][cancel][pending]") {
    test_pipe p;
    corio::event_loop loop;
    resume_view seen;
    auto body = [](corio::event_loop& l, int fd, resume_view& v) -> corio::task<std::size_t> {
        auto reader = corio::create_task(read_and_observe(fd, v));
        co_await corio::yield_now(); // the read's SQE is queued
        co_await corio::yield_now(); // ... and submitted: the kernel waits on the pipe
        corio::detail::limit_submissions(l, 0);
        CHECK(reader.cancel());
        std::size_t parked = corio::detail::parked_cancels(l);
        corio::detail::limit_submissions(l, corio::detail::unlimited_submissions);
        CHECK_THROWS_AS(co_await reader, corio::cancelled_error);
        co_return parked;
    };
    CHECK(loop.run_until_complete(body(loop, p.in(), seen)) == 1);
    CHECK(corio::detail::parked_cancels(loop) == 0);
    CHECK(seen.reaped);
    CHECK(seen.res == -ECANCELED);
    CHECK(p.left_after_writing("abc") == "abc");
}

TEST_CASE("cancelling a task in an in-flight kernel op cancels it in the kernel",
          "[uring][cancel]") {
    test_pipe p;
    corio::event_loop loop;
    resume_view seen;
    auto body = [](int fd, resume_view& v) -> corio::task<> {
        auto reader = corio::create_task(read_and_observe(fd, v));
        co_await corio::yield_now(); // the read's SQE is queued
        co_await corio::yield_now(); // ... and submitted: the kernel waits on the pipe
        CHECK(reader.cancel());
        CHECK_THROWS_AS(co_await reader, corio::cancelled_error);
    };
    loop.run_until_complete(body(p.in(), seen));
    // The coroutine resumed only after the op's completion was reaped.
    CHECK(seen.reaped);
    CHECK(seen.res == -ECANCELED);
    // The kernel op is gone: data written now stays in the pipe for the next reader.
    REQUIRE(::write(p.out(), "abc", 3) == 3);
    std::string got;
    CHECK(loop.run_until_complete(read_pipe(p.in(), got)) == 3);
    CHECK(got == "abc");
}

TEST_CASE("a cancel pending before the op is submitted throws and reads nothing",
          "[uring][cancel]") {
    test_pipe p;
    REQUIRE(::write(p.out(), "xyz", 3) == 3);
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
    CHECK(corio::run(body(p.in())) == "|cancelled before reading");
    std::string rest;
    CHECK(corio::run(read_pipe(p.in(), rest)) == 3);
    CHECK(rest == "xyz");
}

TEST_CASE("an op that completes despite a cancel returns its data and the cancel comes at the next "
          "suspension",
          "[uring][cancel]") {
    test_pipe p;
    REQUIRE(::write(p.out(), "xyz", 3) == 3); // the read will complete as soon as submitted
    auto reader = [](int fd) -> corio::task<std::string> {
        std::string got;
        int n = co_await read_pipe(fd, got);
        got += "|read " + std::to_string(n);
        try {
            co_await corio::yield_now();
            got += "|not cancelled";
        } catch (const corio::cancelled_error&) {
            got += "|cancelled at the next suspension";
        }
        co_return got;
    };
    auto body = [](int fd, auto make) -> corio::task<std::string> {
        auto r = corio::create_task(make(fd));
        // The reader runs first: its read's SQE is queued, not yet submitted. The
        // cancel's SQE goes behind it, so the read completes and the cancel misses.
        co_await corio::yield_now();
        CHECK(r.cancel());
        co_return co_await r;
    };
    CHECK(corio::run(body(p.in(), reader)) == "xyz|read 3|cancelled at the next suspension");
}

TEST_CASE("close() cancels a stuck task's kernel read and reaps it before freeing the frame",
          "[uring][close][lifetime]") {
    test_pipe p;
    // Swallows close()'s cancellation, then starts a read only data or a cancel ends:
    // the frame holds an in-flight op when close() gives up on the task.
    auto stuck = [](int fd, corio_test::counted) -> corio::task<> {
        corio::future<> never;
        try {
            co_await never;
        } catch (const corio::cancelled_error&) {
        }
        std::string got;
        (void)co_await read_pipe(fd, got);
    };
    // Without DEFER_TASKRUN the kernel finishes a woken read on the thread's next
    // system call, so the close hook's write() alone would let it run.
    for (bool single_issuer : {false, true}) {
        CAPTURE(single_issuer);
        ssize_t written = 0;
        {
            corio::event_loop loop{{.single_issuer = single_issuer}};
            auto f = loop.create_task(stuck(p.in(), corio_test::counted{}));
            loop.call_soon([&] { loop.stop(); });
            loop.run_forever();
            // Runs after the stuck frame is gone: a read still in flight would take
            // these bytes into freed memory.
            loop.add_close_hook([&] { written = ::write(p.out(), "abc", 3); });
            loop.close();
            CHECK(f.cancelled());
            CHECK(corio_test::counted::live == 0);
        }
        REQUIRE(written == 3);
        std::array<char, 8> b{};
        REQUIRE(::fcntl(p.in(), F_SETFL, O_NONBLOCK) == 0);
        CHECK(::read(p.in(), b.data(), b.size()) == 3);
        REQUIRE(::fcntl(p.in(), F_SETFL, 0) == 0);
        CHECK(std::string(b.data(), 3) == "abc");
    }
}
