#pragma once
// The CPU-bound function of the H7 map rows and the tiny task of H7/H8: the same in
// every C++ program (python/h7_thread_pool.py has the same shape, fewer rounds).

#include <cstdint>

namespace bench {

/// About 0.1-0.2 ms of dependent integer arithmetic; not foldable by the compiler.
inline std::uint64_t burn(std::uint64_t x) noexcept {
    for (int k = 0; k < 100'000; ++k) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        x ^= x >> 29;
    }
    return x;
}

/// The tiny task.
inline std::int64_t plus_one(std::int64_t x) noexcept {
    return x + 1;
}

} // namespace bench
