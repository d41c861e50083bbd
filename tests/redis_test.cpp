// redis::connection against a private redis-server per test.

#include "redis_server.hpp"

#include <corio/combinators.hpp>
#include <corio/corio.hpp>
#include <corio/redis.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using corio::task;
using corio_example::redis_server;
namespace redis = corio::redis;
using argv = std::vector<std::string>;

TEST_CASE("a Redis URL parses into host, port, database and password", "[redis][url]") {
    auto u = redis::url::parse("redis://127.0.0.1:6380/3");
    CHECK(u.host == "127.0.0.1");
    CHECK(u.port == 6380);
    CHECK(u.db == 3);
    CHECK(u.path.empty());
    u = redis::url::parse("redis://:s3cret@cache.local");
    CHECK(u.host == "cache.local");
    CHECK(u.port == 6379);
    CHECK(u.password == "s3cret");
    CHECK(u.display() == "redis://:***@cache.local:6379");
    u = redis::url::parse("redis://alice:pw@[::1]:7000/1");
    CHECK(u.host == "::1");
    CHECK(u.user == "alice");
    CHECK(u.port == 7000);
    CHECK(u.display() == "redis://alice:***@[::1]:7000/1");
    u = redis::url::parse("redis+unix:///tmp/r.sock?db=2&password=x");
    CHECK(u.path == "/tmp/r.sock");
    CHECK(u.db == 2);
    CHECK(u.password == "x");
}

TEST_CASE("a malformed Redis URL throws redis::error naming it", "[redis][url][error]") {
    for (const char* bad :
         {"http://x", "redis://", "redis://h:0", "redis://h:99999", "redis://h:12ab", "redis://h/x",
          "redis+unix://", "redis+unix:///p?q", "redis://[::1"}) {
        try {
            (void)redis::url::parse(bad);
            FAIL("no exception for " << bad);
        } catch (const redis::error& e) {
            CHECK(std::string(e.what()).find(bad) != std::string::npos);
        }
    }
}

TEST_CASE("commands return nil, integer, string, status and array replies", "[redis][command]") {
    redis_server server;
    corio::run([](std::string url) -> task<> {
        auto c = co_await redis::connection::connect(url);
        CHECK(c.is_open());
        auto r = co_await c.command("SET", "k", "v");
        CHECK(r.type() == redis::reply::kind::status);
        CHECK(r.str() == "OK");
        r = co_await c.command("GET", "k");
        CHECK(r.type() == redis::reply::kind::string);
        CHECK(r.str() == "v");
        r = co_await c.command("GET", "missing");
        CHECK(r.is_nil());
        CHECK_FALSE(r.optional_str().has_value());
        r = co_await c.command("INCRBY", "n", 41);
        CHECK(r.integer() == 41);
        co_await c.command("RPUSH", "l", "a", "b", 3);
        r = co_await c.command("LRANGE", "l", 0, -1);
        REQUIRE(r.size() == 3);
        CHECK(r[0].str() == "a");
        CHECK(r[2].str() == "3");
        CHECK_THROWS_AS(r[3], redis::error);
        CHECK_THROWS_AS(r.integer(), redis::error);
        CHECK_THROWS_AS(r[0].elements(), redis::error);
    }(server.url()));
}

TEST_CASE("an error reply throws redis::error with its text and the URL", "[redis][error]") {
    redis_server server;
    corio::run([](std::string url) -> task<> {
        auto c = co_await redis::connection::connect(url);
        co_await c.command("SET", "k", "v");
        try {
            co_await c.command("LPUSH", "k", "x");
            FAIL("no exception");
        } catch (const redis::error& e) {
            const std::string what = e.what();
            CHECK(what.find("WRONGTYPE") != std::string::npos);
            CHECK(what.find("127.0.0.1") != std::string::npos);
        }
        CHECK_THROWS_AS(co_await c.command_argv({}), redis::error);
        // The connection still works after an error reply.
        auto got1 = co_await c.command("GET", "k");
        CHECK(got1.str() == "v");
    }(server.url()));
}

TEST_CASE("concurrent commands on one connection are pipelined and answered in order",
          "[redis][pipeline]") {
    redis_server server;
    corio::run([](std::string url) -> task<> {
        auto c = co_await redis::connection::connect(url);
        std::vector<corio::future<redis::reply>> sent;
        for (int i = 0; i < 200; ++i) {
            sent.push_back(corio::create_task(c.command("INCR", "counter")));
        }
        for (int i = 0; i < 200; ++i) {
            auto r = co_await sent[static_cast<std::size_t>(i)];
            CHECK(r.integer() == i + 1);
        }
        std::vector<argv> commands = {argv{"SET", "a", "1"}, argv{"INCR", "a"},
                                      argv{"LPUSH", "a", "x"}, argv{"GET", "a"}};
        auto batch = co_await c.pipeline(std::move(commands));
        REQUIRE(batch.size() == 4);
        CHECK(batch[1].integer() == 2);
        CHECK(batch[2].is_error());
        CHECK(batch[3].str() == "2");
        std::vector<argv> with_empty(2);
        with_empty[0].push_back("PING");
        CHECK_THROWS_AS(co_await c.pipeline(std::move(with_empty)), redis::error);
    }(server.url()));
}

TEST_CASE("evalsha loads a script on first use and again after SCRIPT FLUSH", "[redis][script]") {
    redis_server server;
    corio::run([](std::string url) -> task<> {
        auto c = co_await redis::connection::connect(url);
        redis::script add("return redis.call('INCRBY', KEYS[1], ARGV[1])");
        // (Named vectors: g++ 12 rejects a braced list inside a co_await expression.)
        const argv keys = {"x"};
        const argv five = {"5"}, two = {"2"}, one = {"1"};
        // (Never co_await inside CHECK: g++ evaluates it twice there.)
        auto r = co_await c.evalsha(add, keys, five);
        CHECK(r.integer() == 5);
        r = co_await c.evalsha(add, keys, two);
        CHECK(r.integer() == 7);
        co_await c.command("SCRIPT", "FLUSH");
        r = co_await c.evalsha(add, keys, one);
        CHECK(r.integer() == 8);
        redis::script bad("return redis.error_reply('my failure')");
        try {
            co_await c.evalsha(bad, argv(), argv());
            FAIL("no exception");
        } catch (const redis::error& e) {
            CHECK(std::string(e.what()).find("my failure") != std::string::npos);
        }
    }(server.url()));
}

TEST_CASE("a Unix-socket URL with a database number works", "[redis][unix]") {
    redis_server server({.unix_socket = true});
    corio::run([](std::string url) -> task<> {
        auto c = co_await redis::connection::connect(url + "?db=2");
        co_await c.command("SET", "k", "in db 2");
        auto d = co_await redis::connection::connect(url);
        auto got2 = co_await d.command("GET", "k");
        CHECK(got2.is_nil());
        co_await d.command("SELECT", 2);
        auto got3 = co_await d.command("GET", "k");
        CHECK(got3.str() == "in db 2");
    }(server.url()));
}

TEST_CASE("a password in the URL authenticates; a wrong one fails naming the URL",
          "[redis][auth][error]") {
    redis_server server;
    corio::run([](std::string url, int port) -> task<> {
        {
            auto c = co_await redis::connection::connect(url);
            co_await c.command("CONFIG", "SET", "requirepass", "pw");
        }
        auto ok =
            co_await redis::connection::connect("redis://:pw@127.0.0.1:" + std::to_string(port));
        auto got4 = co_await ok.command("PING");
        CHECK(got4.str() == "PONG");
        try {
            (void)co_await redis::connection::connect("redis://:wrong@127.0.0.1:" +
                                                      std::to_string(port));
            FAIL("no exception");
        } catch (const redis::error& e) {
            const std::string what = e.what();
            CHECK(what.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
            CHECK(what.find("wrong") == std::string::npos); // the password is not shown
        }
    }(server.url(), server.port()));
}

TEST_CASE("a refused connection throws redis::error naming the URL", "[redis][error]") {
    int port = 0;
    {
        redis_server server;
        port = server.port();
    } // stopped: nobody listens on that port now
    corio::run([](int p) -> task<> {
        const std::string url = "redis://127.0.0.1:" + std::to_string(p);
        try {
            (void)co_await redis::connection::connect(url);
            FAIL("no exception");
        } catch (const redis::error& e) {
            CHECK(std::string(e.what()).find("127.0.0.1:" + std::to_string(p)) !=
                  std::string::npos);
        }
    }(port));
}

TEST_CASE("a server that accepts but never answers fails connect within the timeout",
          "[redis][error][timeout]") {
    corio::run([]() -> task<> {
        auto listener = corio::tcp_listener::bind("127.0.0.1", 0);
        const std::string url = "redis://127.0.0.1:" + std::to_string(listener.local_port());
        const auto start = std::chrono::steady_clock::now();
        try {
            (void)co_await redis::connection::connect(
                url, {.connect_timeout = std::chrono::milliseconds(200)});
            FAIL("no exception");
        } catch (const redis::error& e) {
            const std::string what = e.what();
            CHECK(what.find(url.substr(8)) != std::string::npos);
            CHECK(what.find("no answer") != std::string::npos);
        }
        CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(200));
    }());
}

TEST_CASE("a command cancelled while its write is in flight ends with cancelled_error",
          "[redis][cancel]") {
    // A server that answers PING, then never reads: a 32 MiB command cannot be written
    // out, so the task is cancelled in the middle of its write. The cancellation must
    // reach the task as cancelled_error (not as a redis::error, which loops that retry
    // on redis::error would swallow: a worker once hung in its shutdown that way).
    corio::run([]() -> task<> {
        auto listener = corio::tcp_listener::bind("127.0.0.1", 0);
        const std::string url = "redis://127.0.0.1:" + std::to_string(listener.local_port());
        corio::event done;
        auto server = corio::create_task([](corio::tcp_listener* l, corio::event* d) -> task<> {
            corio::tcp_stream s = co_await l->accept();
            (void)co_await s.read_exactly(std::string_view("*1\r\n$4\r\nPING\r\n").size());
            co_await s.write_all(std::string_view("+PONG\r\n"));
            co_await d->wait(); // open, never read again
        }(&listener, &done));
        auto c = co_await redis::connection::connect(url);
        auto set = corio::create_task(c.command("SET", "k", std::string(32 << 20, 'x')));
        for (int i = 0; i < 10; ++i) {
            co_await corio::yield_now(); // the write runs and fills the socket buffers
        }
        REQUIRE_FALSE(set.done());
        set.cancel();
        CHECK_THROWS_AS(co_await set, corio::cancelled_error);
        CHECK_FALSE(c.is_open()); // part of a command may be on the wire: done for
        CHECK_THROWS_AS(co_await c.command("PING"), redis::error);
        done.set();
        co_await server;
    }());
}

TEST_CASE("a server that goes away fails pending and later commands", "[redis][error]") {
    redis_server server;
    corio::run([](redis_server* s) -> task<> {
        auto c = co_await redis::connection::connect(s->url());
        auto blocked = corio::create_task(c.command("BLPOP", "nothing", 0));
        co_await corio::yield_now();
        co_await corio::yield_now();
        s->stop(true);
        CHECK_THROWS_AS(co_await blocked, redis::error);
        CHECK_FALSE(c.is_open());
        CHECK_THROWS_AS(co_await c.command("PING"), redis::error);
    }(&server));
}

TEST_CASE("a 10 MiB value round-trips intact", "[redis][large]") {
    redis_server server;
    corio::run([](std::string url) -> task<> {
        auto c = co_await redis::connection::connect(url);
        std::string big(10 << 20, '\0');
        for (std::size_t i = 0; i < big.size(); ++i) {
            big[i] = static_cast<char>((i * 131) ^ (i >> 9));
        }
        co_await c.command("SET", "big", big);
        auto r = co_await c.command("GET", "big");
        CHECK(r.str().size() == big.size());
        CHECK(r.str() == big);
    }(server.url()));
}
