// H5 peer: the canonical Asio C++20 coroutine echo server (one coroutine per connection).
// Prints "PORT <n>" once listening, then serves until killed.
// Usage: h5_asio_server [--port 0]
#include <asio.hpp>

#include <cstdint>
#include <cstdio>
#include <exception>

#include "../report.hpp"

namespace {

using asio::ip::tcp;

asio::awaitable<void> echo(tcp::socket socket) {
    try {
        char data[4096];
        for (;;) {
            std::size_t n =
                co_await socket.async_read_some(asio::buffer(data), asio::use_awaitable);
            co_await asio::async_write(socket, asio::buffer(data, n), asio::use_awaitable);
        }
    } catch (const std::exception&) {
        // end of stream or reset: this connection is done
    }
}

asio::awaitable<void> listener(tcp::acceptor acceptor) {
    for (;;) {
        tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
        // As corio and asyncio do: without it a message echoed in several writes
        // waits for the client's delayed ACK (Nagle).
        socket.set_option(tcp::no_delay(true));
        asio::co_spawn(acceptor.get_executor(), echo(std::move(socket)), asio::detached);
    }
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    bench::raise_fd_limit(); // 1,000 connections
    asio::io_context ctx(1);
    tcp::acceptor acceptor(ctx, tcp::endpoint(asio::ip::make_address("127.0.0.1"),
                                              static_cast<std::uint16_t>(opt.get_int("port", 0))));
    std::printf("PORT %u\n", static_cast<unsigned>(acceptor.local_endpoint().port()));
    std::fflush(stdout);
    asio::co_spawn(ctx, listener(std::move(acceptor)), asio::detached);
    ctx.run();
    return 0;
}
