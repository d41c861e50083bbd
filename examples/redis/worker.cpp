// The worker program: start one (or more) on every machine that should run jobs.
//   redis_worker_example [URL] [QUEUE] [CONCURRENCY]
// It serves QUEUE (default "default") of the Redis at URL (default
// redis://127.0.0.1:6379) with CONCURRENCY worker processes (default: every core), and
// stops gracefully on SIGTERM or Ctrl-C: running jobs finish, the rest go back.
#include "jobs.hpp"

#include <corio/corio.hpp>
#include <corio/redis_pool.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
    corio::init(); // the fork server of the worker's process pool, before any thread
    const std::string url = argc > 1 ? argv[1] : "redis://127.0.0.1:6379";
    const std::string queue = argc > 2 ? argv[2] : "default";
    const std::size_t concurrency = argc > 3 ? std::stoul(argv[3]) : 0;
    try {
        corio::redis_worker worker(url, {.queues = {queue}, .concurrency = concurrency});
        std::fprintf(stderr, "worker %s serving '%s' on %s\n", worker.id().c_str(), queue.c_str(),
                     url.c_str());
        worker.run();
        std::fprintf(stderr, "worker %s stopped after %zu jobs\n", worker.id().c_str(),
                     worker.jobs_done());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "worker: %s\n", e.what());
        return 1;
    }
    return 0;
}
