// The asyncio "chaining coroutines" pattern: for several inputs at once, stage 1
// sleeps a random short while and produces a value, stage 2 consumes it. Each line
// shows the elapsed time; the program fails (exit status 1) unless the total shows
// the chains overlapped, i.e. took less than the same sleeps one after another.
#include <corio/corio.hpp>

#include <fmt/format.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

double since(clock_type::time_point start) {
    return std::chrono::duration<double>(clock_type::now() - start).count();
}

corio::task<std::string> part1(int n, std::chrono::milliseconds delay,
                               clock_type::time_point start) {
    fmt::print("[{:5.3f}s] part1({}) sleeping for {} ms\n", since(start), n, delay.count());
    co_await corio::sleep(delay);
    std::string result = fmt::format("result{}-1", n);
    fmt::print("[{:5.3f}s] Returning part1({}) == {}\n", since(start), n, result);
    co_return result;
}

corio::task<std::string> part2(int n, std::string arg, std::chrono::milliseconds delay,
                               clock_type::time_point start) {
    fmt::print("[{:5.3f}s] part2({}, {}) sleeping for {} ms\n", since(start), n, arg,
               delay.count());
    co_await corio::sleep(delay);
    std::string result = fmt::format("result{}-2 derived from {}", n, arg);
    fmt::print("[{:5.3f}s] Returning part2({}, {}) == {}\n", since(start), n, arg, result);
    co_return result;
}

corio::task<std::string> chain(int n, std::chrono::milliseconds d1, std::chrono::milliseconds d2,
                               clock_type::time_point start) {
    auto t0 = clock_type::now();
    std::string p1 = co_await part1(n, d1, start);
    std::string p2 = co_await part2(n, p1, d2, start);
    fmt::print("[{:5.3f}s] -->Chained result{} => {} (took {:0.3f} s)\n", since(start), n, p2,
               since(t0));
    co_return p2;
}

corio::task<bool> main_task() {
    auto start = clock_type::now();
    std::mt19937 rng(std::random_device{}());
    // At least 50 ms each: the overlap saves at least the two shorter chains
    // (200 ms), far more than any scheduling delay.
    std::uniform_int_distribution<int> ms(50, 150);
    std::vector<corio::future<std::string>> chains;
    std::chrono::milliseconds serial{0};
    for (int n : {9, 6, 3}) {
        std::chrono::milliseconds d1(ms(rng)), d2(ms(rng));
        serial += d1 + d2;
        chains.push_back(corio::create_task(chain(n, d1, d2, start), fmt::format("chain-{}", n)));
    }
    for (auto& c : chains) {
        co_await c;
    }
    double total = since(start);
    double one_after_another = std::chrono::duration<double>(serial).count();
    fmt::print("Program finished in {:.3f} s (the same work one after another: {:.3f} s)\n", total,
               one_after_another);
    co_return total < one_after_another;
}

} // namespace

int main() {
    if (!corio::run(main_task())) {
        fmt::print(stderr, "error: the chains did not overlap\n");
        return 1;
    }
    return 0;
}
