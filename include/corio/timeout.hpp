#pragma once
/// \file timeout.hpp
/// Deadlines over a block of awaits: `timeout_scope`, `timeout` and `timeout_at`
/// (asyncio.timeout / asyncio.timeout_at, Trio's `fail_after` cancel scopes).
///
/// ```
/// co_await corio::timeout(2s, fetch_all());          // whole block within 2 s
///
/// corio::timeout_scope scope(2s);                     // or timeout_scope(deadline)
/// co_await scope.run([](corio::timeout_scope& s) -> corio::task<> {
///     co_await handshake();
///     s.reschedule(5s);                                // more time for the body
///     co_await transfer();
/// }(scope));
/// ```
/// The block runs in the calling task (no new task): when the deadline passes the
/// scope cancels that task, and if the block ends with the cancelled_error the scope
/// caused, the scope throws `timeout_error` instead. A cancel that came from
/// elsewhere while the scope was open is left alone: the task counts its cancel
/// requests (`future::cancelling()`), and the scope withdraws only its own
/// (`uncancel()`), so `cancelled_error` goes on out of the block. Nested scopes
/// compose the same way: the innermost expired scope whose own request was the
/// last one standing turns the cancellation into `timeout_error`.

#include <corio/detail/cancel.hpp>
#include <corio/detail/future_state.hpp>
#include <corio/detail/loop_access.hpp>
#include <corio/detail/timer_heap.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/task.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace corio {

/// A deadline over a block of awaits run by `run(body)` in the calling task; can be
/// moved (`reschedule`) before and while the block runs. One scope runs one block.
/// The scope must outlive the block (it does when it is a local of the awaiting
/// coroutine). **Thread safety:** loop thread only.
class timeout_scope {
public:
    /// The clock of deadlines (the loop's).
    using clock = std::chrono::steady_clock;
    /// A point in time on that clock.
    using time_point = clock::time_point;

    /// A scope without a deadline (asyncio.timeout(None)); reschedule() can set one.
    timeout_scope() noexcept = default;
    /// A scope expiring at `when` (a deadline already passed expires at the block's
    /// first suspension).
    explicit timeout_scope(time_point when) noexcept : when_(when) {}
    /// A scope expiring `delay` after its construction.
    template <class Rep, class Period>
    explicit timeout_scope(std::chrono::duration<Rep, Period> delay)
        : when_(clock::now() + std::chrono::ceil<clock::duration>(delay)) {}
    timeout_scope(const timeout_scope&) = delete;
    timeout_scope& operator=(const timeout_scope&) = delete;
    ~timeout_scope() {
        if (loop_ != nullptr) {
            detail::loop_access::remove_timer(*loop_, node_);
        }
    }

    /// The deadline (empty: none).
    std::optional<time_point> when() const noexcept { return when_; }
    /// True once the deadline passed while the block ran (the scope cancelled it).
    bool expired() const noexcept { return state_ == state::expiring || state_ == state::expired; }

    /// Moves the deadline to `when` (empty: no deadline), also while the block runs.
    /// Throws invalid_state_error once the scope has expired or its block has ended.
    void reschedule(std::optional<time_point> when) {
        if (state_ != state::created && state_ != state::entered) {
            throw invalid_state_error(
                expired() ? "corio: reschedule of an expired timeout_scope"
                          : "corio: reschedule of a timeout_scope whose block ended");
        }
        when_ = when;
        if (state_ == state::entered) {
            detail::loop_access::remove_timer(*loop_, node_);
            arm();
        }
    }
    /// Moves the deadline to `delay` from now; errors as reschedule(time_point).
    template <class Rep, class Period>
    void reschedule(std::chrono::duration<Rep, Period> delay) {
        reschedule(
            std::optional<time_point>(clock::now() + std::chrono::ceil<clock::duration>(delay)));
    }

    /// Runs `body` in the calling task under the deadline; yields its result. Throws
    /// timeout_error if the deadline cancelled the block, cancelled_error if the task
    /// was (also) cancelled from elsewhere, whatever else the body throws;
    /// invalid_state_error if the scope already ran a block; corio::error outside a
    /// task on a running loop.
    template <class T>
    [[nodiscard]] task<T> run(task<T> body) {
        detail::task_root* root = co_await detail::current_root_awaiter{};
        enter(root);
        std::exception_ptr failure;
        try {
            if constexpr (std::is_void_v<T>) {
                co_await std::move(body);
            } else if constexpr (std::is_reference_v<T>) {
                T r = co_await std::move(body);
                leave(nullptr);
                co_return r;
            } else {
                T value = co_await std::move(body);
                leave(nullptr);
                co_return std::move(value);
            }
        } catch (...) {
            failure = std::current_exception();
        }
        if constexpr (std::is_void_v<T>) {
            leave(failure);
        } else {
            fail(failure); // only a failed body gets here
        }
    }

private:
    enum class state : std::uint8_t { created, entered, expiring, expired, exited };

    void enter(detail::task_root* root) {
        if (state_ != state::created) {
            throw invalid_state_error("corio: a timeout_scope runs one block only");
        }
        if (root == nullptr || detail::running_loop == nullptr) {
            throw error("corio: a timeout_scope must run inside a task on a running loop");
        }
        root_ = root;
        loop_ = detail::running_loop;
        entry_requests_ = root->cancelling();
        state_ = state::entered;
        node_.fire = &on_fire;
        node_.context = this;
        arm();
    }
    void arm() {
        if (when_) {
            node_.deadline = *when_;
            detail::loop_access::add_timer(*loop_, node_);
        }
    }
    // Never throws when `failure` is null.
    void leave(const std::exception_ptr& failure) {
        detail::loop_access::remove_timer(*loop_, node_);
        bool ours = state_ == state::expiring;
        state_ = ours ? state::expired : state::exited;
        if (ours && root_->uncancel() <= entry_requests_ && failure &&
            detail::is_cancellation(failure)) {
            throw timeout_error("corio: the deadline of a timeout scope passed");
        }
        if (failure) {
            std::rethrow_exception(failure);
        }
    }
    /// leave() for a block that failed: always throws.
    [[noreturn]] void fail(const std::exception_ptr& failure) {
        leave(failure);
        std::rethrow_exception(failure);
    }
    static void on_fire(detail::timer_node& n) noexcept {
        auto& self = *static_cast<timeout_scope*>(n.context);
        self.state_ = state::expiring;
        self.root_->deliver_cancel();
    }

    std::optional<time_point> when_;
    detail::timer_node node_;
    event_loop* loop_ = nullptr;
    detail::task_root* root_ = nullptr;
    std::uint32_t entry_requests_ = 0;
    state state_ = state::created;
};

/// Runs `body` in the calling task and throws timeout_error if it has not finished
/// within `delay` (asyncio.timeout): the block is cancelled at the deadline, and the
/// cancellation the deadline caused surfaces as timeout_error. Other cancellations
/// of the task go through untouched. See timeout_scope::run for every error.
/// **Thread safety:** loop thread only.
template <class T, class Rep, class Period>
[[nodiscard]] task<T> timeout(std::chrono::duration<Rep, Period> delay, task<T> body) {
    timeout_scope scope(delay);
    co_return co_await scope.run(std::move(body));
}

/// Runs `body` in the calling task with the deadline `when` (asyncio.timeout_at);
/// as timeout().
/// **Thread safety:** loop thread only.
template <class T>
[[nodiscard]] task<T> timeout_at(std::chrono::steady_clock::time_point when, task<T> body) {
    timeout_scope scope(when);
    co_return co_await scope.run(std::move(body));
}

} // namespace corio
