#pragma once
/// \file threadsafe.hpp
/// The loop from other threads: `run_coroutine_threadsafe` (asyncio's) returning a
/// `concurrent_future<T>`, and `threadsafe_queue<T>`, a queue whose one end tasks use
/// with `co_await` and whose other end any thread uses with blocking calls.
///
/// ```
/// corio::event_loop& loop = ...;                       // running on another thread
/// auto f = corio::run_coroutine_threadsafe(fetch(url), loop);
/// std::string page = f.get(5s);                        // timeout_error; keeps running
///
/// corio::threadsafe_queue<job> jobs(100);
/// std::thread producer([&] { jobs.put_blocking(job{...}); });
/// job j = co_await jobs.get();                         // in a task
/// ```

#include <corio/detail/cancel.hpp>
#include <corio/detail/intrusive_list.hpp>
#include <corio/detail/remote.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/queue.hpp>
#include <corio/task.hpp>

#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

namespace corio {

namespace detail {

/// A coroutine of some loop waiting for a cross-thread state; lives in its frame.
/// Linked in the state's list under the state's mutex; resumed by posting `node` to
/// its loop.
struct cross_waiter : remote_node {
    cross_waiter* prev = nullptr;
    cross_waiter* next_waiter = nullptr;
    event_loop* loop = nullptr;
    std::coroutine_handle<> coroutine;
    task_root* root = nullptr;
    bool linked = false;
    bool signalled = false; // posted (or about to be): it will be resumed by the node
};

/// A FIFO list of cross_waiters; every member is called under the owner's mutex.
class cross_waiter_list {
public:
    bool empty() const noexcept { return head_ == nullptr; }
    void push(cross_waiter& w) noexcept {
        w.linked = true;
        w.next_waiter = nullptr;
        w.prev = tail_;
        (tail_ != nullptr ? tail_->next_waiter : head_) = &w;
        tail_ = &w;
    }
    void unlink(cross_waiter& w) noexcept {
        if (!w.linked) {
            return;
        }
        (w.prev != nullptr ? w.prev->next_waiter : head_) = w.next_waiter;
        (w.next_waiter != nullptr ? w.next_waiter->prev : tail_) = w.prev;
        w.prev = w.next_waiter = nullptr;
        w.linked = false;
    }
    /// Unlinks the first waiter and posts it to its loop; false if none.
    bool signal_one() noexcept {
        if (head_ == nullptr) {
            return false;
        }
        cross_waiter& w = *head_;
        unlink(w);
        post(w);
        return true;
    }
    void signal_all() noexcept {
        while (signal_one()) {
        }
    }
    static void post(cross_waiter& w) noexcept {
        w.signalled = true;
        w.run = [](remote_node& n) noexcept {
            auto& self = static_cast<cross_waiter&>(n);
            self.loop->schedule(self.coroutine, self.root);
        };
        w.loop->post_remote(w);
    }

private:
    cross_waiter* head_ = nullptr;
    cross_waiter* tail_ = nullptr;
};

template <class T>
struct concurrent_completer;

/// The shared state of a concurrent_future: completed once by any thread, waited on
/// by threads (condition variable) and by tasks of any loop (cross_waiters).
template <class T>
class concurrent_state {
    static_assert(!std::is_reference_v<T>,
                  "run_coroutine_threadsafe: a task<T&> cannot cross threads");

public:
    using stored = std::conditional_t<std::is_void_v<T>, bool, T>;
    enum class status : unsigned char { pending, finished, cancelled };

    explicit concurrent_state(event_loop& target) noexcept : target_(&target) {}

    template <class... A>
    bool set_value(A&&... a) {
        std::lock_guard guard(mutex_);
        if (status_ != status::pending) {
            return false;
        }
        value_.emplace(std::forward<A>(a)...);
        finish(status::finished);
        return true;
    }
    bool set_exception(std::exception_ptr e) noexcept {
        std::lock_guard guard(mutex_);
        if (status_ != status::pending) {
            return false;
        }
        exception_ = std::move(e);
        finish(is_cancellation(exception_) ? status::cancelled : status::finished);
        return true;
    }
    bool set_cancelled(std::exception_ptr e) noexcept {
        std::lock_guard guard(mutex_);
        if (status_ != status::pending) {
            return false;
        }
        exception_ = std::move(e);
        finish(status::cancelled);
        return true;
    }
    bool done() const noexcept {
        std::lock_guard guard(mutex_);
        return status_ != status::pending;
    }
    bool cancelled() const noexcept {
        std::lock_guard guard(mutex_);
        return status_ == status::cancelled;
    }
    /// Blocks until done or `deadline`; returns done.
    bool wait_until(std::optional<std::chrono::steady_clock::time_point> deadline) const {
        std::unique_lock guard(mutex_);
        auto is_done = [&] { return status_ != status::pending; };
        if (!deadline) {
            done_cv_.wait(guard, is_done);
            return true;
        }
        return done_cv_.wait_until(guard, *deadline, is_done);
    }
    /// The value or the stored exception. Precondition: done.
    std::add_lvalue_reference_t<T> result() {
        std::lock_guard guard(mutex_);
        if (exception_) {
            std::rethrow_exception(exception_);
        }
        if constexpr (!std::is_void_v<T>) {
            return *value_;
        }
    }
    /// Links `w` unless done; false if done (do not suspend).
    bool add_waiter(cross_waiter& w) {
        std::lock_guard guard(mutex_);
        if (status_ != status::pending) {
            return false;
        }
        waiters_.push(w);
        return true;
    }
    /// Unlinks `w` if it was not signalled; true if it was still linked.
    bool remove_waiter(cross_waiter& w) noexcept {
        std::lock_guard guard(mutex_);
        bool was = w.linked;
        waiters_.unlink(w);
        return was;
    }
    event_loop& target() const noexcept { return *target_; }

    /// Set once before the state is shared, then only read: reaches the task on the
    /// target loop (its task_handle is touched on that loop's thread only).
    std::weak_ptr<concurrent_completer<T>> completer;

private:
    void finish(status s) noexcept {
        status_ = s;
        done_cv_.notify_all();
        waiters_.signal_all();
    }

    mutable std::mutex mutex_;
    mutable std::condition_variable done_cv_;
    cross_waiter_list waiters_;
    std::optional<stored> value_;
    std::exception_ptr exception_;
    event_loop* target_;
    status status_ = status::pending;
};

} // namespace detail

/// The thread-safe future returned by run_coroutine_threadsafe (asyncio's
/// concurrent.futures.Future): blocking `get`, `done`, `cancel`, and `co_await` from
/// a task on any loop. Copies share one state.
/// **Thread safety:** every member may be called from any thread, concurrently.
template <class T>
class concurrent_future {
public:
    /// What the coroutine produces.
    using value_type = T;

    /// Internal: a handle on `state` (run_coroutine_threadsafe makes these).
    explicit concurrent_future(std::shared_ptr<detail::concurrent_state<T>> state) noexcept
        : state_(std::move(state)) {}

    /// True once the coroutine finished (value, exception) or was cancelled.
    bool done() const noexcept { return state_->done(); }
    /// True if cancel() took effect or the coroutine ended cancelled.
    bool cancelled() const noexcept { return state_->cancelled(); }

    /// Cancels: this future is cancelled at once (get() then throws cancelled_error),
    /// and the coroutine is cancelled on its loop (it runs its cleanup there). False
    /// if already done.
    bool cancel() { return cancel_state(state_); }

    /// Blocks until done; returns the value (a reference into the shared state) or
    /// rethrows the coroutine's exception; cancelled_error if cancelled. Throws
    /// corio::error when called on the thread of the loop running the coroutine
    /// (it would wait forever).
    std::add_lvalue_reference_t<T> get() {
        check_not_target_loop();
        state_->wait_until(std::nullopt);
        return state_->result();
    }
    /// As get(), but throws timeout_error if not done within `timeout`; the coroutine
    /// is not cancelled and keeps running.
    template <class Rep, class Period>
    std::add_lvalue_reference_t<T> get(std::chrono::duration<Rep, Period> timeout) {
        check_not_target_loop();
        auto deadline = std::chrono::steady_clock::now() +
                        std::chrono::ceil<std::chrono::steady_clock::duration>(timeout);
        if (!state_->wait_until(deadline)) {
            throw timeout_error("corio: concurrent_future::get timed out");
        }
        return state_->result();
    }

    /// What `co_await f` uses from a task on any loop: suspends without blocking that
    /// loop, resumes on it when done. Cancelling the awaiting task cancels the future.
    /// **Thread safety:** the awaiting task's loop thread.
    class awaiter {
    public:
        explicit awaiter(std::shared_ptr<detail::concurrent_state<T>> s) noexcept
            : state_(std::move(s)) {
            slot_.on_cancel = &on_cancel;
            slot_.context = this;
        }
        awaiter(const awaiter&) = delete;
        awaiter& operator=(const awaiter&) = delete;
        ~awaiter() { state_->remove_waiter(waiter_); }
        bool await_ready() const noexcept { return state_->done(); }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) {
            waiter_.root = detail::root_of(h);
            waiter_.coroutine = h;
            waiter_.loop = &get_running_loop();
            if (waiter_.root != nullptr && waiter_.root->take_pending_cancel()) {
                if (!cancel_state()) {
                    waiter_.root->repost_cancel(); // finished just before: cancel later
                }
                return false; // done now: cancelled, or finished just before
            }
            if (!state_->add_waiter(waiter_)) {
                return false;
            }
            if (waiter_.root != nullptr) {
                waiter_.root->arm(slot_);
            }
            return true;
        }
        std::add_lvalue_reference_t<T> await_resume() {
            if (waiter_.root != nullptr) {
                waiter_.root->disarm();
            }
            return state_->result();
        }

    private:
        /// False if the state was done already (nothing was cancelled).
        bool cancel_state() noexcept {
            try {
                return concurrent_future::cancel_state(state_);
            } catch (...) {
                // allocation failure posting the cancel: the state is cancelled anyway
                return true;
            }
        }
        static void on_cancel(detail::cancel_slot& slot) noexcept {
            // The future completes as cancelled, which posts our waiter. If it was
            // done already, the task gets the value and the cancel at its next
            // suspension (never lost).
            auto* self = static_cast<awaiter*>(slot.context);
            if (!self->cancel_state() && self->waiter_.root != nullptr) {
                self->waiter_.root->repost_cancel();
            }
        }
        std::shared_ptr<detail::concurrent_state<T>> state_;
        detail::cross_waiter waiter_;
        detail::cancel_slot slot_;
    };

    /// Waits from a task (see awaiter); yields the value or rethrows.
    [[nodiscard]] awaiter operator co_await() const noexcept { return awaiter(state_); }

private:
    static bool cancel_state(const std::shared_ptr<detail::concurrent_state<T>>& state) {
        if (!state->set_cancelled(
                std::make_exception_ptr(cancelled_error(detail::default_cancel_message)))) {
            return false;
        }
        try {
            state->target().call_soon_threadsafe([c = state->completer] {
                if (auto completer = c.lock(); completer && completer->task) {
                    completer->task.cancel();
                }
            });
        } catch (const error&) {
            // the loop is closed: its tasks are gone already
        }
        return true;
    }
    void check_not_target_loop() const {
        if (detail::running_loop == &state_->target()) {
            throw error("corio: concurrent_future::get on the thread of the loop running the "
                        "coroutine would wait forever (co_await it instead)");
        }
    }
    std::shared_ptr<detail::concurrent_state<T>> state_;
};

namespace detail {

// Completes the concurrent state as cancelled if the loop drops the work unrun (closed
// before the coroutine started, or before its done callback ran).
template <class T>
struct concurrent_completer {
    std::shared_ptr<concurrent_state<T>> state;
    task_handle task; // touched on the target loop's thread only
    ~concurrent_completer() {
        state->set_cancelled(std::make_exception_ptr(
            cancelled_error("corio: the event loop closed before the coroutine finished")));
    }
};

template <class T>
struct concurrent_start {
    std::shared_ptr<concurrent_completer<T>> completer;
    task<T> body;
};

} // namespace detail

/// Submits `t` to `loop` from any thread (asyncio.run_coroutine_threadsafe): it is
/// scheduled as a task there; the returned concurrent_future gets its result. Throws
/// corio::error if the loop is closed. If the loop closes before the task finished,
/// the future ends cancelled. The loop must not be destroyed while the call runs.
/// **Thread safety:** any thread.
template <class T>
[[nodiscard]] concurrent_future<T> run_coroutine_threadsafe(task<T> t, event_loop& loop) {
    if (!t) {
        throw error("corio: run_coroutine_threadsafe of an empty task");
    }
    auto state = std::make_shared<detail::concurrent_state<T>>(loop);
    auto start = std::make_shared<detail::concurrent_start<T>>();
    start->completer = std::make_shared<detail::concurrent_completer<T>>();
    start->completer->state = state;
    state->completer = start->completer;
    start->body = std::move(t);
    loop.call_soon_threadsafe([start]() mutable {
        auto completer = std::move(start->completer);
        detail::concurrent_state<T>& s = *completer->state;
        if (s.done()) {
            return; // cancelled before it started
        }
        future<T> f = get_running_loop().create_task(std::move(start->body));
        completer->task = f.as_task();
        f.add_done_callback([completer](const future<T>& done) {
            detail::concurrent_state<T>& st = *completer->state;
            if (done.cancelled()) {
                try {
                    done.result();
                } catch (...) {
                    st.set_cancelled(std::current_exception());
                }
            } else if (std::exception_ptr e = done.exception()) {
                st.set_exception(e);
            } else if constexpr (std::is_void_v<T>) {
                st.set_value(true);
            } else {
                try {
                    st.set_value(std::move(done.result()));
                } catch (...) {
                    st.set_exception(std::current_exception());
                }
            }
        });
    });
    return concurrent_future<T>(std::move(state));
}

namespace detail {

/// Suspends a task until `ready()` holds (checked under `mutex`) or it is signalled
/// from `list`; a cancelled waiter that was already signalled passes the signal on.
template <class Ready>
class cross_wait {
public:
    cross_wait(std::mutex& mutex, cross_waiter_list& list, Ready ready) noexcept
        : mutex_(&mutex), list_(&list), ready_(std::move(ready)) {
        slot_.on_cancel = &on_cancel;
        slot_.context = this;
    }
    cross_wait(const cross_wait&) = delete;
    cross_wait& operator=(const cross_wait&) = delete;
    ~cross_wait() {
        std::lock_guard guard(*mutex_);
        list_->unlink(waiter_);
    }
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        waiter_.root = root_of(h);
        waiter_.coroutine = h;
        waiter_.loop = &get_running_loop();
        if (waiter_.root != nullptr && waiter_.root->take_pending_cancel()) {
            cancelled_ = true;
            return false;
        }
        std::lock_guard guard(*mutex_);
        if (ready_()) {
            return false;
        }
        list_->push(waiter_);
        if (waiter_.root != nullptr) {
            waiter_.root->arm(slot_);
        }
        return true;
    }
    void await_resume() {
        if (waiter_.root != nullptr) {
            waiter_.root->disarm();
        }
        if (cancelled_ || slot_.requested) {
            std::lock_guard guard(*mutex_);
            if (waiter_.signalled) {
                list_->signal_one(); // the wake-up was meant for somebody: pass it on
            }
            throw cancelled_error();
        }
    }

private:
    static void on_cancel(cancel_slot& slot) noexcept {
        auto& self = *static_cast<cross_wait*>(slot.context);
        std::lock_guard guard(*self.mutex_);
        if (self.waiter_.linked) {
            self.list_->unlink(self.waiter_);
            self.waiter_.loop->schedule(self.waiter_.coroutine, self.waiter_.root);
        }
        // otherwise it was signalled: the posted node resumes it
    }

    std::mutex* mutex_;
    cross_waiter_list* list_;
    Ready ready_;
    cross_waiter waiter_;
    cancel_slot slot_;
    bool cancelled_ = false;
};

} // namespace detail

/// A FIFO queue between tasks and threads (the `janus` pattern): tasks on any loop use
/// `co_await put(v)` / `co_await get()` without blocking their loop; plain threads use
/// `put_blocking` / `get_blocking`, which block the calling thread. `maxsize` 0 means
/// unbounded. `shutdown()` ends it as queue::shutdown does (Python 3.13).
/// Items are never lost: a cancelled `get` leaves the item in the queue.
/// **Thread safety:** every member may be called from any thread; `co_await` ones from
/// a task on a running loop; never call the blocking ones on a loop's thread.
template <class T>
class threadsafe_queue {
public:
    /// A queue holding at most `maxsize` items (0: no limit).
    explicit threadsafe_queue(std::size_t maxsize = 0) : maxsize_(maxsize) {}
    threadsafe_queue(const threadsafe_queue&) = delete;
    threadsafe_queue& operator=(const threadsafe_queue&) = delete;
    /// Waiters must be gone (their tasks finished) before the queue is destroyed.
    ~threadsafe_queue() = default;

    /// The number of items queued.
    std::size_t size() const {
        std::lock_guard guard(mutex_);
        return items_.size();
    }
    /// True if no item is queued.
    bool empty() const { return size() == 0; }
    /// The bound given to the constructor (0: none).
    std::size_t maxsize() const noexcept { return maxsize_; }

    /// Adds `v` if there is room; throws queue_full otherwise, queue_shut_down after
    /// shutdown(). Never blocks.
    void put_nowait(T v) {
        std::lock_guard guard(mutex_);
        if (shut_down_) {
            throw queue_shut_down();
        }
        if (full_locked()) {
            throw queue_full();
        }
        push_locked(std::move(v));
    }
    /// Removes the oldest item; throws queue_empty if there is none, queue_shut_down
    /// if shut down and drained. Never blocks.
    T get_nowait() {
        std::lock_guard guard(mutex_);
        if (items_.empty()) {
            if (shut_down_) {
                throw queue_shut_down();
            }
            throw queue_empty();
        }
        return pop_locked();
    }

    /// Blocks the calling thread until there is room, then adds `v`. Throws
    /// queue_shut_down after shutdown().
    void put_blocking(T v) { put_until(std::move(v), std::nullopt); }
    /// As put_blocking, but throws queue_full if there is no room within `timeout`.
    template <class Rep, class Period>
    void put_blocking(T v, std::chrono::duration<Rep, Period> timeout) {
        put_until(std::move(v), deadline_after(timeout));
    }
    /// Blocks the calling thread until an item is there and returns it. Throws
    /// queue_shut_down once shut down and drained (at once for an immediate shutdown).
    T get_blocking() { return get_until(std::nullopt); }
    /// As get_blocking, but throws queue_empty if no item comes within `timeout`.
    template <class Rep, class Period>
    T get_blocking(std::chrono::duration<Rep, Period> timeout) {
        return get_until(deadline_after(timeout));
    }

    /// From a task: waits (without blocking the loop) until there is room, then adds
    /// `v`. Throws queue_shut_down after shutdown(), cancelled_error if cancelled
    /// while waiting (then `v` was not added).
    [[nodiscard]] task<> put(T v) {
        for (;;) {
            {
                std::lock_guard guard(mutex_);
                if (shut_down_) {
                    throw queue_shut_down();
                }
                if (!full_locked()) {
                    push_locked(std::move(v));
                    co_return;
                }
            }
            co_await detail::cross_wait(mutex_, putters_,
                                        [this] { return shut_down_ || !full_locked(); });
        }
    }
    /// From a task: waits (without blocking the loop) for an item and returns it.
    /// Throws queue_shut_down once shut down and drained, cancelled_error if
    /// cancelled while waiting (no item is taken then).
    [[nodiscard]] task<T> get() {
        for (;;) {
            {
                std::lock_guard guard(mutex_);
                if (!items_.empty()) {
                    co_return pop_locked();
                }
                if (shut_down_) {
                    throw queue_shut_down();
                }
            }
            co_await detail::cross_wait(mutex_, getters_,
                                        [this] { return shut_down_ || !items_.empty(); });
        }
    }

    /// Shuts the queue down: puts throw queue_shut_down from now on; gets return what
    /// is left and then throw it, or, with `immediate`, the items are dropped and every
    /// get throws at once. Every waiter is woken.
    void shutdown(bool immediate = false) {
        std::lock_guard guard(mutex_);
        shut_down_ = true;
        if (immediate) {
            items_.clear();
        }
        not_empty_.notify_all();
        not_full_.notify_all();
        getters_.signal_all();
        putters_.signal_all();
    }

private:
    template <class Rep, class Period>
    static std::chrono::steady_clock::time_point
    deadline_after(std::chrono::duration<Rep, Period> timeout) {
        return std::chrono::steady_clock::now() +
               std::chrono::ceil<std::chrono::steady_clock::duration>(timeout);
    }
    bool full_locked() const noexcept { return maxsize_ != 0 && items_.size() >= maxsize_; }
    void push_locked(T&& v) {
        items_.push_back(std::move(v));
        not_empty_.notify_one();
        getters_.signal_one();
    }
    T pop_locked() {
        T v = std::move(items_.front());
        items_.pop_front();
        not_full_.notify_one();
        putters_.signal_one();
        return v;
    }
    void put_until(T&& v, std::optional<std::chrono::steady_clock::time_point> deadline) {
        std::unique_lock guard(mutex_);
        auto can = [&] { return shut_down_ || !full_locked(); };
        if (!deadline) {
            not_full_.wait(guard, can);
        } else if (!not_full_.wait_until(guard, *deadline, can)) {
            throw queue_full();
        }
        if (shut_down_) {
            throw queue_shut_down();
        }
        push_locked(std::move(v));
    }
    T get_until(std::optional<std::chrono::steady_clock::time_point> deadline) {
        std::unique_lock guard(mutex_);
        auto can = [&] { return shut_down_ || !items_.empty(); };
        if (!deadline) {
            not_empty_.wait(guard, can);
        } else if (!not_empty_.wait_until(guard, *deadline, can)) {
            throw queue_empty();
        }
        if (items_.empty()) {
            throw queue_shut_down();
        }
        return pop_locked();
    }

    mutable std::mutex mutex_;
    std::condition_variable not_empty_;
    std::condition_variable not_full_;
    detail::cross_waiter_list getters_;
    detail::cross_waiter_list putters_;
    std::deque<T> items_;
    std::size_t maxsize_;
    bool shut_down_ = false;
};

} // namespace corio
