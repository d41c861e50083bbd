#pragma once
/// \file basic_pool.hpp
/// `basic_pool<Backend>`: the one pool front-end. `thread_pool` and `process_pool` (and
/// any further pool, e.g. over Redis) are a `basic_pool` over their backend: the
/// multiprocessing.Pool interface (`apply`, `apply_async`, `map`, `starmap`, `imap`,
/// `imap_unordered`, the `*_async` forms, callbacks, chunking, `close` / `terminate` /
/// `join`) and its rules are written here once.
///
/// ## The backend interface
/// A backend `B` is the part of a pool that runs calls somewhere. `basic_pool<B>` owns
/// one `B` and needs from it:
///
/// | member | what it must do | thread |
/// |---|---|---|
/// | `B(std::size_t workers, pool_options)` | start the workers; run `initializer` in each; throw
/// `corio::error` for 0 workers, the initializer's exception if it threw (after stopping what
/// started) | the caller's | | `std::size_t size() const noexcept` | the number of workers | any |
/// | `const std::function<void(std::size_t, std::size_t)>* progress() const noexcept` |
/// `options.on_progress`, or nullptr if empty | any | | `template <class F, class... A> static
/// constexpr void check_apply()` | `static_assert`s that reject a call the backend cannot run
/// (called first, for readable errors) | compile time | | `template <class F, class... A> using
/// apply_result` | the result type of `f(args...)` as the backend runs it | compile time | |
/// `template <class F, class In, bool Star> static constexpr void check_map()` | as `check_apply`,
/// for `map` / `starmap` / `imap` over elements `In` | compile time | | `make_apply_job<R, A...>(f,
/// args_tuple, cb, ecb)` | a `ref_ptr` to a new job that is a `result_state<R>` | the caller's | |
/// `make_map_job<V, Star>(f, std::vector<In>, chunksize, cb, ecb)` | a `ref_ptr` to a new job that
/// is a `result_state<std::vector<V>>` | the caller's | | `make_imap_job<V>(f, std::vector<In>,
/// chunksize, ordered)` | a `ref_ptr` to a new job that is an `imap_state<V>` | the caller's | |
/// `void check_running() const` | throw `pool_not_running` after `close()` / `terminate()` (a
/// backend may throw its own `broken_pool_error` too) | any | | `void submit(J::batch_type)` |
/// **submit a batch**: queue every chunk of one job, all or nothing; the chunks' references are
/// already taken (one per chunk) and pass to the backend; throw `pool_not_running` if closed (then
/// nothing was queued and the front-end drops the references) | any | | `void close() noexcept` |
/// stop accepting work; workers finish what was submitted, then exit | any | | `void terminate()
/// noexcept` | **cancel**: stop at once; every unfinished job is abandoned (its waiters get
/// `pool_terminated`); idempotent; from one of the pool's own threads it must not wait | any | |
/// `void join()` | **shut down**: wait until the workers (and the thread that delivers results)
/// exited; throw `invalid_state_error` if the pool still runs; concurrent and repeated calls return
/// once joined | any but the pool's own | | `bool on_pool_thread() const noexcept` | true on one of
/// the backend's own threads (a worker, the thread that runs callbacks) | any |
///
/// A job (`J`) has `chunk_count()`, `retain(n)` / `release()` (one reference per chunk
/// while the backend holds it) and `batch()`, the value `submit` takes. The backend
/// delivers what happens to each chunk to its job, on the backend's result thread
/// (the one thread that runs callbacks and `on_progress`, one at a time): a result, an
/// exception the call threw, or a failure of the chunk as a whole (a worker that died:
/// `broken_worker_error`; a broken pool: `broken_pool_error`). The job then runs the
/// callbacks and completes its `async_result` (`detail::complete_with_callbacks`), and
/// the backend drops the chunk's reference. See docs/design.md, "One pool front-end".
///
/// ## Extensions (optional; `redis_pool` uses them, thread and process pools do not)
/// - `basic_pool(std::in_place, args...)` (protected): the backend is built from `args`
///   instead of `(workers, pool_options)` (redis_pool: a URL and its own options).
/// - `std::size_t default_chunksize(std::size_t n) const noexcept` on the backend: the
///   chunksize of a map without one; without it, ceil(n / (4 * size())). A backend
///   that has it need not have `size()` (then its pool must not offer `size()`).
/// - `apply_async_inspect(inspect, f, args...)` (protected): `apply_async` that also
///   calls `inspect(job)` with the backend's job once it was submitted (redis_pool's
///   `submit` reads the job's Redis id there).

#include <corio/async_result.hpp>
#include <corio/detail/assert.hpp>
#include <corio/detail/pool_jobs.hpp>
#include <corio/error.hpp>
#include <corio/imap_result.hpp>
#include <corio/pool.hpp>

#include <cstddef>
#include <exception>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

/// The one pool front-end: multiprocessing.Pool's interface over a backend that runs
/// the calls (threads, processes, ...). Use it through `thread_pool` or `process_pool`.
///
/// Lifecycle, the same for every pool:
/// - `close()` stops accepting work; what was submitted still runs and its callbacks
///   are called. `terminate()` stops at once: queued calls are dropped and every
///   unfinished result gets `pool_terminated`; it is idempotent.
/// - `join()` waits for the pool to finish after `close()` or `terminate()`; it throws
///   `invalid_state_error` while the pool runs, and when called from one of the pool's
///   own threads (a callback or a worker), which it would wait for.
/// - The destructor closes and joins: no submitted work is lost. Destroying a pool
///   from one of its own threads is a programming error (it aborts with a message).
///
/// Callbacks (`callback`, `error_callback`, `pool_options::on_progress`) run on the
/// pool's one result thread, one at a time, before the result they belong to becomes
/// ready. A task awaiting an `async_result` never blocks its loop.
///
/// **Thread safety:** every member may be called from any thread, concurrently, except
/// that the destructor must not race with other calls; blocking members (`apply`,
/// `map`, `starmap`, `join`, the destructor) not from the pool's own threads.
template <class Backend>
class basic_pool {
public:
    /// The backend type (see the table at the top of basic_pool.hpp).
    using backend_type = Backend;

    /// Starts `workers` workers (Python's `processes`); each runs `options.initializer`
    /// first. Throws what the backend's constructor throws: `corio::error` for 0
    /// workers, the initializer's exception, `std::system_error` for OS failures.
    explicit basic_pool(std::size_t workers = cpu_count(), pool_options options = {})
        : backend_(workers, std::move(options)) {}

    /// Closes the pool (unless terminated) and joins it: every submitted call runs and
    /// every callback is called before it returns.
    ~basic_pool() {
        CORIO_ASSERT(!backend_.on_pool_thread(),
                     "a pool destroyed from one of its own callbacks or workers cannot wait "
                     "for itself");
        backend_.close();
        backend_.join();
    }

    basic_pool(const basic_pool&) = delete;
    basic_pool& operator=(const basic_pool&) = delete;

    /// Number of workers.
    [[nodiscard]] std::size_t size() const noexcept { return backend_.size(); }

    /// Calls `f(args...)` on a worker and blocks until it returns; returns its result
    /// or rethrows its exception. Throws `pool_not_running` after `close()`.
    template <class F, class... Args>
    auto apply(F&& f, Args&&... args) {
        return apply_async(std::forward<F>(f), std::forward<Args>(args)...).get();
    }

    /// Submits `f(args...)` and returns its `async_result` at once. Optional trailing
    /// `callback(on_value)` and `error_callback(on_error)` run on the result thread
    /// before the result becomes ready. Throws `pool_not_running` after `close()`.
    template <class F, class... Args>
    [[nodiscard]] auto apply_async(F&& f, Args&&... args_then_callbacks) {
        return apply_async_inspect([](auto&) {}, std::forward<F>(f),
                                   std::forward<Args>(args_then_callbacks)...);
    }

    /// `[f(x) for x in range]` in input order, computed in chunks of `chunksize` items
    /// (default ceil(n / (4 * size()))); blocks until all are done. If calls throw, it
    /// throws the first exception to arrive, once every chunk finished. An empty range
    /// returns an empty vector at once. `void` results are `std::monostate`.
    /// Throws `corio::error` for a chunksize below 1 and `pool_not_running` after `close()`.
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
    template <class F, std::ranges::input_range Range, class... Extra>
    [[nodiscard]] auto map_async(F&& f, Range&& range, Extra&&... chunksize_then_callbacks) {
        return make_map_<false>(std::forward<F>(f), std::forward<Range>(range),
                                std::forward<Extra>(chunksize_then_callbacks)...);
    }

    /// As `map`, but each element is a tuple (or pair, array) unpacked into the call:
    /// `f(a, b)` for `{a, b}`.
    template <class F, std::ranges::input_range Range, class... Chunksize>
    auto starmap(F&& f, Range&& range, Chunksize... chunksize) {
        static_assert(sizeof...(Chunksize) <= 1 && (detail::integral_chunksize<Chunksize> && ...),
                      "corio: starmap(f, range[, chunksize])");
        return starmap_async(std::forward<F>(f), std::forward<Range>(range), chunksize...).get();
    }

    /// As `map_async`, with each tuple unpacked into the call.
    template <class F, std::ranges::input_range Range, class... Extra>
    [[nodiscard]] auto starmap_async(F&& f, Range&& range, Extra&&... chunksize_then_callbacks) {
        return make_map_<true>(std::forward<F>(f), std::forward<Range>(range),
                               std::forward<Extra>(chunksize_then_callbacks)...);
    }

    /// Submits `f(x)` for every element (in chunks of `chunksize`, default 1) and
    /// returns at once a range yielding the results in input order as they come; an
    /// item whose call threw rethrows when dereferenced. Throws `corio::error` for a
    /// chunksize below 1 and `pool_not_running` after `close()`.
    /// **Thread safety:** any thread; iterate the result from one thread.
    template <class F, std::ranges::input_range Range, detail::integral_chunksize Chunksize = int>
    [[nodiscard]] auto imap(F&& f, Range&& range, Chunksize chunksize = 1) {
        return make_imap_(std::forward<F>(f), std::forward<Range>(range),
                          detail::checked_chunksize(chunksize), true);
    }

    /// As `imap`, but yields results in the order they finish.
    /// **Thread safety:** any thread; iterate the result from one thread.
    template <class F, std::ranges::input_range Range, detail::integral_chunksize Chunksize = int>
    [[nodiscard]] auto imap_unordered(F&& f, Range&& range, Chunksize chunksize = 1) {
        return make_imap_(std::forward<F>(f), std::forward<Range>(range),
                          detail::checked_chunksize(chunksize), false);
    }

    /// Stops accepting work; the workers exit once every submitted call finished.
    /// Idempotent, no-op after `terminate()`.
    void close() noexcept { backend_.close(); }

    /// Stops at once: queued calls are dropped, and every unfinished result (queued,
    /// running or waiting for its callback) never completes — its waiters and awaiters
    /// get `pool_terminated`. Idempotent. How running calls end is the backend's: a
    /// process pool kills its workers and returns once they are gone; a thread cannot
    /// be interrupted, so a running call finishes in the background, its result
    /// discarded, and `join()` waits for it. From a callback it returns without waiting.
    void terminate() noexcept { backend_.terminate(); }

    /// Waits for the workers and the result thread to exit (after `close()`: every
    /// submitted call ran and every callback was called). Throws `invalid_state_error`
    /// (a `corio::error`) if the pool is still running, or if called from one of the
    /// pool's own threads (a callback or a worker: it would wait for itself).
    /// **Thread safety:** any thread but the pool's own; concurrent calls all return
    /// once the pool is joined.
    void join() {
        if (backend_.on_pool_thread()) {
            throw invalid_state_error(
                "corio: join() called from one of the pool's own threads (a callback or a "
                "worker): it would wait for itself");
        }
        backend_.join();
    }

protected:
    /// Extension for a backend built from other arguments than (workers, options), e.g.
    /// redis_pool's (url, options): constructs the backend from `args`.
    template <class... A>
    explicit basic_pool(std::in_place_t, A&&... args) : backend_(std::forward<A>(args)...) {}

    /// Extension for members a pool adds: `apply_async`, and `inspect(job)` called with
    /// the backend's job once it was submitted (e.g. `redis_pool::submit` reads the job's
    /// Redis id there).
    template <class Inspect, class F, class... Args>
    [[nodiscard]] auto apply_async_inspect(Inspect&& inspect, F&& f,
                                           Args&&... args_then_callbacks) {
        using split = detail::split_args<Args...>;
        return split::apply(
            [&](auto&& call_args, auto cb, auto ecb) {
                return make_apply_(inspect, std::forward<F>(f),
                                   std::forward<decltype(call_args)>(call_args), std::move(cb),
                                   std::move(ecb));
            },
            std::forward<Args>(args_then_callbacks)...);
    }

    /// The backend, for members a pool adds (e.g. `process_pool::worker_pids()`).
    Backend& backend() noexcept { return backend_; }
    /// The backend, for members a pool adds.
    const Backend& backend() const noexcept { return backend_; }

private:
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

    // Python's ceil(n / (4 * size())), unless the backend chooses (extension).
    std::size_t default_chunksize_(std::size_t n) const noexcept {
        if constexpr (requires(const Backend& b) { b.default_chunksize(n); }) {
            return backend_.default_chunksize(n);
        } else {
            return detail::default_chunksize(n, size());
        }
    }

    // One reference per chunk passes to the backend; if it refuses the batch, none.
    template <class Job>
    void submit_(Job& job) {
        const std::size_t chunks = job.chunk_count();
        job.retain(chunks);
        try {
            backend_.submit(job.batch());
        } catch (...) {
            for (std::size_t k = 0; k < chunks; ++k) {
                job.release();
            }
            throw;
        }
    }

    template <class Inspect, class F, class Tuple, class CB, class ECB>
    auto make_apply_(Inspect& inspect, F&& f, Tuple&& call_args, CB cb, ECB ecb) {
        return [&]<class... T>(std::tuple<T...>*) {
            using fn_type = std::decay_t<F>;
            Backend::template check_apply<fn_type, T...>();
            using result = typename Backend::template apply_result<fn_type, T...>;
            check_callbacks_<result, CB, ECB>();
            auto job = backend_.template make_apply_job<result, T...>(
                std::forward<F>(f), std::forward<Tuple>(call_args), std::move(cb), std::move(ecb));
            submit_(*job);
            inspect(*job);
            return async_result<result>(
                detail::ref_ptr<detail::result_state<result>>(job.detach()));
        }(static_cast<std::remove_cvref_t<Tuple>*>(nullptr));
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
                Backend::template check_map<fn_type, in_type, Star>();
                using value = detail::map_value_t<
                    typename detail::map_call_result<fn_type, in_type, Star>::type>;
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
                backend_.check_running();
                std::vector<in_type> inputs = detail::collect_inputs(std::forward<Range>(range));
                if (inputs.empty()) {
                    auto state = detail::make_result_state<std::vector<value>>();
                    state->set_value();
                    return async_result<std::vector<value>>(std::move(state));
                }
                const std::size_t cs = chunksize ? *chunksize : default_chunksize_(inputs.size());
                auto job = backend_.template make_map_job<value, Star>(
                    std::forward<F>(f), std::move(inputs), cs, std::move(cb), std::move(ecb));
                submit_(*job);
                return async_result<std::vector<value>>(
                    detail::ref_ptr<detail::result_state<std::vector<value>>>(job.detach()));
            },
            std::forward<Extra>(extra)...);
    }

    template <class F, class Range>
    auto make_imap_(F&& f, Range&& range, std::size_t chunksize, bool ordered) {
        using fn_type = std::decay_t<F>;
        using in_type = std::ranges::range_value_t<Range>;
        Backend::template check_map<fn_type, in_type, false>();
        using value =
            detail::map_value_t<typename detail::map_call_result<fn_type, in_type, false>::type>;
        backend_.check_running();
        std::vector<in_type> inputs = detail::collect_inputs(std::forward<Range>(range));
        if (inputs.empty()) {
            return imap_result<value>(detail::ref_ptr<detail::imap_state<value>>(
                new detail::imap_state<value>(0, chunksize, ordered)));
        }
        auto job = backend_.template make_imap_job<value>(std::forward<F>(f), std::move(inputs),
                                                          chunksize, ordered);
        submit_(*job);
        return imap_result<value>(detail::ref_ptr<detail::imap_state<value>>(job.detach()));
    }

    Backend backend_;
};

} // namespace corio
