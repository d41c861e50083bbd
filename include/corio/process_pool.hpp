#pragma once
/// \file process_pool.hpp
/// `process_pool`: multiprocessing.Pool for C++ — worker processes forked from the
/// fork server, with the same interface as `thread_pool` (see `pool_like`), and
/// workers whose death fails only the call they were running.

#include <corio/async_result.hpp>
#include <corio/detail/process_jobs.hpp>
#include <corio/detail/process_wire.hpp>
#include <corio/detail/thread_pool_jobs.hpp>
#include <corio/imap_result.hpp>
#include <corio/init.hpp>
#include <corio/pool.hpp>
#include <corio/process_error.hpp>
#include <corio/serialize.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <sys/types.h>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

namespace detail {
class process_pool_core;

template <class In, bool Star>
struct process_map_args;
template <class In>
struct process_map_args<In, false> {
    template <class F, class V>
    static call_target target(const F& f) {
        return make_call_target<F, true, In>(f);
    }
};
template <class In>
struct process_map_args<In, true> {
    template <class F, class V>
    static call_target target(const F& f) {
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            return make_call_target<F, true, std::decay_t<std::tuple_element_t<I, In>>...>(f);
        }
        (std::make_index_sequence<std::tuple_size_v<In>>{});
    }
};
} // namespace detail

/// A pool of worker processes with multiprocessing.Pool's interface; switching from
/// `thread_pool` is a one-word change for code whose function is a plain function or
/// a capture-less lambda and whose arguments and results are `serializable`.
///
/// Workers are forked from the fork server (started by `corio::init()`, or by the
/// first pool while the program is single-threaded), so creating a pool or replacing
/// a worker is safe whatever threads run. Each worker has one socket to the pool;
/// calls travel as length-prefixed frames, encoded with `corio::serialize` by the
/// submitting thread. Small chunks of one map are pipelined to a worker several at a
/// time (fewer when chunks take long); a call never waits behind an unrelated call
/// while another worker is free. One dispatcher thread per pool (`poll` on the
/// sockets and pidfds, not an event loop's ring: the pool works without any loop and
/// serves tasks of several loops) feeds the workers, decodes the answers and is the
/// pool's result thread: it runs callbacks and `on_progress`, one at a time, before
/// the result they belong to becomes ready. A task awaiting an `async_result` never
/// blocks its loop and is resumed on its loop's thread.
///
/// A worker that dies (a signal, `abort()`, `exit()`) fails exactly the call it was
/// running with `broken_worker_error`, naming the signal or exit status; the
/// dispatcher notices through the worker's pidfd even when a process the call forked
/// keeps the worker's socket open. Chunks pipelined behind it go to another worker,
/// the dead one is replaced and the pool keeps serving. An initializer that throws or
/// crashes breaks the pool (`broken_pool_error`) instead of respawning forever.
/// Exceptions thrown by the function come back as the same standard type with the
/// same message, or as `remote_error` (type name and message).
///
/// `options.initializer` must hold a plain function pointer (`void (*)()`, or a
/// capture-less lambda converted with `+[] { ... }`): it runs in the workers.
/// `options.max_tasks_per_child` counts chunks, as Python does.
///
/// **Thread safety:** every member may be called from any thread, concurrently,
/// except that the destructor must not race with other calls. Never call blocking
/// members (`apply`, `map`, `join`, `get()` of a result) from a callback: callbacks
/// run on the dispatcher thread.
class process_pool {
public:
    /// Starts `workers` processes; each runs `options.initializer` first, and the
    /// constructor waits until all did. Throws `corio::error` if `workers` is 0 or if
    /// the fork server cannot start (threads already run: call `corio::init()`), the
    /// initializer's exception if it throws in a worker, `broken_pool_error` if it
    /// crashes one, `std::system_error` for OS failures.
    /// **Thread safety:** a fresh object.
    explicit process_pool(std::size_t workers = cpu_count(), pool_options options = {});

    /// Closes the pool (unless terminated) and joins it: every submitted call runs
    /// and every callback is called before it returns.
    /// **Thread safety:** must not race with other calls on this pool.
    ~process_pool();

    process_pool(const process_pool&) = delete;
    process_pool& operator=(const process_pool&) = delete;

    /// Number of worker processes.
    /// **Thread safety:** any thread.
    [[nodiscard]] std::size_t size() const noexcept { return workers_; }

    /// Process ids of the current workers (they change when workers are replaced).
    /// **Thread safety:** any thread.
    [[nodiscard]] std::vector<pid_t> worker_pids() const;

    /// Calls `f(args...)` in a worker and blocks until it returns; returns its result
    /// or rethrows its exception. Throws `pool_not_running` after `close()`.
    /// **Thread safety:** any thread except the dispatcher (callbacks).
    template <class F, class... Args>
    auto apply(F&& f, Args&&... args) {
        return apply_async(std::forward<F>(f), std::forward<Args>(args)...).get();
    }

    /// Submits `f(args...)` and returns its `async_result` at once. Optional trailing
    /// `callback(on_value)` and `error_callback(on_error)` run on the dispatcher thread
    /// before the result becomes ready. The arguments are encoded before it returns.
    /// Throws `pool_not_running` after `close()`, `broken_pool_error` if broken.
    /// **Thread safety:** any thread.
    template <class F, class... Args>
    [[nodiscard]] auto apply_async(F&& f, Args&&... args_then_callbacks) {
        using split = detail::split_args<Args...>;
        return split::apply(
            [&](auto&& call_args, auto cb, auto ecb) {
                return make_apply_(f, call_args, std::move(cb), std::move(ecb));
            },
            std::forward<Args>(args_then_callbacks)...);
    }

    /// `[f(x) for x in range]` in input order, in chunks of `chunksize` items (default
    /// ceil(n / (4 * size()))); blocks until all are done. If calls throw, it throws
    /// the first exception to arrive, once every chunk finished. An empty range returns
    /// an empty vector at once. `void` results are `std::monostate`. Throws
    /// `corio::error` for a chunksize below 1 and `pool_not_running` after `close()`.
    /// **Thread safety:** any thread except the dispatcher (callbacks).
    template <class F, std::ranges::input_range Range, class... Chunksize>
    auto map(F&& f, Range&& range, Chunksize... chunksize) {
        static_assert(sizeof...(Chunksize) <= 1 && (detail::integral_chunksize<Chunksize> && ...),
                      "corio: map(f, range[, chunksize])");
        return map_async(std::forward<F>(f), std::forward<Range>(range), chunksize...).get();
    }

    /// As `map`, returning an `async_result<std::vector<R>>` at once; trailing
    /// `callback` (receives the vector) and `error_callback` after the optional
    /// chunksize. The callback is not called for an empty range. Progress goes to
    /// `pool_options::on_progress`.
    /// **Thread safety:** any thread.
    template <class F, std::ranges::input_range Range, class... Extra>
    [[nodiscard]] auto map_async(F&& f, Range&& range, Extra&&... chunksize_then_callbacks) {
        return make_map_<false>(f, std::forward<Range>(range),
                                std::forward<Extra>(chunksize_then_callbacks)...);
    }

    /// As `map`, but each element is a tuple (or pair, array) unpacked into the call.
    /// **Thread safety:** any thread except the dispatcher (callbacks).
    template <class F, std::ranges::input_range Range, class... Chunksize>
    auto starmap(F&& f, Range&& range, Chunksize... chunksize) {
        static_assert(sizeof...(Chunksize) <= 1 && (detail::integral_chunksize<Chunksize> && ...),
                      "corio: starmap(f, range[, chunksize])");
        return starmap_async(std::forward<F>(f), std::forward<Range>(range), chunksize...).get();
    }

    /// As `map_async`, with each tuple unpacked into the call.
    /// **Thread safety:** any thread.
    template <class F, std::ranges::input_range Range, class... Extra>
    [[nodiscard]] auto starmap_async(F&& f, Range&& range, Extra&&... chunksize_then_callbacks) {
        return make_map_<true>(f, std::forward<Range>(range),
                               std::forward<Extra>(chunksize_then_callbacks)...);
    }

    /// Submits `f(x)` for every element (in chunks of `chunksize`, default 1) and
    /// returns at once a range yielding the results in input order as they come; an
    /// item whose call threw rethrows when dereferenced. Throws `corio::error` for a
    /// chunksize below 1 and `pool_not_running` after `close()`.
    /// **Thread safety:** any thread; iterate the result from one thread.
    template <class F, std::ranges::input_range Range, detail::integral_chunksize Chunksize = int>
    [[nodiscard]] auto imap(F&& f, Range&& range, Chunksize chunksize = 1) {
        return make_imap_(f, std::forward<Range>(range), detail::checked_chunksize(chunksize),
                          true);
    }

    /// As `imap`, but yields results in the order they finish.
    /// **Thread safety:** any thread; iterate the result from one thread.
    template <class F, std::ranges::input_range Range, detail::integral_chunksize Chunksize = int>
    [[nodiscard]] auto imap_unordered(F&& f, Range&& range, Chunksize chunksize = 1) {
        return make_imap_(f, std::forward<Range>(range), detail::checked_chunksize(chunksize),
                          false);
    }

    /// Stops accepting work; workers exit once every submitted call finished.
    /// Idempotent, no-op after `terminate()`.
    /// **Thread safety:** any thread.
    void close() noexcept;

    /// Stops at once: the workers are killed (SIGKILL), and every unfinished result
    /// never completes — its waiters and awaiters get `pool_terminated`. Returns once
    /// the workers are gone. Idempotent.
    /// **Thread safety:** any thread except the dispatcher (callbacks).
    void terminate() noexcept;

    /// Waits for the dispatcher and the workers to exit (after `close()`: every
    /// submitted call ran and every callback was called). Throws `invalid_state_error`
    /// (a `corio::error`) if the pool is still running.
    /// **Thread safety:** any thread except the dispatcher; concurrent calls all
    /// return once the pool is joined.
    void join();

private:
    void submit_(detail::process_job& job, std::size_t chunks);
    void check_running_() const;
    const std::function<void(std::size_t, std::size_t)>* progress_() const noexcept;

    template <class R, class CB, class ECB>
    static constexpr void check_callbacks_() {
        if constexpr (!detail::is_no_callback<CB>) {
            if constexpr (std::is_void_v<R>) {
                static_assert(std::is_invocable_v<CB&>,
                              "corio: callback() of a void call takes no argument");
            } else {
                static_assert(std::is_invocable_v<CB&, const R&>,
                              "corio: callback(fn): fn must accept the result (const R&)");
            }
        }
        if constexpr (!detail::is_no_callback<ECB>) {
            static_assert(std::is_invocable_v<ECB&, std::exception_ptr>,
                          "corio: error_callback(fn): fn must accept a std::exception_ptr");
        }
    }

    template <class Fn>
    static void check_pointer_(const Fn& f) {
        if constexpr (std::is_pointer_v<Fn>) {
            if (f == nullptr)
                throw error("corio::process_pool: the function pointer is null");
        } else {
            (void)f;
        }
    }

    template <class J>
    void submit_job_(detail::ref_ptr<J>& j, std::size_t chunks) {
        j->retain(chunks); // one reference per queued chunk
        try {
            submit_(*j, chunks);
        } catch (...) {
            for (std::size_t k = 0; k < chunks; ++k)
                j->release();
            throw;
        }
    }

    template <class F, class Tuple, class CB, class ECB>
    auto make_apply_(F& f, Tuple& call_args, CB cb, ECB ecb) {
        return [&]<class... T>(std::tuple<T...>*) {
            using fn_type = std::decay_t<F>;
            detail::check_process_function<fn_type>();
            static_assert((serializable<detail::wire_type_t<T>> && ...),
                          "corio::process_pool: every argument must be serializable (see "
                          "corio/serialize.hpp)");
            static_assert(std::is_invocable_v<fn_type&, detail::wire_type_t<T>&...>,
                          "corio: f is not callable with these arguments");
            using result = detail::decoded_result_t<fn_type, detail::wire_type_t<T>...>;
            static_assert(std::is_void_v<result> || serializable<result>,
                          "corio::process_pool: the function's result must be serializable (see "
                          "corio/serialize.hpp)");
            check_callbacks_<result, CB, ECB>();
            const fn_type fn = f;
            check_pointer_(fn);
            check_running_();
            using job = detail::process_apply_job<result, CB, ECB>;
            detail::ref_ptr<job> j(
                new job(detail::make_call_target<fn_type, true, detail::wire_type_t<T>...>(fn),
                        call_args, std::move(cb), std::move(ecb)));
            submit_job_(j, 1);
            return async_result<result>(detail::ref_ptr<detail::result_state<result>>(j.detach()));
        }(static_cast<std::remove_cvref_t<Tuple>*>(nullptr));
    }

    template <bool Star, class F, class Range, class... Extra>
    auto make_map_(F& f, Range&& range, Extra&&... extra) {
        using split = detail::split_args<Extra...>;
        static_assert(
            split::leading <= 1,
            "corio: map_async(f, range[, chunksize][, callback(...)][, error_callback(...)])");
        return split::apply(
            [&](auto&& leading, auto cb, auto ecb) {
                using fn_type = std::decay_t<F>;
                detail::check_process_function<fn_type>();
                using in_type = std::ranges::range_value_t<Range>;
                static_assert(serializable<in_type>,
                              "corio::process_pool: the range's elements must be serializable (see "
                              "corio/serialize.hpp)");
                using call_result = typename detail::map_call_result<fn_type, in_type, Star>::type;
                using value = detail::map_value_t<call_result>;
                static_assert(
                    serializable<value>,
                    "corio::process_pool: the function's result must be serializable (see "
                    "corio/serialize.hpp)");
                using CB = decltype(cb);
                using ECB = decltype(ecb);
                check_callbacks_<std::vector<value>, CB, ECB>();
                std::optional<std::size_t> chunksize;
                if constexpr (std::tuple_size_v<std::remove_cvref_t<decltype(leading)>> == 1) {
                    static_assert(
                        detail::integral_chunksize<
                            std::tuple_element_t<0, std::remove_cvref_t<decltype(leading)>>>,
                        "corio: the argument after the range is the chunksize, an integer");
                    chunksize = detail::checked_chunksize(std::get<0>(leading));
                }
                const fn_type fn = f;
                check_pointer_(fn);
                check_running_();
                std::vector<in_type> inputs = detail::collect_inputs(std::forward<Range>(range));
                if (inputs.empty()) {
                    auto state = detail::make_result_state<std::vector<value>>();
                    state->set_value();
                    return async_result<std::vector<value>>(std::move(state));
                }
                const std::size_t cs =
                    chunksize ? *chunksize : detail::default_chunksize(inputs.size(), workers_);
                using job = detail::process_map_job<value, CB, ECB>;
                detail::ref_ptr<job> j(new job(
                    detail::process_map_args<in_type, Star>::template target<fn_type, value>(fn),
                    inputs, cs, progress_(), std::move(cb), std::move(ecb)));
                submit_job_(j, (inputs.size() + cs - 1) / cs);
                return async_result<std::vector<value>>(
                    detail::ref_ptr<detail::result_state<std::vector<value>>>(j.detach()));
            },
            std::forward<Extra>(extra)...);
    }

    template <class F, class Range>
    auto make_imap_(F& f, Range&& range, std::size_t chunksize, bool ordered) {
        using fn_type = std::decay_t<F>;
        detail::check_process_function<fn_type>();
        using in_type = std::ranges::range_value_t<Range>;
        static_assert(serializable<in_type>, "corio::process_pool: the range's elements must be "
                                             "serializable (see corio/serialize.hpp)");
        using value =
            detail::map_value_t<typename detail::map_call_result<fn_type, in_type, false>::type>;
        static_assert(serializable<value>, "corio::process_pool: the function's result must be "
                                           "serializable (see corio/serialize.hpp)");
        const fn_type fn = f;
        check_pointer_(fn);
        check_running_();
        std::vector<in_type> inputs = detail::collect_inputs(std::forward<Range>(range));
        if (inputs.empty()) {
            return imap_result<value>(detail::ref_ptr<detail::imap_state<value>>(
                new detail::imap_state<value>(0, chunksize, ordered)));
        }
        using job = detail::process_imap_job<value>;
        detail::ref_ptr<job> j(
            new job(detail::process_map_args<in_type, false>::template target<fn_type, value>(fn),
                    inputs, chunksize, ordered));
        submit_job_(j, (inputs.size() + chunksize - 1) / chunksize);
        return imap_result<value>(detail::ref_ptr<detail::imap_state<value>>(j.detach()));
    }

    std::unique_ptr<detail::process_pool_core> core_;
    std::size_t workers_;
};

} // namespace corio
