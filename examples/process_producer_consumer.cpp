// The classic producer / consumer over processes: 2 producer and 2 consumer processes
// share a bounded corio::process_queue; a sentinel per consumer ends the work, and a
// second queue brings each consumer's total back. (multiprocessing.Queue, ported.)
#include <corio/init.hpp>
#include <corio/ipc.hpp>
#include <corio/process.hpp>

#include <chrono>
#include <cstdio>
#include <vector>

namespace {

constexpr int items_per_producer = 10000;

void producer(corio::process_queue<long> q, long first) {
    for (long i = 0; i < items_per_producer; ++i) {
        q.put(first + i);
    }
}

void consumer(corio::process_queue<long> q, corio::process_queue<long> totals) {
    long sum = 0;
    for (;;) {
        const long v = q.get();
        if (v < 0) {
            break; // the sentinel
        }
        sum += v;
    }
    totals.put(sum);
}

} // namespace

int main() {
    corio::init();
    corio::process_queue<long> work(100);
    corio::process_queue<long> totals;
    std::vector<corio::process> producers;
    std::vector<corio::process> consumers;
    for (int c = 0; c < 2; ++c) {
        consumers.emplace_back(consumer, work, totals);
        consumers.back().start();
    }
    for (int p = 0; p < 2; ++p) {
        producers.emplace_back(producer, work, static_cast<long>(p) * items_per_producer);
        producers.back().start();
    }
    for (auto& p : producers) {
        p.join();
    }
    for (std::size_t c = 0; c < consumers.size(); ++c) {
        work.put(-1);
    }
    long total = 0;
    for (std::size_t c = 0; c < consumers.size(); ++c) {
        total += totals.get(std::chrono::seconds(60));
    }
    for (auto& c : consumers) {
        c.join();
    }
    const long n = 2L * items_per_producer;
    const long expected = n * (n - 1) / 2;
    std::printf("4 processes: consumed sum %ld (expected %ld)\n", total, expected);
    return total == expected ? 0 : 1;
}
