// An echo server on corio: start_server, one task per connection, signals.
//
//   echo_server                  demo: serve on a free loopback port, let a built-in
//                                client echo a few lines through it, then exit
//   echo_server --port 7000 [--host 0.0.0.0]
//                                serve until SIGINT or SIGTERM (try: nc localhost 7000)
#include <corio/corio.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

corio::task<> echo(corio::tcp_stream stream) {
    std::array<char, 16384> buf;
    for (;;) {
        std::size_t n = co_await stream.read_some(std::span<char>(buf));
        if (n == 0) {
            co_return; // the client closed its side
        }
        co_await stream.write_all(std::string_view(buf.data(), n));
    }
}

corio::task<int> demo() {
    corio::server srv = co_await corio::start_server(&echo, "127.0.0.1", 0);
    std::printf("echo server on 127.0.0.1:%u\n", static_cast<unsigned>(srv.local_port()));
    corio::tcp_stream client = co_await corio::tcp_stream::connect("127.0.0.1", srv.local_port());
    int failures = 0;
    for (int i = 0; i < 5; ++i) {
        std::string line = "line " + std::to_string(i) + "\n";
        co_await client.write_all(line);
        std::string back = co_await client.read_until("\n");
        std::printf("echoed: %s", back.c_str());
        failures += back != line;
    }
    client.close();
    srv.close();
    co_await srv.wait_closed();
    co_return failures == 0 ? 0 : 1;
}

corio::task<int> serve(std::string host, std::uint16_t port) {
    corio::server srv = co_await corio::start_server(&echo, host, port);
    std::printf("echo server on %s:%u, Ctrl-C to stop\n", host.c_str(),
                static_cast<unsigned>(srv.local_port()));
    corio::event_loop& loop = corio::get_running_loop();
    loop.add_signal_handler(SIGINT, [&srv] { srv.close(); });
    loop.add_signal_handler(SIGTERM, [&srv] { srv.close(); });
    co_await srv.serve_forever();
    loop.remove_signal_handler(SIGINT);
    loop.remove_signal_handler(SIGTERM);
    std::printf("stopped\n");
    co_return 0;
}

} // namespace

int main(int argc, char** argv) {
    std::string host = "127.0.0.1";
    int port = -1;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = std::atoi(argv[++i]);
        } else if (std::strcmp(argv[i], "--host") == 0 && i + 1 < argc) {
            host = argv[++i];
        } else {
            std::fprintf(stderr, "usage: %s [--port N [--host H]]\n", argv[0]);
            return 2;
        }
    }
    try {
        return port < 0 ? corio::run(demo())
                        : corio::run(serve(host, static_cast<std::uint16_t>(port)));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "echo_server: %s\n", e.what());
        return 1;
    }
}
