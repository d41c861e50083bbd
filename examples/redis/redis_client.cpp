// The client program beside the worker: the same calls as with a process_pool.
//   redis_client [URL]
// Without a URL it starts a private redis-server and two worker programs itself (what
// ctest runs); with one, it uses the workers already serving that Redis.
#include "jobs.hpp"
#include "redis_server.hpp"
#include "workers.hpp"

#include <corio/corio.hpp>
#include <corio/redis_pool.hpp>

#include <cstdio>
#include <numeric>
#include <optional>
#include <vector>

int main(int argc, char** argv) {
    std::optional<corio_example::redis_server> server;
    std::optional<corio_example::worker_group> workers;
    std::string url;
    if (argc > 1) {
        url = argv[1];
    } else {
        server.emplace();
        url = server->url();
        workers.emplace(CORIO_REDIS_WORKER_EXAMPLE, url, 2);
    }
    corio::redis_pool pool(url); // process_pool pool; -> the same calls below

    std::vector<int> xs(100);
    std::iota(xs.begin(), xs.end(), 1);
    const std::vector<int> squares = pool.map(jobs::square, xs);
    const long sum = std::accumulate(squares.begin(), squares.end(), 0L);
    std::printf("sum of squares 1..100 = %ld\n", sum);

    auto root =
        pool.apply_async(jobs::checked_sqrt, 2.0,
                         corio::callback([](double r) { std::printf("callback: %.6f\n", r); }));
    std::printf("sqrt(2) = %.6f\n", root.get());
    try {
        pool.apply(jobs::checked_sqrt, -1.0);
    } catch (const std::domain_error& e) {
        std::printf("caught std::domain_error: %s\n", e.what());
    }
    // Awaited from a task: the loop keeps running while the job is away.
    const int v = corio::run([](corio::redis_pool* p) -> corio::task<int> {
        auto r = p->apply_async(jobs::square, 12);
        co_return co_await r;
    }(&pool));
    std::printf("awaited: %d\n", v);
    pool.close();
    pool.join();
    if (workers && !workers->stop()) {
        std::printf("a worker did not stop cleanly\n");
        return 1;
    }
    return sum == 338350 && v == 144 ? 0 : 1;
}
