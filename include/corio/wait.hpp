#pragma once
/// \file wait.hpp
/// `corio::wait` (asyncio.wait): waits for some or all of a vector of futures (or
/// pool `async_result`s) without cancelling anything, and reports which are done.
/// Also reached through `corio/combinators.hpp`.
///
/// ```
/// std::vector<corio::future<int>> fs = ...;              // e.g. from create_task
/// auto r = co_await corio::wait(fs, corio::return_when::first_completed, 2s);
/// for (std::size_t i : r.done) use(fs[i].result());
/// // fs[r.pending[...]] keep running, held by the caller
/// ```

#include <corio/async_result.hpp>
#include <corio/detail/combinator_scope.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/task.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

/// When `wait` returns (asyncio's FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED).
enum class return_when {
    first_completed, ///< as soon as any one is done
    first_exception, ///< as soon as one ends with an exception (not a cancellation), or all are
                     ///< done
    all_completed,   ///< when every one is done
};

/// What `wait` returns: indexes into the waited vector, in increasing order.
/// **Thread safety:** a plain value.
struct wait_result {
    std::vector<std::size_t> done;    ///< done when wait returned (value, exception or cancelled)
    std::vector<std::size_t> pending; ///< still running; nothing was cancelled
};

namespace detail {

template <class>
inline constexpr bool is_async_result_v = false;
template <class R>
inline constexpr bool is_async_result_v<async_result<R>> = true;

/// What one wait shares with the done callbacks and watchers it installs (which may
/// run after the waiting frame is gone).
struct wait_state {
    explicit wait_state(event_loop& loop, std::size_t n, return_when w)
        : wake(loop), finished(n, false), failed(n, false), when(w) {}
    future<void> wake;
    std::vector<bool> finished;
    std::vector<bool> failed;
    std::size_t remaining = 0;
    return_when when;

    void on_done(std::size_t i, bool with_exception) {
        if (finished[i]) {
            return;
        }
        finished[i] = true;
        failed[i] = with_exception;
        --remaining;
        bool met = when == return_when::first_completed || remaining == 0 ||
                   (when == return_when::first_exception && with_exception);
        if (met && !wake.done()) {
            wake.set_result();
        }
    }
};

template <class T>
bool ended_with_exception(const future<T>& f) {
    return !f.cancelled() && f.exception() != nullptr;
}

template <class R>
task<> wait_watcher(std::shared_ptr<wait_state> s, std::size_t i, async_result<R> r) {
    bool with_exception = false;
    try {
        co_await r;
    } catch (const cancelled_error&) {
        co_return; // the wait is over: stop watching (the call keeps running)
    } catch (...) {
        with_exception = true;
    }
    s->on_done(i, with_exception);
}

// Removes what a wait installed, however it ends (returned, timed out, cancelled).
template <class A>
class wait_cleanup {
public:
    wait_cleanup(std::vector<A>& items, std::vector<done_callback_id>& ids,
                 std::vector<future<void>>& watchers, timer_handle& timer) noexcept
        : items_(items), ids_(ids), watchers_(watchers), timer_(timer) {}
    wait_cleanup(const wait_cleanup&) = delete;
    wait_cleanup& operator=(const wait_cleanup&) = delete;
    ~wait_cleanup() {
        timer_.cancel();
        if constexpr (is_future_v<A>) {
            for (std::size_t i = 0; i < ids_.size(); ++i) {
                if (ids_[i].value != 0) {
                    items_[i].remove_done_callback(ids_[i]);
                }
            }
        }
        for (auto& w : watchers_) {
            w.cancel();
        }
    }

private:
    std::vector<A>& items_;
    std::vector<done_callback_id>& ids_;
    std::vector<future<void>>& watchers_;
    timer_handle& timer_;
};

template <class A>
bool item_done(A& a) {
    if constexpr (is_future_v<A>) {
        return a.done();
    } else {
        return a.ready();
    }
}

template <class A>
task<wait_result> wait_impl(std::vector<A>& items, return_when when,
                            std::optional<std::chrono::steady_clock::duration> timeout) {
    if (items.empty()) {
        throw error("corio: wait() of an empty vector");
    }
    if (when != return_when::first_completed && when != return_when::first_exception &&
        when != return_when::all_completed) {
        throw error("corio: wait() with an invalid return_when");
    }
    event_loop& loop = get_running_loop();
    auto state = std::make_shared<wait_state>(loop, items.size(), when);
    std::vector<done_callback_id> ids(items.size());
    std::vector<future<void>> watchers;
    timer_handle timer;
    {
        wait_cleanup<A> cleanup(items, ids, watchers, timer);
        state->remaining = items.size();
        for (std::size_t i = 0; i < items.size(); ++i) {
            A& a = items[i];
            if constexpr (is_future_v<A>) {
                if (a.done()) {
                    state->on_done(i, ended_with_exception(a));
                } else {
                    ids[i] = a.add_done_callback(
                        [s = state, i](const A& f) { s->on_done(i, ended_with_exception(f)); });
                }
            } else {
                if (a.ready()) {
                    state->on_done(i, !a.successful());
                } else {
                    watchers.push_back(loop.create_task(wait_watcher(state, i, a)));
                }
            }
        }
        if (!state->wake.done() && timeout) {
            timer = loop.call_later(*timeout, [s = state] {
                if (!s->wake.done()) {
                    s->wake.set_result();
                }
            });
        }
        if (!state->wake.done()) {
            co_await state->wake; // a cancel of the caller cancels only this wake-up
        }
    }
    wait_result r;
    for (std::size_t i = 0; i < items.size(); ++i) {
        (state->finished[i] || item_done(items[i]) ? r.done : r.pending).push_back(i);
    }
    co_return r;
}

} // namespace detail

/// Waits until the condition `when` holds for `items` (futures, including created
/// tasks, or pool `async_result`s) or `timeout` passes, whichever is first, and
/// returns the indexes done and pending (asyncio.wait). Nothing is cancelled: pending
/// work keeps running, held by the caller. On timeout it returns (does not throw).
/// Cancelling the waiting task stops the wait with cancelled_error and leaves the
/// items alone. Throws corio::error for an empty vector or an invalid `when`.
/// The vector must stay alive, unchanged in size, until the wait returns.
/// **Thread safety:** loop thread only.
template <class A>
requires(detail::is_future_v<A> || detail::is_async_result_v<A>)
    [[nodiscard]] task<wait_result> wait(std::vector<A>& items,
                                         return_when when = return_when::all_completed) {
    return detail::wait_impl(items, when, std::nullopt);
}

/// As wait(items, when), returning with what is done when `timeout` passes.
/// **Thread safety:** loop thread only.
template <class A, class Rep, class Period>
requires(detail::is_future_v<A> || detail::is_async_result_v<A>)
    [[nodiscard]] task<wait_result> wait(std::vector<A>& items, return_when when,
                                         std::chrono::duration<Rep, Period> timeout) {
    return detail::wait_impl(
        items, when,
        std::optional<std::chrono::steady_clock::duration>(
            std::chrono::ceil<std::chrono::steady_clock::duration>(
                timeout < timeout.zero() ? std::chrono::duration<Rep, Period>::zero() : timeout)));
}

} // namespace corio
