#pragma once
/// \file async_result.hpp
/// `async_result<R>`: the result of work handed to a pool (multiprocessing's
/// AsyncResult). Threads block on it with `get()` / `wait()`; a task on an event loop
/// awaits it with `co_await res` and is resumed on its loop's thread, which keeps
/// serving other tasks meanwhile.
///
/// Producers (the pool backends) complete the shared state (`detail::result_state<R>`,
/// in detail/result_state.hpp) from any thread; the first completion wins.

#include <corio/detail/result_state.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/pool.hpp>

#include <chrono>
#include <optional>
#include <type_traits>
#include <utility>

namespace corio {

/// The result of work submitted to a pool (multiprocessing's AsyncResult); a cheap
/// handle to shared state, copyable. `R` may be `void`.
///
/// A finished result holds a value or an exception and is `ready()`. A result whose
/// pool was terminated first never becomes ready: `get()` and `co_await` throw
/// `pool_terminated`, `wait()` returns, `wait(timeout)` returns false.
///
/// **Thread safety:** every member may be called from any thread, concurrently
/// (`co_await` from a task on an event loop, on that loop's thread). A result may be
/// awaited by several tasks of one loop at a time; awaiting it concurrently from a
/// second loop throws `invalid_state_error`. Never call the blocking members (`wait`,
/// `get`) on a loop's thread from a task (they block the loop): `co_await` instead.
template <class R>
class async_result {
public:
    /// Result type, `R`.
    using value_type = R;

    /// An empty handle (`valid()` is false); only assignment and destruction are allowed.
    async_result() = default;

    /// Adopts `state` (producers only).
    explicit async_result(detail::ref_ptr<detail::result_state<R>> state) noexcept
        : state_(std::move(state)) {}

    /// True unless default-constructed or moved from.
    [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(state_); }

    /// True once the call finished, successfully or not (false after terminate()).
    [[nodiscard]] bool ready() const noexcept { return state().is_ready(); }

    /// Whether the finished call returned normally (true) or threw (false).
    /// Throws `invalid_state_error` (a `corio::error`) when not `ready()`, as Python's
    /// ValueError.
    [[nodiscard]] bool successful() const {
        if (!state().is_ready()) {
            throw invalid_state_error(
                "corio: async_result::successful() called before the result is ready");
        }
        return !state().has_error();
    }

    /// Blocks until the result is ready (or the pool was terminated).
    void wait() const noexcept { state().wait_until(nullptr); }

    /// Blocks at most `timeout`; returns `ready()`.
    template <class Rep, class Period>
    bool wait(std::chrono::duration<Rep, Period> timeout) const noexcept {
        const auto deadline = detail::deadline_after(timeout);
        state().wait_until(deadline ? &*deadline : nullptr);
        return state().is_ready();
    }

    /// Blocks until ready and returns the value (a reference into the shared state,
    /// valid while any copy of this result lives), or rethrows the call's exception
    /// with its type; throws `pool_terminated` if the pool was terminated first.
    decltype(auto) get() const& {
        state().wait_until(nullptr);
        return std::as_const(state()).value();
    }

    /// As `get()`, but moves the value out of the shared state.
    /// **Thread safety:** any thread; other copies of this result then see a
    /// moved-from value.
    decltype(auto) get() && {
        state().wait_until(nullptr);
        if constexpr (std::is_void_v<R>) {
            state().value();
        } else {
            return state().take();
        }
    }

    /// As `get()`, but throws `timeout_error` if the result is not ready within
    /// `timeout` (the call keeps running).
    template <class Rep, class Period>
    decltype(auto) get(std::chrono::duration<Rep, Period> timeout) const {
        const auto deadline = detail::deadline_after(timeout);
        if (!state().wait_until(deadline ? &*deadline : nullptr)) {
            throw timeout_error();
        }
        return std::as_const(state()).value();
    }

    /// `co_await res` from a task on an event loop: the task is resumed on its loop's
    /// thread when the result is ready, the loop serving other tasks meanwhile.
    /// Returns `const R&` into the shared state or rethrows; `pool_terminated` if the
    /// pool was terminated. Cancelling the awaiting task stops the wait (the call
    /// keeps running) with `cancelled_error`. Throws `corio::error` if the result is
    /// not ready and no loop runs on this thread.
    [[nodiscard]] auto operator co_await() const& {
        return detail::result_awaiter<R, false>(state());
    }

    /// `co_await std::move(res)` / `co_await to_thread(...)`: as above, but returns
    /// `R` by value, moved out of the shared state.
    [[nodiscard]] auto operator co_await() && { return detail::result_awaiter<R, true>(state()); }

private:
    detail::result_state<R>& state() const noexcept {
        assert(state_ && "corio: use of an empty async_result");
        return *state_;
    }

    detail::ref_ptr<detail::result_state<R>> state_;
};

} // namespace corio
