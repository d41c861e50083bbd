#pragma once
// The loop running on this thread: `corio::get_running_loop()` (documented with the
// loop in event_loop.hpp), in a header of its own so that future.hpp can use it
// without including event_loop.hpp (which includes future.hpp).

#include <corio/error.hpp>

namespace corio {

class event_loop;

namespace detail {
inline thread_local event_loop* running_loop = nullptr;
}

/// The loop running on this thread. Throws corio::error if none runs.
/// **Thread safety:** reads a thread-local.
inline event_loop& get_running_loop() {
    if (detail::running_loop == nullptr) [[unlikely]] {
        throw error("corio: no running event loop on this thread");
    }
    return *detail::running_loop;
}

} // namespace corio
