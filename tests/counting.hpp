#pragma once
// Live-object counting for lifetime tests: constructions minus destructions.

#include <atomic>

namespace corio_test {

struct counted {
    static inline std::atomic<long> live{0};
    counted() noexcept { ++live; }
    counted(const counted&) noexcept { ++live; }
    counted(counted&&) noexcept { ++live; }
    counted& operator=(const counted&) = default;
    counted& operator=(counted&&) = default;
    ~counted() { --live; }
};

} // namespace corio_test
