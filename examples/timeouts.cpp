// Timeout scopes (asyncio.timeout): one deadline over a block of several awaits.
//
// A loopback "server" answers the greeting at once and the question only after the
// client stopped waiting. The client's conversation (connect, greet, ask) runs under
// one deadline; it is moved once inside the block; the cancellation the deadline
// causes surfaces as timeout_error, and the client carries on afterwards.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

namespace {

// Answers the greeting, then stalls until the client hangs up.
corio::task<> slow_server(corio::tcp_listener& listener) {
    corio::tcp_stream s = co_await listener.accept();
    std::string hello = co_await s.read_until("\n");
    co_await s.write_all("hello " + hello);
    std::array<char, 256> buf;
    while (co_await s.read_some(std::span<char>(buf)) > 0) {
        // the question is read and never answered
    }
}

corio::task<std::string> conversation(std::uint16_t port, corio::timeout_scope& scope) {
    corio::tcp_stream s = co_await corio::tcp_stream::connect("127.0.0.1", port);
    co_await s.write_all("client\n");
    std::string greeting = co_await s.read_until("\n");
    std::printf("greeting: %s", greeting.c_str());
    scope.reschedule(50ms); // the question gets 50 ms from now
    co_await s.write_all("question?\n");
    co_return co_await s.read_until("\n"); // never answered
}

corio::task<int> client() {
    corio::tcp_listener listener = corio::tcp_listener::bind("127.0.0.1", 0);
    auto server = corio::create_task(slow_server(listener));
    corio::timeout_scope scope(5s);
    int rc = 1;
    auto started = std::chrono::steady_clock::now();
    try {
        std::string answer = co_await scope.run(conversation(listener.local_port(), scope));
        std::printf("unexpected answer: %s\n", answer.c_str());
    } catch (const corio::timeout_error& e) {
        auto ms =
            std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started)
                .count();
        std::printf("timed out after %.0f ms (%s); expired=%d\n", ms, e.what(), scope.expired());
        rc = scope.expired() ? 0 : 1;
    }
    // The task was not left cancelled: it goes on awaiting (the stream was closed by
    // the block's cleanup, so the server sees end of stream and ends).
    co_await server;
    std::printf("server finished; done\n");
    co_return rc;
}

} // namespace

int main() {
    return corio::run(client());
}
