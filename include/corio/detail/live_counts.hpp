#pragma once
// Process-wide counts of what corio holds, read by the tests' leak gate (the test
// main checks after every test case that they are back to their starting values).
// Reading them is cheap enough for that, not for a hot path.

#include <cstddef>

namespace corio::detail {

/// Future and task states alive (every corio::future, task, and awaited combinator
/// child has one). **Thread safety:** any thread (a relaxed atomic).
std::size_t live_future_states() noexcept;

/// Event loops alive (constructed and not destroyed). **Thread safety:** any thread.
std::size_t live_event_loops() noexcept;

/// io_uring instances alive: every event loop's, and every process pool
/// dispatcher's. **Thread safety:** any thread.
std::size_t live_rings() noexcept;

/// Kernel operations in flight or parked on the rings created by the calling
/// thread (other threads' rings are counted by live_rings only: reading their
/// counters would race). **Thread safety:** any thread.
std::size_t pending_kernel_ops() noexcept;

/// The fork server's pid and the program's end of its socket (-1 if none runs):
/// it lives for the whole program once started, so the leak gate leaves it out.
/// **Thread safety:** any thread.
int fork_server_pid() noexcept;
/// See fork_server_pid(). **Thread safety:** any thread.
int fork_server_fd() noexcept;

} // namespace corio::detail
