#pragma once
/// \file redis_pool.hpp
/// `redis_pool` and `redis_worker`: multiprocessing.Pool's interface over Redis, so that
/// jobs run on worker processes of other machines. The client side is a pool like
/// `thread_pool` and `process_pool` (`apply`, `apply_async`, `map`, `starmap`, `imap`,
/// `imap_unordered`, the `*_async` forms, callbacks, `close` / `terminate` / `join`);
/// the worker side is a program that serves a queue with a `process_pool` of its own.
///
/// ```
/// int square(int x) { return x * x; }
/// CORIO_REMOTE(square);                       // in the client AND the worker program
///
/// corio::redis_pool pool("redis://10.0.0.5:6379", {.queue = "math"});
/// std::vector<int> v = pool.map(square, std::vector<int>{1, 2, 3});
///
/// corio::redis_worker worker("redis://10.0.0.5:6379", {.queues = {"math"}});
/// worker.run();                               // until SIGTERM / SIGINT
/// ```
/// Functions travel by the name they were registered under (workers are other
/// programs on other machines); arguments and results through `corio::serialize`.
/// Every job survives the death of its worker (at-least-once execution, exactly one
/// result per future); see docs/redis_pool.md for the protocol and its guarantees.

#include <corio/async_result.hpp>
#include <corio/detail/pool_jobs.hpp>
#include <corio/imap_result.hpp>
#include <corio/pool.hpp>
#include <corio/process_error.hpp>
#include <corio/redis.hpp>
#include <corio/serialize.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

/// A job whose worker died (or lost its lease) more than `max_retries` times: it is in
/// the dead-letter set and its result fails with this error.
/// **Thread safety:** exception objects are immutable after construction.
class worker_lost_error : public error {
public:
    using error::error;
};

namespace detail {

/// What a remote call's runner records about the first item that threw.
struct remote_failure {
    std::uint32_t failed = 0;
    std::string type_name;
    std::string message;
};

/// Decodes `count` argument tuples from `in`, calls the function on each and writes
/// per item a u8 outcome (0 value, 1 exception) and the value or the exception.
using remote_runner = void (*)(std::uintptr_t fn, std::uint32_t count, byte_reader& in,
                               byte_writer& out, remote_failure& failure);

/// A registered function: its stable name, runner and address.
struct remote_function {
    std::string name;
    remote_runner runner = nullptr;
    std::uintptr_t fn = 0;
};

/// Adds a function to this program's registry; throws `corio::error` if `name` is
/// already taken by another function.
void register_remote(std::string name, remote_runner runner, std::uintptr_t fn);
/// The function registered as `name`, or null.
const remote_function* find_remote(std::string_view name) noexcept;
/// The function registered at address `fn`, or null.
const remote_function* find_remote(std::uintptr_t fn) noexcept;
/// Inside a catch block: writes the current exception and records it in `failure`.
void record_remote_failure(byte_writer& out, remote_failure& failure);
/// Rebuilds an exception written by `record_remote_failure` (see process_pool).
std::exception_ptr read_remote_exception(byte_reader& in);

template <class F>
struct remote_signature {
    static constexpr bool valid = false;
};
template <class R, class... A>
struct remote_signature<R (*)(A...)> {
    static constexpr bool valid = true;
    using result = R;
    using args = std::tuple<std::decay_t<A>...>;
};
template <class R, class... A>
struct remote_signature<R (*)(A...) noexcept> : remote_signature<R (*)(A...)> {};

template <class R, class... A>
void run_remote(std::uintptr_t fn, std::uint32_t count, byte_reader& in, byte_writer& out,
                remote_failure& failure) {
    auto f = reinterpret_cast<R (*)(A...)>(fn);
    for (std::uint32_t i = 0; i < count; ++i) {
        auto args = deserialize<std::tuple<std::decay_t<A>...>>(in); // throws: the job fails
        const std::size_t mark = out.size();
        out.write_raw(std::uint8_t{0});
        try {
            if constexpr (std::is_void_v<R>) {
                std::apply(f, std::move(args));
            } else {
                serialize(out, std::apply(f, std::move(args)));
            }
        } catch (...) {
            out.buffer().resize(mark);
            out.write_raw(std::uint8_t{1});
            record_remote_failure(out, failure);
        }
    }
}

/// The receiving end of one job of a redis_pool call, on the pool's thread: the
/// per-item outcomes, or one exception for every item of the job.
class redis_sink {
public:
    virtual void deliver(std::size_t chunk, std::string_view outcomes,
                         std::exception_ptr whole) noexcept = 0;
    virtual void abandon() noexcept = 0;
    virtual void retain_sink() noexcept = 0;
    virtual void release_sink() noexcept = 0;

protected:
    ~redis_sink() = default;
};

/// Reads one item's outcome: stores the value through `store(value)` or returns the
/// exception.
template <class V, class Store>
std::exception_ptr read_outcome(byte_reader& r, Store&& store) {
    const auto outcome = deserialize<std::uint8_t>(r);
    if (outcome != 0) {
        return read_remote_exception(r);
    }
    if constexpr (std::is_same_v<V, std::monostate>) {
        store(std::monostate{});
    } else {
        store(deserialize<V>(r));
    }
    return nullptr;
}

template <class R, class CB, class ECB>
class redis_apply_job final : public result_state<R>, public redis_sink {
public:
    redis_apply_job(CB cb, ECB ecb) : cb_(std::move(cb)), ecb_(std::move(ecb)) {}
    void retain_sink() noexcept override { this->retain(); }
    void release_sink() noexcept override { this->release(); }
    void abandon() noexcept override { this->set_terminated(); }
    void deliver(std::size_t, std::string_view outcomes,
                 std::exception_ptr whole) noexcept override {
        std::exception_ptr err = std::move(whole);
        if (!err) {
            try {
                byte_reader r(outcomes);
                using V = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
                err = read_outcome<V>(r, [&](V&& v) {
                    if constexpr (!std::is_void_v<R>) {
                        this->slot().emplace(std::move(v));
                    }
                });
            } catch (...) {
                err = std::current_exception();
            }
        }
        if (!err) {
            if constexpr (!is_no_callback<CB>) {
                try {
                    if constexpr (std::is_void_v<R>) {
                        cb_();
                    } else {
                        cb_(*this->slot());
                    }
                } catch (...) {
                    err = std::current_exception();
                }
            }
        }
        if (err) {
            if constexpr (!is_no_callback<ECB>) {
                try {
                    ecb_(err);
                } catch (...) {
                    err = std::current_exception();
                }
            }
            this->set_exception(err);
        } else {
            this->publish();
        }
    }

private:
    [[no_unique_address]] CB cb_;
    [[no_unique_address]] ECB ecb_;
};

template <class V, class CB, class ECB>
class redis_map_job final : public result_state<std::vector<V>>, public redis_sink {
public:
    redis_map_job(std::size_t n, std::size_t chunksize,
                  const std::function<void(std::size_t, std::size_t)>* progress, CB cb, ECB ecb)
        : items_(n), chunksize_(chunksize), chunks_left_((n + chunksize - 1) / chunksize),
          progress_(progress), cb_(std::move(cb)), ecb_(std::move(ecb)) {}
    void retain_sink() noexcept override { this->retain(); }
    void release_sink() noexcept override { this->release(); }
    void abandon() noexcept override { this->set_terminated(); }
    void deliver(std::size_t chunk, std::string_view outcomes,
                 std::exception_ptr whole) noexcept override {
        const std::size_t first = chunk * chunksize_;
        const std::size_t last = std::min(items_.size(), first + chunksize_);
        if (whole) {
            note_error(whole);
        } else {
            try {
                byte_reader r(outcomes);
                for (std::size_t i = first; i < last; ++i) {
                    if (auto e =
                            read_outcome<V>(r, [&](V&& v) { items_[i].emplace(std::move(v)); })) {
                        note_error(e);
                    }
                }
            } catch (...) {
                note_error(std::current_exception());
            }
        }
        done_ += last - first;
        if (progress_ != nullptr && *progress_ && !progress_failed_) {
            try {
                (*progress_)(done_, items_.size());
            } catch (...) {
                progress_failed_ = true;
                note_error(std::current_exception());
            }
        }
        if (--chunks_left_ == 0) {
            finish();
        }
    }

private:
    void note_error(std::exception_ptr e) noexcept {
        if (!error_) {
            error_ = std::move(e);
        }
    }
    void finish() noexcept {
        std::exception_ptr err = error_;
        if (!err) {
            try {
                std::vector<V> out;
                out.reserve(items_.size());
                for (auto& v : items_) {
                    out.push_back(std::move(*v));
                }
                this->slot().emplace(std::move(out));
                if constexpr (!is_no_callback<CB>) {
                    cb_(*this->slot());
                }
            } catch (...) {
                err = std::current_exception();
            }
        }
        if (err) {
            if constexpr (!is_no_callback<ECB>) {
                try {
                    ecb_(err);
                } catch (...) {
                    err = std::current_exception();
                }
            }
            this->set_exception(err);
        } else {
            this->publish();
        }
    }

    std::vector<std::optional<V>> items_;
    std::size_t chunksize_;
    std::size_t chunks_left_;
    std::size_t done_ = 0;
    const std::function<void(std::size_t, std::size_t)>* progress_;
    bool progress_failed_ = false;
    std::exception_ptr error_;
    [[no_unique_address]] CB cb_;
    [[no_unique_address]] ECB ecb_;
};

template <class V>
class redis_imap_job final : public imap_state<V>, public redis_sink {
public:
    using imap_state<V>::imap_state;
    void retain_sink() noexcept override { this->retain(); }
    void release_sink() noexcept override { this->release(); }
    void abandon() noexcept override { this->set_terminated(); }
    void deliver(std::size_t chunk, std::string_view outcomes,
                 std::exception_ptr whole) noexcept override {
        const std::size_t first = chunk * this->chunksize();
        const std::size_t last = std::min(this->size(), first + this->chunksize());
        std::size_t i = first;
        if (!whole) {
            try {
                byte_reader r(outcomes);
                for (; i < last; ++i) {
                    if (auto e =
                            read_outcome<V>(r, [&](V&& v) { this->set_item(i, std::move(v)); })) {
                        this->set_item_error(i, e);
                    }
                }
            } catch (...) {
                whole = std::current_exception();
            }
        }
        for (; i < last; ++i) {
            this->set_item_error(i, whole);
        }
        this->chunk_done(chunk);
    }
};

class redis_pool_core;

} // namespace detail

/// Registers `fn` under `name` in this program's function registry, so that a
/// `redis_pool` can send calls of it and a `redis_worker` can run them. Register every
/// function in the client and in the worker programs under the same name (at static
/// initialization: `CORIO_REMOTE(fn)`). Returns true, so that it can initialize a
/// static. Throws `corio::error` if `name` is taken by another function.
/// **Thread safety:** call before starting pools and workers (static initialization).
template <class R, class... A>
bool register_function(std::string name, R (*fn)(A...)) {
    static_assert((serializable<std::decay_t<A>> && ...),
                  "corio::register_function: every parameter must be serializable");
    static_assert(std::is_void_v<R> || serializable<std::decay_t<R>>,
                  "corio::register_function: the result must be serializable");
    detail::register_remote(std::move(name), &detail::run_remote<R, A...>,
                            reinterpret_cast<std::uintptr_t>(fn));
    return true;
}

#define CORIO_REMOTE_CONCAT2(a, b) a##b
#define CORIO_REMOTE_CONCAT(a, b) CORIO_REMOTE_CONCAT2(a, b)
/// Registers the plain function `fn` under its name as written (`CORIO_REMOTE(ns::f)` is
/// "ns::f"), at static initialization. Use at namespace scope.
#define CORIO_REMOTE(fn)                                                                           \
    [[maybe_unused]] static const bool CORIO_REMOTE_CONCAT(corio_remote_registered_, __LINE__) =   \
        ::corio::register_function(#fn, &fn)

/// Options of a `redis_pool`, an aggregate: `redis_pool_options{.queue = "math"}`.
/// **Thread safety:** a plain value; the pool copies it.
struct redis_pool_options {
    /// The queue the jobs go to (workers serve one or more queues).
    std::string queue = "default";
    /// How long a finished job's record and its result stay in Redis.
    std::chrono::milliseconds result_ttl = std::chrono::hours(1);
    /// How many times a job is run again after its worker died or its lease expired;
    /// past that it is dead-lettered and fails with `worker_lost_error`.
    std::size_t max_retries = 3;
    /// Per-job run time limit (0: none). A job over it is killed (process workers) and
    /// fails with `timeout_error`.
    std::chrono::milliseconds job_timeout{0};
    /// The lease of a running job: its worker renews it while alive; a job whose lease
    /// expired (its worker died or hangs) is requeued within about this long.
    std::chrono::milliseconds lease = std::chrono::seconds(5);
    /// Items per job for `map` / `starmap` (0: ceil(n / 64), at least 1).
    std::size_t chunksize = 0;
    /// Bound on reaching the server at construction and after a lost connection's
    /// retries began (a first call fails with `redis::error` naming the URL after it).
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
    /// Progress of `map` and `starmap`: items done and the total, on the pool's thread.
    std::function<void(std::size_t done, std::size_t total)> on_progress{};
};

/// Counts of a queue's jobs per state (see `redis_pool::counts`).
struct redis_queue_counts {
    std::size_t queued = 0;   ///< Waiting in the queue or for a delayed retry.
    std::size_t started = 0;  ///< Running (a lease is held).
    std::size_t finished = 0; ///< Finished since the queue was created.
    std::size_t failed = 0;   ///< Failed (an exception, a timeout), kept for inspection.
    std::size_t dead = 0;     ///< Dead-lettered: their workers died too often.
};

/// A failed or dead job as `redis_pool::failed_jobs` lists it.
struct redis_failed_job {
    std::string id;            ///< The job id.
    std::string function;      ///< The registered function name.
    std::string state;         ///< "failed" or "dead".
    std::string error_type;    ///< The exception's type name.
    std::string error_message; ///< Its message.
    std::size_t attempts = 0;  ///< How many times it was started.
};

/// A pool whose workers are `redis_worker` processes, on this machine or others,
/// reached through a Redis server: the interface of `thread_pool` and `process_pool`
/// (`pool_like`, except construction, which takes a URL). The function is a plain
/// function registered with `CORIO_REMOTE` / `register_function` in this program and
/// in the workers; arguments are converted to its parameter types and sent with
/// `corio::serialize`.
///
/// One thread per pool runs an event loop with two Redis connections: one sends jobs
/// (many per write) and one receives this client's results from its own stream
/// (`XREAD BLOCK`). That thread is the pool's result thread: callbacks and
/// `on_progress` run there, before the result they belong to becomes ready.
/// If the connection breaks, it reconnects with backoff and sends again every job it
/// still waits for (enqueueing is idempotent by job id), so a Redis restart without
/// persistence costs reruns, never a waiting caller.
///
/// **Thread safety:** every member may be called from any thread, concurrently, except
/// that the destructor must not race with other calls, and that the blocking members
/// (`apply`, `map`, `starmap`, `terminate`, `join`, `cancel`, `counts`, `failed_jobs`,
/// `requeue_failed`) must not be called from the pool's thread (its callbacks).
class redis_pool {
public:
    /// Connects to `url` (`redis://host:port[/db]`, `redis+unix:///path`) and starts
    /// the pool's thread. Throws `redis::error` naming the URL if the server cannot be
    /// reached within `options.connect_timeout`.
    explicit redis_pool(std::string url, redis_pool_options options = {});
    /// Closes the pool (unless terminated) and joins it: every submitted job's result
    /// arrived and its callbacks ran.
    ~redis_pool();
    redis_pool(const redis_pool&) = delete;
    redis_pool& operator=(const redis_pool&) = delete;

    /// Calls `f(args...)` on a worker and blocks until it returns; its result or its
    /// exception. Throws `pool_not_running` after `close()`, `corio::error` if `f` is not
    /// registered.
    template <class F, class... Args>
    auto apply(F&& f, Args&&... args) {
        return apply_async(std::forward<F>(f), std::forward<Args>(args)...).get();
    }

    /// Submits `f(args...)` and returns its `async_result` at once (optional trailing
    /// `callback` / `error_callback`, run on the pool's thread). Throws
    /// `pool_not_running` after `close()`, `corio::error` naming the problem if `f` is
    /// not a registered plain function.
    template <class F, class... Args>
    [[nodiscard]] auto apply_async(F&& f, Args&&... args_then_callbacks) {
        return submit(std::forward<F>(f), std::forward<Args>(args_then_callbacks)...).second;
    }

    /// As `apply_async`, also returning the job's id (for `cancel(id)` and inspection).
    template <class F, class... Args>
    [[nodiscard]] auto submit(F&& f, Args&&... args_then_callbacks) {
        using split = detail::split_args<Args...>;
        return split::apply(
            [&](auto&& call_args, auto cb, auto ecb) {
                return make_apply_(f, call_args, std::move(cb), std::move(ecb));
            },
            std::forward<Args>(args_then_callbacks)...);
    }

    /// `[f(x) for x in range]` in input order, in jobs of `chunksize` items; blocks.
    /// The first exception to arrive is thrown once every job finished.
    template <class F, std::ranges::input_range Range, class... Chunksize>
    auto map(F&& f, Range&& range, Chunksize... chunksize) {
        static_assert(sizeof...(Chunksize) <= 1 && (detail::integral_chunksize<Chunksize> && ...),
                      "corio: map(f, range[, chunksize])");
        return map_async(std::forward<F>(f), std::forward<Range>(range), chunksize...).get();
    }
    /// As `map`, returning an `async_result<std::vector<R>>` at once.
    template <class F, std::ranges::input_range Range, class... Extra>
    [[nodiscard]] auto map_async(F&& f, Range&& range, Extra&&... chunksize_then_callbacks) {
        return make_map_<false>(f, std::forward<Range>(range),
                                std::forward<Extra>(chunksize_then_callbacks)...);
    }
    /// As `map`, each element a tuple unpacked into the call.
    template <class F, std::ranges::input_range Range, class... Chunksize>
    auto starmap(F&& f, Range&& range, Chunksize... chunksize) {
        static_assert(sizeof...(Chunksize) <= 1 && (detail::integral_chunksize<Chunksize> && ...),
                      "corio: starmap(f, range[, chunksize])");
        return starmap_async(std::forward<F>(f), std::forward<Range>(range), chunksize...).get();
    }
    /// As `map_async`, each element a tuple unpacked into the call.
    template <class F, std::ranges::input_range Range, class... Extra>
    [[nodiscard]] auto starmap_async(F&& f, Range&& range, Extra&&... chunksize_then_callbacks) {
        return make_map_<true>(f, std::forward<Range>(range),
                               std::forward<Extra>(chunksize_then_callbacks)...);
    }
    /// Lazy results in input order (jobs of `chunksize` items, default 1).
    /// **Thread safety:** any thread; iterate from one thread.
    template <class F, std::ranges::input_range Range, detail::integral_chunksize Chunksize = int>
    [[nodiscard]] auto imap(F&& f, Range&& range, Chunksize chunksize = 1) {
        return make_imap_(f, std::forward<Range>(range), detail::checked_chunksize(chunksize),
                          true);
    }
    /// Lazy results in the order they finish.
    /// **Thread safety:** any thread; iterate from one thread.
    template <class F, std::ranges::input_range Range, detail::integral_chunksize Chunksize = int>
    [[nodiscard]] auto imap_unordered(F&& f, Range&& range, Chunksize chunksize = 1) {
        return make_imap_(f, std::forward<Range>(range), detail::checked_chunksize(chunksize),
                          false);
    }

    /// Stops accepting work; results still arrive. Idempotent.
    void close() noexcept;
    /// Cancels every job this pool still waits for (queued ones leave the queue,
    /// running ones are killed by their workers) and fails their results with
    /// `pool_terminated`. Idempotent.
    void terminate() noexcept;
    /// Waits until every submitted job's result arrived, then stops the pool's thread.
    /// Throws `invalid_state_error` if the pool is still running (call `close()`).
    void join();

    /// Cancels job `id` (of any client): a queued job leaves the queue, a running job is
    /// killed by its worker; its result fails with `cancelled_error`. Returns false if
    /// the job is unknown or already finished.
    bool cancel(const std::string& id);
    /// Counts of this pool's queue per state.
    redis_queue_counts counts();
    /// The failed and dead jobs of this pool's queue, with their errors.
    std::vector<redis_failed_job> failed_jobs();
    /// Puts every failed and dead job of the queue back into it (attempts reset);
    /// returns how many. Their results go to the clients that still wait for them.
    std::size_t requeue_failed();
    /// The queue's name.
    [[nodiscard]] const std::string& queue() const noexcept;

private:
    std::string submit_(const std::string& fn, std::string payload, detail::redis_sink& sink,
                        std::size_t chunk);
    void check_running_() const;
    const std::function<void(std::size_t, std::size_t)>* progress_() const noexcept;

    template <class Fn>
    static const detail::remote_function& lookup_(Fn fn) {
        static_assert(detail::remote_signature<Fn>::valid,
                      "corio::redis_pool: the function must be a plain function registered with "
                      "CORIO_REMOTE(fn) or corio::register_function(name, fn)");
        if (fn == nullptr) {
            throw error("corio::redis_pool: the function pointer is null");
        }
        const detail::remote_function* rf =
            detail::find_remote(reinterpret_cast<std::uintptr_t>(fn));
        if (rf == nullptr) {
            throw error("corio::redis_pool: this function is not registered: add "
                        "CORIO_REMOTE(fn) in the client and the worker programs");
        }
        return *rf;
    }

    template <class Args, class... T>
    static void encode_one(byte_writer& w, T&&... values) {
        const Args a(std::forward<T>(values)...);
        serialize(w, a);
    }

    static std::string header(std::uint32_t count) {
        byte_writer w;
        w.write_raw(count);
        return w.take();
    }

    template <class F, class Tuple, class CB, class ECB>
    auto make_apply_(F& f, Tuple& call_args, CB cb, ECB ecb) {
        using fn_type = std::decay_t<F>;
        const fn_type fn = f;
        const detail::remote_function& rf = lookup_(fn);
        using sig = detail::remote_signature<fn_type>;
        using R = typename sig::result;
        using args = typename sig::args;
        check_running_();
        byte_writer w(header(1));
        std::apply([&](auto&&... a) { encode_one<args>(w, std::forward<decltype(a)>(a)...); },
                   std::move(call_args));
        using job = detail::redis_apply_job<R, CB, ECB>;
        detail::ref_ptr<job> j(new job(std::move(cb), std::move(ecb)));
        j->retain_sink();
        std::string id;
        try {
            id = submit_(rf.name, w.take(), *j, 0);
        } catch (...) {
            j->release_sink();
            throw;
        }
        return std::pair<std::string, async_result<R>>(
            std::move(id), async_result<R>(detail::ref_ptr<detail::result_state<R>>(j.detach())));
    }

    template <class Args, bool Star, class In>
    static void encode_item(byte_writer& w, In& in) {
        if constexpr (Star) {
            std::apply([&](auto&... a) { encode_one<Args>(w, a...); }, in);
        } else {
            encode_one<Args>(w, in);
        }
    }

    template <class Args, bool Star, class In>
    void submit_chunks_(const std::string& name, std::vector<In>& inputs, std::size_t cs,
                        detail::redis_sink& sink) {
        const std::size_t chunks = (inputs.size() + cs - 1) / cs;
        for (std::size_t k = 0; k < chunks; ++k) {
            const std::size_t first = k * cs;
            const std::size_t last = std::min(inputs.size(), first + cs);
            byte_writer w(header(static_cast<std::uint32_t>(last - first)));
            for (std::size_t i = first; i < last; ++i) {
                encode_item<Args, Star>(w, inputs[i]);
            }
            sink.retain_sink();
            try {
                submit_(name, w.take(), sink, k);
            } catch (...) {
                sink.release_sink();
                // Chunks already sent still deliver; the rest never will.
                sink.abandon();
                throw;
            }
        }
    }

    std::size_t chunksize_for_(std::size_t n) const noexcept;

    template <bool Star, class F, class Range, class... Extra>
    auto make_map_(F& f, Range&& range, Extra&&... extra) {
        using split = detail::split_args<Extra...>;
        static_assert(
            split::leading <= 1,
            "corio: map_async(f, range[, chunksize][, callback(...)][, error_callback(...)])");
        return split::apply(
            [&](auto&& leading, auto cb, auto ecb) {
                using fn_type = std::decay_t<F>;
                const fn_type fn = f;
                const detail::remote_function& rf = lookup_(fn);
                using sig = detail::remote_signature<fn_type>;
                using value = detail::map_value_t<typename sig::result>;
                using in_type = std::ranges::range_value_t<Range>;
                std::optional<std::size_t> chunksize;
                if constexpr (std::tuple_size_v<std::remove_cvref_t<decltype(leading)>> == 1) {
                    chunksize = detail::checked_chunksize(std::get<0>(leading));
                }
                check_running_();
                std::vector<in_type> inputs = detail::collect_inputs(std::forward<Range>(range));
                if (inputs.empty()) {
                    auto state = detail::make_result_state<std::vector<value>>();
                    state->set_value();
                    return async_result<std::vector<value>>(std::move(state));
                }
                const std::size_t cs = chunksize ? *chunksize : chunksize_for_(inputs.size());
                using job = detail::redis_map_job<value, decltype(cb), decltype(ecb)>;
                detail::ref_ptr<job> j(
                    new job(inputs.size(), cs, progress_(), std::move(cb), std::move(ecb)));
                submit_chunks_<typename sig::args, Star>(rf.name, inputs, cs, *j);
                return async_result<std::vector<value>>(
                    detail::ref_ptr<detail::result_state<std::vector<value>>>(j.detach()));
            },
            std::forward<Extra>(extra)...);
    }

    template <class F, class Range>
    auto make_imap_(F& f, Range&& range, std::size_t chunksize, bool ordered) {
        using fn_type = std::decay_t<F>;
        const fn_type fn = f;
        const detail::remote_function& rf = lookup_(fn);
        using sig = detail::remote_signature<fn_type>;
        using value = detail::map_value_t<typename sig::result>;
        using in_type = std::ranges::range_value_t<Range>;
        check_running_();
        std::vector<in_type> inputs = detail::collect_inputs(std::forward<Range>(range));
        using job = detail::redis_imap_job<value>;
        detail::ref_ptr<job> j(new job(inputs.size(), chunksize, ordered));
        if (!inputs.empty()) {
            submit_chunks_<typename sig::args, false>(rf.name, inputs, chunksize, *j);
        }
        return imap_result<value>(detail::ref_ptr<detail::imap_state<value>>(j.detach()));
    }

    std::unique_ptr<detail::redis_pool_core> core_;
};

/// Options of a `redis_worker`, an aggregate.
/// **Thread safety:** a plain value.
struct redis_worker_options {
    /// The queues served, in priority order.
    std::vector<std::string> queues{"default"};
    /// Jobs run at once (0: `cpu_count()`); the worker holds no more jobs than this.
    std::size_t concurrency = 0;
    /// Run jobs in a `process_pool` of the worker's own (crash-proof, killable on
    /// cancel and timeout); false: a `thread_pool`.
    bool use_processes = true;
    /// How often the worker renews its alive key and its jobs' leases, and runs the
    /// reaper; its alive key lives three times this long.
    std::chrono::milliseconds heartbeat{250};
    /// After SIGTERM / SIGINT / `stop()`: how long running jobs may take to finish
    /// before they are killed and handed back to the queue.
    std::chrono::milliseconds grace = std::chrono::seconds(10);
    /// `run()` stops gracefully on SIGTERM and SIGINT. The constructor already holds
    /// them (blocks them on its thread, until the destructor), so a stop signal sent
    /// before `run()` installed its handlers is not lost: `run()` reads it and stops.
    bool handle_signals = true;
};

namespace detail {
class redis_worker_core;
}

/// A worker process's server: takes jobs from the queues, runs them (N at a time) on
/// its own `process_pool` or `thread_pool`, renews their leases, reports results to each
/// job's client, and reaps jobs of dead workers. Start one per machine (or several).
/// **Thread safety:** `stop()` from any thread or a signal handler of the loop, `id()`
/// and `jobs_done()` from any thread; other members from one thread (the destructor
/// not while `run()` runs on another thread).
class redis_worker {
public:
    /// A worker for the server at `url`; connects in `run()` / `serve()`.
    explicit redis_worker(std::string url, redis_worker_options options = {});
    /// Stops (if serving) and releases the worker.
    ~redis_worker();
    redis_worker(const redis_worker&) = delete;
    redis_worker& operator=(const redis_worker&) = delete;

    /// Serves on a loop of its own until `stop()`, SIGTERM or SIGINT (graceful), then
    /// returns. Throws `redis::error` naming the URL if the server cannot be reached at
    /// start.
    void run();
    /// Serves on the running loop until `stop()` (or cancellation); graceful stop.
    /// **Thread safety:** the loop's thread.
    [[nodiscard]] task<> serve();
    /// Stops taking jobs; running ones finish within the grace period, the rest go back
    /// to the queue, then `run()` / `serve()` return. Idempotent.
    void stop() noexcept;
    /// This worker's id in Redis (host:pid:counter).
    [[nodiscard]] const std::string& id() const noexcept;
    /// Jobs this worker completed (any outcome).
    [[nodiscard]] std::size_t jobs_done() const noexcept;

private:
    std::unique_ptr<detail::redis_worker_core> core_;
};

} // namespace corio
