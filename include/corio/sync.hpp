#pragma once
/// \file sync.hpp
/// asyncio's synchronization primitives: `event`, `lock`, `semaphore`,
/// `bounded_semaphore`, `condition` and `barrier`.
///
/// All are FIFO-fair and hand off directly: releasing a lock (or a permit) that a
/// task waits for gives it to the first waiter, so no newcomer can overtake it. All
/// are cancellation-safe: a waiter cancelled while waiting leaves no trace, and one
/// cancelled after it was woken but before it ran hands the wake-up on (the lock or
/// permit to the next waiter, the notification to the next condition waiter).
/// Waiters live in the awaiting frames; no wait allocates, except `condition::wait`
/// and `barrier::wait`, which are `task`s (their frames come from corio's frame
/// allocator, recycled in steady state).
/// **Thread safety:** every primitive belongs to the thread of the loop that uses
/// it; none may be shared between threads.

#include <corio/detail/waiter.hpp>
#include <corio/error.hpp>
#include <corio/task.hpp>

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <limits>
#include <type_traits>
#include <utility>

namespace corio {

/// Thrown by barrier::wait when the barrier is aborted or reset while the task
/// waits, or is already broken (asyncio.BrokenBarrierError).
/// **Thread safety:** exception objects are immutable after construction.
class broken_barrier_error : public error {
public:
    /// With the message "corio: the barrier is broken".
    broken_barrier_error() : error("corio: the barrier is broken") {}
    /// With the message `what` (the constructors of corio::error).
    using error::error;
};

/// An event flag (asyncio.Event): `wait()` suspends until `set()`.
/// **Thread safety:** loop thread only.
class event {
public:
    /// A clear event.
    event() noexcept = default;
    event(const event&) = delete;
    event& operator=(const event&) = delete;
    /// Waiters still suspended are left waiting (until cancelled).
    ~event() { detail::detach_all(waiters_); }

    /// True once set() was called (and not cleared since).
    bool is_set() const noexcept { return set_; }
    /// Sets the flag and wakes every waiter, in FIFO order. No effect if set.
    void set() noexcept {
        if (set_) {
            return;
        }
        set_ = true;
        while (!waiters_.empty()) {
            detail::grant(detail::front(waiters_));
        }
    }
    /// Clears the flag; later wait()s suspend again.
    void clear() noexcept { set_ = false; }

    /// Awaitable returned by wait().
    /// **Thread safety:** loop thread only; lives in the awaiting frame until resumed.
    class [[nodiscard]] wait_awaiter {
    public:
        explicit wait_awaiter(event& e) noexcept : event_(&e) {}
        bool await_ready() const noexcept { return event_->set_; }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
            return waiter_.suspend(event_->waiters_, h);
        }
        void await_resume() { waiter_.finish(); }

    private:
        event* event_;
        detail::waiter waiter_{&detail::abandon_nothing, nullptr};
    };

    /// Suspends until the event is set; returns at once if it is. Throws
    /// cancelled_error if the task is cancelled first (even after set() woke it,
    /// as asyncio does).
    [[nodiscard]] wait_awaiter wait() noexcept { return wait_awaiter(*this); }

private:
    detail::list_hook waiters_;
    bool set_ = false;
};

class lock;

/// Owns an acquired lock and releases it on destruction (from `lock::scoped()`).
/// **Thread safety:** loop thread only.
class [[nodiscard]] lock_guard {
public:
    /// A guard that owns no lock.
    lock_guard() noexcept = default;
    /// Adopts `l`, which the caller has acquired (lock::scoped() does this).
    explicit lock_guard(lock& l) noexcept : lock_(&l) {}
    /// Takes over `o`'s lock; `o` then owns none.
    lock_guard(lock_guard&& o) noexcept : lock_(std::exchange(o.lock_, nullptr)) {}
    /// Releases the lock it owns, then takes over `o`'s.
    lock_guard& operator=(lock_guard&& o) noexcept {
        if (this != &o) {
            reset();
            lock_ = std::exchange(o.lock_, nullptr);
        }
        return *this;
    }
    /// Releases the lock it owns (handing it to the first waiter, if any).
    ~lock_guard() { reset(); }
    /// Releases the lock now (no effect if already released).
    void reset() noexcept;
    /// True while the guard owns the lock.
    explicit operator bool() const noexcept { return lock_ != nullptr; }

private:
    lock* lock_ = nullptr;
};

/// A mutual-exclusion lock for tasks (asyncio.Lock), FIFO-fair with direct handoff.
/// **Thread safety:** loop thread only.
class lock {
public:
    /// An unlocked lock.
    lock() noexcept = default;
    lock(const lock&) = delete;
    lock& operator=(const lock&) = delete;
    /// Waiters still suspended are left waiting (until cancelled).
    ~lock() { detail::detach_all(waiters_); }

    /// True while some task holds the lock.
    bool locked() const noexcept { return locked_; }

    /// Releases the lock; the first waiter (if any) becomes the owner. Throws
    /// corio::error if the lock is not locked. Any task may release it, as in asyncio.
    void release() {
        if (!locked_) {
            throw error("corio: release() of an unlocked lock");
        }
        hand_on();
    }

    /// Awaitable returned by acquire().
    /// **Thread safety:** loop thread only; lives in the awaiting frame until resumed.
    class [[nodiscard]] acquire_awaiter {
    public:
        explicit acquire_awaiter(lock& l) noexcept : lock_(&l) {}
        /// Moves an awaiter not awaited yet (into a combinator).
        acquire_awaiter(acquire_awaiter&&) noexcept = default;
        acquire_awaiter(const acquire_awaiter&) = delete;
        acquire_awaiter& operator=(const acquire_awaiter&) = delete;
        bool await_ready() const noexcept {
            if (!lock_->locked_) { // handoff keeps it locked while anyone waits
                lock_->locked_ = true;
                return true;
            }
            return false;
        }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
            return waiter_.suspend(lock_->waiters_, h);
        }
        void await_resume() { waiter_.finish(); }

    protected:
        lock* lock_;

    private:
        static void abandon(detail::waiter& w) noexcept {
            static_cast<lock*>(w.context)->hand_on();
        }
        detail::waiter waiter_{&abandon, lock_};
    };

    /// Awaitable returned by scoped(): acquires, then yields a lock_guard.
    /// **Thread safety:** loop thread only; lives in the awaiting frame until resumed.
    class [[nodiscard]] scoped_awaiter : public acquire_awaiter {
    public:
        using acquire_awaiter::acquire_awaiter;
        lock_guard await_resume() {
            acquire_awaiter::await_resume();
            return lock_guard(*lock_);
        }
    };

    /// Suspends until the lock is acquired (FIFO). Throws cancelled_error if the
    /// task is cancelled first; a task cancelled after the lock was handed to it
    /// passes the lock on and throws.
    [[nodiscard]] acquire_awaiter acquire() noexcept { return acquire_awaiter(*this); }
    /// Acquires the lock and yields a lock_guard that releases it:
    /// `auto guard = co_await l.scoped();` (asyncio's `async with lock`).
    [[nodiscard]] scoped_awaiter scoped() noexcept { return scoped_awaiter(*this); }

private:
    friend class lock_guard;
    void hand_on() noexcept {
        if (!waiters_.empty()) {
            detail::grant(detail::front(waiters_)); // stays locked: ownership moves
        } else {
            locked_ = false;
        }
    }

    detail::list_hook waiters_;
    bool locked_ = false;
};

inline void lock_guard::reset() noexcept {
    lock* l = std::exchange(lock_, nullptr);
    if (l != nullptr && l->locked()) { // someone may have released it for us (asyncio allows it)
        l->hand_on();
    }
}

class semaphore;

/// Owns one permit of a semaphore and returns it on destruction (from
/// `semaphore::scoped()`, asyncio's `async with semaphore`).
/// **Thread safety:** loop thread only.
class [[nodiscard]] semaphore_guard {
public:
    /// A guard that owns no permit.
    semaphore_guard() noexcept = default;
    /// Adopts a permit of `s` that the caller has acquired (scoped() does this).
    explicit semaphore_guard(semaphore& s) noexcept : sem_(&s) {}
    /// Takes over `o`'s permit; `o` then owns none.
    semaphore_guard(semaphore_guard&& o) noexcept : sem_(std::exchange(o.sem_, nullptr)) {}
    /// Returns the permit it owns, then takes over `o`'s.
    semaphore_guard& operator=(semaphore_guard&& o) noexcept {
        if (this != &o) {
            reset();
            sem_ = std::exchange(o.sem_, nullptr);
        }
        return *this;
    }
    /// Returns the permit it owns (handing it to the first waiter, if any).
    ~semaphore_guard() { reset(); }
    /// Returns the permit now (no effect if already returned).
    void reset() noexcept;
    /// True while the guard owns a permit.
    explicit operator bool() const noexcept { return sem_ != nullptr; }

private:
    semaphore* sem_ = nullptr;
};

/// A counting semaphore (asyncio.Semaphore), FIFO-fair with direct handoff.
/// **Thread safety:** loop thread only.
class semaphore {
public:
    /// A semaphore with `value` permits; throws corio::error if `value` is negative.
    explicit semaphore(std::ptrdiff_t value = 1) : value_(checked(value)) {}
    semaphore(const semaphore&) = delete;
    semaphore& operator=(const semaphore&) = delete;
    /// Waiters still suspended are left waiting (until cancelled).
    ~semaphore() { detail::detach_all(waiters_); }

    /// The number of free permits.
    std::size_t value() const noexcept { return value_; }
    /// True if acquire() would suspend.
    bool locked() const noexcept { return value_ == 0; }

    /// Returns a permit: the first waiter (if any) receives it, otherwise the
    /// value grows. (bounded_semaphore throws corio::error beyond its bound.)
    void release() {
        if (waiters_.empty() && value_ >= bound_) {
            throw error("corio: bounded_semaphore released too many times");
        }
        hand_on();
    }

    /// Awaitable returned by acquire().
    /// **Thread safety:** loop thread only; lives in the awaiting frame until resumed.
    class [[nodiscard]] acquire_awaiter {
    public:
        explicit acquire_awaiter(semaphore& s) noexcept : sem_(&s) {}
        /// Moves an awaiter not awaited yet (into a combinator).
        acquire_awaiter(acquire_awaiter&&) noexcept = default;
        acquire_awaiter(const acquire_awaiter&) = delete;
        acquire_awaiter& operator=(const acquire_awaiter&) = delete;
        bool await_ready() const noexcept {
            if (sem_->value_ > 0) { // handoff keeps it at 0 while anyone waits
                --sem_->value_;
                return true;
            }
            return false;
        }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
            return waiter_.suspend(sem_->waiters_, h);
        }
        void await_resume() { waiter_.finish(); }

    protected:
        semaphore* sem_;

    private:
        static void abandon(detail::waiter& w) noexcept {
            static_cast<semaphore*>(w.context)->hand_on();
        }
        detail::waiter waiter_{&abandon, sem_};
    };

    /// Awaitable returned by scoped(): takes a permit, then yields a semaphore_guard.
    /// **Thread safety:** loop thread only; lives in the awaiting frame until resumed.
    class [[nodiscard]] scoped_awaiter : public acquire_awaiter {
    public:
        using acquire_awaiter::acquire_awaiter;
        semaphore_guard await_resume() {
            acquire_awaiter::await_resume();
            return semaphore_guard(*sem_);
        }
    };

    /// Takes a permit, suspending (FIFO) while none is free. Throws cancelled_error
    /// if the task is cancelled first; a task cancelled after a permit was handed
    /// to it passes the permit on and throws, so no permit is lost.
    [[nodiscard]] acquire_awaiter acquire() noexcept { return acquire_awaiter(*this); }
    /// Takes a permit as acquire() does and yields a semaphore_guard that returns it:
    /// `auto permit = co_await sem.scoped();` (asyncio's `async with sem`). Throws
    /// cancelled_error, holding no permit, if the task is cancelled first.
    [[nodiscard]] scoped_awaiter scoped() noexcept { return scoped_awaiter(*this); }

protected:
    semaphore(std::ptrdiff_t value, std::size_t bound) : value_(checked(value)), bound_(bound) {}

private:
    friend class semaphore_guard;
    static std::size_t checked(std::ptrdiff_t value) {
        if (value < 0) {
            throw error("corio: a semaphore's initial value must be >= 0");
        }
        return static_cast<std::size_t>(value);
    }
    void hand_on() noexcept {
        if (!waiters_.empty()) {
            detail::grant(detail::front(waiters_));
        } else {
            ++value_;
        }
    }

    detail::list_hook waiters_;
    std::size_t value_;
    std::size_t bound_ = std::numeric_limits<std::size_t>::max();
};

inline void semaphore_guard::reset() noexcept {
    semaphore* s = std::exchange(sem_, nullptr);
    if (s != nullptr && (!s->waiters_.empty() || s->value_ < s->bound_)) {
        s->hand_on(); // a bounded semaphore already released by hand is not overfilled
    }
}

/// A semaphore that refuses to grow beyond its initial value
/// (asyncio.BoundedSemaphore): release() throws corio::error when it would.
/// **Thread safety:** loop thread only.
class bounded_semaphore : public semaphore {
public:
    /// A bounded semaphore with `value` permits (also its bound); throws
    /// corio::error if `value` is negative.
    explicit bounded_semaphore(std::ptrdiff_t value = 1)
        : semaphore(value, value < 0 ? 0 : static_cast<std::size_t>(value)) {}
};

/// A condition variable for tasks (asyncio.Condition), tied to a lock (its own, or
/// one passed to the constructor and shared).
/// **Thread safety:** loop thread only.
class condition {
public:
    /// A condition with its own lock.
    condition() noexcept : lock_(&own_) {}
    /// A condition using `l` (which must outlive it).
    explicit condition(lock& l) noexcept : lock_(&l) {}
    condition(const condition&) = delete;
    condition& operator=(const condition&) = delete;
    /// Waiters still suspended are left waiting (until cancelled).
    ~condition() { detail::detach_all(waiters_); }

    /// Acquires the associated lock (see lock::acquire).
    [[nodiscard]] lock::acquire_awaiter acquire() noexcept { return lock_->acquire(); }
    /// Acquires the associated lock and yields a guard (see lock::scoped).
    [[nodiscard]] lock::scoped_awaiter scoped() noexcept { return lock_->scoped(); }
    /// Releases the associated lock; throws corio::error if it is not locked.
    void release() { lock_->release(); }
    /// True while the associated lock is held.
    bool locked() const noexcept { return lock_->locked(); }

    /// Releases the lock, waits for a notify, re-acquires the lock (even when
    /// cancelled, as asyncio does) and returns. Throws corio::error if the lock is
    /// not held; throws cancelled_error (with the lock held again) if cancelled; a
    /// waiter cancelled after it was notified passes the notification on.
    [[nodiscard]] task<> wait() {
        if (!lock_->locked()) {
            throw error("corio: condition::wait() without holding the lock");
        }
        lock_->release();
        std::exception_ptr failure;
        try {
            co_await notified_awaiter(*this);
        } catch (...) {
            failure = std::current_exception();
        }
        for (;;) { // re-acquire even if cancelled
            try {
                co_await lock_->acquire();
                break;
            } catch (const cancelled_error&) {
                if (!failure) {
                    failure = std::current_exception();
                }
            }
        }
        if (failure) {
            std::rethrow_exception(failure);
        }
    }

    /// Waits until `pred()` is true (checked first, then after every wakeup) and
    /// returns its last value. Same requirements and errors as wait().
    template <class Predicate>
    requires std::is_invocable_v<Predicate&>
    [[nodiscard]] task<std::decay_t<std::invoke_result_t<Predicate&>>> wait_for(Predicate pred) {
        auto result = pred();
        while (!result) {
            co_await wait();
            result = pred();
        }
        co_return result;
    }

    /// Wakes up to `n` waiting tasks (FIFO); they resume once they re-acquire the
    /// lock. Throws corio::error if the lock is not held.
    void notify(std::size_t n = 1) {
        if (!lock_->locked()) {
            throw error("corio: condition::notify() without holding the lock");
        }
        wake(n);
    }
    /// Wakes every waiting task. Throws corio::error if the lock is not held.
    void notify_all() { notify(std::numeric_limits<std::size_t>::max()); }

private:
    class notified_awaiter {
    public:
        explicit notified_awaiter(condition& c) noexcept : cond_(&c) {}
        bool await_ready() const noexcept { return false; }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
            return waiter_.suspend(cond_->waiters_, h);
        }
        void await_resume() { waiter_.finish(); }

    private:
        static void abandon(detail::waiter& w) noexcept {
            static_cast<condition*>(w.context)->wake(1);
        }
        condition* cond_;
        detail::waiter waiter_{&abandon, cond_};
    };

    void wake(std::size_t n) noexcept {
        for (; n > 0 && !waiters_.empty(); --n) {
            detail::grant(detail::front(waiters_));
        }
    }

    lock own_;
    lock* lock_;
    detail::list_hook waiters_;
};

/// A barrier for a fixed number of tasks (asyncio.Barrier): each wait() returns when
/// `parties` tasks are waiting, with the caller's arrival index; reusable cycle
/// after cycle.
/// **Thread safety:** loop thread only.
class barrier {
public:
    /// A barrier for `parties` tasks; throws corio::error if `parties` < 1.
    explicit barrier(std::ptrdiff_t parties) : parties_(checked(parties)) {}
    barrier(const barrier&) = delete;
    barrier& operator=(const barrier&) = delete;
    /// Waiters still suspended are left waiting (until cancelled).
    ~barrier() { detail::detach_all(waiters_); }

    /// Waits until `parties()` tasks wait, then returns this task's arrival index
    /// (0 .. parties-1) in the cycle. Tasks arriving while the previous cycle drains
    /// wait for the next one. Throws broken_barrier_error if the barrier is or
    /// becomes broken (abort) or is reset while waiting; throws cancelled_error if
    /// cancelled (the task leaves the count; the barrier is not broken, as asyncio).
    [[nodiscard]] task<std::size_t> wait() {
        while (state_ == phase::draining || state_ == phase::resetting) {
            co_await changed_awaiter(*this);
        }
        if (state_ == phase::broken) {
            throw broken_barrier_error();
        }
        std::size_t index = count_++;
        struct leave {
            barrier* self;
            ~leave() { self->leave_cycle(); }
        } on_exit{this};
        if (index + 1 == parties_) {
            state_ = phase::draining;
            wake_all();
        } else {
            while (state_ == phase::filling) {
                co_await changed_awaiter(*this);
            }
            if (state_ == phase::broken || state_ == phase::resetting) {
                throw broken_barrier_error("corio: the barrier was aborted or reset");
            }
        }
        co_return index;
    }

    /// Puts the barrier in the broken state: current and future wait()s throw
    /// broken_barrier_error until reset(). (Synchronous, unlike asyncio's coroutine.)
    void abort() noexcept {
        state_ = phase::broken;
        wake_all();
    }
    /// Returns the barrier to its empty state; tasks waiting now get
    /// broken_barrier_error. (Synchronous, unlike asyncio's coroutine.)
    void reset() noexcept {
        if (count_ > 0) {
            state_ = phase::resetting;
        } else {
            state_ = phase::filling;
        }
        wake_all();
    }

    /// The number of tasks needed to pass the barrier.
    std::size_t parties() const noexcept { return parties_; }
    /// The number of tasks waiting in the current filling cycle.
    std::size_t n_waiting() const noexcept { return state_ == phase::filling ? count_ : 0; }
    /// True after abort() (until reset()).
    bool broken() const noexcept { return state_ == phase::broken; }

private:
    enum class phase : unsigned char { filling, draining, resetting, broken };

    class changed_awaiter {
    public:
        explicit changed_awaiter(barrier& b) noexcept : barrier_(&b) {}
        bool await_ready() const noexcept { return false; }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
            return waiter_.suspend(barrier_->waiters_, h);
        }
        void await_resume() { waiter_.finish(); }

    private:
        barrier* barrier_;
        detail::waiter waiter_{&detail::abandon_nothing, nullptr};
    };

    static std::size_t checked(std::ptrdiff_t parties) {
        if (parties < 1) {
            throw error("corio: a barrier needs at least one party");
        }
        return static_cast<std::size_t>(parties);
    }
    void wake_all() noexcept {
        while (!waiters_.empty()) {
            detail::grant(detail::front(waiters_));
        }
    }
    void leave_cycle() noexcept {
        if (--count_ == 0) {
            if (state_ == phase::resetting || state_ == phase::draining) {
                state_ = phase::filling;
            }
            wake_all();
        }
    }

    detail::list_hook waiters_;
    std::size_t parties_;
    std::size_t count_ = 0;
    phase state_ = phase::filling;
};

} // namespace corio
