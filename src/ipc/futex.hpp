#pragma once
// Futexes on words in shared memory (not FUTEX_PRIVATE: other processes wait on the
// same physical page), and the awaitable wait behind every async_* of the
// process-shared primitives: a watcher thread waits (futex_waitv) on the words tasks
// await plus a control word of its own, and resumes each task on its loop once its
// word changed.

#include <corio/task.hpp>

#include <atomic>
#include <cstdint>

namespace corio::detail {

/// Sleeps while `*word == expected`, at most `timeout_ms` (-1: no limit); returns
/// early on a wake-up, a signal or a changed value (callers re-check).
void futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
                int timeout_ms) noexcept;

/// Wakes up to `n` waiters of `word`.
void futex_wake(const std::atomic<std::uint32_t>* word, int n) noexcept;

/// Completes on the running loop once `*word != expected` (or after a wake-up that
/// left it unchanged: callers re-check). Never blocks the loop thread; cancellable.
task<void> futex_wait_async(const std::atomic<std::uint32_t>* word, std::uint32_t expected);

/// Milliseconds left until `deadline_ms` of the monotonic clock (-1 stays -1).
int remaining_ms(long long deadline_ms) noexcept;
/// The monotonic deadline `timeout_ms` from now (-1 stays -1).
long long deadline_after(int timeout_ms) noexcept;

} // namespace corio::detail
