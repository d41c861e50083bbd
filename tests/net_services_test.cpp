// getnameinfo, start_unix_server and sendfile: the asyncio loop services that sit
// on top of the socket layer. Real sockets and files; deterministic.
#include <corio/corio.hpp>

#include <catch2/catch.hpp>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace {

struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/corio-net-services-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~temp_dir() { std::system(("rm -rf '" + path + "'").c_str()); }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

} // namespace

TEST_CASE("getnameinfo gives numeric and named host and service", "[net][getnameinfo]") {
    auto body = []() -> corio::task<> {
        corio::endpoint ep = *corio::endpoint::parse("127.0.0.1", 8080);
        auto numeric = co_await corio::getnameinfo(ep, NI_NUMERICHOST | NI_NUMERICSERV);
        CHECK(numeric.first == "127.0.0.1");
        CHECK(numeric.second == "8080");
        corio::endpoint v6 = *corio::endpoint::parse("::1", 443);
        auto numeric6 = co_await corio::getnameinfo(v6, NI_NUMERICHOST | NI_NUMERICSERV);
        CHECK(numeric6.first == "::1");
        CHECK(numeric6.second == "443");
        // The loopback address has a name (/etc/hosts); the result is not numeric.
        auto named = co_await corio::getnameinfo(ep, NI_NUMERICSERV);
        CHECK_FALSE(named.first.empty());
        CHECK(named.first != "127.0.0.1");
    };
    corio::run(body());
}

TEST_CASE("getnameinfo refuses what it cannot look up", "[net][getnameinfo][error]") {
    auto unix_ep = []() -> corio::task<> {
        (void)co_await corio::getnameinfo(corio::endpoint::unix_path("/tmp/x"));
    };
    CHECK_THROWS_AS(corio::run(unix_ep()), std::invalid_argument);
    auto empty = []() -> corio::task<> { (void)co_await corio::getnameinfo(corio::endpoint()); };
    CHECK_THROWS_AS(corio::run(empty()), std::invalid_argument);
    // A documentation address (TEST-NET-1) has no name: NI_NAMEREQD makes that an error.
    auto nameless = []() -> corio::task<> {
        corio::endpoint ep = *corio::endpoint::parse("192.0.2.1", 1);
        (void)co_await corio::getnameinfo(ep, NI_NAMEREQD | NI_NUMERICSERV);
    };
    CHECK_THROWS_AS(corio::run(nameless()), corio::error);
}

namespace {

corio::task<> echo_upper(corio::unix_stream s) {
    std::string line = co_await s.read_until("\n");
    for (char& c : line) {
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    co_await s.write_all(line);
}

} // namespace

TEST_CASE("start_unix_server serves each connection with its handler", "[net][unix_server]") {
    temp_dir dir;
    auto body = [](std::string path) -> corio::task<std::vector<std::string>> {
        corio::server srv = co_await corio::start_unix_server(&echo_upper, path);
        CHECK(srv.is_serving());
        CHECK(srv.local_port() == 0);
        auto ask = [](std::string at, std::string word) -> corio::task<std::string> {
            corio::unix_stream c = co_await corio::unix_stream::connect(at);
            co_await c.write_all(word);
            co_return co_await c.read_until("\n");
        };
        std::vector<std::string> replies;
        replies.push_back(co_await ask(path, "alpha\n"));
        replies.push_back(co_await ask(path, "beta\n"));
        srv.close();
        co_await srv.wait_closed();
        CHECK(::access(path.c_str(), F_OK) != 0); // the socket file is gone
        co_return replies;
    };
    std::vector<std::string> expected{"ALPHA\n", "BETA\n"};
    CHECK(corio::run(body(dir.path + "/srv.sock")) == expected);
}

TEST_CASE("start_unix_server fails on a path it cannot bind", "[net][unix_server][error]") {
    auto bad = [](std::string path) -> corio::task<> {
        corio::server srv = co_await corio::start_unix_server(&echo_upper, path);
    };
    CHECK_THROWS_AS(corio::run(bad("")), std::invalid_argument);
    int err = 0;
    try {
        corio::run(bad("/nonexistent-dir/corio.sock"));
    } catch (const std::system_error& e) {
        err = e.code().value();
    }
    CHECK(err == ENOENT);
}

TEST_CASE("sendfile moves a multi-MiB file through a socket unchanged", "[net][sendfile]") {
    temp_dir dir;
    std::string path = dir.path + "/data.bin";
    std::string content(6u << 20, '\0');
    std::uint32_t x = 12345;
    for (char& c : content) {
        x = x * 1103515245u + 12345u;
        c = static_cast<char>(x >> 24);
    }
    auto body = [](std::string p, std::string data) -> corio::task<> {
        co_await corio::write_file(p, data);
        auto [a, b] = corio::unix_stream::pair();
        corio::file f = co_await corio::file::open(p, "r");
        auto reader = [](corio::unix_stream* s) -> corio::task<std::string> {
            co_return co_await s->read_to_end();
        };
        corio::future<std::string> got = corio::create_task(reader(&b));
        std::uint64_t sent = co_await corio::sendfile(a, f);
        CHECK(sent == data.size());
        // A part: 1000 bytes from offset 4097.
        std::uint64_t part = co_await corio::sendfile(a, f, 4097, 1000);
        CHECK(part == 1000u);
        // Past the end: nothing.
        std::uint64_t none = co_await corio::sendfile(a, f, data.size() + 10);
        CHECK(none == 0u);
        a.close();
        std::string all = co_await got;
        CHECK(all.size() == data.size() + 1000);
        CHECK(all.compare(0, data.size(), data) == 0);
        CHECK(all.compare(data.size(), 1000, data, 4097, 1000) == 0);
        co_await f.close();
    };
    corio::run(body(path, content));
}

TEST_CASE("sendfile errors: closed stream or file, a peer that is gone", "[net][sendfile][error]") {
    temp_dir dir;
    std::string path = dir.path + "/data.bin";
    auto body = [](std::string p) -> corio::task<> {
        co_await corio::write_file(p, std::string(4u << 20, 'z'));
        corio::file f = co_await corio::file::open(p, "r");
        auto [a, b] = corio::unix_stream::pair();
        corio::unix_stream closed;
        int e1 = 0;
        try {
            (void)co_await corio::sendfile(closed, f);
        } catch (const std::system_error& e) {
            e1 = e.code().value();
        }
        CHECK(e1 == EBADF);
        corio::file no_file;
        int e2 = 0;
        try {
            (void)co_await corio::sendfile(a, no_file);
        } catch (const std::system_error& e) {
            e2 = e.code().value();
        }
        CHECK(e2 == EBADF);
        b.close(); // the peer goes: EPIPE, not SIGPIPE
        int e3 = 0;
        try {
            (void)co_await corio::sendfile(a, f);
        } catch (const std::system_error& e) {
            e3 = e.code().value();
        }
        CHECK((e3 == EPIPE || e3 == ECONNRESET));
        co_await f.close();
    };
    corio::run(body(path));
}
