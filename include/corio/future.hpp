#pragma once
/// \file future.hpp
/// `corio::future<T>` (asyncio.Future) and `corio::task_handle`. `create_task` and the
/// loop are in event_loop.hpp, which includes this header.

#include <corio/detail/future_state.hpp>
#include <corio/detail/running_loop.hpp>
#include <corio/error.hpp>
#include <corio/source_location.hpp>
#include <corio/task.hpp>

#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace corio {

/// Identifies a callback registered by `future::add_done_callback`.
/// **Thread safety:** a plain value.
struct done_callback_id {
    std::uint64_t value = 0; ///< 0 for none; ids of one future are distinct
};

namespace detail {

/// A task scheduled on a loop: the future state plus the coroutine it drives.
template <class T>
class task_state final : public future_state<T> {
public:
    task_state(event_loop& loop, typename task<T>::handle_type h, std::string&& name,
               corio::source_location where)
        : future_state<T>(loop), record_(*this, where) {
        this->set_task(&record_);
        record_.coroutine = h;
        h.promise().set_root(&record_);
        if (!name.empty()) {
            try {
                record_.set_name(std::move(name));
            } catch (...) {
                // The state owns the unstarted coroutine, and no destructor of
                // task_state runs for a constructor that throws.
                record_.coroutine = nullptr;
                h.destroy();
                throw;
            }
        }
    }
    ~task_state() override {
        if (record_.coroutine) {
            record_.coroutine.destroy();
        }
    }
    task_record& record() noexcept { return record_; }

    /// The coroutine returned or threw: store its outcome, destroy its frame.
    void finish_coroutine() noexcept override {
        auto h = std::coroutine_handle<task_promise<T>>::from_address(record_.coroutine.address());
        std::exception_ptr e = h.promise().exception();
        if (!e) {
            try {
                // set_value only schedules waiters; nothing resumes before the frame dies.
                if constexpr (std::is_void_v<T>) {
                    this->set_value();
                } else {
                    this->set_value(h.promise().take());
                }
            } catch (...) {
                e = std::current_exception(); // moving the result out threw
            }
        }
        h.destroy();
        record_.coroutine = {};
        if (e) {
            this->set_exception(e);
        }
        this->release(); // the loop's reference
    }

private:
    task_record record_;
};

struct loop_access;

} // namespace detail

/// A handle on a scheduled task, as returned by current_task() and all_tasks().
/// **Thread safety:** use on the loop's thread only.
class task_handle {
public:
    /// An empty handle (false in a boolean context).
    task_handle() noexcept = default;
    /// Internal: a new reference to the task state `s` (used by the loop and future).
    explicit task_handle(detail::future_state_base* s) noexcept;
    task_handle(const task_handle& o) noexcept : task_handle(o.state_) {}
    task_handle& operator=(task_handle o) noexcept {
        std::swap(state_, o.state_);
        return *this;
    }
    ~task_handle();

    /// The name given to create_task (or "Task-N").
    const std::string& name() const noexcept;
    /// True once the task finished (value, exception or cancellation).
    bool done() const noexcept;
    /// Requests cancellation; false if the task is already done.
    bool cancel() noexcept;
    /// Where the task was created (recorded for debug reports).
    corio::source_location created_at() const noexcept;
    /// True unless the handle is empty.
    explicit operator bool() const noexcept { return state_ != nullptr; }
    /// True if both handles refer to the same task (or both are empty).
    friend bool operator==(const task_handle& a, const task_handle& b) noexcept {
        return a.state_ == b.state_;
    }

private:
    detail::future_state_base* state_ = nullptr;
};

/// A loop-affine result slot (asyncio.Future); also the handle of a created task.
///
/// Copies share one state. `co_await f` (lvalue) waits and yields a reference to the
/// value (or rethrows); awaiting a prvalue yields the value moved out. Cancelling the
/// awaiting task cancels the awaited future, as asyncio does.
/// **Thread safety:** use on the loop's thread only; complete from other threads via
/// `call_soon_threadsafe`.
template <class T = void>
class future {
    using state_type = detail::future_state_base;

public:
    /// The type of the result (void for a future without one).
    using value_type = T;

    /// A new pending future bound to the running loop; throws corio::error if none.
    future() : future(get_running_loop()) {}
    /// A new pending future bound to `loop`.
    explicit future(event_loop& loop) : state_(new detail::future_state<T>(loop)) {}
    future(const future& o) noexcept : state_(o.state_) {
        if (state_ != nullptr) {
            state_->add_ref();
        }
    }
    future(future&& o) noexcept : state_(std::exchange(o.state_, nullptr)) {}
    future& operator=(future o) noexcept {
        std::swap(state_, o.state_);
        return *this;
    }
    ~future() {
        if (state_ != nullptr) {
            state_->release();
        }
    }

    /// Sets the result; throws invalid_state_error if the future is already done.
    template <class U = T>
    requires(!std::is_void_v<T> && std::is_convertible_v<U&&, T>) void set_result(U&& value) {
        check_plain();
        state_->check_pending();
        static_cast<detail::future_state<T>*>(state_)->set_value(std::forward<U>(value));
    }
    /// Sets the (void) result; throws invalid_state_error if already done.
    void set_result() requires std::is_void_v<T> {
        check_plain();
        state_->check_pending();
        static_cast<detail::future_state<void>*>(state_)->set_value();
    }
    /// Sets an exception; throws invalid_state_error if done, std::invalid_argument if null.
    void set_exception(std::exception_ptr e) {
        check_plain();
        state_->check_pending();
        state_->set_exception(std::move(e));
    }
    /// Cancels: a future becomes cancelled, a task gets cancelled_error at its
    /// suspension point. False if already done.
    bool cancel() { return state_->cancel(); }
    /// Cancels as cancel() does; the cancelled_error raised (inside the task, and by
    /// result() afterwards) carries `message` as its what(). False if already done.
    bool cancel(std::string message) { return state_->cancel(std::move(message)); }
    /// A task's pending cancel requests: cancel() calls (including a timeout scope's)
    /// not withdrawn by uncancel() (asyncio's Task.cancelling()); 0 for a plain future.
    std::size_t cancelling() const noexcept {
        return state_->as_task() != nullptr ? state_->as_task()->cancelling() : 0;
    }
    /// Withdraws one cancel request of a task and returns how many are left (asyncio's
    /// Task.uncancel()); at zero, a cancel not yet delivered is dropped. 0 for a plain
    /// future.
    std::size_t uncancel() noexcept {
        return state_->as_task() != nullptr ? state_->as_task()->uncancel() : 0;
    }
    /// True once a result, an exception or a cancellation is set.
    bool done() const noexcept { return state_->done(); }
    /// True if the future (or task) ended cancelled.
    bool cancelled() const noexcept { return state_->is_cancelled(); }
    /// The value; rethrows the exception; throws cancelled_error if cancelled and
    /// invalid_state_error if not done.
    decltype(auto) result() const {
        if constexpr (std::is_void_v<T>) {
            value_ref();
        } else {
            return static_cast<std::add_lvalue_reference_t<T>>(value_ref());
        }
    }
    /// The exception (null if the future succeeded); throws cancelled_error if
    /// cancelled and invalid_state_error if not done.
    std::exception_ptr exception() const { return state_->exception_for_caller(); }
    /// Calls `fn(*this)` on a later loop iteration once done, in registration order.
    /// Returns an id for remove_done_callback.
    done_callback_id add_done_callback(std::function<void(const future&)> fn) {
        return done_callback_id{state_->add_callback([fn = std::move(fn)](state_type& s) {
            s.add_ref();
            fn(future(&s));
        })};
    }
    /// Removes a callback added by add_done_callback before the future completed:
    /// returns 1, or 0 if it was already scheduled (the future is done), already
    /// removed, or is not one of this future's.
    std::size_t remove_done_callback(done_callback_id id) noexcept {
        return state_->remove_callback(id.value);
    }
    /// The task's name ("" for a plain future).
    std::string name() const {
        return state_->as_task() ? state_->as_task()->name() : std::string();
    }
    /// Renames the task (asyncio's Task.set_name); an empty name restores "Task-N".
    /// Throws invalid_state_error for a plain future, which has no name.
    void set_name(std::string name) {
        if (state_->as_task() == nullptr) {
            throw invalid_state_error("corio: set_name on a future that is not a task");
        }
        state_->as_task()->set_name(std::move(name));
    }
    /// This future as a task handle (empty handle for a plain future).
    task_handle as_task() const { return state_->as_task() ? task_handle(state_) : task_handle(); }
    /// True if this future is the handle of a created task.
    bool is_task() const noexcept { return state_->as_task() != nullptr; }

    /// The common part of the awaiters below: waits for the future as a waiter of
    /// its state and cancels the future when the awaiting task is cancelled.
    /// **Thread safety:** used by the awaiting coroutine on the loop's thread only.
    class awaiter {
    public:
        explicit awaiter(state_type* s) noexcept : state_(s) {
            slot_.on_cancel = &on_cancel;
            slot_.context = this;
        }
        awaiter(const awaiter&) = delete;
        awaiter& operator=(const awaiter&) = delete;
        ~awaiter() {
            if (waiter_.linked) {
                state_->remove_waiter(waiter_);
            }
        }
        bool await_ready() const noexcept { return state_->done(); }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) {
            waiter_.root = detail::root_of(h);
            waiter_.coroutine = h;
            if (waiter_.root != nullptr && waiter_.root->take_pending_cancel()) {
                state_->cancel();
                if (state_->done()) {
                    return false;
                }
                // A task was asked to cancel: wait for it to finish doing so.
            }
            state_->add_waiter(waiter_);
            if (waiter_.root != nullptr) {
                waiter_.root->arm(slot_);
            }
            return true;
        }

    protected:
        void finish_wait() noexcept {
            if (waiter_.root != nullptr) {
                waiter_.root->disarm();
            }
        }
        state_type* state_;

    private:
        static void on_cancel(detail::cancel_slot& slot) noexcept {
            auto* self = static_cast<awaiter*>(slot.context);
            // asyncio: cancelling a task that awaits a future cancels that future.
            // The waiter is woken by the future's completion. A future already done
            // (its waiter is scheduled but has not run) cannot be cancelled: the task
            // gets the value and the cancel at its next suspension (asyncio's
            // _must_cancel), never lost.
            try {
                if (!self->state_->cancel() && self->waiter_.root != nullptr) {
                    self->waiter_.root->repost_cancel();
                }
            } catch (...) {
                self->state_->loop()->call_exception_handler(
                    {"exception while cancelling an awaited future", std::current_exception(), {}});
            }
        }
        detail::future_waiter waiter_;
        detail::cancel_slot slot_;
    };

    /// What `co_await f` on an lvalue uses: yields a reference to the value (which
    /// stays in the future) or rethrows.
    /// **Thread safety:** as awaiter.
    struct lvalue_awaiter : awaiter {
        using awaiter::awaiter;
        decltype(auto) await_resume() {
            this->finish_wait();
            if constexpr (std::is_void_v<T>) {
                value_of(this->state_);
            } else {
                return static_cast<std::add_lvalue_reference_t<T>>(value_of(this->state_));
            }
        }
    };
    /// What `co_await` on a temporary future uses: keeps the state alive while
    /// waiting and yields the value moved out (or rethrows).
    /// **Thread safety:** as awaiter.
    struct rvalue_awaiter : awaiter {
        explicit rvalue_awaiter(state_type* s) noexcept : awaiter(s) { s->add_ref(); }
        rvalue_awaiter(const rvalue_awaiter&) = delete;
        ~rvalue_awaiter() { this->state_->release(); }
        T await_resume() {
            this->finish_wait();
            if constexpr (std::is_void_v<T>) {
                value_of(this->state_);
            } else if constexpr (std::is_reference_v<T>) {
                return value_of(this->state_);
            } else {
                return std::move(value_of(this->state_));
            }
        }
    };

    /// Waits for the future; yields a reference to its value or rethrows.
    [[nodiscard]] lvalue_awaiter operator co_await() & noexcept { return lvalue_awaiter(state_); }
    /// Waits for a temporary future; yields its value moved out or rethrows.
    [[nodiscard]] rvalue_awaiter operator co_await() && noexcept { return rvalue_awaiter(state_); }

    /// Internal: adopts a state reference (already counted).
    explicit future(state_type* s) noexcept : state_(s) {}

private:
    friend class event_loop;

    static decltype(auto) value_of(state_type* s) {
        return static_cast<detail::future_state<T>*>(s)->value();
    }
    decltype(auto) value_ref() const {
        if (!state_->done()) {
            throw invalid_state_error("corio: result() of a future that is not done");
        }
        return value_of(state_);
    }
    void check_plain() const {
        if (state_->as_task() != nullptr) {
            throw invalid_state_error("corio: set_result/set_exception on a task's future");
        }
    }
    state_type* state_;
};

} // namespace corio
