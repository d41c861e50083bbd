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
#include <corio/basic_pool.hpp>
#include <corio/detail/redis_backend.hpp>
#include <corio/detail/redis_remote.hpp>
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
/// (`apply`, `apply_async`, `map`, `map_async`, `starmap`, `starmap_async`, `imap`,
/// `imap_unordered`, callbacks, `close` / `terminate` / `join`, all documented on
/// `basic_pool`, the one pool front-end), except construction, which takes a URL, and
/// `size()`, which it has not (the workers are other programs). The function is a plain
/// function registered with `CORIO_REMOTE` / `register_function` in this program and in
/// the workers (else the call throws `corio::error` saying so); arguments are converted
/// to its parameter types and sent with `corio::serialize`. A map's default chunksize is
/// `options.chunksize`, or ceil(n / 64).
///
/// One thread per pool runs an event loop with two Redis connections: one sends jobs
/// (many per write) and one receives this client's results from its own stream
/// (`XREAD BLOCK`). That thread is the pool's result thread: callbacks and
/// `on_progress` run there, before the result they belong to becomes ready.
/// If the connection breaks, it reconnects with backoff and sends again every job it
/// still waits for (enqueueing is idempotent by job id), so a Redis restart without
/// persistence costs reruns, never a waiting caller.
///
/// Lifecycle, as every pool's: `close()` stops accepting work, the results of what was
/// submitted still arrive; `terminate()` cancels every job the pool still waits for
/// (queued ones leave the queue, running ones are killed by their workers) and fails
/// their results with `pool_terminated`, idempotent, and from a callback it returns
/// without waiting; `join()` waits until every submitted job's result arrived, throws
/// `invalid_state_error` while the pool runs and from a callback; the destructor closes
/// and joins and never throws.
///
/// **Thread safety:** every member may be called from any thread, concurrently, except
/// that the destructor must not race with other calls, and that the blocking members
/// (`apply`, `map`, `starmap`, `join`, `cancel`, `counts`, `failed_jobs`,
/// `requeue_failed`) must not be called from the pool's thread (its callbacks).
class redis_pool : public basic_pool<detail::redis_backend> {
public:
    /// Connects to `url` (`redis://host:port[/db]`, `redis+unix:///path`) and starts
    /// the pool's thread. Throws `redis::error` naming the URL if the server cannot be
    /// reached within `options.connect_timeout`.
    explicit redis_pool(std::string url, redis_pool_options options = {});

    /// As `apply_async`, also returning the job's Redis id (for `cancel(id)` and
    /// inspection): a pair of the id and the `async_result`.
    template <class F, class... Args>
    [[nodiscard]] auto submit(F&& f, Args&&... args_then_callbacks) {
        std::string id;
        auto result =
            apply_async_inspect([&](const detail::redis_job& job) { id = job.id(0); },
                                std::forward<F>(f), std::forward<Args>(args_then_callbacks)...);
        return std::pair<std::string, decltype(result)>(std::move(id), std::move(result));
    }

    /// Cancels job `id` (of any client): a queued job leaves the queue, a running job is
    /// killed by its worker; its result fails with `cancelled_error`. Returns false if
    /// the job is unknown or already finished. Throws `pool_not_running` after the pool
    /// was joined, `redis::error` if the server cannot be reached.
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
    using basic_pool::size; // the workers are other programs: no size
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
