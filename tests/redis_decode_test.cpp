// What a Redis client decodes from the server's bytes (src/redis/decode.hpp, white
// box): the reply parser and the job protocol's record decoders. Bytes from another
// machine: malformed input gives redis::error, never a crash or an allocation the
// bytes received do not justify. No server needed; fuzz/fuzz_redis_reply.cpp fuzzes
// the same functions.
#include "redis/decode.hpp"

#include <corio/redis.hpp>

#include <catch2/catch.hpp>

#include <malloc.h>
#include <optional>
#include <string>
#include <vector>

namespace rd = corio::detail::redis_decode;
namespace redis = corio::redis;

namespace {

std::vector<std::string> parse_all(rd::reply_parser& p, const std::string& bytes) {
    p.feed(bytes.data(), bytes.size());
    std::vector<std::string> out;
    while (std::optional<redis::reply> r = p.next()) {
        out.push_back(r->to_string());
    }
    return out;
}

std::string bulk(const std::string& s) {
    return "$" + std::to_string(s.size()) + "\r\n" + s + "\r\n";
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool heap_stats = false; // ASan's allocator is not glibc's: mallinfo2 is blind
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool heap_stats = false;
#else
constexpr bool heap_stats = true;
#endif
#else
constexpr bool heap_stats = true;
#endif

std::size_t heap_in_use() {
    const struct mallinfo2 m = mallinfo2();
    return m.uordblks + m.hblkhd; // heap blocks in use plus mmapped blocks
}

} // namespace

TEST_CASE("the reply parser turns RESP into replies, whole or in pieces", "[redis][decode]") {
    const std::string bytes = "+OK\r\n-ERR no such key\r\n:42\r\n" + bulk("hello") +
                              "$-1\r\n*2\r\n:1\r\n*1\r\n" + bulk("x");
    const std::vector<std::string> expected = {"OK",           "(error) ERR no such key",
                                               "(integer) 42", "\"hello\"",
                                               "(nil)",        "[(integer) 1, [\"x\"]]"};
    rd::reply_parser whole;
    CHECK(parse_all(whole, bytes) == expected);
    rd::reply_parser bytewise;
    std::vector<std::string> got;
    for (char c : bytes) {
        for (auto& r : parse_all(bytewise, std::string(1, c))) {
            got.push_back(std::move(r));
        }
    }
    CHECK(got == expected);
}

TEST_CASE("an array header allocates nothing for elements that have not arrived",
          "[redis][decode]") {
    // hiredis' own reply objects calloc the announced element array: 800 MB here.
    rd::reply_parser p;
    const std::size_t before = heap_in_use();
    CHECK(parse_all(p, "*100000000\r\n:1\r\n:2\r\n").empty()); // waits for the rest
    if (heap_stats) {
        CHECK(heap_in_use() - before < std::size_t{1} << 20);
    }
    // A short array completes normally after such a wait.
    rd::reply_parser q;
    CHECK(parse_all(q, "*3\r\n:1\r\n").empty());
    CHECK(parse_all(q, ":2\r\n:3\r\n") ==
          std::vector<std::string>{"[(integer) 1, (integer) 2, (integer) 3]"});
}

TEST_CASE("bytes that are not RESP give a protocol error", "[redis][decode]") {
    rd::reply_parser p;
    CHECK_THROWS_AS(parse_all(p, "?what\r\n"), rd::protocol_error);
    rd::reply_parser negative;
    CHECK_THROWS_AS(parse_all(negative, "*-5\r\n:1\r\n"), rd::protocol_error);
    rd::reply_parser deep;
    CHECK_THROWS_AS(parse_all(deep, "*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n"),
                    rd::protocol_error);
    rd::reply_parser not_a_number;
    CHECK_THROWS_AS(parse_all(not_a_number, ":12x\r\n"), rd::protocol_error);
}

TEST_CASE("a fetched job decodes, a malformed one gives redis::error", "[redis][decode]") {
    rd::reply_parser p;
    const auto replies = [&](const std::string& b) {
        p.feed(b.data(), b.size());
        return p.next().value();
    };
    const redis::reply good = replies("*5\r\n" + bulk("job-1") + bulk("square") + bulk("\x01\x02") +
                                      ":1\r\n" + bulk("5000"));
    const rd::fetched_job j = rd::decode_job(good);
    CHECK(j.id == "job-1");
    CHECK(j.function == "square");
    CHECK(j.payload == "\x01\x02");
    CHECK(j.timeout_ms == 5000);
    // A timeout that is not a number: redis::error (std::stoll threw
    // std::invalid_argument, which escaped the worker's fetch loop).
    const redis::reply bad_timeout =
        replies("*5\r\n" + bulk("job-1") + bulk("square") + bulk("") + ":1\r\n" + bulk("soon"));
    CHECK_THROWS_WITH(rd::decode_job(bad_timeout), Catch::Contains("bad timeout 'soon'"));
    const redis::reply too_short = replies("*2\r\n" + bulk("job-1") + bulk("square"));
    CHECK_THROWS_AS(rd::decode_job(too_short), redis::error);
    const redis::reply not_array = replies(":7\r\n");
    CHECK_THROWS_AS(rd::decode_job(not_array), redis::error);
    const redis::reply int_id =
        replies("*5\r\n:1\r\n" + bulk("square") + bulk("") + ":1\r\n" + bulk("0"));
    CHECK_THROWS_AS(rd::decode_job(int_id), redis::error);
}

TEST_CASE("a failed-job record decodes, a bad attempt count gives redis::error",
          "[redis][decode]") {
    rd::reply_parser p;
    const auto reply = [&](const std::string& attempts) {
        const std::string b = "*6\r\n" + bulk("job-1") + bulk("square") + bulk("dead") +
                              bulk("std::runtime_error") + bulk("boom") + bulk(attempts);
        p.feed(b.data(), b.size());
        return p.next().value();
    };
    const corio::redis_failed_job f = rd::decode_failed_job(reply("3"));
    CHECK(f.id == "job-1");
    CHECK(f.function == "square");
    CHECK(f.state == "dead");
    CHECK(f.error_type == "std::runtime_error");
    CHECK(f.error_message == "boom");
    CHECK(f.attempts == 3);
    // std::stoul took "-1" as 18446744073709551615 and threw std::invalid_argument for
    // "x": both are redis::error now.
    CHECK_THROWS_AS(rd::decode_failed_job(reply("-1")), redis::error);
    CHECK_THROWS_AS(rd::decode_failed_job(reply("x")), redis::error);
}

TEST_CASE("result stream entries are handed on in order up to a malformed one", "[redis][decode]") {
    rd::reply_parser p;
    const auto entry = [](const std::string& eid, const std::string& id,
                          const std::string& status) {
        return "*2\r\n" + bulk(eid) + "*6\r\n" + bulk("id") + bulk(id) + bulk("status") +
               bulk(status) + bulk("data") + bulk("d-" + id);
    };
    const std::string b = "*1\r\n*2\r\n" + bulk("corio:results:1") + "*3\r\n" +
                          entry("1-0", "a", "ok") + entry("2-0", "b", "lost") + "*2\r\n" +
                          bulk("3-0") + ":5\r\n"; // fields not an array
    p.feed(b.data(), b.size());
    const redis::reply r = p.next().value();
    std::vector<std::string> seen;
    CHECK_THROWS_AS(
        rd::for_each_stream_entry(
            r, [&](const std::string& eid) { seen.push_back("entry " + eid); },
            [&](const std::string& id, const std::string& status, const std::string& data) {
                seen.push_back(id + " " + status + " " + data);
            }),
        redis::error);
    CHECK(seen == std::vector<std::string>{"entry 1-0", "a ok d-a", "entry 2-0", "b lost d-b",
                                           "entry 3-0"});
}
