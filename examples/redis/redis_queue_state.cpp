// Prints a queue's state: counts per state and the failed jobs with their errors.
//   redis_queue_state [URL] [QUEUE]
// Without a URL it starts a private redis-server and a worker, runs a few jobs (some
// failing, one cancelled) and prints the state of that queue.
#include "jobs.hpp"
#include "redis_server.hpp"
#include "workers.hpp"

#include <corio/corio.hpp>
#include <corio/redis_pool.hpp>

#include <cstdio>
#include <optional>

static void print_state(corio::redis_pool& pool) {
    const corio::redis_queue_counts c = pool.counts();
    std::printf("queue '%s': queued %zu, started %zu, finished %zu, failed %zu, dead %zu\n",
                pool.queue().c_str(), c.queued, c.started, c.finished, c.failed, c.dead);
    for (const corio::redis_failed_job& f : pool.failed_jobs()) {
        std::printf("  %s %s %s after %zu attempt(s): %s: %s\n", f.state.c_str(), f.id.c_str(),
                    f.function.c_str(), f.attempts, f.error_type.c_str(), f.error_message.c_str());
    }
}

int main(int argc, char** argv) {
    if (argc > 1) {
        corio::redis_pool pool(argv[1], {.queue = argc > 2 ? argv[2] : "default"});
        print_state(pool);
        return 0;
    }
    corio_example::redis_server server;
    corio_example::worker_group workers(CORIO_REDIS_WORKER_EXAMPLE, server.url(), 1);
    corio::redis_pool pool(server.url());
    for (int i = 1; i <= 5; ++i) {
        pool.apply(jobs::square, i);
    }
    for (double x : {-1.0, -2.0}) {
        try {
            pool.apply(jobs::checked_sqrt, x);
        } catch (const std::domain_error&) {
        }
    }
    // A job on a queue nobody serves stays queued until it is cancelled.
    corio::redis_pool idle(server.url(), {.queue = "nobody-serves-this"});
    auto submitted1 = idle.submit(jobs::square, 3);
    const std::string id = submitted1.first; // (clang 14: no lambda capture of bindings)
    auto& waiting = submitted1.second;
    print_state(idle);
    std::printf("cancel %s: %s\n", id.c_str(), idle.cancel(id) ? "yes" : "no");
    try {
        waiting.get();
    } catch (const corio::cancelled_error& e) {
        std::printf("its result: %s\n", e.what());
    }
    print_state(pool);
    const auto c = pool.counts();
    return c.finished == 5 && c.failed == 2 && idle.counts().queued == 0 ? 0 : 1;
}
