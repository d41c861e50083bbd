#pragma once
// The H3 sleep durations: a fixed pseudo-random sequence in [1 ms, 10 ms], identical
// in every program (python/h3_sleep.py computes the same sequence).

#include <cstdint>

namespace bench {

class sleep_durations {
public:
    static constexpr std::int64_t min_micros = 1000;
    static constexpr std::int64_t max_micros = 10000;

    std::int64_t next_micros() noexcept {
        state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL;
        return min_micros +
               static_cast<std::int64_t>((state_ >> 33) % (max_micros - min_micros + 1));
    }

private:
    std::uint64_t state_ = 42;
};

} // namespace bench
