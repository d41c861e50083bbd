#pragma once
/// \file queue.hpp
/// asyncio's queues: `queue<T>` (FIFO), `lifo_queue<T>`, `priority_queue<T, Compare>`,
/// with Python 3.13's `shutdown`, and their errors `queue_full`, `queue_empty`,
/// `queue_shut_down`.

#include <corio/detail/queue_store.hpp>
#include <corio/detail/waiter.hpp>
#include <corio/error.hpp>

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

/// Thrown by put_nowait on a full queue (asyncio.QueueFull).
/// **Thread safety:** exception objects are immutable after construction.
class queue_full : public error {
public:
    /// With the message "corio: the queue is full".
    queue_full() : error("corio: the queue is full") {}
    /// With the message `what` (the constructors of corio::error).
    using error::error;
};

/// Thrown by get_nowait on an empty queue (asyncio.QueueEmpty).
/// **Thread safety:** exception objects are immutable after construction.
class queue_empty : public error {
public:
    /// With the message "corio: the queue is empty".
    queue_empty() : error("corio: the queue is empty") {}
    /// With the message `what` (the constructors of corio::error).
    using error::error;
};

/// Thrown by put/get on a queue that was shut down (asyncio.QueueShutDown).
/// **Thread safety:** exception objects are immutable after construction.
class queue_shut_down : public error {
public:
    /// With the message "corio: the queue is shut down".
    queue_shut_down() : error("corio: the queue is shut down") {}
    /// With the message `what` (the constructors of corio::error).
    using error::error;
};

/// What `queue`, `lifo_queue` and `priority_queue` are (asyncio's queues): `put` /
/// `get` and their `_nowait` forms, `task_done` / `join`, `shutdown`, sizes. `Store`
/// is the order of the items (detail/queue_store.hpp).
///
/// Items handed to a waiting getter go straight into its frame (FIFO handoff, no
/// overtaking). size() counts them until that getter resumes, as asyncio's qsize()
/// counts the item a woken getter is about to take, so size() <= maxsize() always;
/// such an item is not available to get_nowait().
/// **Thread safety:** loop thread only.
template <class T, class Store>
class basic_queue {
    static_assert(
        std::is_nothrow_move_constructible_v<T>,
        "corio queues move items in noexcept paths: T must be nothrow-move-constructible");

public:
    using value_type = T;

    /// A queue holding at most `maxsize` items (0: unbounded). Throws corio::error
    /// if `maxsize` is negative (Python treats <= 0 as unbounded).
    explicit basic_queue(std::ptrdiff_t maxsize = 0, Store store = Store())
        : store_(std::move(store)), maxsize_(checked(maxsize)) {}
    basic_queue(const basic_queue&) = delete;
    basic_queue& operator=(const basic_queue&) = delete;
    /// Tasks still waiting are left waiting (until cancelled); destroy a queue only
    /// when no task uses it.
    ~basic_queue() {
        detail::detach_all(getters_);
        detail::detach_all(putters_);
        detail::detach_all(joiners_);
        detail::detach_all(handed_);
    }

    /// Number of items in the queue (including items already handed to woken
    /// getters that have not resumed yet).
    std::size_t size() const noexcept { return store_.size() + handed_count_; }
    /// True if size() is 0.
    bool empty() const noexcept { return size() == 0; }
    /// True if the queue is bounded and holds maxsize() items.
    bool full() const noexcept { return maxsize_ > 0 && size() >= maxsize_; }
    /// The bound given to the constructor (0: unbounded).
    std::size_t maxsize() const noexcept { return maxsize_; }

    /// Adds `value` without waiting. Throws queue_shut_down after shutdown(),
    /// queue_full if the queue is full.
    void put_nowait(T value) {
        if (shutdown_) {
            throw queue_shut_down();
        }
        if (full()) {
            throw queue_full();
        }
        deliver(std::move(value));
        ++unfinished_;
    }

    /// Removes and returns the next item without waiting. Throws queue_empty if no
    /// item is available, queue_shut_down if the queue is shut down and empty.
    T get_nowait() {
        if (store_.size() == 0) {
            if (shutdown_) {
                throw queue_shut_down();
            }
            throw queue_empty();
        }
        return take();
    }

    /// Awaitable returned by put().
    /// **Thread safety:** loop thread only; lives in the awaiting frame until resumed.
    class [[nodiscard]] put_awaiter {
    public:
        put_awaiter(basic_queue& q, T value) noexcept : queue_(&q), value_(std::move(value)) {}
        /// Moves an awaiter not awaited yet (into a combinator).
        put_awaiter(put_awaiter&& other) noexcept
            : queue_(other.queue_), value_(std::move(other.value_)), inserted_(other.inserted_),
              waiter_(std::move(other.waiter_)) {
            waiter_.context = this;
        }
        put_awaiter(const put_awaiter&) = delete;
        put_awaiter& operator=(const put_awaiter&) = delete;
        bool await_ready() const noexcept { return queue_->shutdown_ || !queue_->full(); }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
            return waiter_.suspend(queue_->putters_, h);
        }
        void await_resume() {
            if (waiter_.st == detail::waiter::state::idle) {
                queue_->put_nowait(std::move(value_));
                return;
            }
            waiter_.finish(); // throws if cancelled while waiting: nothing was inserted
            if (!inserted_) {
                throw queue_shut_down();
            }
        }

    private:
        friend class basic_queue;
        basic_queue* queue_;
        T value_;
        bool inserted_ = false;
        // Completion wins for a put: once inserted, it stays (the cancel is reposted).
        detail::waiter waiter_{nullptr, this};
    };

    /// Awaitable returned by get().
    /// **Thread safety:** loop thread only; lives in the awaiting frame until resumed.
    class [[nodiscard]] get_awaiter {
    public:
        explicit get_awaiter(basic_queue& q) noexcept : queue_(&q) {}
        /// Moves an awaiter not awaited yet (into a combinator).
        get_awaiter(get_awaiter&& other) noexcept
            : queue_(other.queue_), waiter_(std::move(other.waiter_)) {
            waiter_.context = this;
        }
        get_awaiter(const get_awaiter&) = delete;
        get_awaiter& operator=(const get_awaiter&) = delete;
        bool await_ready() const noexcept { return queue_->store_.size() > 0 || queue_->shutdown_; }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
            return waiter_.suspend(queue_->getters_, h);
        }
        T await_resume() {
            if (waiter_.st == detail::waiter::state::idle) {
                return queue_->get_nowait();
            }
            waiter_.finish(); // throws if cancelled; a handed item went back first
            if (!item_) {
                throw queue_shut_down();
            }
            queue_->item_taken(waiter_);
            T v(std::move(*item_));
            item_.reset();
            return v;
        }

    private:
        friend class basic_queue;
        // Cancelled (or destroyed) after an item was handed over: the item goes back
        // to the next getter or to the head of the queue.
        static void abandon(detail::waiter& w) noexcept {
            auto& self = *static_cast<get_awaiter*>(w.context);
            if (self.item_) {
                w.hook.unlink();
                --self.queue_->handed_count_;
                T v(std::move(*self.item_));
                self.item_.reset();
                self.queue_->give_back(std::move(v));
            }
        }
        basic_queue* queue_;
        std::optional<T> item_;
        detail::waiter waiter_{&abandon, this};
    };

    /// Awaitable returned by join().
    /// **Thread safety:** loop thread only; lives in the awaiting frame until resumed.
    class [[nodiscard]] join_awaiter {
    public:
        explicit join_awaiter(basic_queue& q) noexcept : queue_(&q) {}
        bool await_ready() const noexcept { return queue_->unfinished_ == 0; }
        template <class Promise>
        bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
            return waiter_.suspend(queue_->joiners_, h);
        }
        void await_resume() { waiter_.finish(); }

    private:
        basic_queue* queue_;
        detail::waiter waiter_{&detail::abandon_nothing, nullptr};
    };

    /// Adds `value`, waiting (FIFO) while the queue is full. Throws queue_shut_down
    /// if the queue is or gets shut down before the item is in; throws
    /// cancelled_error if cancelled while waiting, in which case nothing was
    /// inserted (a cancel arriving after the insertion is delivered at the task's
    /// next suspension instead).
    [[nodiscard]] put_awaiter put(T value) noexcept { return put_awaiter(*this, std::move(value)); }

    /// Removes and returns the next item, waiting (FIFO) while none is available.
    /// Throws queue_shut_down once the queue is shut down and empty (at once for an
    /// immediate shutdown); throws cancelled_error if cancelled, never losing an item:
    /// one already handed to this getter goes to the next getter or back to the head.
    [[nodiscard]] get_awaiter get() noexcept { return get_awaiter(*this); }

    /// Marks one retrieved item as processed (asyncio's task_done). Throws
    /// corio::error if called more times than items were put.
    void task_done() {
        if (unfinished_ == 0) {
            throw error("corio: task_done() called too many times");
        }
        if (--unfinished_ == 0) {
            wake_all(joiners_);
        }
    }

    /// Waits until every item put so far was marked with task_done() (returns at once
    /// if none is unfinished). Throws cancelled_error if cancelled.
    [[nodiscard]] join_awaiter join() noexcept { return join_awaiter(*this); }

    /// Python 3.13's shutdown: later put()s and put_nowait()s throw queue_shut_down;
    /// blocked putters throw it; getters drain what is left, then throw it.
    /// With `immediate`, the queue is emptied at once (each discarded item counts
    /// as task_done, releasing join()), and blocked getters throw at once, including
    /// those already handed an item they had not resumed to take.
    void shutdown(bool immediate = false) noexcept {
        shutdown_ = true;
        if (immediate) {
            std::size_t dropped = store_.size();
            store_.clear();
            while (!handed_.empty()) {
                auto& g = *static_cast<get_awaiter*>(detail::front(handed_).context);
                g.waiter_.hook.unlink();
                g.item_.reset();
                --handed_count_;
                ++dropped;
            }
            unfinished_ -= std::min(unfinished_, dropped);
            if (unfinished_ == 0) {
                wake_all(joiners_);
            }
        }
        wake_all(getters_);
        wake_all(putters_);
    }

    /// True after shutdown().
    bool is_shut_down() const noexcept { return shutdown_; }

private:
    static std::size_t checked(std::ptrdiff_t maxsize) {
        if (maxsize < 0) {
            throw error("corio: a queue's maxsize must be >= 0 (0 means unbounded)");
        }
        return static_cast<std::size_t>(maxsize);
    }
    static void wake_all(detail::list_hook& list) noexcept {
        while (!list.empty()) {
            detail::grant(detail::front(list));
        }
    }

    // A new item: to the first waiting getter, else into the store. The store first
    // makes room for every item the queue holds, handed-over ones included (throws
    // std::bad_alloc with nothing changed): an item a cancelled getter gives back, or
    // a blocked putter admitted later (a putter waits only after the queue was full,
    // so the store has room for maxsize items), then never needs an allocation in the
    // noexcept paths below.
    void deliver(T&& v) {
        store_.reserve(store_.size() + handed_count_ + 1);
        if (!getters_.empty()) {
            hand_to_first_getter(std::move(v));
        } else {
            store_.push(std::move(v));
        }
    }
    // An item returned by a cancelled getter: next getter, else the head of the store.
    void give_back(T&& v) noexcept {
        if (!getters_.empty()) {
            hand_to_first_getter(std::move(v));
        } else {
            store_.put_back(std::move(v)); // room reserved by deliver(): no allocation
        }
    }
    void hand_to_first_getter(T&& v) noexcept {
        detail::waiter& w = detail::front(getters_);
        auto& g = *static_cast<get_awaiter*>(w.context);
        g.item_.emplace(std::move(v));
        detail::grant(w);
        handed_.push_back(w.hook);
        ++handed_count_;
    }
    T take() {
        T v = store_.pop();
        admit_putters();
        return v;
    }
    void item_taken(detail::waiter& w) noexcept {
        w.hook.unlink();
        --handed_count_;
        admit_putters();
    }
    // Room was made: blocked putters (FIFO) insert their items.
    void admit_putters() noexcept {
        while (!putters_.empty() && !full()) {
            detail::waiter& w = detail::front(putters_);
            auto& p = *static_cast<put_awaiter*>(w.context);
            deliver(std::move(p.value_));
            p.inserted_ = true;
            ++unfinished_;
            detail::grant(w);
        }
    }

    Store store_;
    std::size_t maxsize_;
    std::size_t handed_count_ = 0;
    std::size_t unfinished_ = 0;
    detail::list_hook getters_;
    detail::list_hook putters_;
    detail::list_hook joiners_;
    detail::list_hook handed_; // getters granted an item, not resumed yet
    bool shutdown_ = false;
};

/// A FIFO queue for tasks (asyncio.Queue): `co_await q.put(v)`, `co_await q.get()`,
/// their `_nowait` forms, task_done/join and shutdown. FIFO-fair, cancellation-safe,
/// no allocation per item once its ring buffer has grown. Every member is
/// documented on basic_queue.
/// **Thread safety:** loop thread only.
template <class T>
class queue : public basic_queue<T, detail::fifo_store<T>> {
public:
    /// A queue holding at most `maxsize` items (0: unbounded); throws corio::error
    /// if `maxsize` is negative.
    explicit queue(std::ptrdiff_t maxsize = 0) : basic_queue<T, detail::fifo_store<T>>(maxsize) {}
};

/// A LIFO queue (asyncio.LifoQueue): get() returns the most recently put item.
/// **Thread safety:** loop thread only.
template <class T>
class lifo_queue : public basic_queue<T, detail::lifo_store<T>> {
public:
    /// A LIFO queue holding at most `maxsize` items (0: unbounded); throws
    /// corio::error if `maxsize` is negative.
    explicit lifo_queue(std::ptrdiff_t maxsize = 0)
        : basic_queue<T, detail::lifo_store<T>>(maxsize) {}
};

/// A priority queue (asyncio.PriorityQueue): get() returns the smallest item by
/// `Compare` (std::less: smallest first, as asyncio's heapq).
/// **Thread safety:** loop thread only.
template <class T, class Compare = std::less<T>>
class priority_queue : public basic_queue<T, detail::heap_store<T, Compare>> {
public:
    /// A priority queue holding at most `maxsize` items (0: unbounded), ordered by
    /// `compare`; throws corio::error if `maxsize` is negative.
    explicit priority_queue(std::ptrdiff_t maxsize = 0, Compare compare = Compare())
        : basic_queue<T, detail::heap_store<T, Compare>>(
              maxsize, detail::heap_store<T, Compare>{{}, std::move(compare)}) {}
};

} // namespace corio
