// cpu_count(): the CPUs this process may run on.

#include <corio/pool.hpp>

#include <sched.h>

#include <cerrno>
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

} // namespace corio
