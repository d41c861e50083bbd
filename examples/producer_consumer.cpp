// Several unrelated producers put items into a queue at staggered random moments;
// a group of consumers pulls them greedily as they appear. The main task waits for
// the producers, then for every item to be processed (join), then cancels the
// consumers, which are idle in get().

#include <corio/corio.hpp>

#include <fmt/format.h>

#include <chrono>
#include <random>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct job {
    std::string producer;
    int number;
};

using clock_type = std::chrono::steady_clock;

double since(clock_type::time_point start) {
    return std::chrono::duration<double, std::milli>(clock_type::now() - start).count();
}

corio::task<> producer(std::string name, int count, unsigned seed, corio::queue<job>& q,
                       clock_type::time_point start) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> pause_ms(1, 40);
    for (int i = 1; i <= count; ++i) {
        co_await corio::sleep(std::chrono::milliseconds(pause_ms(rng)));
        // A named object, not `q.put(job{name, i})`: g++ 12 miscompiles a braced
        // aggregate temporary holding a std::string inside a co_await expression.
        job item{name, i};
        co_await q.put(std::move(item));
        fmt::print("{:7.1f} ms  {} produced item {}\n", since(start), name, i);
    }
}

corio::task<> consumer(std::string name, corio::queue<job>& q, clock_type::time_point start,
                       int& handled) {
    for (;;) {
        job j = co_await q.get(); // cancelled here once everything is done
        fmt::print("{:7.1f} ms      {} consumed {}'s item {}\n", since(start), name, j.producer,
                   j.number);
        co_await corio::sleep(5ms); // "processing"
        ++handled;
        q.task_done();
    }
}

corio::task<> run_all() {
    auto start = clock_type::now();
    corio::queue<job> q(4);
    int handled = 0;

    std::vector<corio::future<>> consumers;
    for (int i = 1; i <= 3; ++i) {
        consumers.push_back(
            corio::create_task(consumer(fmt::format("consumer-{}", i), q, start, handled)));
    }
    std::vector<corio::future<>> producers;
    const char* names[] = {"alice", "bob", "carol", "dave"};
    unsigned seed = 2024;
    for (const char* name : names) {
        producers.push_back(corio::create_task(producer(name, 5, seed++, q, start)));
    }

    for (auto& p : producers) {
        co_await p;
    }
    co_await q.join();
    fmt::print("{:7.1f} ms  all {} items processed; cancelling the consumers\n", since(start),
               handled);
    for (auto& c : consumers) {
        c.cancel();
    }
    for (auto& c : consumers) {
        try {
            co_await c;
        } catch (const corio::cancelled_error&) {
            // expected: they were waiting in get()
        }
    }
    fmt::print("done\n");
}

} // namespace

int main() {
    corio::run(run_all());
}
