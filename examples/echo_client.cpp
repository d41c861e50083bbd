// An echo client on corio: connect, write_all, read_exactly, round-trip times.
//
//   echo_client                      demo: start a tiny echo listener in-process on
//                                    a free loopback port and talk to it
//   echo_client --port 7000 [--host localhost] [--count 10] [--size 64]
//                                    talk to a running echo server (echo_server --port 7000)
#include <corio/corio.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

// The in-process peer of the demo: echoes one connection, then ends.
corio::task<> echo_once(corio::tcp_listener& listener) {
    corio::tcp_stream s = co_await listener.accept();
    std::array<char, 4096> buf;
    for (;;) {
        std::size_t n = co_await s.read_some(std::span<char>(buf));
        if (n == 0) {
            co_return;
        }
        co_await s.write_all(std::string_view(buf.data(), n));
    }
}

corio::task<int> talk(std::string host, std::uint16_t port, int count, std::size_t size) {
    using clock = std::chrono::steady_clock;
    corio::tcp_stream s = co_await corio::tcp_stream::connect(host, port);
    std::printf("connected to %s\n", s.remote_endpoint().to_string().c_str());
    std::vector<double> micros;
    for (int i = 0; i < count; ++i) {
        std::string msg(size, static_cast<char>('a' + i % 26));
        auto t0 = clock::now();
        co_await s.write_all(msg);
        std::string back = co_await s.read_exactly(msg.size());
        micros.push_back(std::chrono::duration<double, std::micro>(clock::now() - t0).count());
        if (back != msg) {
            std::fprintf(stderr, "mismatch in round trip %d\n", i);
            co_return 1;
        }
    }
    s.shutdown_write();
    std::sort(micros.begin(), micros.end());
    std::printf("%d round trips of %zu bytes: median %.1f us, max %.1f us\n", count, size,
                micros[micros.size() / 2], micros.back());
    co_return 0;
}

corio::task<int> demo(int count, std::size_t size) {
    corio::tcp_listener listener = corio::tcp_listener::bind("127.0.0.1", 0);
    auto peer = corio::create_task(echo_once(listener));
    int rc = co_await talk("127.0.0.1", listener.local_port(), count, size);
    co_await peer;
    co_return rc;
}

} // namespace

int main(int argc, char** argv) {
    std::string host = "localhost";
    int port = -1;
    int count = 10;
    std::size_t size = 64;
    for (int i = 1; i < argc; ++i) {
        auto arg = [&](const char* name) {
            return std::strcmp(argv[i], name) == 0 && i + 1 < argc;
        };
        if (arg("--port")) {
            port = std::atoi(argv[++i]);
        } else if (arg("--host")) {
            host = argv[++i];
        } else if (arg("--count")) {
            count = std::max(1, std::atoi(argv[++i]));
        } else if (arg("--size")) {
            size = static_cast<std::size_t>(std::max(1, std::atoi(argv[++i])));
        } else {
            std::fprintf(stderr, "usage: %s [--port N [--host H]] [--count N] [--size BYTES]\n",
                         argv[0]);
            return 2;
        }
    }
    try {
        return port < 0 ? corio::run(demo(count, size))
                        : corio::run(talk(host, static_cast<std::uint16_t>(port), count, size));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_client: %s\n", e.what());
        return 1;
    }
}
