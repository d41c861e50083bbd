#pragma once
/// \file thread_pool.hpp
/// `thread_pool`: multiprocessing.pool.ThreadPool for C++ — a fixed set of worker
/// threads serving one global FIFO queue, with Python's Pool interface (shared with
/// `process_pool`, see `pool_like`).

#include <corio/async_result.hpp>
#include <corio/detail/thread_pool_jobs.hpp>
#include <corio/imap_result.hpp>
#include <corio/pool.hpp>

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

/// A pool of worker threads with multiprocessing.Pool's interface.
///
/// Work goes through one global FIFO queue; idle workers sleep on a condition
/// variable and are woken one at a time (a woken worker wakes the next one only if
/// work is left over), so bursts do not stampede. Maps are cut into chunks: a chunk
/// is one queue entry, so per-item cost is just the call and storing its result.
///
/// Callbacks (`callback`, `error_callback`, `pool_options::on_progress`) run on one
/// result thread, started by the first call that has one, one at a time, before the
/// result they belong to becomes ready.
///
/// Function objects and arguments are copied (decayed) into the pool, as
/// `std::thread` does; pass `std::ref` to share. Map functions are called
/// concurrently from several workers.
///
/// **Thread safety:** every member may be called from any thread, concurrently,
/// except that the destructor must not race with other calls. Never call `join()` or
/// destroy the pool from one of its own workers or callbacks.
class thread_pool {
public:
    /// Starts `workers` threads (Python's `processes`); each runs
    /// `options.initializer` first. Throws `corio::error` if `workers` is 0,
    /// `std::system_error` if a thread cannot start, and the initializer's exception
    /// if it throws in any worker (the pool is then stopped and joined).
    /// **Thread safety:** a fresh object.
    explicit thread_pool(std::size_t workers = cpu_count(), pool_options options = {});

    /// Closes the pool (unless terminated) and joins it: every submitted call runs and
    /// every callback is called before it returns.
    /// **Thread safety:** must not race with other calls on this pool.
    ~thread_pool();

    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    /// Number of worker threads.
    /// **Thread safety:** any thread.
    [[nodiscard]] std::size_t size() const noexcept { return workers_; }

    /// Calls `f(args...)` on a worker and blocks until it returns; returns its result
    /// or rethrows its exception. Throws `pool_not_running` after `close()`.
    /// **Thread safety:** any thread except the pool's own workers (it would wait for itself).
    template <class F, class... Args>
    auto apply(F&& f, Args&&... args) {
        return apply_async(std::forward<F>(f), std::forward<Args>(args)...).get();
    }

    /// Submits `f(args...)` and returns its `async_result` at once. Optional trailing
    /// `callback(on_value)` and `error_callback(on_error)` run on the result thread
    /// before the result becomes ready. Throws `pool_not_running` after `close()`.
    /// **Thread safety:** any thread.
    template <class F, class... Args>
    [[nodiscard]] auto apply_async(F&& f, Args&&... args_then_callbacks) {
        using split = detail::split_args<Args...>;
        return split::apply(
            [&](auto&& call_args, auto cb, auto ecb) {
                return make_apply_(std::forward<F>(f), std::forward<decltype(call_args)>(call_args),
                                   std::move(cb), std::move(ecb));
            },
            std::forward<Args>(args_then_callbacks)...);
    }

    /// `[f(x) for x in range]` in input order, computed in chunks of `chunksize` items
    /// (default ceil(n / (4 * size()))); blocks until all are done. If calls throw, it
    /// throws the first exception to arrive, once every chunk finished. An empty range
    /// returns an empty vector at once. `void` results are `std::monostate`.
    /// Throws `corio::error` for a chunksize below 1 and `pool_not_running` after `close()`.
    /// **Thread safety:** any thread except the pool's own workers.
    template <class F, std::ranges::input_range Range, class... Chunksize>
    auto map(F&& f, Range&& range, Chunksize... chunksize) {
        static_assert(sizeof...(Chunksize) <= 1 && (detail::integral_chunksize<Chunksize> && ...),
                      "corio: map(f, range[, chunksize])");
        return map_async(std::forward<F>(f), std::forward<Range>(range), chunksize...).get();
    }

    /// As `map`, returning an `async_result<std::vector<R>>` at once; trailing
    /// `callback` (receives the vector) and `error_callback` after the optional
    /// chunksize. As in Python, the callback is not called for an empty range (the
    /// result is ready immediately). Progress goes to `pool_options::on_progress`.
    /// **Thread safety:** any thread.
    template <class F, std::ranges::input_range Range, class... Extra>
    [[nodiscard]] auto map_async(F&& f, Range&& range, Extra&&... chunksize_then_callbacks) {
        return make_map_<false>(std::forward<F>(f), std::forward<Range>(range),
                                std::forward<Extra>(chunksize_then_callbacks)...);
    }

    /// As `map`, but each element is a tuple unpacked into the call: `f(a, b)` for `{a, b}`.
    /// **Thread safety:** any thread except the pool's own workers.
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
        return make_map_<true>(std::forward<F>(f), std::forward<Range>(range),
                               std::forward<Extra>(chunksize_then_callbacks)...);
    }

    /// Submits `f(x)` for every element (in chunks of `chunksize`, default 1) and
    /// returns at once a range yielding the results in input order as they come.
    /// Throws `corio::error` for a chunksize below 1 and `pool_not_running` after `close()`.
    /// **Thread safety:** any thread; iterate the result from one thread.
    template <class F, std::ranges::input_range Range, detail::integral_chunksize Chunksize = int>
    [[nodiscard]] auto imap(F&& f, Range&& range, Chunksize chunksize = 1) {
        return make_imap_(std::forward<F>(f), std::forward<Range>(range),
                          detail::checked_chunksize(chunksize), true);
    }

    /// As `imap`, but yields results in the order they finish (input order with one worker).
    /// **Thread safety:** any thread; iterate the result from one thread.
    template <class F, std::ranges::input_range Range, detail::integral_chunksize Chunksize = int>
    [[nodiscard]] auto imap_unordered(F&& f, Range&& range, Chunksize chunksize = 1) {
        return make_imap_(std::forward<F>(f), std::forward<Range>(range),
                          detail::checked_chunksize(chunksize), false);
    }

    /// Stops accepting work; workers exit once the queue is empty. Idempotent, no-op
    /// after `terminate()`.
    /// **Thread safety:** any thread.
    void close() noexcept;

    /// Stops at once: queued calls are dropped, and every unfinished result (queued,
    /// running or waiting for its callback) never completes — its waiters and awaiters
    /// get `pool_terminated`. Running calls cannot be interrupted: they finish in the
    /// background and their results are discarded; `join()` waits for them.
    /// Idempotent.
    /// **Thread safety:** any thread.
    void terminate() noexcept;

    /// Waits for the workers and the result thread to exit (after `close()`: every
    /// submitted call ran and every callback was called). Throws `invalid_state_error`
    /// (a `corio::error`) if the pool is still running.
    /// **Thread safety:** any thread except the pool's own workers; concurrent calls
    /// all return once the pool is joined.
    void join();

private:
    void submit_(detail::work_item& first, detail::work_item& last, bool needs_result_thread);
    void check_running_() const;

    template <class F, class Tuple, class CB, class ECB>
    auto make_apply_(F&& f, Tuple&& call_args, CB cb, ECB ecb) {
        return [&]<class... T>(std::tuple<T...>*) {
            using fn_type = std::decay_t<F>;
            static_assert(std::is_invocable_v<fn_type, std::decay_t<T>...>,
                          "corio: f is not callable with these arguments (they are copied, as "
                          "std::thread does; use std::ref to pass a reference)");
            using result = std::remove_cvref_t<std::invoke_result_t<fn_type, std::decay_t<T>...>>;
            check_callbacks_<result, CB, ECB>();
            using job = detail::apply_job<result, CB, ECB, fn_type, std::decay_t<T>...>;
            detail::ref_ptr<job> j(new job(std::forward<F>(f), std::forward<Tuple>(call_args),
                                           std::move(cb), std::move(ecb)));
            j->retain(); // the queue's reference
            try {
                submit_(j->item(), j->item(), job::has_callbacks);
            } catch (...) {
                j->release();
                throw;
            }
            return async_result<result>(detail::ref_ptr<detail::result_state<result>>(j.detach()));
        }(static_cast<std::remove_cvref_t<Tuple>*>(nullptr));
    }

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

    template <bool Star, class F, class Range, class... Extra>
    auto make_map_(F&& f, Range&& range, Extra&&... extra) {
        using split = detail::split_args<Extra...>;
        static_assert(
            split::leading <= 1,
            "corio: map_async(f, range[, chunksize][, callback(...)][, error_callback(...)])");
        return split::apply(
            [&](auto&& leading, auto cb, auto ecb) {
                using fn_type = std::decay_t<F>;
                using in_type = std::ranges::range_value_t<Range>;
                using call_result = typename detail::map_call_result<fn_type, in_type, Star>::type;
                using value = detail::map_value_t<call_result>;
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
                check_running_();
                std::vector<in_type> inputs = detail::collect_inputs(std::forward<Range>(range));
                if (inputs.empty()) {
                    auto state = detail::make_result_state<std::vector<value>>();
                    state->set_value();
                    return async_result<std::vector<value>>(std::move(state));
                }
                const std::size_t cs =
                    chunksize ? *chunksize : detail::default_chunksize(inputs.size(), workers_);
                using job = detail::map_job<value, CB, ECB, fn_type, in_type, Star>;
                detail::ref_ptr<job> j(new job(std::forward<F>(f), std::move(inputs), cs, progress_,
                                               std::move(cb), std::move(ecb)));
                j->retain(j->chunk_count()); // one reference per queued chunk
                try {
                    submit_(j->first(), j->last(), j->needs_result_thread());
                } catch (...) {
                    for (std::size_t k = 0; k < j->chunk_count(); ++k) {
                        j->release();
                    }
                    throw;
                }
                return async_result<std::vector<value>>(
                    detail::ref_ptr<detail::result_state<std::vector<value>>>(j.detach()));
            },
            std::forward<Extra>(extra)...);
    }

    template <class F, class Range>
    auto make_imap_(F&& f, Range&& range, std::size_t chunksize, bool ordered) {
        using fn_type = std::decay_t<F>;
        using in_type = std::ranges::range_value_t<Range>;
        using value =
            detail::map_value_t<typename detail::map_call_result<fn_type, in_type, false>::type>;
        check_running_();
        std::vector<in_type> inputs = detail::collect_inputs(std::forward<Range>(range));
        if (inputs.empty()) {
            return imap_result<value>(detail::ref_ptr<detail::imap_state<value>>(
                new detail::imap_state<value>(0, chunksize, ordered)));
        }
        using job = detail::imap_job<value, fn_type, in_type>;
        detail::ref_ptr<job> j(new job(std::forward<F>(f), std::move(inputs), chunksize, ordered));
        const std::size_t chunks = j->chunk_count();
        j->retain(chunks);
        try {
            submit_(j->first(), j->last(), false);
        } catch (...) {
            for (std::size_t k = 0; k < chunks; ++k) {
                j->release();
            }
            throw;
        }
        return imap_result<value>(detail::ref_ptr<detail::imap_state<value>>(j.detach()));
    }

    std::unique_ptr<detail::thread_pool_core> core_;
    std::size_t workers_;
    const std::function<void(std::size_t, std::size_t)>* progress_ = nullptr;
};

namespace detail {
/// The pool behind `to_thread` and `run_in_executor(nullptr, ...)`:
/// min(32, cpu_count() + 4) threads, created on first use, closed and joined at exit.
thread_pool& default_blocking_pool();
} // namespace detail

} // namespace corio
