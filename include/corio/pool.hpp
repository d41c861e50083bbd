#pragma once
/// \file pool.hpp
/// What `thread_pool` and `process_pool` share: options, the `callback` /
/// `error_callback` tags, the pool errors, `cpu_count()` and the `pool_like` concept
/// that both pools satisfy, so that switching between them is a one-word change.

#include <corio/error.hpp>

#include <concepts>
#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

template <class R>
class async_result;

/// A pool's per-worker initializer: any `void()` callable. A plain function or a
/// capture-less lambda also keeps its function pointer, which is what a process
/// pool sends to its workers (a capturing callable works with thread pools only).
/// **Thread safety:** a plain value.
class pool_initializer {
public:
    /// No initializer (`operator bool` is false).
    pool_initializer() = default;
    /// Holds `f`, any callable as `void()`; keeps its function pointer too if `f`
    /// converts to `void (*)()` (a plain function, a capture-less lambda). Implicit,
    /// so that `.initializer = setup` reads naturally. Throws what copying `f` throws.
    template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, pool_initializer> &&
             std::is_invocable_r_v<void, std::decay_t<F>&>) pool_initializer(F&& f)
        : fn_(std::forward<F>(f)) { // NOLINT: implicit on purpose
        if constexpr (std::is_convertible_v<std::decay_t<F>, void (*)()>) {
            plain_ = static_cast<void (*)()>(f);
        }
    }
    /// True if an initializer is set.
    explicit operator bool() const noexcept { return static_cast<bool>(fn_); }
    /// Runs the initializer.
    void operator()() const { fn_(); }
    /// The plain function pointer, or nullptr if the callable is not one.
    void (*plain() const noexcept)() { return plain_; }

private:
    std::function<void()> fn_;
    void (*plain_)() = nullptr;
};

/// Options of a pool, an aggregate: `pool_options{.initializer = fn, .on_progress = p}`.
/// (Every member has a default initializer, so g++ -Wextra does not warn about the
/// members a designated initializer leaves out.)
/// **Thread safety:** a plain value; the pool copies it at construction.
struct pool_options {
    /// Called once in every worker before it takes its first task (Python's
    /// `initializer`). If it throws in any worker, the pool's constructor stops the
    /// pool and rethrows that exception.
    pool_initializer initializer{};
    /// Tasks a worker process runs before it is replaced (0 = unlimited).
    /// Process pools only; `thread_pool` ignores it.
    std::size_t max_tasks_per_child = 0;
    /// Progress of `map`, `map_async`, `starmap` and `starmap_async`: called with the
    /// number of items done and the total after every finished chunk, on the pool's
    /// result thread, before the map's result becomes ready. If it throws, the map
    /// fails with that exception (once every chunk finished) and is not called again.
    std::function<void(std::size_t done, std::size_t total)> on_progress{};
};

/// The pool was closed or terminated: no more work is accepted
/// (Python's `ValueError: Pool not running`).
/// **Thread safety:** exception objects are immutable after construction.
class pool_not_running : public error {
public:
    /// With the standard message.
    pool_not_running()
        : error("corio: the pool is not running (close() or terminate() was called)") {}
    /// With a message of the caller's (`corio::error`'s constructors).
    using error::error;
};

/// The pool was terminated before this result was ready: thrown by
/// `async_result::get()` and by `co_await` on such a result, and by an `imap`
/// iteration that waits for an item that will never come.
/// **Thread safety:** exception objects are immutable after construction.
class pool_terminated : public error {
public:
    /// With the standard message.
    pool_terminated() : error("corio: the pool was terminated before the result was ready") {}
    /// With a message of the caller's (`corio::error`'s constructors).
    using error::error;
};

/// Number of CPUs this process may run on (its `sched_getaffinity` mask, as
/// `os.process_cpu_count()`), at least 1. Not `hardware_concurrency()`, which ignores
/// affinity masks, cpusets and `taskset`.
/// **Thread safety:** any thread.
[[nodiscard]] std::size_t cpu_count() noexcept;

/// The value-callback tag made by `callback(fn)`.
/// **Thread safety:** a plain value.
template <class F>
struct callback_t {
    F fn; ///< Called with the result (`const R&`; nothing for `void`).
};

/// The error-callback tag made by `error_callback(fn)`.
/// **Thread safety:** a plain value.
template <class F>
struct error_callback_t {
    F fn; ///< Called with the `std::exception_ptr` of the failure.
};

/// Tags `fn` as the success callback of `apply_async`, `map_async` or
/// `starmap_async`: `pool.apply_async(f, x, callback(on_value))`. It runs on the
/// pool's single result thread, one callback at a time, before the result becomes
/// ready (so `get()` returns only after it ran). If it throws, the result fails with
/// that exception and the error callback (if any) receives it.
/// **Thread safety:** any thread; `fn` itself runs on the result thread.
template <class F>
[[nodiscard]] callback_t<std::decay_t<F>> callback(F&& fn) {
    return {std::forward<F>(fn)};
}

/// Tags `fn` as the error callback: it receives the `std::exception_ptr` of a
/// failed call (or of a throwing success callback), on the result thread, before
/// the result becomes ready. If it throws too, the result fails with its exception.
/// **Thread safety:** any thread; `fn` itself runs on the result thread.
template <class F>
[[nodiscard]] error_callback_t<std::decay_t<F>> error_callback(F&& fn) {
    return {std::forward<F>(fn)};
}

namespace detail {

/// Stands for an absent callback.
struct no_callback {};

template <class T>
inline constexpr bool is_callback_tag = false;
template <class F>
inline constexpr bool is_callback_tag<callback_t<F>> = true;
template <class T>
inline constexpr bool is_error_callback_tag = false;
template <class F>
inline constexpr bool is_error_callback_tag<error_callback_t<F>> = true;
template <class T>
inline constexpr bool is_pool_tag =
    is_callback_tag<std::remove_cvref_t<T>> || is_error_callback_tag<std::remove_cvref_t<T>>;

/// How many of the arguments `A...` are trailing callback tags (0, 1 or 2).
template <class... A>
consteval std::size_t count_trailing_tags() {
    constexpr bool tag[] = {false, is_pool_tag<A>...};
    constexpr std::size_t n = sizeof...(A);
    std::size_t k = 0;
    while (k < n && tag[n - k]) {
        ++k;
    }
    return k;
}

template <class... A>
consteval bool tags_only_trailing() {
    constexpr bool tag[] = {false, is_pool_tag<A>...};
    constexpr std::size_t n = sizeof...(A);
    constexpr std::size_t k = count_trailing_tags<A...>();
    std::size_t callbacks = 0;
    std::size_t error_callbacks = 0;
    ((callbacks += is_callback_tag<std::remove_cvref_t<A>> ? 1 : 0), ...);
    ((error_callbacks += is_error_callback_tag<std::remove_cvref_t<A>> ? 1 : 0), ...);
    for (std::size_t i = 1; i + k <= n; ++i) {
        if (tag[i]) {
            return false;
        }
    }
    return callbacks <= 1 && error_callbacks <= 1;
}

template <template <class> class Tag, class T>
struct tag_fn {
    using type = no_callback;
};
template <template <class> class Tag, class F>
struct tag_fn<Tag, Tag<F>> {
    using type = F;
};

/// The function type inside the `Tag` among `A...`, or `no_callback`.
template <template <class> class Tag, class... A>
struct find_tag {
    using type = no_callback;
};
template <template <class> class Tag, class First, class... Rest>
struct find_tag<Tag, First, Rest...> {
    using first = typename tag_fn<Tag, std::remove_cvref_t<First>>::type;
    using type = std::conditional_t<std::is_same_v<first, no_callback>,
                                    typename find_tag<Tag, Rest...>::type, first>;
};

template <template <class> class Tag, class Result>
Result pick_tag() {
    return Result{};
}
template <template <class> class Tag, class Result, class First, class... Rest>
Result pick_tag(First&& first, Rest&&... rest) {
    if constexpr (!std::is_same_v<typename tag_fn<Tag, std::remove_cvref_t<First>>::type,
                                  no_callback>) {
        return std::forward<First>(first).fn;
    } else {
        return pick_tag<Tag, Result>(std::forward<Rest>(rest)...);
    }
}

/// Splits `args..., [callback(a)], [error_callback(b)]` (tags in either order):
/// `call` gets the leading arguments (a tuple of forwarding references), `cb` the
/// callback functions. Checked at compile time: tags only at the end, one of each.
template <class... A>
struct split_args {
    static_assert(tags_only_trailing<A...>(),
                  "corio: callback(...) and error_callback(...) must be the last arguments, "
                  "at most one of each");
    static constexpr std::size_t tags = count_trailing_tags<A...>();
    static constexpr std::size_t leading = sizeof...(A) - tags;
    using callback_fn = typename find_tag<callback_t, A...>::type;
    using error_callback_fn = typename find_tag<error_callback_t, A...>::type;

    /// The K-th argument, forwarded as it was passed (each is read once per use).
    template <std::size_t K, class Tuple>
    static decltype(auto) nth(Tuple& all) {
        return std::forward<std::tuple_element_t<K, std::tuple<A...>>>(std::get<K>(all));
    }

    template <class Fn>
    static decltype(auto) apply(Fn&& fn, A&&... a) {
        auto all = std::forward_as_tuple(std::forward<A>(a)...);
        return [&]<std::size_t... I, std::size_t... J>(std::index_sequence<I...>,
                                                       std::index_sequence<J...>)
            ->decltype(auto) {
            return std::forward<Fn>(fn)(
                std::forward_as_tuple(nth<I>(all)...),
                pick_tag<callback_t, callback_fn>(nth<leading + J>(all)...),
                pick_tag<error_callback_t, error_callback_fn>(nth<leading + J>(all)...));
        }
        (std::make_index_sequence<leading>{}, std::make_index_sequence<tags>{});
    }
};

/// An explicit chunksize argument: any integer type except `bool`.
template <class T>
concept integral_chunksize =
    std::integral<std::remove_cvref_t<T>> && !std::same_as<std::remove_cvref_t<T>, bool>;

/// Validates an explicit chunksize (Python raises ValueError for chunksize < 1).
template <class C>
std::size_t checked_chunksize(C c) {
    if (std::cmp_less(c, 1)) {
        throw error("corio: chunksize must be at least 1");
    }
    return static_cast<std::size_t>(c);
}

/// Python's default map chunksize: ceil(n / (4 * workers)), at least 1.
constexpr std::size_t default_chunksize(std::size_t n, std::size_t workers) noexcept {
    const std::size_t d = 4 * (workers == 0 ? 1 : workers);
    const std::size_t c = (n + d - 1) / d;
    return c == 0 ? 1 : c;
}

} // namespace detail

/// A pool with the multiprocessing.Pool interface: `thread_pool` and `process_pool`
/// both satisfy it (checked by a static test), so generic code can take either.
/// Checked with a plain function `int(int)`, the one kind of callable both accept.
/// **Thread safety:** the members it names are callable from any thread.
template <class P>
concept pool_like = std::constructible_from<P, std::size_t, pool_options> &&
    std::default_initializable<P> &&
    requires(P& p, int (*fn)(int), int (*fn2)(int, int), std::vector<int>& v,
             std::vector<std::tuple<int, int>>& tv) {
    { p.apply(fn, 1) } -> std::same_as<int>;
    { p.apply_async(fn, 1) } -> std::same_as<async_result<int>>;
    {
        p.apply_async(fn, 1, callback([](int) {}), error_callback([](std::exception_ptr) {}))
        } -> std::same_as<async_result<int>>;
    { p.map(fn, v) } -> std::same_as<std::vector<int>>;
    { p.map(fn, v, 4) } -> std::same_as<std::vector<int>>;
    { p.map_async(fn, v) } -> std::same_as<async_result<std::vector<int>>>;
    {
        p.map_async(fn, v, 4, callback([](const std::vector<int>&) {}))
        } -> std::same_as<async_result<std::vector<int>>>;
    { p.starmap(fn2, tv) } -> std::same_as<std::vector<int>>;
    { p.starmap_async(fn2, tv) } -> std::same_as<async_result<std::vector<int>>>;
    { p.imap(fn, v) } -> std::ranges::input_range;
    { p.imap(fn, v, 2) } -> std::ranges::input_range;
    { p.imap_unordered(fn, v) } -> std::ranges::input_range;
    p.close();
    p.terminate();
    p.join();
};

} // namespace corio
