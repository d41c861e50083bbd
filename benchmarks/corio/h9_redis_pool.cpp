// H9: corio::redis_pool against a private redis-server, with 2 worker processes
// (this program re-executed as `--worker URL`, each a redis_worker of concurrency 1 on
// a process pool of its own), and the same jobs through corio::process_pool(2).
// Variants: tiny_jobs (apply_async N tiny jobs, then wait for all: jobs/s) and
// round_trip (apply_async(...).get() one at a time: median and p99 in us).
// Usage: h9_redis_pool --system corio|process_pool --variant tiny_jobs|round_trip
//                      [--n 10000] [--calls 1000]
#include <corio/init.hpp>
#include <corio/process_pool.hpp>
#include <corio/redis_pool.hpp>

#include <algorithm>
#include <csignal>
#include <cstdint>
#include <spawn.h>
#include <string>
#include <sys/wait.h>
#include <vector>

#include "../report.hpp"
#include "redis_server.hpp"

extern char** environ;

namespace {

std::int64_t tiny(std::int64_t x) {
    return x + 1;
}
CORIO_REMOTE(tiny);

template <class Pool>
int measure(Pool& pool, const std::string& variant, const bench::options& opt) {
    // Warm up: every worker has run a job.
    for (int i = 0; i < 20; ++i) {
        static_cast<void>(pool.apply(tiny, std::int64_t{i}));
    }
    if (variant == "round_trip") {
        const std::int64_t calls = opt.get_int("calls", 1000);
        std::vector<double> micros;
        std::int64_t sum = 0;
        for (std::int64_t i = 0; i < calls; ++i) {
            const std::int64_t t0 = bench::now_ns();
            sum += pool.apply_async(tiny, i).get();
            micros.push_back(static_cast<double>(bench::now_ns() - t0) / 1e3);
        }
        bench::check(sum == calls * (calls + 1) / 2, "sum of results", sum,
                     calls * (calls + 1) / 2);
        std::sort(micros.begin(), micros.end());
        bench::report("rtt_median_us", micros[micros.size() / 2]);
        bench::report("rtt_p99_us", micros[std::min(micros.size() - 1, micros.size() * 99 / 100)]);
        return 0;
    }
    const std::int64_t n = opt.get_int("n", 10'000);
    std::vector<corio::async_result<std::int64_t>> results;
    results.reserve(static_cast<std::size_t>(n));
    const std::int64_t t0 = bench::now_ns();
    for (std::int64_t i = 0; i < n; ++i) {
        results.push_back(pool.apply_async(tiny, i));
    }
    std::int64_t sum = 0;
    for (auto& r : results) {
        sum += r.get();
    }
    const std::int64_t t1 = bench::now_ns();
    bench::check(sum == n * (n + 1) / 2, "sum of results", sum, n * (n + 1) / 2);
    bench::report("jobs_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    corio::init();
    if (argc == 3 && std::string(argv[1]) == "--worker") {
        corio::redis_worker worker(argv[2], {.queues = {"h9"}, .concurrency = 1});
        worker.run();
        return 0;
    }
    bench::options opt(argc, argv);
    const std::string system = opt.get("system", "corio");
    const std::string variant = opt.get("variant", "tiny_jobs");
    if (system == "process_pool") {
        corio::process_pool pool(2);
        return measure(pool, variant, opt);
    }
    corio_example::redis_server server;
    std::vector<pid_t> workers;
    for (int i = 0; i < 2; ++i) {
        std::string self = "/proc/self/exe", flag = "--worker", url = server.url();
        char* wargv[] = {self.data(), flag.data(), url.data(), nullptr};
        pid_t pid = 0;
        if (::posix_spawn(&pid, "/proc/self/exe", nullptr, nullptr, wargv, environ) != 0) {
            return 2;
        }
        workers.push_back(pid);
    }
    int rc = 0;
    {
        corio::redis_pool pool(server.url(), {.queue = "h9"});
        rc = measure(pool, variant, opt);
    }
    for (pid_t pid : workers) {
        ::kill(pid, SIGTERM);
        ::waitpid(pid, nullptr, 0);
    }
    return rc;
}
