// H6: loop overhead: no-op io_uring operations awaited through corio, with 1 or 32 in
// flight (32 tasks each awaiting n/32 NOPs in sequence).
// Usage: h6_corio --batch 1|32 --n 10000000
#include "ring/nop.hpp"
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/task.hpp>

#include <cstdint>
#include <vector>

#include "../report.hpp"

namespace {

corio::task<std::int64_t> nops(std::int64_t n) {
    std::int64_t completed = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        static_cast<void>(co_await corio::detail::nop());
        ++completed;
    }
    co_return completed;
}

corio::task<std::int64_t> nops_in_flight(std::int64_t n, std::int64_t batch) {
    std::vector<corio::future<std::int64_t>> futures;
    for (std::int64_t b = 0; b < batch; ++b) {
        futures.push_back(corio::create_task(nops(n / batch)));
    }
    std::int64_t completed = 0;
    for (auto& f : futures) {
        completed += co_await f;
    }
    co_return completed;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const std::int64_t batch = opt.get_int("batch", 1);
    const std::int64_t n = opt.get_int("n", 10'000'000) / batch * batch;

    const std::int64_t t0 = bench::now_ns();
    const std::int64_t completed = corio::run(batch == 1 ? nops(n) : nops_in_flight(n, batch));
    const std::int64_t t1 = bench::now_ns();

    bench::check(completed == n, "NOPs completed", completed, n);
    bench::report("ops_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
    return 0;
}
