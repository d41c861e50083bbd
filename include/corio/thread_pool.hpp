#pragma once
/// \file thread_pool.hpp
/// `thread_pool`: multiprocessing.pool.ThreadPool for C++ — a fixed set of worker
/// threads serving one FIFO queue fed by a lock-free inbox, with Python's Pool interface (the one
/// pool front-end, `basic_pool`, shared with `process_pool`).

#include <corio/basic_pool.hpp>
#include <corio/detail/thread_backend.hpp>
#include <corio/pool.hpp>

#include <cstddef>

namespace corio {

/// A pool of worker threads with multiprocessing.Pool's interface: `apply`,
/// `apply_async`, `map`, `starmap`, `imap`, `imap_unordered`, the `*_async` forms,
/// callbacks, `close` / `terminate` / `join`, all documented on `basic_pool`.
///
/// Submissions go onto a lock-free inbox (one compare-exchange, no lock), which
/// workers drain into one FIFO queue: calls start in submission order. Idle workers
/// sleep on a futex and are woken only when one sleeps, one at a time (a woken worker
/// wakes the next one only if work is left over), so bursts do not stampede. Maps are cut into
/// chunks: a chunk is one queue entry, so per-item cost is just the call and storing its result.
/// Callbacks run on one result thread, started by the first call that has one.
///
/// Function objects and arguments are copied (decayed) into the pool, as
/// `std::thread` does; pass `std::ref` to share. Map functions are called
/// concurrently from several workers. `terminate()` cannot interrupt a running call:
/// it finishes in the background, its result discarded, and `join()` waits for it.
///
/// **Thread safety:** every member may be called from any thread, concurrently,
/// except that the destructor must not race with other calls; blocking members not
/// from the pool's own workers or callbacks (`join()` from there throws).
///
/// The constructor `thread_pool(workers = cpu_count(), options = {})` starts `workers`
/// threads (Python's `processes`); each runs `options.initializer` first. It throws
/// `corio::error` if `workers` is 0, `std::system_error` if a thread cannot start, and
/// the initializer's exception if it throws in any worker (the pool is then stopped
/// and joined).
class thread_pool : public basic_pool<detail::thread_backend> {
public:
    using basic_pool::basic_pool;
};

namespace detail {
/// The pool behind `to_thread` and `run_in_executor(nullptr, ...)`:
/// min(32, cpu_count() + 4) threads, created on first use, closed and joined at exit.
thread_pool& default_blocking_pool();
} // namespace detail

} // namespace corio
