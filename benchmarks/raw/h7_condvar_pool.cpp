// H7 peer: the plain thread pool everyone writes: one std::mutex, one
// std::condition_variable, a std::queue of std::function jobs, and submit() returning a
// std::future through std::packaged_task. Variants as h7_corio.
// Usage: h7_condvar_pool --variant tiny|map [--n 1000000] [--items 1000]
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "../cpu_work.hpp"
#include "../report.hpp"

namespace {

class condvar_pool {
public:
    explicit condvar_pool(unsigned workers) {
        for (unsigned i = 0; i < workers; ++i) {
            threads_.emplace_back([this] {
                for (;;) {
                    std::function<void()> job;
                    {
                        std::unique_lock lock(mutex_);
                        ready_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
                        if (stopping_ && jobs_.empty()) {
                            return;
                        }
                        job = std::move(jobs_.front());
                        jobs_.pop();
                    }
                    job();
                }
            });
        }
    }
    ~condvar_pool() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        ready_.notify_all();
        for (auto& t : threads_) {
            t.join();
        }
    }

    template <class F, class... Args>
    auto submit(F f, Args... args) -> std::future<std::invoke_result_t<F, Args...>> {
        using R = std::invoke_result_t<F, Args...>;
        auto job = std::make_shared<std::packaged_task<R()>>([f, args...] { return f(args...); });
        std::future<R> result = job->get_future();
        {
            std::lock_guard lock(mutex_);
            jobs_.emplace([job] { (*job)(); });
        }
        ready_.notify_one();
        return result;
    }

private:
    std::mutex mutex_;
    std::condition_variable ready_;
    std::queue<std::function<void()>> jobs_;
    std::vector<std::thread> threads_;
    bool stopping_ = false;
};

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const std::string variant = opt.get("variant", "tiny");
    condvar_pool pool(std::thread::hardware_concurrency());

    if (variant == "tiny") {
        const std::int64_t n = opt.get_int("n", 1'000'000);
        std::vector<std::future<std::int64_t>> results;
        results.reserve(static_cast<std::size_t>(n));
        const std::int64_t t0 = bench::now_ns();
        for (std::int64_t i = 0; i < n; ++i) {
            results.push_back(pool.submit(bench::plus_one, i));
        }
        std::int64_t sum = 0;
        for (auto& r : results) {
            sum += r.get();
        }
        const std::int64_t t1 = bench::now_ns();
        bench::check(sum == n * (n + 1) / 2, "sum of results", sum, n * (n + 1) / 2);
        bench::report("tasks_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
        return 0;
    }

    const std::size_t items = static_cast<std::size_t>(opt.get_int("items", 1000));
    std::vector<std::uint64_t> inputs(items);
    for (std::size_t i = 0; i < items; ++i) {
        inputs[i] = i;
    }
    std::vector<std::uint64_t> serial(items);
    const std::int64_t t0 = bench::now_ns();
    for (std::size_t i = 0; i < items; ++i) {
        serial[i] = bench::burn(inputs[i]);
    }
    const std::int64_t t1 = bench::now_ns();
    std::vector<std::future<std::uint64_t>> futures;
    futures.reserve(items);
    for (std::size_t i = 0; i < items; ++i) {
        futures.push_back(pool.submit(bench::burn, inputs[i]));
    }
    std::vector<std::uint64_t> parallel(items);
    for (std::size_t i = 0; i < items; ++i) {
        parallel[i] = futures[i].get();
    }
    const std::int64_t t2 = bench::now_ns();
    bench::check(parallel == serial, "map results equal serial results", parallel == serial, 1);
    bench::report("speedup", static_cast<double>(t1 - t0) / static_cast<double>(t2 - t1));
    return 0;
}
