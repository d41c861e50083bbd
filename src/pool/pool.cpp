// What both pools share and is no template: cpu_count() and the futex that
// async_result waiters sleep on.

#include <corio/async_result.hpp>
#include <corio/pool.hpp>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>
#include <thread>

namespace corio {

std::size_t cpu_count() noexcept {
    // Grow the mask until the kernel accepts it (machines with > 1024 CPUs).
    for (int cpus = 1024; cpus <= (1 << 20); cpus *= 2) {
        cpu_set_t* set = CPU_ALLOC(cpus);
        if (set == nullptr) {
            break;
        }
        const std::size_t bytes = CPU_ALLOC_SIZE(cpus);
        CPU_ZERO_S(bytes, set);
        if (sched_getaffinity(0, bytes, set) == 0) {
            const int n = CPU_COUNT_S(bytes, set);
            CPU_FREE(set);
            return n > 0 ? static_cast<std::size_t>(n) : 1;
        }
        const int err = errno;
        CPU_FREE(set);
        if (err != EINVAL) {
            break;
        }
    }
    const unsigned hw = std::thread::hardware_concurrency();
    return hw > 0 ? hw : 1;
}

namespace detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "futex words must be plain 32-bit atomics");

void futex_wait(std::atomic<std::uint32_t>& word, std::uint32_t expected,
                const std::chrono::steady_clock::time_point* deadline) noexcept {
    // FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC deadline, the clock behind
    // steady_clock, so spurious wake-ups do not stretch the timeout.
    timespec ts{};
    if (deadline != nullptr) {
        const auto ns =
            std::chrono::duration_cast<std::chrono::nanoseconds>(deadline->time_since_epoch())
                .count();
        if (ns <= 0) {
            return;
        }
        ts.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
        ts.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    }
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word),
            FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG, expected, deadline != nullptr ? &ts : nullptr,
            nullptr, FUTEX_BITSET_MATCH_ANY);
}

void futex_wake_all(std::atomic<std::uint32_t>& word) noexcept {
    syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE | FUTEX_PRIVATE_FLAG,
            INT_MAX, nullptr, nullptr, 0);
}

} // namespace detail
} // namespace corio
