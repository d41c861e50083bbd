// The worker program of the Redis pool tests:
//   redis_test_worker URL QUEUE CONCURRENCY PROCESSES(0|1) GRACE_MS
// It dies with the test that started it (PR_SET_PDEATHSIG).
#include "redis_functions.hpp"

#include <corio/init.hpp>
#include <corio/redis_pool.hpp>

#include <csignal>
#include <cstdio>
#include <string>
#include <sys/prctl.h>

CORIO_REMOTE(redis_fns::typed_int);

int main(int argc, char** argv) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (argc != 6) {
        std::fprintf(stderr, "usage: %s URL QUEUE CONCURRENCY PROCESSES GRACE_MS\n", argv[0]);
        return 2;
    }
    corio::init();
    corio::redis_worker worker(argv[1], {.queues = {argv[2]},
                                         .concurrency = std::stoul(argv[3]),
                                         .use_processes = std::string(argv[4]) == "1",
                                         .heartbeat = std::chrono::milliseconds(100),
                                         .grace = std::chrono::milliseconds(std::stol(argv[5]))});
    worker.run();
    return 0;
}
