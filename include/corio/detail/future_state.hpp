#pragma once
// Shared state of futures and tasks. A future_state is reference-counted (not
// atomically: futures are loop-affine) and registered with its loop so that the
// loop can detach it at teardown. A task_state is a future_state that also owns a
// coroutine and is that coroutine's task_root.

#include <corio/detail/cancel.hpp>
#include <corio/detail/frame_allocator.hpp>
#include <corio/detail/intrusive_list.hpp>
#include <corio/error.hpp>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <corio/source_location.hpp>
#include <string>
#include <vector>

namespace corio {
class event_loop;
}

namespace corio::detail {

class future_state_base;

/// A coroutine waiting for a future; lives in the awaiting frame.
struct future_waiter {
    future_waiter* prev = nullptr;
    future_waiter* next = nullptr;
    std::coroutine_handle<> coroutine;
    task_root* root = nullptr;
    bool linked = false;
};

/// The part of a task that its coroutines see: cancellation, name, origin.
/// Kept small (one is made per task): the name and the cancel message share one
/// block, allocated only when either is given (or the name first asked for); the
/// origin is stored unpacked from corio::source_location; the task's state is found
/// by a 32-bit offset back from this record (it lives inside that state).
class task_record final : public task_root {
public:
    task_record(future_state_base& state, corio::source_location where) noexcept
        : line_(where.line()),
          state_offset_(static_cast<std::uint32_t>(reinterpret_cast<const char*>(this) -
                                                   reinterpret_cast<const char*>(&state))),
          file_(where.file_name()), function_(where.function_name()) {}
    future_state_base& state() const noexcept {
        return *reinterpret_cast<future_state_base*>(
            const_cast<char*>(reinterpret_cast<const char*>(this)) - state_offset_);
    }
    /// The task's name; an unnamed task is "Task-N", formatted on first use only.
    const std::string& name() const noexcept {
        if ((extras_ == nullptr || extras_->name.empty()) && number_ != 0) {
            try {
                extras().name = "Task-" + std::to_string(number_);
            } catch (...) {
                // leave it empty: a name is not worth an exception here
            }
        }
        return extras_ != nullptr ? extras_->name : empty_name();
    }
    void set_name(std::string n) {
        if (!n.empty() || extras_ != nullptr) {
            extras().name = std::move(n);
        }
    }
    void set_number(std::uint64_t n) noexcept { number_ = n; }
    /// The message of the last cancel(message) ("" if none was given).
    const std::string& cancel_message() const noexcept {
        return extras_ != nullptr ? extras_->cancel_message : empty_name();
    }
    void set_cancel_message(std::string m) {
        if (!m.empty()) {
            extras().cancel_message = std::move(m);
        }
    }
    corio::source_location where() const noexcept {
        return corio::source_location::current(file_, function_, line_);
    }

private:
    struct extra_fields {
        std::string name;           // empty: unnamed (or not formatted yet)
        std::string cancel_message; // empty: cancelled without a message
    };
    static const std::string& empty_name() noexcept {
        static const std::string empty;
        return empty;
    }
    extra_fields& extras() const {
        if (extras_ == nullptr) {
            extras_ = std::make_unique<extra_fields>();
        }
        return *extras_;
    }
    std::uint_least32_t line_;
    std::uint32_t state_offset_;

public:
    std::coroutine_handle<> coroutine;

private:
    mutable std::unique_ptr<extra_fields> extras_;
    std::uint64_t number_ = 0;
    const char* file_;
    const char* function_;
};

/// The state of a future or task. It is itself the node of its loop's lists (the
/// list of live states, or while a task is unfinished the list of pending tasks),
/// so that a state costs no separate hook. States are created and destroyed as often
/// as task frames, and come from the same allocator.
class future_state_base : public list_link, public slab_allocated {
public:
    enum class status : std::uint8_t { pending, finished, cancelled };

    explicit future_state_base(event_loop& loop);
    future_state_base(const future_state_base&) = delete;
    future_state_base& operator=(const future_state_base&) = delete;
    virtual ~future_state_base();

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) {
            release_last();
        }
    }

    bool done() const noexcept { return status_ != status::pending; }
    bool is_cancelled() const noexcept { return status_ == status::cancelled; }
    event_loop* loop() const noexcept { return loop_; }
    task_record* as_task() const noexcept { return task_; }

    /// asyncio's Future.cancel(): a plain future becomes cancelled at once; a task
    /// gets cancelled_error thrown at its suspension point. False if already done.
    bool cancel(std::string message = {});
    /// Rethrows the stored exception (cancelled_error if cancelled); marks retrieved.
    void rethrow_if_failed();
    std::exception_ptr exception_for_caller();
    void set_exception(std::exception_ptr e);
    void check_pending() const;

    void add_waiter(future_waiter& w) noexcept;
    void remove_waiter(future_waiter& w) noexcept;
    /// Registers a done callback; returns its id for remove_callback (never 0).
    std::uint64_t add_callback(std::function<void(future_state_base&)> fn);
    /// Removes a callback that has not been scheduled yet; returns 1, or 0 if none.
    std::size_t remove_callback(std::uint64_t id) noexcept;

    /// Marks the state done and wakes waiters (next iteration) and done callbacks
    /// (one later iteration, in registration order).
    void mark_done(status s);

    /// Called by the loop when it is destroyed before this state.
    void detach_from_loop() noexcept;
    void mark_retrieved() noexcept { retrieved_ = true; }

    /// A task's coroutine finished: take its result (task_state overrides this).
    virtual void finish_coroutine() noexcept {}

protected:
    void set_task(task_record* t) noexcept { task_ = t; }
    void release_last() noexcept;
    std::exception_ptr exception_;
    void report_unretrieved() noexcept;

private:
    event_loop* loop_;
    task_record* task_ = nullptr;
    future_waiter* waiters_ = nullptr; // the first; a circular list, in arrival order
    struct callback_entry {
        std::uint64_t id;
        std::function<void(future_state_base&)> fn;
    };
    struct callback_list {
        std::vector<callback_entry> entries;
        std::uint64_t next_id = 1;
    };
    // Done callbacks; allocated by the first add_callback (most futures have none).
    std::unique_ptr<callback_list> callbacks_;
    std::uint32_t refs_ = 1;
    status status_ = status::pending;
    bool retrieved_ = false;
};

template <class T>
class future_state : public future_state_base {
public:
    using future_state_base::future_state_base;
    template <class U>
    void set_value(U&& v) {
        value_.emplace(std::forward<U>(v));
        mark_done(status::finished);
    }
    T& value() {
        rethrow_if_failed();
        return *value_;
    }

private:
    std::optional<T> value_;
};

template <class T>
class future_state<T&> : public future_state_base {
public:
    using future_state_base::future_state_base;
    void set_value(T& v) {
        value_ = std::addressof(v);
        mark_done(status::finished);
    }
    T& value() {
        rethrow_if_failed();
        return *value_;
    }

private:
    T* value_ = nullptr;
};

template <>
class future_state<void> : public future_state_base {
public:
    using future_state_base::future_state_base;
    void set_value() { mark_done(status::finished); }
    void value() { rethrow_if_failed(); }
};

/// Classifies a finished coroutine's exception: cancelled_error cancels the future.
bool is_cancellation(const std::exception_ptr& e) noexcept;

} // namespace corio::detail
