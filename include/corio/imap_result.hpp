#pragma once
/// \file imap_result.hpp
/// `imap_result<T>`: the lazy, single-pass range returned by `imap` and
/// `imap_unordered` of the pools (multiprocessing's IMapIterator). Threads iterate it
/// (blocking); tasks take it item by item with `co_await res.next()`, which never
/// blocks their loop.
///
/// ```
/// auto squares = pool.imap(square, inputs);
/// while (std::optional<int> v = co_await squares.next()) { // in a task
///     use(*v);
/// }
/// ```

#include <corio/async_result.hpp>
#include <corio/detail/cross_wait.hpp>
#include <corio/error.hpp>
#include <corio/pool.hpp>
#include <corio/task.hpp>

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace corio {

namespace detail {

/// Per-item outcomes of an imap plus the order in which chunks finished. Producers
/// fill the items of a chunk, then call `chunk_done`; the one consumer walks the
/// items in input order or in completion order, either with `next_slot` (blocking a
/// thread) or with `try_take_slot` and `wait_async` (a task; woken through
/// `awaiters_`, which producers signal under the mutex).
template <class T>
class imap_state : public ref_counted {
public:
    imap_state(std::size_t n, std::size_t chunksize, bool ordered)
        : n_(n), chunksize_(chunksize), chunks_((n + chunksize - 1) / chunksize), ordered_(ordered),
          slots_(std::make_unique<slot[]>(n)) {
        if (ordered_) {
            done_ = std::make_unique<bool[]>(chunks_);
        } else {
            order_.reserve(chunks_);
        }
    }

    std::size_t size() const noexcept { return n_; }
    std::size_t chunksize() const noexcept { return chunksize_; }
    std::size_t chunk_count() const noexcept { return chunks_; }

    /// Producer: item `i` of a running chunk.
    template <class... A>
    void set_item(std::size_t i, A&&... a) {
        slots_[i].value.emplace(std::forward<A>(a)...);
    }
    void set_item_error(std::size_t i, std::exception_ptr e) noexcept {
        slots_[i].error = std::move(e);
    }

    /// Producer: every item of chunk `k` is set. Any thread.
    void chunk_done(std::size_t k) noexcept {
        bool wake = false;
        {
            std::lock_guard lock(mutex_);
            if (ordered_) {
                done_[k] = true;
            } else {
                order_.push_back(k); // capacity reserved: no allocation
            }
            wake = waiting_;
            if (!awaiters_.empty() && async_ready_locked()) {
                awaiters_.signal_all(); // a task in next() can take its item now
            }
        }
        if (wake) {
            cv_.notify_one();
        }
    }

    /// The pool was terminated: a consumer waiting for a missing item gets
    /// `pool_terminated`. Any thread.
    void set_terminated() noexcept {
        {
            std::lock_guard lock(mutex_);
            terminated_ = true;
            awaiters_.signal_all();
        }
        cv_.notify_all();
    }

    /// Consumer: the slot of the next item to yield, waiting until its chunk is done.
    /// Precondition: fewer than size() items were taken.
    std::size_t next_slot() {
        if (ordered_) {
            const std::size_t k = cursor_ / chunksize_;
            wait_for([&] { return done_[k]; });
            return cursor_++;
        }
        if (chunk_ == no_chunk || offset_ == chunk_length(chunk_)) {
            wait_for([&] { return order_.size() > taken_; });
            {
                std::lock_guard lock(mutex_);
                chunk_ = order_[taken_];
            }
            ++taken_;
            offset_ = 0;
        }
        return chunk_ * chunksize_ + offset_++;
    }

    /// What `try_take_slot` found.
    enum class take : unsigned char { item, wait, end };

    /// Task consumer: `item` and its slot in `slot` if the next item is there; `wait`
    /// if it must wait (`wait_async`); `end` once every item was taken. Throws
    /// `pool_terminated` if the next item will never come.
    take try_take_slot(std::size_t& slot) {
        std::lock_guard lock(mutex_);
        if (async_taken_ >= n_) {
            return take::end;
        }
        if (!available_locked()) {
            if (terminated_) {
                throw pool_terminated();
            }
            return take::wait;
        }
        if (++async_taken_ == n_) {
            awaiters_.signal_all(); // other tasks in next() end now
        }
        if (ordered_) {
            slot = cursor_++;
            return take::item;
        }
        if (chunk_ == no_chunk || offset_ == chunk_length(chunk_)) {
            chunk_ = order_[taken_++];
            offset_ = 0;
        }
        slot = chunk_ * chunksize_ + offset_++;
        return take::item;
    }

    /// Task consumer: suspends until `try_take_slot` has an answer other than `wait`;
    /// throws `cancelled_error` if the task is cancelled meanwhile (nothing is taken).
    /// The caller holds a reference to the state.
    auto wait_async() noexcept {
        return cross_wait(mutex_, awaiters_, [this] { return async_ready_locked(); });
    }

    /// Which consumer the imap has: the blocking iterator or `next()`. Mixing them
    /// throws `invalid_state_error`.
    enum class consumer : unsigned char { none, blocking, async };
    void use(consumer c) {
        if (consumer_ == consumer::none) {
            consumer_ = c;
        } else if (consumer_ != c) {
            throw invalid_state_error(
                c == consumer::async
                    ? "corio: imap_result::next() after iterating the result (use one or the other)"
                    : "corio: iterating an imap_result after next() (use one or the other)");
        }
    }

    /// Consumer: the item in `slot`, or its exception rethrown.
    T& item(std::size_t slot) {
        auto& s = slots_[slot];
        if (s.error) {
            std::rethrow_exception(s.error);
        }
        return *s.value;
    }

private:
    struct slot {
        std::optional<T> value;
        std::exception_ptr error;
    };
    static constexpr std::size_t no_chunk = static_cast<std::size_t>(-1);

    std::size_t chunk_length(std::size_t k) const noexcept {
        return std::min(chunksize_, n_ - k * chunksize_);
    }

    /// A task consumer has an answer (mutex held): the end, the next item, or
    /// `pool_terminated`. (Only tasks wait in `awaiters_`, and they move the cursor
    /// under the mutex, so a producer may read it here.)
    bool async_ready_locked() const noexcept {
        return async_taken_ >= n_ || available_locked() || terminated_;
    }

    /// The next item's chunk is done (mutex held). Precondition: items are left.
    bool available_locked() const noexcept {
        if (ordered_) {
            return done_[cursor_ / chunksize_];
        }
        return (chunk_ != no_chunk && offset_ < chunk_length(chunk_)) || order_.size() > taken_;
    }

    template <class Pred>
    void wait_for(Pred pred) {
        std::unique_lock lock(mutex_);
        if (pred()) {
            return;
        }
        waiting_ = true;
        cv_.wait(lock, [&] { return pred() || terminated_; });
        waiting_ = false;
        if (!pred()) {
            throw pool_terminated();
        }
    }

    const std::size_t n_;
    const std::size_t chunksize_;
    const std::size_t chunks_;
    const bool ordered_;
    std::unique_ptr<slot[]> slots_;

    std::mutex mutex_;
    std::condition_variable cv_;
    std::unique_ptr<bool[]> done_;   // ordered: chunk k finished (guarded)
    std::vector<std::size_t> order_; // unordered: finished chunks in order (guarded)
    bool waiting_ = false;           // guarded
    bool terminated_ = false;        // guarded
    cross_waiter_list awaiters_;     // tasks in wait_async (guarded)

    // Consumer-only cursor.
    std::size_t cursor_ = 0;       // ordered: next item
    std::size_t taken_ = 0;        // unordered: chunks of order_ consumed
    std::size_t chunk_ = no_chunk; // unordered: chunk being yielded
    std::size_t offset_ = 0;       // unordered: next item in it
    std::size_t async_taken_ = 0;  // items taken by next() (guarded)
    consumer consumer_ = consumer::none;
};

} // namespace detail

/// The results of `imap` (input order) or `imap_unordered` (completion order): a
/// single-pass input range; iterating blocks until the next result is there.
/// Dereferencing an item whose call threw rethrows that exception (the iteration may
/// go on past it); advancing to an item that will never come because the pool was
/// terminated throws `pool_terminated`. Every item was submitted at creation; the
/// range can be dropped at any time.
///
/// A task takes the items one by one with `co_await res.next()` instead, without
/// blocking its loop: the task is resumed on its loop's thread when the next item is
/// there (a result thread of the pool wakes it). Use either the iterator or `next()`
/// for one result, not both: mixing them throws `invalid_state_error`.
/// **Thread safety:** iterate from one thread at a time; `next()` from tasks of one
/// loop (one awaiting at a time is the usual shape; several get distinct items).
template <class T>
class imap_result {
public:
    /// The input iterator; `*it` is `T&` (movable from).
    /// **Thread safety:** use it from the thread iterating the range.
    class iterator {
    public:
        /// The result type.
        using value_type = T;
        /// Required of iterators; positions are never subtracted.
        using difference_type = std::ptrdiff_t;
        /// A single-pass input iterator.
        using iterator_concept = std::input_iterator_tag;

        /// A singular iterator (only assignment and destruction are allowed).
        iterator() = default;

        /// The current item, or its exception rethrown (the iteration may go on).
        T& operator*() const { return state_->item(slot_); }
        /// Waits for the next item; throws `pool_terminated` if it will never come.
        iterator& operator++() {
            if (++pos_ < state_->size()) {
                slot_ = state_->next_slot();
            }
            return *this;
        }
        /// As `++it` (an input iterator's postfix increment returns nothing).
        void operator++(int) { ++*this; }
        /// True once every item was yielded.
        friend bool operator==(const iterator& it, std::default_sentinel_t) noexcept {
            return it.pos_ >= it.state_->size();
        }

    private:
        friend class imap_result;
        explicit iterator(detail::imap_state<T>* s) : state_(s) {
            if (state_->size() > 0) {
                slot_ = state_->next_slot();
            }
        }
        detail::imap_state<T>* state_ = nullptr;
        std::size_t pos_ = 0;
        std::size_t slot_ = 0;
    };

    /// Adopts `state` (producers only).
    explicit imap_result(detail::ref_ptr<detail::imap_state<T>> state) noexcept
        : state_(std::move(state)) {}

    /// Starts the iteration (once: the range is single-pass), waiting for the first item.
    /// Throws `invalid_state_error` if `next()` was used on this result.
    [[nodiscard]] iterator begin() {
        state_->use(detail::imap_state<T>::consumer::blocking);
        return iterator(state_.get());
    }
    /// The end sentinel.
    /// **Thread safety:** any thread.
    [[nodiscard]] std::default_sentinel_t end() const noexcept { return {}; }

    /// What `next()` returns: `co_await` it from a task for `std::optional<T>`.
    /// It holds its own reference to the shared state. Movable until awaited; await
    /// it once.
    /// **Thread safety:** used by the awaiting task only.
    class next_awaiter {
    public:
        /// Adopts a reference to `state` (imap_result::next only).
        explicit next_awaiter(detail::ref_ptr<detail::imap_state<T>> state) noexcept
            : state_(std::move(state)) {}

        /// Takes the next item at once if it is there (the task does not suspend).
        bool await_ready() {
            state_->use(detail::imap_state<T>::consumer::async);
            found_ = state_->try_take_slot(slot_);
            return found_ != take::wait;
        }
        /// Waits in a child coroutine, resumed by the pool's result thread.
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> awaiting) {
            waiting_ = wait_and_take(state_);
            inner_ = std::move(waiting_).operator co_await();
            return inner_->await_suspend(awaiting);
        }
        /// The item, `std::nullopt` at the end, or the item's exception rethrown.
        std::optional<T> await_resume() {
            if (inner_) {
                return inner_->await_resume();
            }
            if (found_ == take::end) {
                return std::nullopt;
            }
            return std::optional<T>(std::move(state_->item(slot_)));
        }

    private:
        using take = typename detail::imap_state<T>::take;

        // The slow path: waits until the next item's chunk is done, then takes it.
        // Takes the state by value: the frame keeps its own reference.
        static task<std::optional<T>> wait_and_take(detail::ref_ptr<detail::imap_state<T>> s) {
            std::size_t slot = 0;
            for (;;) {
                co_await s->wait_async();
                const take t = s->try_take_slot(slot);
                if (t == take::end) {
                    co_return std::nullopt;
                }
                if (t == take::item) {
                    co_return std::optional<T>(std::move(s->item(slot)));
                }
            }
        }

        detail::ref_ptr<detail::imap_state<T>> state_;
        task<std::optional<T>> waiting_; // owns the child's frame
        std::optional<typename task<std::optional<T>>::awaiter> inner_;
        std::size_t slot_ = 0;
        take found_ = take::wait;
    };

    /// From a task, `co_await res.next()`: the next item (input order for `imap`,
    /// completion order for `imap_unordered`), or `std::nullopt` once every item was
    /// taken. An item already there is taken without suspending; otherwise the task
    /// waits without blocking its loop and is resumed on its loop's thread.
    /// - An item whose call threw: that exception is rethrown here, and the item
    ///   counts as taken (the next `next()` goes on with the following item).
    /// - The pool was terminated before the item came: throws `pool_terminated` (again
    ///   on every later call).
    /// - The awaiting task is cancelled: throws `cancelled_error`; no item is taken,
    ///   so a later `next()` yields the item the cancelled one waited for.
    /// - Throws `invalid_state_error` if this result was iterated with `begin()`.
    /// The awaiter keeps the shared state alive: dropping the `imap_result` while a
    /// `next()` waits is safe.
    /// **Thread safety:** from tasks of one event loop.
    [[nodiscard]] next_awaiter next() { return next_awaiter(state_); }

    /// Number of items.
    /// **Thread safety:** any thread.
    [[nodiscard]] std::size_t size() const noexcept { return state_->size(); }

private:
    detail::ref_ptr<detail::imap_state<T>> state_;
};

} // namespace corio
