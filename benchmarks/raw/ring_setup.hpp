#pragma once
// Ring setup for the raw liburing peers: the flags a careful liburing user picks
// (SINGLE_ISSUER + DEFER_TASKRUN, kernel 6.1+), falling back to none on older kernels.

#include <liburing.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace bench {

inline void init_ring(io_uring& ring, unsigned entries) {
    io_uring_params p{};
#ifdef IORING_SETUP_DEFER_TASKRUN
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
#endif
    int r = io_uring_queue_init_params(entries, &ring, &p);
    if (r < 0) {
        p = io_uring_params{};
        r = io_uring_queue_init_params(entries, &ring, &p);
    }
    if (r < 0) {
        std::fprintf(stderr, "io_uring_queue_init: %s\n", std::strerror(-r));
        std::exit(2);
    }
}

} // namespace bench
