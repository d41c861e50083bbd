// H10, corio: spawn and wait for /bin/true N times, `parallel` at a time
// (spawn_wait, spawns_per_s); and read `mib` MiB from `cat` of a file through a
// pipe (pipe_64MiB, mb_per_s). See BENCHMARKS.md.
#include "../report.hpp"

#include <corio/corio.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace {

corio::task<int> spawn_one() {
    corio::subprocess p = co_await corio::create_subprocess_exec("/bin/true");
    co_return co_await p.wait();
}

corio::task<long long> spawn_all(long long n, long long parallel) {
    long long ok = 0;
    for (long long done = 0; done < n;) {
        std::vector<corio::task<int>> batch;
        for (long long i = 0; i < parallel && done + i < n; ++i) {
            batch.push_back(spawn_one());
        }
        done += static_cast<long long>(batch.size());
        std::vector<int> codes = co_await corio::gather(std::move(batch));
        for (int rc : codes) {
            ok += rc == 0;
        }
    }
    co_return ok;
}

corio::task<long long> read_cat(std::string path) {
    corio::subprocess_options options{.stdout_mode = corio::stdio::pipe};
    std::vector<std::string> args{path};
    corio::subprocess p = co_await corio::create_subprocess_exec("cat", args, options);
    std::vector<char> buf(1 << 20);
    long long total = 0;
    for (;;) {
        std::size_t n = co_await p.stdout_pipe().read_some(std::span<char>(buf));
        if (n == 0) {
            break;
        }
        total += static_cast<long long>(n);
    }
    int rc = co_await p.wait();
    co_return rc == 0 ? total : -1;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    std::string variant = opt.get("variant", "spawn_wait");
    if (variant == "spawn_wait") {
        long long n = opt.get_int("n", 2000);
        long long parallel = opt.get_int("parallel", 8);
        std::int64_t t0 = bench::now_ns();
        long long ok = corio::run(spawn_all(n, parallel));
        std::int64_t t1 = bench::now_ns();
        bench::check(ok == n, "every child exited 0", ok, n);
        bench::report("spawns_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
    } else {
        long long mib = opt.get_int("mib", 64);
        std::string path = opt.get("file", "");
        bench::check(!path.empty(), "--file given", 0, 1);
        std::int64_t t0 = bench::now_ns();
        long long total = corio::run(read_cat(path));
        std::int64_t t1 = bench::now_ns();
        bench::check(total == mib << 20, "bytes read", total, mib << 20);
        bench::report("mb_per_s",
                      static_cast<double>(total) / 1e6 * 1e9 / static_cast<double>(t1 - t0));
    }
    return 0;
}
