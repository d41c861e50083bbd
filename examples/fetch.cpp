// The aiohttp-crawler pattern on loopback: a tiny HTTP/1.1 server (start_server)
// serves N pages; a client fetches them all concurrently with at most K requests
// in flight (a semaphore) and a per-request timeout (wait_for), then prints each
// status and size and the total time.
//
//   fetch [--pages 50] [--concurrency 8] [--timeout-ms 2000]
#include <corio/combinators.hpp>
#include <corio/corio.hpp>
#include <corio/sync.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Serves GET /page/<n> with a body of a few hundred bytes; 404 for anything else.
corio::task<> http_handler(corio::tcp_stream s) {
    std::string head = co_await s.read_until("\r\n\r\n", 8192);
    std::string path;
    if (head.rfind("GET ", 0) == 0) {
        path = head.substr(4, head.find(' ', 4) - 4);
    }
    std::string status = "404 Not Found";
    std::string body = "no such page\n";
    if (path.rfind("/page/", 0) == 0) {
        int n = std::atoi(path.c_str() + 6);
        status = "200 OK";
        body = "<html><body><h1>page " + std::to_string(n) + "</h1>" +
               std::string(100 + 17 * (n % 23), '.') + "</body></html>\n";
    }
    co_await s.write_all("HTTP/1.1 " + status + "\r\nContent-Type: text/html\r\nContent-Length: " +
                         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + body);
}

struct response {
    int status = 0;
    std::size_t bytes = 0;
};

// One HTTP/1.1 GET: status line, headers, a Content-Length body.
corio::task<response> get(std::uint16_t port, std::string path) {
    corio::tcp_stream s = co_await corio::tcp_stream::connect("127.0.0.1", port);
    co_await s.write_all("GET " + path +
                         " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    std::string head = co_await s.read_until("\r\n\r\n", 16384);
    response r;
    r.status = std::atoi(head.c_str() + head.find(' ') + 1);
    std::size_t at = head.find("Content-Length: ");
    std::size_t length =
        at == std::string::npos ? 0 : std::strtoul(head.c_str() + at + 16, nullptr, 10);
    std::string body = co_await s.read_exactly(length);
    r.bytes = body.size();
    co_return r;
}

corio::task<response> fetch_one(corio::semaphore& limit, std::uint16_t port, int page,
                                std::chrono::milliseconds timeout) {
    auto permit = co_await limit.scoped(); // at most K requests in flight (async with)
    co_return co_await corio::wait_for(get(port, "/page/" + std::to_string(page)), timeout);
}

corio::task<int> crawl(int pages, int concurrency, std::chrono::milliseconds timeout) {
    corio::server srv = co_await corio::start_server(&http_handler, "127.0.0.1", 0);
    std::printf("serving %d pages on 127.0.0.1:%u; fetching with %d in flight\n", pages,
                static_cast<unsigned>(srv.local_port()), concurrency);
    corio::semaphore limit(concurrency);
    auto started = std::chrono::steady_clock::now();
    std::vector<corio::future<response>> fetches;
    for (int i = 0; i < pages; ++i) {
        fetches.push_back(corio::create_task(fetch_one(limit, srv.local_port(), i, timeout)));
    }
    std::size_t total = 0;
    int failures = 0;
    for (int i = 0; i < pages; ++i) {
        try {
            response& r = co_await fetches[static_cast<std::size_t>(i)];
            std::printf("/page/%-4d %d %5zu bytes\n", i, r.status, r.bytes);
            total += r.bytes;
            failures += r.status != 200;
        } catch (const corio::timeout_error&) {
            std::printf("/page/%-4d timed out\n", i);
            ++failures;
        }
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    std::printf("%d pages, %zu bytes, %d failures in %.3f s\n", pages, total, failures, secs);
    srv.close();
    co_await srv.wait_closed();
    co_return failures == 0 ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    int pages = 50;
    int concurrency = 8;
    int timeout_ms = 2000;
    for (int i = 1; i < argc; ++i) {
        auto arg = [&](const char* name) {
            return std::strcmp(argv[i], name) == 0 && i + 1 < argc;
        };
        if (arg("--pages")) {
            pages = std::max(1, std::atoi(argv[++i]));
        } else if (arg("--concurrency")) {
            concurrency = std::max(1, std::atoi(argv[++i]));
        } else if (arg("--timeout-ms")) {
            timeout_ms = std::max(1, std::atoi(argv[++i]));
        } else {
            std::fprintf(stderr, "usage: %s [--pages N] [--concurrency K] [--timeout-ms T]\n",
                         argv[0]);
            return 2;
        }
    }
    try {
        return corio::run(crawl(pages, concurrency, std::chrono::milliseconds(timeout_ms)));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fetch: %s\n", e.what());
        return 1;
    }
}
