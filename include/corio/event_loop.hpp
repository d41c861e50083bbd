#pragma once
/// \file event_loop.hpp
/// `corio::event_loop`: the single-threaded io_uring event loop, its callbacks and
/// timers, `get_running_loop()` and the free function `run()`.

#include <corio/detail/intrusive_list.hpp>
#include <corio/detail/uring_op.hpp>
#include <corio/detail/ready_queue.hpp>
#include <corio/detail/remote.hpp>
#include <corio/detail/running_loop.hpp>
#include <corio/detail/timer_heap.hpp>
#include <corio/error.hpp>
#include <corio/future.hpp>
#include <corio/task.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <corio/source_location.hpp>
#include <string>
#include <thread>
#include <vector>

namespace corio {

class event_loop;
template <class T>
class future;

/// What the loop's exception handler receives (asyncio's context dict).
/// **Thread safety:** a plain value.
struct exception_context {
    std::string message;          ///< what happened, one line
    std::exception_ptr exception; ///< the exception, if any
    std::string task_name;        ///< the task involved, if any
};

/// Options of an event loop, an aggregate: `event_loop loop{{.entries = 512}};`
/// **Thread safety:** a plain value; the loop copies it at construction.
struct loop_options {
    /// Submission queue entries of the io_uring instance.
    unsigned entries = 256;
    /// Ask for IORING_SETUP_SINGLE_ISSUER | DEFER_TASKRUN (probed; falls back if refused).
    bool single_issuer = true;
    /// asyncio's debug mode; also switched on by the environment variable CORIO_DEBUG=1.
    bool debug = false;
    /// In debug mode, steps longer than this are reported as slow.
    std::chrono::nanoseconds slow_callback_duration = std::chrono::milliseconds(100);
};

namespace detail {
class uring;
class signal_registry;
class fd_watch_registry;
class future_state_base;
class task_record;
struct loop_access;
/// create_task's work, shared by the member and the free function (the task handle
/// and the name are passed on, not moved into new parameters at each call level).
template <class T>
future<T> spawn_task(event_loop& loop, task<T>& t, std::string&& name, corio::source_location where,
                     bool eager);

/// A scheduled callback (call_soon / call_later / call_at / call_soon_threadsafe).
struct callback_state : remote_node {
    timer_node timer;
    std::function<void()> fn;
    event_loop* loop = nullptr;
    std::uint32_t refs = 1;
    bool cancelled = false;

    void add_ref() noexcept { ++refs; }
    void release() noexcept {
        if (--refs == 0) {
            delete this;
        }
    }
};
} // namespace detail

/// A handle to a scheduled callback (asyncio.TimerHandle).
/// **Thread safety:** use on the loop's thread only.
class timer_handle {
public:
    /// An empty handle (cancel() does nothing).
    timer_handle() noexcept = default;
    /// Internal: a new reference to the scheduled callback `s` (used by the loop).
    explicit timer_handle(detail::callback_state* s) noexcept : state_(s) {
        if (state_ != nullptr) {
            state_->add_ref();
        }
    }
    timer_handle(const timer_handle& o) noexcept : timer_handle(o.state_) {}
    timer_handle(timer_handle&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
    timer_handle& operator=(timer_handle o) noexcept {
        std::swap(state_, o.state_);
        return *this;
    }
    ~timer_handle() {
        if (state_ != nullptr) {
            state_->release();
        }
    }

    /// Cancels the callback if it has not run yet; no effect otherwise.
    void cancel() noexcept;
    /// True after cancel().
    bool cancelled() const noexcept { return state_ != nullptr && state_->cancelled; }
    /// The scheduled time (call_later / call_at only; the epoch otherwise).
    std::chrono::steady_clock::time_point when() const noexcept {
        return state_ != nullptr ? state_->timer.deadline : std::chrono::steady_clock::time_point{};
    }

private:
    detail::callback_state* state_ = nullptr;
};

/// The event loop: runs tasks and callbacks on one thread, waits on io_uring.
///
/// A FIFO ready queue, a user-space timer heap with one kernel wait armed for the
/// earliest deadline, and an eventfd doorbell for other threads. Ready callbacks
/// and task steps run in FIFO order; work scheduled during a step runs on the next
/// iteration, as in asyncio.
/// **Thread safety:** one loop per thread; every member must be called on the thread
/// that created the loop, except those marked "any thread".
class event_loop {
public:
    /// The loop's clock: timers, call_at and time() use it.
    using clock = std::chrono::steady_clock;
    /// A point in time on the loop's clock.
    using time_point = clock::time_point;
    /// A handler for unretrieved exceptions and callback errors (see
    /// set_exception_handler); it is called on the loop's thread.
    using exception_handler = std::function<void(const exception_context&)>;

    /// Creates the loop and its io_uring instance; throws std::system_error if the
    /// kernel refuses io_uring.
    explicit event_loop(loop_options options = {});
    event_loop(const event_loop&) = delete;
    event_loop& operator=(const event_loop&) = delete;
    /// Closes the loop if it is not closed yet (see close()). Never throws: if close()
    /// fails (another loop runs on this thread, or this is the wrong thread), the
    /// exception handler is told and the pending tasks are leaked, not destroyed.
    ~event_loop();

    /// Runs `t` as a task until it completes; returns its value or rethrows.
    /// Throws corio::error if the loop is closed, already running, another loop runs
    /// on this thread, this is not the thread (or, after fork(), not the process) that
    /// created the loop, or stop() was called before the task finished. A refused call
    /// creates no task: `t` is destroyed unstarted.
    template <class T>
    T run_until_complete(task<T> t);
    /// Runs until the future is done; returns its result or rethrows.
    template <class T>
    T run_until_complete(future<T> f);
    /// Runs until stop() is called. Throws corio::error as run_until_complete does.
    void run_forever();
    /// Makes run_forever / run_until_complete return after the current iteration.
    void stop() noexcept;
    /// True while run_forever / run_until_complete executes.
    bool is_running() const noexcept { return running_; }
    /// True after close().
    bool is_closed() const noexcept { return closed_; }
    /// Cancels every pending task and runs the loop until they have finished their
    /// cleanup; tasks that refuse to finish (no pending task finishes for about a
    /// second, whether they wait on timers, kernel operations or nothing) are
    /// destroyed once every kernel operation
    /// still in flight has been cancelled and reaped (or leaked, and reported, if an
    /// operation will not end). Then runs registered close hooks and releases the
    /// ring. Throws corio::error if the loop is running (or, with tasks to finalize,
    /// if called on a thread other than the loop's). Idempotent.
    void close();
    /// The loop's clock (std::chrono::steady_clock).
    time_point time() const noexcept { return clock::now(); }
    /// True in debug mode (loop_options::debug or CORIO_DEBUG=1).
    bool get_debug() const noexcept { return options_.debug; }
    /// Switches debug mode on or off.
    void set_debug(bool on) noexcept { options_.debug = on; }

    /// Schedules `fn` on the next iteration, after callbacks scheduled before it.
    /// Throws corio::error if the loop is closed or this is not the loop's thread
    /// (checked in every build; use call_soon_threadsafe from other threads).
    timer_handle call_soon(std::function<void()> fn);
    /// Schedules `fn` after `delay` (never earlier).
    template <class Rep, class Period>
    timer_handle call_later(std::chrono::duration<Rep, Period> delay, std::function<void()> fn) {
        return call_at(time() + std::chrono::ceil<clock::duration>(delay), std::move(fn));
    }
    /// Schedules `fn` at `when` (never earlier); equal deadlines run in call order.
    /// Throws corio::error as call_soon does (so does call_later).
    timer_handle call_at(time_point when, std::function<void()> fn);
    /// Any thread: schedules `fn` on the loop and wakes it. Throws corio::error if the
    /// loop is closed.
    void call_soon_threadsafe(std::function<void()> fn);

    /// Any thread: hands an intrusive node to the loop; `node.run(node)` is called on
    /// the loop's thread during a later iteration. Wakes the loop only when its
    /// incoming list was empty. The node must stay alive until it runs.
    void post_remote(detail::remote_node& node) noexcept;
    /// Resumes `h` on the next iteration as a step of the task `root` (may be null).
    void schedule(std::coroutine_handle<> h, detail::task_root* root = nullptr) {
        ready_.push({h, root});
    }

    /// Schedules `t` as a task owned by the loop; the returned future is the task.
    template <class T>
    future<T> create_task(task<T> t, std::string name = {},
                          corio::source_location where = corio::source_location::current());
    /// As create_task, but when called on this loop while it runs, the task's first
    /// step runs at once, inside this call, up to its first suspension (asyncio 3.12's
    /// eager task start). A task that finishes without suspending is done when this
    /// returns and never touches the ready queue. Called while the loop is not
    /// running, it schedules the task as create_task does.
    template <class T>
    future<T> create_eager_task(task<T> t, std::string name = {},
                                corio::source_location where = corio::source_location::current());

    /// Replaces the handler for unretrieved exceptions and callback errors;
    /// an empty function restores the default (one line to stderr through fmt).
    void set_exception_handler(exception_handler handler);
    /// Calls the current exception handler (never throws; a throwing handler falls
    /// back to the default one).
    void call_exception_handler(const exception_context& context) noexcept;

    /// Registers `fn` to run once during close(), after pending tasks finished
    /// (used to finalize async generators still open). Returns an id for removal.
    std::uint64_t add_close_hook(std::function<void()> fn);
    /// Removes a close hook that has not run yet.
    void remove_close_hook(std::uint64_t id) noexcept;

    /// Runs `fn` on the loop whenever signal `sig` arrives (signalfd read through the
    /// ring); replaces a previous handler for `sig`. Throws std::invalid_argument for
    /// an invalid signal number or one that cannot be caught (SIGKILL, SIGSTOP).
    void add_signal_handler(int sig, std::function<void()> fn);
    /// Removes the handler for `sig`; false if there was none.
    bool remove_signal_handler(int sig);

    /// Calls `fn` on the loop whenever `fd` is readable, until remove_reader(fd)
    /// (asyncio's loop.add_reader), for descriptors other libraries own (libcurl,
    /// libpq, hiredis). Level-triggered as asyncio's: while the descriptor stays
    /// readable after a call, `fn` is called again on the next iteration. Replaces a
    /// reader already registered for `fd`. Throws std::invalid_argument for a
    /// negative descriptor or an empty function, corio::error on a closed loop. A
    /// poll the kernel refuses (EBADF) is reported through the exception handler and
    /// ends the watch; remove the watch before closing its descriptor. Kernel: multishot
    /// IORING_OP_POLL_ADD (5.13), else one poll per wake-up. See docs/descriptors.md.
    void add_reader(int fd, std::function<void()> fn);
    /// add_reader() for writability (asyncio's loop.add_writer).
    void add_writer(int fd, std::function<void()> fn);
    /// Stops watching `fd` for reading; a call already queued does not run. False
    /// if no reader was registered.
    bool remove_reader(int fd);
    /// Stops watching `fd` for writing; false if no writer was registered.
    bool remove_writer(int fd);

    /// Runs `f(args...)` on `executor` (a thread_pool or process_pool; nullptr for the
    /// default blocking pool) and returns an awaitable async_result (asyncio's
    /// loop.run_in_executor). Defined in corio/to_thread.hpp.
    template <class Executor, class F, class... Args>
    [[nodiscard]] auto run_in_executor(Executor&& executor, F&& f, Args&&... args);

    /// Number of timers in the timer structure (sleeps and call_later/call_at).
    std::size_t timer_count() const noexcept { return timers_.size(); }

private:
    friend struct detail::loop_access;
    friend class timer_handle;
    friend void detail::submit_op(event_loop&, detail::uring_op&) noexcept;
    friend void detail::cancel_op(event_loop&, detail::uring_op&) noexcept;
    template <class T>
    friend future<T> detail::spawn_task(event_loop&, task<T>&, std::string&&,
                                        corio::source_location, bool);

    void run_once(std::optional<std::chrono::nanoseconds> max_wait = std::nullopt);
    void run_ready(std::size_t count);
    void run_ready_debug(std::size_t count);
    void drain_remote() noexcept;
    void expire_timers();
    void check_can_run() const;
    void enter_running();
    void leave_running() noexcept;
    void check_owner_thread(const char* what) const;
    void run_until(const detail::future_state_base& state);
    void finalize_pending_tasks();
    void destroy_pending_tasks(bool drained) noexcept;
    void release_remaining(bool frames_destroyed) noexcept;
    void run_callback(detail::callback_state* cb) noexcept;
    void report_slow(std::chrono::nanoseconds took, detail::task_root* root);
    detail::future_state_base* spawn_state(detail::future_state_base* state);
    void start_eager(detail::future_state_base* state) noexcept;

    loop_options options_;
    detail::ready_queue ready_;
    detail::timer_heap timers_;
    std::atomic<detail::remote_node*> remote_head_{nullptr};
    // Threads inside post_remote: the destructor waits for them, because a node can
    // be run (and its owner let the loop die) before its poster has rung the doorbell.
    std::atomic<std::uint32_t> posters_{0};
    std::unique_ptr<detail::uring> ring_;
    detail::list_link tasks_;  // the states of pending tasks, in creation order
    detail::list_link states_; // every other live future state (for loop teardown)
    detail::task_root* current_ = nullptr;
    exception_handler handler_;
    std::vector<std::pair<std::uint64_t, std::function<void()>>> close_hooks_;
    std::uint64_t next_hook_id_ = 1;
    std::uint64_t next_task_number_ = 1;
    // Signal handling state, owned by src/signal.cpp (type-erased deleter keeps
    // the definition there).
    std::unique_ptr<detail::signal_registry, void (*)(detail::signal_registry*)> signals_{nullptr,
                                                                                          nullptr};
    // Readers and writers of foreign descriptors, owned by src/loop/fd_watch.cpp.
    std::unique_ptr<detail::fd_watch_registry, void (*)(detail::fd_watch_registry*)> fd_watches_{
        nullptr, nullptr};
    std::thread::id owner_;
    bool running_ = false;
    bool stopping_ = false;
    bool closed_ = false;
    bool closing_ = false;
};

/// asyncio.run: creates a loop, runs `t` to completion, cancels what is left, closes
/// the loop; returns the value or rethrows. Throws corio::error if a loop is already
/// running on this thread. Ctrl+C: on the main thread, when SIGINT has its default
/// action, the first SIGINT cancels the task (it runs its cleanup) and run then throws
/// keyboard_interrupt; from that SIGINT on, a second one ends the process at once.
template <class T>
T run(task<T> t, loop_options options = {});

/// The task currently running on this thread's loop (empty outside a task).
task_handle current_task();
/// Every unfinished task of the running loop, in creation order.
std::vector<task_handle> all_tasks();

// ---- templates that need future<T> ------------------------------------------------

namespace detail {
template <class T>
future<T> spawn_task(event_loop& loop, task<T>& t, std::string&& name, corio::source_location where,
                     bool eager) {
    CORIO_ASSERT(static_cast<bool>(t), "create_task of an empty or moved-from corio::task");
    if (loop.closed_) {
        throw error("corio: create_task on a closed event loop");
    }
    if (std::this_thread::get_id() != loop.owner_) [[unlikely]] {
        throw error("corio: create_task called from a thread other than the loop's");
    }
    auto* state = new task_state<T>(loop, t.release(), std::move(name), where);
    state->add_ref(); // the future's; the loop keeps the initial one until the task ends
    if (eager && loop.running_ && running_loop == &loop) [[unlikely]] {
        loop.start_eager(state);
    } else {
        loop.spawn_state(state);
    }
    return future<T>(static_cast<future_state_base*>(state));
}
} // namespace detail

template <class T>
future<T> event_loop::create_task(task<T> t, std::string name, corio::source_location where) {
    return detail::spawn_task(*this, t, std::move(name), where, false);
}

template <class T>
future<T> event_loop::create_eager_task(task<T> t, std::string name, corio::source_location where) {
    return detail::spawn_task(*this, t, std::move(name), where, true);
}

/// Schedules `t` as a task on the running loop (asyncio.create_task). The returned
/// future IS the task: `cancel()` cancels the coroutine. Dropping the future does
/// not cancel the task; the loop owns it. Throws corio::error if no loop runs.
/// **Thread safety:** call on the loop's thread.
template <class T>
future<T> create_task(task<T> t, std::string name = {},
                      corio::source_location where = corio::source_location::current()) {
    return detail::spawn_task(get_running_loop(), t, std::move(name), where, false);
}

/// Schedules `t` on the running loop and runs its first step at once, inside this
/// call (asyncio's eager task start; see event_loop::create_eager_task): a task that
/// finishes without suspending is done when this returns. Throws corio::error if no
/// loop runs. **Thread safety:** call on the loop's thread.
template <class T>
future<T> create_eager_task(task<T> t, std::string name = {},
                            corio::source_location where = corio::source_location::current()) {
    return detail::spawn_task(get_running_loop(), t, std::move(name), where, true);
}

template <class T>
T event_loop::run_until_complete(future<T> f) {
    run_until(*f.state_);
    if constexpr (std::is_void_v<T>) {
        f.result();
    } else if constexpr (std::is_reference_v<T>) {
        return f.result();
    } else {
        return std::move(f.result());
    }
}

template <class T>
T event_loop::run_until_complete(task<T> t) {
    if (closed_) {
        throw error("corio: run_until_complete on a closed event loop");
    }
    check_can_run(); // before the task exists: a refused call leaves nothing behind
    return run_until_complete(create_task(std::move(t)));
}

namespace detail {
/// corio::run's Ctrl+C handling (src/loop/interrupt.cpp): on the main thread, when
/// SIGINT has its default action, the first SIGINT cancels `main` and restores the
/// default action, so that a second one ends the process at once.
class interrupt_guard {
public:
    interrupt_guard(event_loop& loop, task_handle main);
    interrupt_guard(const interrupt_guard&) = delete;
    interrupt_guard& operator=(const interrupt_guard&) = delete;
    ~interrupt_guard();
    /// True once the first SIGINT was handled on the loop (the main task was cancelled).
    bool interrupted() const noexcept { return interrupted_; }
    /// Gives SIGINT its default action back (before the loop closes). Idempotent.
    void disarm() noexcept;

private:
    static void on_sigint(int) noexcept;
    static void on_node(remote_node&) noexcept;

    task_handle main_;
    bool installed_ = false;
    bool interrupted_ = false;
};
} // namespace detail

template <class T>
T run(task<T> t, loop_options options) {
    if (detail::running_loop != nullptr) {
        throw error("corio::run() cannot be called while an event loop is running on this thread");
    }
    event_loop loop(options);
    future<T> main = loop.create_task(std::move(t));
    detail::interrupt_guard interrupt(loop, main.as_task());
    try {
        if constexpr (std::is_void_v<T>) {
            loop.run_until_complete(main);
            interrupt.disarm();
            loop.close();
        } else {
            T value = loop.run_until_complete(main);
            interrupt.disarm();
            loop.close();
            return value;
        }
    } catch (const cancelled_error&) {
        interrupt.disarm();
        if (!interrupt.interrupted()) {
            throw;
        }
        loop.close();
        throw keyboard_interrupt();
    }
}

} // namespace corio
