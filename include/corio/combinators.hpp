#pragma once
/// \file combinators.hpp
/// `gather`, `gather_settled`, `wait_for`, `wait_any`, `as_completed` and `shield`
/// (asyncio's combinators, with structured semantics: a combinator returns or throws
/// only after every child it started has finished; `shield` is the one exception).
///
/// Every combinator accepts `task<T>` prvalues, `future<T>`s (copied; the value is
/// copied out, the caller's future is untouched) and any other movable awaitable.
/// Each argument runs as a child task on the running loop, named after the awaiting
/// task ("Task-3/gather[0]"). A child cancelled before its first step (a sibling won
/// or failed, or the awaiting task was cancelled; not wait_for's inner work) never
/// starts its awaitable, so a `q.get()` among the losers of `wait_any` takes nothing
/// from the queue. The
/// combinators are themselves lazy `task`s (and
/// `as_completed` an `async_generator`): nothing starts before they are awaited.
/// Results of `void` awaitables are `std::monostate`; results of `T&` awaitables are
/// `std::reference_wrapper<T>`.
/// **Thread safety:** every combinator here is for the loop thread only.

#include <corio/async_generator.hpp>
#include <corio/detail/combinator_scope.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/generator.hpp>
#include <corio/outcome.hpp>
#include <corio/source_location.hpp>
#include <corio/task.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace corio {

namespace detail {

template <class... A, std::size_t... I>
std::tuple<future<child_result_t<A>>...> spawn_each(combinator_scope& s, const char* what,
                                                    corio::source_location where,
                                                    std::index_sequence<I...>, A&&... aws) {
    const std::string prefix = child_name_prefix(what);
    (void)prefix; // both unused when there is nothing to spawn
    (void)where;
    // Braced initialization: the children start in argument order.
    return std::tuple<future<child_result_t<A>>...>{
        s.template spawn<child_result_t<A>>(std::move(aws), child_name(prefix, I), where)...};
}

template <class A>
A take_awaitable(A& a) {
    if constexpr (is_future_v<A>) {
        return a; // the caller's future keeps its value
    } else {
        return std::move(a);
    }
}

template <class Range>
using range_awaitable_t = std::ranges::range_value_t<Range>;
template <class Range>
using range_result_t = child_result_t<range_awaitable_t<Range>>;

/// Spawns every element of `aws` into `children`; on failure cancels what started.
template <class Range, class R>
std::exception_ptr spawn_range(combinator_scope& s, Range& aws, std::vector<future<R>>& children,
                               const char* what, corio::source_location where) noexcept {
    using A = range_awaitable_t<Range>;
    try {
        if constexpr (std::ranges::sized_range<Range>) {
            children.reserve(std::ranges::size(aws));
            s.reserve(std::ranges::size(aws));
        }
        const std::string prefix = child_name_prefix(what);
        std::size_t i = 0;
        for (auto&& a : aws) {
            children.push_back(
                s.template spawn<R>(take_awaitable<A>(a), child_name(prefix, i), where));
            ++i;
        }
        return nullptr;
    } catch (...) {
        s.cancel_children();
        return std::current_exception();
    }
}

template <class R>
outcome<stored_value_t<R>> settle(future<R>& f) {
    try {
        return outcome<stored_value_t<R>>(std::in_place, take_value(f));
    } catch (...) {
        return outcome<stored_value_t<R>>(std::current_exception());
    }
}

template <class Variant, class... Ts>
struct unique_variant {
    using type = Variant;
};
template <class... Us, class T, class... Ts>
struct unique_variant<std::variant<Us...>, T, Ts...>
    : std::conditional_t<(std::is_same_v<T, Us> || ...), unique_variant<std::variant<Us...>, Ts...>,
                         unique_variant<std::variant<Us..., T>, Ts...>> {};

/// wait_any's value type: the common type when every child has the same one,
/// otherwise a std::variant of the distinct types in order of first appearance.
template <class V, class... Vs>
struct any_value {
    using type = std::conditional_t<(std::is_same_v<V, Vs> && ...), V,
                                    typename unique_variant<std::variant<>, V, Vs...>::type>;
};
template <class... Vs>
using any_value_t = typename any_value<Vs...>::type;

template <class V, class S>
V to_any(S&& s) {
    if constexpr (std::is_same_v<V, std::remove_cvref_t<S>>) {
        return std::forward<S>(s);
    } else {
        return V(std::in_place_type<std::remove_cvref_t<S>>, std::forward<S>(s));
    }
}

inline std::chrono::steady_clock::time_point deadline_after(event_loop& loop,
                                                            std::chrono::duration<double> d) {
    auto now = loop.time();
    if (d <= d.zero()) {
        return now;
    }
    if (d >= std::chrono::duration<double>(std::chrono::steady_clock::time_point::max() - now)) {
        return std::chrono::steady_clock::time_point::max();
    }
    return now + std::chrono::ceil<std::chrono::steady_clock::duration>(d);
}

/// Cancels the children of an as_completed generator destroyed before its end.
struct cancel_on_exit {
    explicit cancel_on_exit(scope_ref s) noexcept : scope(std::move(s)) {}
    scope_ref scope;
    cancel_on_exit(const cancel_on_exit&) = delete;
    cancel_on_exit& operator=(const cancel_on_exit&) = delete;
    ~cancel_on_exit() {
        if (scope->running() > 0) {
            scope->cancel_children();
        }
    }
};

} // namespace detail

/// Runs every awaitable concurrently as a child task and yields their results in
/// argument order as a `std::tuple` (asyncio.gather).
///
/// On the first exception (in completion order) the other children are cancelled,
/// and once every child has finished that exception is rethrown (asyncio's gather
/// leaves the siblings running instead). A child cancelled from elsewhere counts as
/// failing with cancelled_error. Exceptions of other children are not retrieved:
/// the loop's exception handler reports them. Cancelling the awaiting task cancels
/// every child and, once they all finished, throws cancelled_error (a child's
/// non-cancellation exception takes precedence). The children are created when the
/// returned task starts; debug reports show the awaiting task's creation site.
template <class... A>
requires(detail::combinator_awaitable<A>&&...)
    [[nodiscard]] task<std::tuple<detail::stored_value_t<detail::child_result_t<A>>...>> gather(
        A... aws) {
    detail::scope_ref scope =
        detail::combinator_scope::make(get_running_loop(), detail::scope_policy::fail_fast);
    scope->reserve(sizeof...(A));
    std::optional<std::tuple<future<detail::child_result_t<A>>...>> children;
    std::exception_ptr spawn_error;
    try {
        children.emplace(detail::spawn_each(*scope, "gather", detail::parent_location(),
                                            std::index_sequence_for<A...>{}, std::move(aws)...));
    } catch (...) {
        spawn_error = std::current_exception();
        scope->cancel_children();
    }
    co_await detail::scope_wait(*scope);
    if (spawn_error) {
        std::rethrow_exception(spawn_error);
    }
    scope->rethrow_taken();
    if (scope->parent_cancelled()) {
        throw cancelled_error();
    }
    co_return std::apply(
        [](auto&... f) {
            return std::tuple<detail::stored_value_t<detail::child_result_t<A>>...>(
                detail::take_value(f)...);
        },
        *children);
}

/// Runs every awaitable of `aws` concurrently and yields their results in range
/// order as a `std::vector`; same failure and cancellation rules as the variadic
/// gather. An empty range gives an empty vector. Pass ranges of tasks as rvalues
/// (`gather(std::move(tasks))`); futures are copied.
template <std::ranges::input_range Range>
requires detail::combinator_awaitable<detail::range_awaitable_t<Range>>
[[nodiscard]] task<std::vector<detail::stored_value_t<detail::range_result_t<Range>>>>
gather(Range aws, corio::source_location where = corio::source_location::current()) {
    using R = detail::range_result_t<Range>;
    detail::scope_ref scope =
        detail::combinator_scope::make(get_running_loop(), detail::scope_policy::fail_fast);
    std::vector<future<R>> children;
    std::exception_ptr spawn_error = detail::spawn_range(*scope, aws, children, "gather", where);
    co_await detail::scope_wait(*scope);
    if (spawn_error) {
        std::rethrow_exception(spawn_error);
    }
    scope->rethrow_taken();
    if (scope->parent_cancelled()) {
        throw cancelled_error();
    }
    std::vector<detail::stored_value_t<R>> out;
    out.reserve(children.size());
    for (auto& f : children) {
        out.push_back(detail::take_value(f));
    }
    co_return out;
}

/// Runs every awaitable concurrently to its end and yields every outcome, value or
/// exception, in argument order (asyncio.gather(return_exceptions=True)). No child
/// is cancelled because another failed. Cancelling the awaiting task cancels every
/// child and, once they all finished, throws cancelled_error (their exceptions then
/// go to the loop's exception handler).
template <class... A>
requires(detail::combinator_awaitable<A>&&...) [[nodiscard]] task<std::tuple<
    outcome<detail::stored_value_t<detail::child_result_t<A>>>...>> gather_settled(A... aws) {
    detail::scope_ref scope =
        detail::combinator_scope::make(get_running_loop(), detail::scope_policy::settle);
    scope->reserve(sizeof...(A));
    std::optional<std::tuple<future<detail::child_result_t<A>>...>> children;
    std::exception_ptr spawn_error;
    try {
        children.emplace(detail::spawn_each(*scope, "gather_settled", detail::parent_location(),
                                            std::index_sequence_for<A...>{}, std::move(aws)...));
    } catch (...) {
        spawn_error = std::current_exception();
        scope->cancel_children();
    }
    co_await detail::scope_wait(*scope);
    if (spawn_error) {
        std::rethrow_exception(spawn_error);
    }
    if (scope->parent_cancelled()) {
        throw cancelled_error();
    }
    co_return std::apply(
        [](auto&... f) {
            return std::tuple<outcome<detail::stored_value_t<detail::child_result_t<A>>>...>(
                detail::settle(f)...);
        },
        *children);
}

/// gather_settled over a range: every outcome in range order, as a `std::vector`.
template <std::ranges::input_range Range>
requires detail::combinator_awaitable<detail::range_awaitable_t<Range>>
[[nodiscard]] task<std::vector<outcome<detail::stored_value_t<detail::range_result_t<Range>>>>>
gather_settled(Range aws, corio::source_location where = corio::source_location::current()) {
    using R = detail::range_result_t<Range>;
    detail::scope_ref scope =
        detail::combinator_scope::make(get_running_loop(), detail::scope_policy::settle);
    std::vector<future<R>> children;
    std::exception_ptr spawn_error =
        detail::spawn_range(*scope, aws, children, "gather_settled", where);
    co_await detail::scope_wait(*scope);
    if (spawn_error) {
        std::rethrow_exception(spawn_error);
    }
    if (scope->parent_cancelled()) {
        throw cancelled_error();
    }
    std::vector<outcome<detail::stored_value_t<R>>> out;
    out.reserve(children.size());
    for (auto& f : children) {
        out.push_back(detail::settle(f));
    }
    co_return out;
}

/// Awaits `aw` with a deadline (asyncio.wait_for, Python 3.12 semantics). Yields its
/// value or rethrows its exception unchanged. When `timeout` expires the inner work
/// is cancelled and, once it has finished handling that cancellation, timeout_error
/// is thrown; if the inner work swallows the cancellation and returns a value, that
/// value is returned. A `timeout` of zero or less still returns a result that is
/// already there (a done future, or a task that finishes without suspending).
/// Cancelling the awaiting task cancels the inner work, waits for it, and throws
/// cancelled_error: nested wait_fors tell their own deadline from an outer cancel.
/// If the inner work completes in spite of that cancel (it had already finished, or
/// swallowed the cancellation), its value is returned, never dropped, and the cancel
/// is delivered at the awaiting task's next suspension point: `wait_for(q.get(), t)`
/// loses no item.
template <class A, class Rep, class Period>
requires detail::combinator_awaitable<A>
[[nodiscard]] task<detail::child_result_t<A>>
wait_for(A aw, std::chrono::duration<Rep, Period> timeout,
         corio::source_location where = corio::source_location::current()) {
    using R = detail::child_result_t<A>;
    event_loop& loop = get_running_loop();
    if constexpr (detail::is_future_v<A>) {
        if (aw.done()) {
            // As a child would: copied, or moved out when it cannot be copied.
            if constexpr (std::is_void_v<R> || std::is_reference_v<R> ||
                          std::is_copy_constructible_v<R>) {
                co_return aw.result();
            } else {
                co_return std::move(aw.result());
            }
        }
    }
    const auto deadline = detail::deadline_after(loop, timeout);
    detail::scope_ref scope = detail::combinator_scope::make(loop, detail::scope_policy::settle);
    scope->start_cancelled_children();
    future<R> inner =
        scope->template spawn<R>(std::move(aw), detail::child_name("wait_for", 0), where);
    co_await detail::scope_wait(*scope, deadline);
    if (inner.cancelled()) {
        if (scope->parent_cancelled()) {
            throw cancelled_error();
        }
        if (scope->timed_out()) {
            throw timeout_error();
        }
        inner.result(); // cancelled from elsewhere: its own cancelled_error
    }
    if (scope->parent_cancelled() && !inner.exception()) {
        // The inner work completed although its cancel was requested (it had already
        // finished, or its last step could not be undone, as a put that went in): its
        // value is returned, not dropped, and the cancel lands at the next suspension
        // point of the awaiting task, as if the work had been awaited inline.
        if (detail::task_root* root = co_await detail::current_root_awaiter{}; root != nullptr) {
            root->repost_cancel();
        } else {
            throw cancelled_error();
        }
    }
    if constexpr (std::is_void_v<R>) {
        inner.result();
    } else if constexpr (std::is_reference_v<R>) {
        co_return inner.result();
    } else {
        co_return std::move(inner.result());
    }
}

/// Runs every awaitable concurrently; the first to finish wins. The others are then
/// cancelled and awaited, and the result is `{index, value}` of the winner, where the
/// value type is the common result type, or a `std::variant` of the distinct result
/// types when they differ. If the winner ended with an exception, that exception is
/// rethrown (once every child finished). Cancelling the awaiting task cancels every
/// child, waits for them, and throws cancelled_error.
template <class... A>
requires(sizeof...(A) > 0 && (detail::combinator_awaitable<A> && ...)) [[nodiscard]] task<std::pair<
    std::size_t,
    detail::any_value_t<detail::stored_value_t<detail::child_result_t<A>>...>>> wait_any(A... aws) {
    using V = detail::any_value_t<detail::stored_value_t<detail::child_result_t<A>>...>;
    detail::scope_ref scope =
        detail::combinator_scope::make(get_running_loop(), detail::scope_policy::first_wins);
    scope->reserve(sizeof...(A));
    std::optional<std::tuple<future<detail::child_result_t<A>>...>> children;
    std::exception_ptr spawn_error;
    try {
        children.emplace(detail::spawn_each(*scope, "wait_any", detail::parent_location(),
                                            std::index_sequence_for<A...>{}, std::move(aws)...));
    } catch (...) {
        spawn_error = std::current_exception();
        scope->cancel_children();
    }
    co_await detail::scope_wait(*scope);
    if (spawn_error) {
        std::rethrow_exception(spawn_error);
    }
    scope->rethrow_taken();
    if (scope->parent_cancelled()) {
        throw cancelled_error();
    }
    const std::size_t w = *scope->winner();
    std::optional<std::pair<std::size_t, V>> out;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((I == w
              ? (void)out.emplace(w, detail::to_any<V>(detail::take_value(std::get<I>(*children))))
              : void()),
         ...);
    }
    (std::index_sequence_for<A...>{});
    co_return std::move(*out);
}

/// wait_any over a non-empty range: `{index, value}` of the first to finish.
/// Throws corio::error for an empty range (Python's ValueError).
template <std::ranges::input_range Range>
requires detail::combinator_awaitable<detail::range_awaitable_t<Range>>
[[nodiscard]] task<std::pair<std::size_t, detail::stored_value_t<detail::range_result_t<Range>>>>
wait_any(Range aws, corio::source_location where = corio::source_location::current()) {
    using R = detail::range_result_t<Range>;
    detail::scope_ref scope =
        detail::combinator_scope::make(get_running_loop(), detail::scope_policy::first_wins);
    std::vector<future<R>> children;
    std::exception_ptr spawn_error = detail::spawn_range(*scope, aws, children, "wait_any", where);
    if (!spawn_error && children.empty()) {
        throw error("corio: wait_any of an empty range");
    }
    co_await detail::scope_wait(*scope);
    if (spawn_error) {
        std::rethrow_exception(spawn_error);
    }
    scope->rethrow_taken();
    if (scope->parent_cancelled()) {
        throw cancelled_error();
    }
    const std::size_t w = *scope->winner();
    co_return std::pair<std::size_t, detail::stored_value_t<R>>(w, detail::take_value(children[w]));
}

/// Runs every awaitable of `aws` concurrently and yields their outcomes in
/// completion order, as an async generator (asyncio.as_completed). The children
/// start at the first `next()`. Cancelling the consuming task while it waits in
/// `next()` cancels every child, waits for them, and throws cancelled_error.
/// `aclose()` cancels the children still running and waits for them; destroying the
/// generator early hands it to a finalizer task on the loop, which does the same
/// (the destroyer itself does not wait). An exception in an outcome never consumed is reported by
/// the loop's exception handler.
/// **Thread safety:** one consumer at a time (loop thread only, as every combinator).
template <std::ranges::input_range Range>
requires detail::combinator_awaitable<detail::range_awaitable_t<Range>>
[[nodiscard]] async_generator<outcome<detail::stored_value_t<detail::range_result_t<Range>>>>
as_completed(Range aws, corio::source_location where = corio::source_location::current()) {
    using R = detail::range_result_t<Range>;
    detail::scope_ref scope =
        detail::combinator_scope::make(get_running_loop(), detail::scope_policy::settle);
    scope->wake_on_each_completion();
    detail::cancel_on_exit guard{scope};
    std::vector<future<R>> children;
    std::exception_ptr failure = detail::spawn_range(*scope, aws, children, "as_completed", where);
    if (!failure) {
        try {
            scope->reserve_completed(children.size());
        } catch (...) {
            failure = std::current_exception();
            scope->cancel_children();
        }
    }
    bool closing = false;
    while (!failure && !closing) {
        while (std::optional<std::size_t> i = scope->pop_completed()) {
            try {
                co_yield detail::settle(children[*i]);
            } catch (const generator_exit&) {
                closing = true;
            }
            if (closing) {
                break;
            }
        }
        if (closing || scope->running() == 0) {
            break;
        }
        co_await detail::scope_wait(*scope);
        if (scope->parent_cancelled()) {
            break;
        }
    }
    // aclose() or a cancel of the consumer: cancel what still runs and wait for it.
    if (closing || failure || scope->parent_cancelled()) {
        scope->cancel_children();
        while (scope->running() > 0) {
            while (scope->pop_completed()) {
            }
            co_await detail::scope_wait(*scope);
        }
    }
    if (failure) {
        std::rethrow_exception(failure);
    }
    if (closing) {
        throw generator_exit{};
    }
    if (scope->parent_cancelled()) {
        throw cancelled_error();
    }
}

/// Awaits `aw` so that cancelling the awaiting task does not cancel it
/// (asyncio.shield): the awaiting task gets cancelled_error at once while the inner
/// work runs on to completion as a task owned by the loop (an exception it then ends
/// with is reported by the loop's exception handler; the loop's close() cancels it
/// like any task). Otherwise yields the inner value or rethrows its exception.
/// This is the one combinator that lets a child outlive its caller, by design.
template <class A>
requires detail::combinator_awaitable<A>
[[nodiscard]] task<detail::child_result_t<A>>
shield(A aw, corio::source_location where = corio::source_location::current()) {
    using R = detail::child_result_t<A>;
    if constexpr (detail::is_future_v<A>) {
        if (aw.done()) {
            // As a child would: copied, or moved out when it cannot be copied.
            if constexpr (std::is_void_v<R> || std::is_reference_v<R> ||
                          std::is_copy_constructible_v<R>) {
                co_return aw.result();
            } else {
                co_return std::move(aw.result());
            }
        }
    }
    detail::scope_ref scope =
        detail::combinator_scope::make(get_running_loop(), detail::scope_policy::shield);
    future<R> inner =
        scope->template spawn<R>(std::move(aw), detail::child_name("shield", 0), where);
    co_await detail::scope_wait(*scope);
    if (scope->parent_cancelled()) {
        throw cancelled_error();
    }
    if constexpr (std::is_void_v<R>) {
        inner.result();
    } else if constexpr (std::is_reference_v<R>) {
        co_return inner.result();
    } else {
        co_return std::move(inner.result());
    }
}

} // namespace corio

// asyncio.wait lives in its own header; reached through this one as API.md says.
#include <corio/wait.hpp>
