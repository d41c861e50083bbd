// Files on io_uring: corio::file, read_file, write_file.
#include "loop_steps.hpp"

#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace {

// A fresh directory under $TMPDIR, removed with its files at the end of the test.
struct temp_dir {
    std::string path;
    temp_dir() {
        const char* base = std::getenv("TMPDIR");
        std::string templ = std::string(base != nullptr ? base : "/tmp") + "/corio-io-XXXXXX";
        REQUIRE(::mkdtemp(templ.data()) != nullptr);
        path = templ;
    }
    ~temp_dir() {
        std::string cmd = "rm -rf '" + path + "'";
        [[maybe_unused]] int rc = std::system(cmd.c_str());
    }
    std::string operator/(const std::string& name) const { return path + "/" + name; }
};

int errno_of(const std::system_error& e) {
    return e.code().value();
}

// A pipe whose two ends are adopted by corio::file objects: {read end, write end}.
std::pair<corio::file, corio::file> file_pipe() {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    return {corio::file(fds[0]), corio::file(fds[1])};
}

// Bytes waiting in a pipe (FIONREAD).
int unread(int fd) {
    int n = -1;
    REQUIRE(::ioctl(fd, FIONREAD, &n) == 0);
    return n;
}

using corio_test::in_kernel;
using corio_test::yield_until;

} // namespace

TEST_CASE("a file written at offsets reads back the same bytes at those offsets",
          "[file][offset]") {
    temp_dir dir;
    std::string path = dir / "offsets";
    auto body = [](std::string p) -> corio::task<std::string> {
        corio::file f = co_await corio::file::open(p, "w+");
        {
            auto got_ = co_await f.write("world", 6);
            CHECK(got_ == 5);
        }
        {
            auto got_ = co_await f.write("hello", 0);
            CHECK(got_ == 5);
        }
        {
            auto got_ = co_await f.write(" ", 5);
            CHECK(got_ == 1);
        }
        std::string back(5, '\0');
        {
            auto got_ = co_await f.read(std::span<char>(back), 6);
            CHECK(got_ == 5);
        }
        CHECK(back == "world");
        {
            auto got_ = co_await f.size();
            CHECK(got_ == 11);
        }
        co_await f.fsync();
        co_await f.close();
        CHECK_FALSE(f.is_open());
        co_return co_await corio::read_file(p);
    };
    CHECK(corio::run(body(path)) == "hello world");
}

TEST_CASE("a read past the end of a file returns what there is, then zero", "[file][eof]") {
    temp_dir dir;
    std::string path = dir / "short";
    auto body = [](std::string p) -> corio::task<> {
        co_await corio::write_file(p, "0123456789");
        corio::file f = co_await corio::file::open(p, "r");
        std::string buf(64, '\0');
        {
            auto got_ = co_await f.read(std::span<char>(buf), 4);
            CHECK(got_ == 6); // short read at the end
        }
        CHECK(buf.substr(0, 6) == "456789");
        {
            auto got_ = co_await f.read(std::span<char>(buf), 10);
            CHECK(got_ == 0); // at the end
        }
        {
            auto got_ = co_await f.read(std::span<char>(buf), 1000);
            CHECK(got_ == 0); // past it
        }
    };
    corio::run(body(path));
}

TEST_CASE("writing through a read-only descriptor fails with EBADF", "[file][error]") {
    temp_dir dir;
    std::string path = dir / "ro";
    auto body = [](std::string p) -> corio::task<int> {
        co_await corio::write_file(p, "data");
        corio::file f = co_await corio::file::open(p, "r");
        try {
            co_await f.write("more", 0);
        } catch (const std::system_error& e) {
            CHECK(std::string(e.what()).rfind("write", 0) == 0);
            co_return errno_of(e);
        }
        co_return 0;
    };
    CHECK(corio::run(body(path)) == EBADF);
}

TEST_CASE("reading through a write-only descriptor fails with EBADF", "[file][error]") {
    temp_dir dir;
    std::string path = dir / "wo";
    auto body = [](std::string p) -> corio::task<int> {
        corio::file f = co_await corio::file::open(p, "w");
        std::string buf(4, '\0');
        try {
            co_await f.read(std::span<char>(buf), 0);
        } catch (const std::system_error& e) {
            co_return errno_of(e);
        }
        co_return 0;
    };
    CHECK(corio::run(body(path)) == EBADF);
}

TEST_CASE("opening a missing file fails with ENOENT from open", "[file][error]") {
    temp_dir dir;
    auto body = [](std::string p) -> corio::task<int> {
        try {
            co_await corio::file::open(p, "r");
        } catch (const std::system_error& e) {
            CHECK(std::string(e.what()).rfind("open", 0) == 0);
            co_return errno_of(e);
        }
        co_return 0;
    };
    CHECK(corio::run(body(dir / "missing")) == ENOENT);
}

TEST_CASE("exclusive creation fails with EEXIST when the file exists", "[file][error]") {
    temp_dir dir;
    auto body = [](std::string p) -> corio::task<int> {
        corio::file created = co_await corio::file::open(p, "x");
        co_await created.close();
        try {
            co_await corio::file::open(p, "xb");
        } catch (const std::system_error& e) {
            co_return errno_of(e);
        }
        co_return 0;
    };
    CHECK(corio::run(body(dir / "excl")) == EEXIST);
}

TEST_CASE("Python mode strings map to open flags and bad ones are rejected", "[file][mode]") {
    using corio::file;
    CHECK(file::flags_for_mode("r") == O_RDONLY);
    CHECK(file::flags_for_mode("rb") == O_RDONLY);
    CHECK(file::flags_for_mode("w") == (O_WRONLY | O_CREAT | O_TRUNC));
    CHECK(file::flags_for_mode("a") == (O_WRONLY | O_CREAT | O_APPEND));
    CHECK(file::flags_for_mode("r+") == O_RDWR);
    CHECK(file::flags_for_mode("w+b") == (O_RDWR | O_CREAT | O_TRUNC));
    CHECK(file::flags_for_mode("a+") == (O_RDWR | O_CREAT | O_APPEND));
    CHECK(file::flags_for_mode("x") == (O_WRONLY | O_CREAT | O_EXCL));
    CHECK_THROWS_AS(file::flags_for_mode(""), std::invalid_argument);
    CHECK_THROWS_AS(file::flags_for_mode("rw"), std::invalid_argument);
    CHECK_THROWS_AS(file::flags_for_mode("r++"), std::invalid_argument);
    CHECK_THROWS_AS(file::flags_for_mode("q"), std::invalid_argument);
}

TEST_CASE("append mode writes at the end whatever the offset", "[file][mode]") {
    temp_dir dir;
    auto body = [](std::string p) -> corio::task<std::string> {
        co_await corio::write_file(p, "abc");
        corio::file f = co_await corio::file::open(p, "a");
        co_await f.write("def", 0);
        co_await f.close();
        co_return co_await corio::read_file(p);
    };
    CHECK(corio::run(body(dir / "append")) == "abcdef");
}

TEST_CASE("write_file truncates and read_file reads a large file whole", "[file][convenience]") {
    temp_dir dir;
    auto body = [](std::string p) -> corio::task<> {
        std::string big(3 * 1024 * 1024 + 17, '\0');
        for (std::size_t i = 0; i < big.size(); ++i) {
            big[i] = static_cast<char>('a' + i % 26);
        }
        co_await corio::write_file(p, big);
        {
            auto got_ = co_await corio::read_file(p);
            CHECK(got_ == big);
        }
        co_await corio::write_file(p, "tiny");
        {
            auto got_ = co_await corio::read_file(p);
            CHECK(got_ == "tiny");
        }
    };
    corio::run(body(dir / "big"));
}

TEST_CASE("read_file reads files whose size statx does not know", "[file][convenience]") {
    auto body = []() -> corio::task<std::string> {
        co_return co_await corio::read_file("/proc/self/status");
    };
    std::string status = corio::run(body());
    CHECK(status.find("Pid:") != std::string::npos);
}

TEST_CASE("several reads of one file may be in flight at once", "[file][concurrency]") {
    temp_dir dir;
    auto body = [](std::string p) -> corio::task<> {
        std::string data(64 * 1024, '\0');
        for (std::size_t i = 0; i < data.size(); ++i) {
            data[i] = static_cast<char>(i * 7);
        }
        co_await corio::write_file(p, data);
        corio::file f = co_await corio::file::open(p, "rb");
        std::vector<std::string> parts(8, std::string(8192, '\0'));
        std::vector<corio::future<std::size_t>> reads;
        for (std::size_t i = 0; i < parts.size(); ++i) {
            reads.push_back(corio::create_task(f.read(std::span<char>(parts[i]), i * 8192)));
        }
        std::string joined;
        for (std::size_t i = 0; i < parts.size(); ++i) {
            {
                auto got_ = co_await reads[i];
                CHECK(got_ == 8192);
            }
            joined += parts[i];
        }
        CHECK(joined == data);
    };
    corio::run(body(dir / "parallel"));
}

TEST_CASE("a file adopts a descriptor, reports it and gives it up with release()", "[file][fd]") {
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    {
        corio::file in(fds[0]);
        CHECK(in.is_open());
        CHECK(in.fd() == fds[0]);
        CHECK(in.release() == fds[0]);
        CHECK_FALSE(in.is_open());
        CHECK(in.fd() == -1);
        corio::file out(fds[1]);
        corio::file moved(std::move(out));
        CHECK(moved.fd() == fds[1]);
        CHECK(out.fd() == -1);
    } // `moved` closed the write end; the released read end is still ours
    char c = 0;
    CHECK(::read(fds[0], &c, 1) == 0); // end of file: the writer is gone
    CHECK(::close(fds[0]) == 0);
}

TEST_CASE("a read loops over short reads until its buffer is full", "[file][short]") {
    auto body = []() -> corio::task<std::string> {
        auto [in, out] = file_pipe();
        std::string buf(10, '\0');
        auto reader = corio::create_task(in.read(std::span<char>(buf), 0));
        // Feed the pipe in pieces, each taken by its own short read before the next.
        for (std::string_view piece : {"abc", "defg", "hij"}) {
            co_await in_kernel();
            REQUIRE_FALSE(reader.done());
            REQUIRE(::write(out.fd(), piece.data(), piece.size()) ==
                    static_cast<ssize_t>(piece.size()));
            co_await yield_until([fd = in.fd()] { return unread(fd) == 0; });
        }
        {
            auto got_ = co_await corio::wait_for(reader, std::chrono::seconds(10));
            CHECK(got_ == 10);
        }
        co_return buf;
    };
    CHECK(corio::run(body()) == "abcdefghij");
}

TEST_CASE("a read that meets the end of a pipe returns the bytes it has", "[file][short]") {
    auto body = []() -> corio::task<> {
        auto [in, out] = file_pipe();
        std::string buf(10, '\0');
        auto reader = corio::create_task(in.read(std::span<char>(buf), 0));
        co_await in_kernel();
        REQUIRE(::write(out.fd(), "xy", 2) == 2);
        co_await yield_until([fd = in.fd()] { return unread(fd) == 0; });
        co_await out.close(); // end of file for the reader
        {
            auto got_ = co_await corio::wait_for(reader, std::chrono::seconds(10));
            CHECK(got_ == 2);
        }
        CHECK(buf.substr(0, 2) == "xy");
    };
    corio::run(body());
}

TEST_CASE("a write loops over short writes until everything is written", "[file][short]") {
    auto body = []() -> corio::task<> {
        auto [in, out] = file_pipe();
        // A one-page pipe: the write goes through in pipe-sized pieces.
        REQUIRE(::fcntl(out.fd(), F_SETPIPE_SZ, 4096) >= 4096);
        std::string data(256 * 1024, '\0');
        for (std::size_t i = 0; i < data.size(); ++i) {
            data[i] = static_cast<char>(i * 31 + i / 4096);
        }
        auto writer = corio::create_task(out.write(data, 0));
        std::string got;
        std::string chunk(4096, '\0');
        while (got.size() < data.size()) {
            std::size_t n = co_await corio::wait_for(in.read(std::span<char>(chunk), 0),
                                                     std::chrono::seconds(10));
            REQUIRE(n == chunk.size());
            got.append(chunk, 0, n);
        }
        {
            auto got_ = co_await corio::wait_for(writer, std::chrono::seconds(10));
            CHECK(got_ == data.size());
        }
        CHECK(got == data);
    };
    corio::run(body());
}
