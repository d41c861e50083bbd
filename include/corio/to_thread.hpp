#pragma once
/// \file to_thread.hpp
/// Awaiting blocking work from a task: `to_thread` (asyncio.to_thread) and
/// `run_in_executor` (loop.run_in_executor), both returning an `async_result` that a
/// task awaits without blocking its loop.

#include <corio/async_result.hpp>
#include <corio/pool.hpp>
#include <corio/thread_pool.hpp>

#include <cstddef>
#include <utility>

namespace corio {

/// Runs `f(args...)` on the default blocking pool (min(32, cpu_count() + 4)
/// threads, started on first use, closed and joined at exit) and returns its
/// `async_result`: `auto v = co_await to_thread(read_config, path);`. Arguments are
/// copied as for `std::thread`. Cancelling the awaiting task stops the wait, not the
/// call. Throws `pool_not_running` during static destruction.
/// **Thread safety:** any thread.
template <class F, class... Args>
[[nodiscard]] auto to_thread(F&& f, Args&&... args) {
    return detail::default_blocking_pool().apply_async(std::forward<F>(f),
                                                       std::forward<Args>(args)...);
}

/// loop.run_in_executor(executor, f, *args): submits `f(args...)` to `pool` (any
/// `pool_like` pool) and returns the `async_result` to `co_await`.
/// `event_loop::run_in_executor` forwards here.
/// **Thread safety:** any thread.
template <class Pool, class F, class... Args>
requires pool_like<std::remove_cvref_t<Pool>>
[[nodiscard]] auto run_in_executor(Pool& pool, F&& f, Args&&... args) {
    return pool.apply_async(std::forward<F>(f), std::forward<Args>(args)...);
}

/// loop.run_in_executor(None, f, *args): the same on the default blocking pool
/// (`to_thread`).
/// **Thread safety:** any thread.
template <class F, class... Args>
[[nodiscard]] auto run_in_executor(std::nullptr_t, F&& f, Args&&... args) {
    return to_thread(std::forward<F>(f), std::forward<Args>(args)...);
}

template <class Executor, class F, class... Args>
auto event_loop::run_in_executor(Executor&& executor, F&& f, Args&&... args) {
    return corio::run_in_executor(executor, std::forward<F>(f), std::forward<Args>(args)...);
}

} // namespace corio
