// H11: messages between two processes through a corio::pipe and a corio::process_queue.
// A child started with corio::process sends N messages of SIZE bytes (a std::string,
// each with its index in the first 8 bytes); the parent receives them, checks every
// index and the byte count, and reports messages and megabytes per second, timed from
// the first message after a ready message to the last.
// Usage: h11_corio --variant pipe|queue --size 64 --n 200000
#include <corio/init.hpp>
#include <corio/ipc.hpp>
#include <corio/process.hpp>

#include <cstdint>
#include <cstring>
#include <string>

#include "../report.hpp"

namespace {

std::string message(std::int64_t i, std::size_t size) {
    std::string s(size, 'x');
    std::memcpy(s.data(), &i, std::min(size, sizeof i));
    return s;
}

std::int64_t index_of(const std::string& s) {
    std::int64_t i = 0;
    std::memcpy(&i, s.data(), std::min(s.size(), sizeof i));
    return i;
}

void pipe_sender(corio::connection<std::string> c, std::int64_t n, std::int64_t size) {
    std::string m = message(-1, static_cast<std::size_t>(size));
    c.send(m); // ready
    for (std::int64_t i = 0; i < n; ++i) {
        std::memcpy(m.data(), &i, std::min(m.size(), sizeof i));
        c.send(m);
    }
}

void queue_sender(corio::process_queue<std::string> q, std::int64_t n, std::int64_t size) {
    std::string m = message(-1, static_cast<std::size_t>(size));
    q.put(m); // ready
    for (std::int64_t i = 0; i < n; ++i) {
        std::memcpy(m.data(), &i, std::min(m.size(), sizeof i));
        q.put(m);
    }
}

template <class Receive>
void measure(std::int64_t n, std::int64_t size, Receive receive) {
    const std::string ready = receive();
    bench::check(ready.size() == static_cast<std::size_t>(size), "ready message size",
                 static_cast<long long>(ready.size()), size);
    const std::int64_t t0 = bench::now_ns();
    std::int64_t in_order = 0;
    std::int64_t bytes = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const std::string m = receive();
        in_order += (size < 8 || index_of(m) == i) ? 1 : 0;
        bytes += static_cast<std::int64_t>(m.size());
    }
    const std::int64_t t1 = bench::now_ns();
    bench::check(in_order == n, "messages in order", in_order, n);
    bench::check(bytes == n * size, "bytes received", bytes, n * size);
    const double secs = static_cast<double>(t1 - t0) / 1e9;
    bench::report("msgs_per_s", static_cast<double>(n) / secs);
    bench::report("mb_per_s", static_cast<double>(bytes) / 1e6 / secs);
}

} // namespace

int main(int argc, char** argv) {
    corio::init();
    bench::options opt(argc, argv);
    const std::string variant = opt.get("variant", "pipe");
    const std::int64_t size = opt.get_int("size", 64);
    const std::int64_t n = opt.get_int("n", 200'000);
    if (variant == "queue") {
        corio::process_queue<std::string> q(1024);
        corio::process child(queue_sender, q, n, size);
        child.start();
        measure(n, size, [&] { return q.get(); });
        child.join();
        return child.exitcode() == 0 ? 0 : 4;
    }
    auto [mine, theirs] = corio::pipe<std::string>();
    corio::process child(pipe_sender, theirs, n, size);
    child.start();
    theirs.close();
    measure(n, size, [&] { return mine.recv(); });
    child.join();
    return child.exitcode() == 0 ? 0 : 4;
}
