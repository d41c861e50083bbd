#pragma once
// Futex waits on a 32-bit atomic word: what a thread blocked in `async_result::get()`
// sleeps on. Defined in src/pool/futex.cpp.

#include <atomic>
#include <chrono>
#include <cstdint>

namespace corio::detail {

/// Blocks while `word == expected`, until woken or `deadline` (steady clock; none
/// when null). Spurious returns are possible.
void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const std::chrono::steady_clock::time_point* deadline) noexcept;
/// Wakes every thread blocked in `futex_wait` on `word`.
void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept;
/// Wakes at most one thread blocked in `futex_wait` on `word`.
void futex_wake_one(std::atomic<std::uint32_t>& word) noexcept;

} // namespace corio::detail
