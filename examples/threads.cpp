// Threads, a thread pool, and awaiting blocking work from the event loop.
//
// 1. The classic: two std::threads print the square and the cube of 10.
// 2. The same two functions through corio::thread_pool::apply_async, with callbacks.
// 3. map of a CPU-bound function over a pool, with a progress bar on stderr.
// 4. A task awaits to_thread(blocking call) while another task prints ticks: the
//    loop never stalls.

#include <corio/corio.hpp>
#include <corio/thread_pool.hpp>
#include <corio/to_thread.hpp>

#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

void print_square(int num) {
    fmt::print("Square: {}\n", num * num);
}
void print_cube(int num) {
    fmt::print("Cube: {}\n", num * num * num);
}

/// CPU-bound: how many primes lie in [from, from + 20000).
int count_primes(int from) {
    int count = 0;
    for (int n = std::max(from, 2); n < from + 20000; ++n) {
        bool prime = true;
        for (int d = 2; d * d <= n; ++d) {
            if (n % d == 0) {
                prime = false;
                break;
            }
        }
        count += prime ? 1 : 0;
    }
    return count;
}

void draw_progress(std::size_t done, std::size_t total) {
    constexpr std::size_t width = 30;
    const std::size_t filled = done * width / total;
    fmt::print(stderr, "\r[{}{}] {}/{}", std::string(filled, '#'), std::string(width - filled, '.'),
               done, total);
    if (done == total) {
        fmt::print(stderr, "\n");
    }
}

/// A blocking call, as a legacy API or a synchronous driver would be.
std::string read_sensor(int id) {
    std::this_thread::sleep_for(300ms);
    return "sensor " + std::to_string(id) + ": 21.5 C";
}

corio::task<> print_ticks(const std::atomic<bool>* stop) {
    int tick = 0;
    while (!stop->load()) {
        fmt::print("  tick {}\n", ++tick);
        co_await corio::sleep(50ms);
    }
}

corio::task<> main_task() {
    std::atomic<bool> stop{false};
    auto ticker = corio::create_task(print_ticks(&stop));
    // The blocking call runs on the default blocking pool; this task is suspended,
    // the loop keeps running the ticker.
    const std::string reading = co_await corio::to_thread(read_sensor, 7);
    fmt::print("to_thread returned \"{}\"\n", reading);
    stop.store(true);
    co_await ticker;
}

} // namespace

int main() {
    // 1. Two threads, started and joined.
    std::thread t1(print_square, 10);
    std::thread t2(print_cube, 10);
    t1.join();
    t2.join();
    fmt::print("Done with threads\n");

    // 2. The same two functions on a pool; each callback runs on the pool's result
    //    thread once its call returned (they return nothing, so the callbacks take no
    //    argument).
    {
        corio::thread_pool pool(2);
        auto sq = pool.apply_async(print_square, 10,
                                   corio::callback([] { fmt::print("print_square(10) done\n"); }));
        auto cu = pool.apply_async(
            print_cube, 10, corio::callback([] { fmt::print("print_cube(10) done\n"); }),
            corio::error_callback([](std::exception_ptr) { fmt::print("print_cube failed\n"); }));
        auto bad = pool.apply_async([](int) -> int { throw std::domain_error("no cube for you"); },
                                    10, corio::error_callback([](std::exception_ptr e) {
                                        try {
                                            std::rethrow_exception(e);
                                        } catch (const std::exception& ex) {
                                            fmt::print("error_callback: {}\n", ex.what());
                                        }
                                    }));
        sq.get(); // returns after the call and its callback ran
        cu.get();
        fmt::print("Done with the pool's apply_async\n");
        bad.wait();
    } // the destructor closes and joins the pool

    // 3. map of a CPU-bound function, with a progress bar.
    {
        corio::thread_pool pool(corio::cpu_count(),
                                corio::pool_options{.on_progress = draw_progress});
        std::vector<int> starts(40);
        for (std::size_t i = 0; i < starts.size(); ++i) {
            starts[i] = static_cast<int>(i) * 20000;
        }
        const std::vector<int> counts = pool.map(count_primes, starts, 2);
        fmt::print("primes below {}: {}\n", starts.size() * 20000,
                   std::accumulate(counts.begin(), counts.end(), 0));
    }

    // 4. The event loop stays responsive while a blocking call runs in a thread.
    corio::run(main_task());
    return 0;
}
