// A counter in shared memory, incremented by 4 processes under a process-shared lock
// (multiprocessing.Value with its lock, ported).
#include <corio/init.hpp>
#include <corio/ipc.hpp>
#include <corio/process.hpp>

#include <cstdio>
#include <mutex>
#include <vector>

namespace {

void add_many(corio::shared_value<long> counter, corio::process_lock lock, int times) {
    for (int i = 0; i < times; ++i) {
        std::lock_guard guard(lock); // process_lock is Lockable
        *counter += 1;
    }
}

} // namespace

int main() {
    corio::init();
    corio::shared_value<long> counter(0);
    corio::process_lock lock;
    std::vector<corio::process> procs;
    for (int i = 0; i < 4; ++i) {
        procs.emplace_back(add_many, counter, lock, 10000);
        procs.back().start();
    }
    for (auto& p : procs) {
        p.join();
    }
    std::printf("counter = %ld (expected 40000)\n", counter.get());
    return counter.get() == 40000 ? 0 : 1;
}
