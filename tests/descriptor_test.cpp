// Foreign descriptors: wait_readable / wait_writable and the loop's add_reader /
// add_writer / remove_reader / remove_writer, on pipes and eventfds that the test
// owns (corio never reads, writes or closes them).
#include "loop_steps.hpp"

#include <corio/corio.hpp>
#include <corio/descriptor.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

using corio_test::in_kernel;
using corio_test::yield_until;

namespace {

// A pipe owned by the test, closed at the end.
struct test_pipe {
    int r = -1;
    int w = -1;
    test_pipe() {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC | O_NONBLOCK) == 0);
        r = fds[0];
        w = fds[1];
    }
    ~test_pipe() {
        if (r >= 0) {
            ::close(r);
        }
        if (w >= 0) {
            ::close(w);
        }
    }
    test_pipe(const test_pipe&) = delete;
    test_pipe& operator=(const test_pipe&) = delete;
};

void put(int fd, const std::string& s) {
    REQUIRE(::write(fd, s.data(), s.size()) == static_cast<ssize_t>(s.size()));
}

std::string take(int fd) {
    char buf[256];
    ssize_t n = ::read(fd, buf, sizeof buf);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

// A descriptor number that is not open and that a loop's own descriptors (which
// take the lowest free numbers) will not reuse.
int not_open_descriptor() {
    int low = ::eventfd(0, EFD_CLOEXEC);
    REQUIRE(low >= 0);
    int fd = ::fcntl(low, F_DUPFD_CLOEXEC, 900);
    REQUIRE(fd >= 900);
    ::close(low);
    ::close(fd);
    return fd;
}

} // namespace

TEST_CASE("wait_readable returns once another owner's pipe has data", "[descriptor][wait]") {
    test_pipe p;
    auto body = [](int r, int w) -> corio::task<std::string> {
        corio::future<> waiting = corio::create_task(corio::wait_readable(r));
        co_await in_kernel();
        CHECK_FALSE(waiting.done()); // nothing written yet
        put(w, "ping");
        co_await waiting;
        co_return take(r);
    };
    CHECK(corio::run(body(p.r, p.w)) == "ping");
}

TEST_CASE("wait_writable returns at once on a pipe with room, and after a full one drains",
          "[descriptor][wait]") {
    test_pipe p;
    auto body = [](int r, int w) -> corio::task<> {
        co_await corio::wait_writable(w);
        // Fill the pipe: writes fail with EAGAIN once it is full.
        std::string chunk(65536, 'x');
        while (::write(w, chunk.data(), chunk.size()) > 0) {
        }
        corio::future<> waiting = corio::create_task(corio::wait_writable(w));
        co_await in_kernel();
        CHECK_FALSE(waiting.done());
        char buf[65536];
        while (::read(r, buf, sizeof buf) > 0) {
        }
        co_await waiting;
    };
    corio::run(body(p.r, p.w));
}

TEST_CASE("waiting on a descriptor: bad descriptors and cancellation", "[descriptor][error]") {
    auto negative = []() -> corio::task<> { co_await corio::wait_readable(-1); };
    CHECK_THROWS_AS(corio::run(negative()), std::invalid_argument);
    int fd = not_open_descriptor();
    auto closed = [](int f) -> corio::task<int> {
        try {
            co_await corio::wait_writable(f);
        } catch (const std::system_error& e) {
            co_return e.code().value();
        }
        co_return 0;
    };
    CHECK(corio::run(closed(fd)) == EBADF);

    test_pipe p;
    auto cancel = [](int r) -> corio::task<bool> {
        corio::future<> waiting = corio::create_task(corio::wait_readable(r));
        co_await in_kernel();
        waiting.cancel();
        bool cancelled = false;
        try {
            co_await waiting;
        } catch (const corio::cancelled_error&) {
            cancelled = true;
        }
        co_return cancelled;
    };
    CHECK(corio::run(cancel(p.r)));
}

TEST_CASE("add_reader calls back on each arrival until remove_reader", "[descriptor][reader]") {
    test_pipe p;
    auto body = [](int r, int w) -> corio::task<std::vector<std::string>> {
        corio::event_loop& loop = corio::get_running_loop();
        std::vector<std::string> got;
        loop.add_reader(r, [&got, r] { got.push_back(take(r)); });
        put(w, "one");
        co_await yield_until([&] { return got.size() == 1; });
        put(w, "two");
        co_await yield_until([&] { return got.size() == 2; });
        CHECK(loop.remove_reader(r));
        CHECK_FALSE(loop.remove_reader(r)); // already removed
        put(w, "three");
        co_await in_kernel();
        co_await in_kernel();
        CHECK(got.size() == 2); // no call after removal
        CHECK(take(r) == "three");
        co_return got;
    };
    std::vector<std::string> expected{"one", "two"};
    CHECK(corio::run(body(p.r, p.w)) == expected);
}

TEST_CASE("add_reader is level-triggered: a callback that reads part is called again",
          "[descriptor][reader]") {
    test_pipe p;
    auto body = [](int r, int w) -> corio::task<std::string> {
        corio::event_loop& loop = corio::get_running_loop();
        std::string got;
        loop.add_reader(r, [&got, r] {
            char c;
            if (::read(r, &c, 1) == 1) { // one byte per call
                got += c;
            }
        });
        put(w, "abcde");
        co_await yield_until([&] { return got.size() == 5; });
        loop.remove_reader(r);
        co_return got;
    };
    CHECK(corio::run(body(p.r, p.w)) == "abcde");
}

TEST_CASE("add_writer calls back while the descriptor is writable; an eventfd as reader",
          "[descriptor][writer]") {
    int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    REQUIRE(efd >= 0);
    auto body = [](int fd) -> corio::task<std::uint64_t> {
        corio::event_loop& loop = corio::get_running_loop();
        int writes = 0;
        loop.add_writer(fd, [&writes, fd, &loop] {
            std::uint64_t one = 1;
            REQUIRE(::write(fd, &one, sizeof one) == sizeof one);
            if (++writes == 3) {
                loop.remove_writer(fd); // from inside its own callback
            }
        });
        std::uint64_t total = 0;
        loop.add_reader(fd, [&total, fd] {
            std::uint64_t v = 0;
            if (::read(fd, &v, sizeof v) == sizeof v) {
                total += v;
            }
        });
        co_await yield_until([&] { return writes == 3 && total == 3; });
        CHECK(loop.remove_reader(fd));
        CHECK_FALSE(loop.remove_writer(fd));
        co_return total;
    };
    CHECK(corio::run(body(efd)) == 3);
    ::close(efd);
}

TEST_CASE("add_reader replaces the callback of a descriptor already watched",
          "[descriptor][reader]") {
    test_pipe p;
    auto body = [](int r, int w) -> corio::task<std::string> {
        corio::event_loop& loop = corio::get_running_loop();
        std::string got;
        loop.add_reader(r, [&got, r] { got += "first:" + take(r); });
        loop.add_reader(r, [&got, r] { got += "second:" + take(r); });
        put(w, "x");
        co_await yield_until([&] { return !got.empty(); });
        loop.remove_reader(r);
        co_return got;
    };
    CHECK(corio::run(body(p.r, p.w)) == "second:x");
}

TEST_CASE("add_reader and add_writer refuse bad arguments", "[descriptor][error]") {
    corio::event_loop loop;
    CHECK_THROWS_AS(loop.add_reader(-1, [] {}), std::invalid_argument);
    CHECK_THROWS_AS(loop.add_writer(0, nullptr), std::invalid_argument);
    CHECK_FALSE(loop.remove_reader(0));
    CHECK_FALSE(loop.remove_writer(0));
    loop.close();
    CHECK_THROWS_AS(loop.add_reader(0, [] {}), corio::error);
}

TEST_CASE("a watch the kernel refuses is reported through the exception handler",
          "[descriptor][error]") {
    int fd = not_open_descriptor();
    auto body = [](int bad) -> corio::task<int> {
        corio::event_loop& loop = corio::get_running_loop();
        int code = 0;
        int calls = 0;
        loop.set_exception_handler([&code](const corio::exception_context& c) {
            try {
                std::rethrow_exception(c.exception);
            } catch (const std::system_error& e) {
                code = e.code().value();
            }
        });
        loop.add_reader(bad, [&calls] { ++calls; });
        co_await yield_until([&] { return code != 0; });
        CHECK(calls == 0);
        CHECK(loop.remove_reader(bad)); // the ended watch is still registered
        CHECK_FALSE(loop.remove_reader(bad));
        co_return code;
    };
    CHECK(corio::run(body(fd)) == EBADF);
}

TEST_CASE("a loop closed with readers still registered frees them", "[descriptor][lifetime]") {
    test_pipe p;
    int calls = 0;
    {
        corio::event_loop loop;
        loop.add_reader(p.r, [&calls] { ++calls; });
        loop.add_writer(p.w, [&calls] { ++calls; });
        auto step = []() -> corio::task<> { co_await in_kernel(); };
        loop.run_until_complete(step());
        loop.close();
    }
    CHECK(calls >= 1); // the writer was writable
}
