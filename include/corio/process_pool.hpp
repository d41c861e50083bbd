#pragma once
/// \file process_pool.hpp
/// `process_pool`: multiprocessing.Pool for C++ — worker processes forked from the
/// fork server, with the same interface as `thread_pool` (the one pool front-end,
/// `basic_pool`), and workers whose death fails only the call they were running.

#include <corio/basic_pool.hpp>
#include <corio/detail/process_backend.hpp>
#include <corio/init.hpp>
#include <corio/pool.hpp>
#include <corio/process_error.hpp>
#include <corio/serialize.hpp>

#include <cstddef>
#include <sys/types.h>
#include <vector>

namespace corio {

/// A pool of worker processes with multiprocessing.Pool's interface (all documented
/// on `basic_pool`); switching from `thread_pool` is a one-word change for code whose
/// function is a plain function or a capture-less lambda and whose arguments and
/// results are `serializable`.
///
/// Workers are forked from the fork server (started by `corio::init()`, or by the
/// first pool while the program is single-threaded), so creating a pool or replacing
/// a worker is safe whatever threads run. Each worker has one socket to the pool;
/// calls travel as length-prefixed frames, encoded with `corio::serialize` by the
/// submitting thread. Small chunks of one map are pipelined to a worker several at a
/// time (fewer when chunks take long); a call never waits behind an unrelated call
/// while another worker is free. One dispatcher thread per pool, driving an io_uring
/// ring of its own (not an event loop's: the pool works without any loop and serves
/// tasks of several loops), feeds the workers, decodes the answers and is the pool's
/// result thread: it runs callbacks and `on_progress`, one at a time, before the
/// result they belong to becomes ready. A task awaiting an `async_result` never
/// blocks its loop and is resumed on its loop's thread.
///
/// A worker that dies (a signal, `abort()`, `exit()`) fails exactly the call it was
/// running with `broken_worker_error`, naming the signal or exit status; the
/// dispatcher notices through the worker's pidfd even when a process the call forked
/// keeps the worker's socket open. Chunks pipelined behind it go to another worker,
/// the dead one is replaced and the pool keeps serving. An initializer that throws or
/// crashes breaks the pool (`broken_pool_error`) instead of respawning forever.
/// Exceptions thrown by the function come back as the same standard type with the
/// same message, or as `remote_error` (type name and message). `terminate()` kills
/// the workers (SIGKILL) and returns once they are gone.
///
/// `options.initializer` must hold a plain function pointer (`void (*)()`, or a
/// capture-less lambda converted with `+[] { ... }`): it runs in the workers.
/// `options.max_tasks_per_child` counts chunks, as Python does.
///
/// **Thread safety:** every member may be called from any thread, concurrently,
/// except that the destructor must not race with other calls; blocking members not
/// from a callback (callbacks run on the dispatcher thread; `join()` there throws).
///
/// The constructor `process_pool(workers = cpu_count(), options = {})` starts
/// `workers` processes; each runs `options.initializer` first, and the constructor
/// waits until all did. It throws `corio::error` if `workers` is 0 or if the fork
/// server cannot start (threads already run: call `corio::init()`), the initializer's
/// exception if it throws in a worker, `broken_pool_error` if it crashes one,
/// `std::system_error` for OS failures.
class process_pool : public basic_pool<detail::process_backend> {
public:
    using basic_pool::basic_pool;

    /// Process ids of the current workers (they change when workers are replaced).
    [[nodiscard]] std::vector<pid_t> worker_pids() const { return backend().pids(); }
};

} // namespace corio
