// H5: TCP echo server on corio (asyncio.start_server style). Prints "PORT <n>" once
// listening, then serves until killed.
// Usage: h5_corio_server [--port 0]
#include <corio/event_loop.hpp>
#include <corio/net.hpp>
#include <corio/task.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <system_error>

#include "../report.hpp"

namespace {

corio::task<> echo(corio::tcp_stream stream) {
    std::array<std::byte, 4096> buffer;
    try {
        for (;;) {
            const std::size_t n = co_await stream.read_some(std::span<std::byte>(buffer));
            if (n == 0) {
                break;
            }
            co_await stream.write_all(std::span<const std::byte>(buffer.data(), n));
        }
    } catch (const std::system_error&) {
        // A client that resets its connection ends only its own handler.
    }
}

corio::task<> serve(std::uint16_t port) {
    // The backlog of the raw servers (1024): 1,000 clients connect at once.
    corio::server_options options;
    options.backlog = 1024;
    auto server = co_await corio::start_server(echo, "127.0.0.1", port, options);
    std::printf("PORT %u\n", static_cast<unsigned>(server.local_port()));
    std::fflush(stdout);
    co_await server.serve_forever();
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    bench::raise_fd_limit(); // 1,000 connections
    corio::run(serve(static_cast<std::uint16_t>(opt.get_int("port", 0))));
    return 0;
}
