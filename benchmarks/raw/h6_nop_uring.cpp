// H6 physical limit: a raw liburing NOP loop, 1 or 32 NOPs in flight per submission.
// Usage: h6_raw_uring --batch 1|32 --n 10000000
#include <liburing.h>

#include <cstdint>

#include "../report.hpp"
#include "ring_setup.hpp"

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const unsigned batch = static_cast<unsigned>(opt.get_int("batch", 1));
    const std::int64_t n = opt.get_int("n", 10'000'000) / batch * batch;

    io_uring ring{};
    bench::init_ring(ring, 256);

    std::int64_t completed = 0;
    std::int64_t failed = 0;
    const std::int64_t t0 = bench::now_ns();
    for (std::int64_t i = 0; i < n; i += batch) {
        for (unsigned b = 0; b < batch; ++b) {
            io_uring_sqe* sqe = io_uring_get_sqe(&ring);
            io_uring_prep_nop(sqe);
            io_uring_sqe_set_data64(sqe, static_cast<__u64>(i + b));
        }
        io_uring_submit_and_wait(&ring, batch);
        io_uring_cqe* cqe = nullptr;
        unsigned head = 0;
        unsigned seen = 0;
        io_uring_for_each_cqe(&ring, head, cqe) {
            failed += cqe->res != 0;
            ++seen;
        }
        io_uring_cq_advance(&ring, seen);
        completed += seen;
    }
    const std::int64_t t1 = bench::now_ns();
    io_uring_queue_exit(&ring);

    bench::check(completed == n && failed == 0, "NOPs completed", completed, n);
    bench::report("ops_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
    return 0;
}
