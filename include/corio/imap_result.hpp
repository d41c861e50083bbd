#pragma once
/// \file imap_result.hpp
/// `imap_result<T>`: the lazy, single-pass range returned by `imap` and
/// `imap_unordered` of the pools (multiprocessing's IMapIterator).

#include <corio/async_result.hpp>
#include <corio/pool.hpp>

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
/// items with `next_slot` (blocking) in input order or in completion order.
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

    // Consumer-only cursor.
    std::size_t cursor_ = 0;       // ordered: next item
    std::size_t taken_ = 0;        // unordered: chunks of order_ consumed
    std::size_t chunk_ = no_chunk; // unordered: chunk being yielded
    std::size_t offset_ = 0;       // unordered: next item in it
};

} // namespace detail

/// The results of `imap` (input order) or `imap_unordered` (completion order): a
/// single-pass input range; iterating blocks until the next result is there.
/// Dereferencing an item whose call threw rethrows that exception (the iteration may
/// go on past it); advancing to an item that will never come because the pool was
/// terminated throws `pool_terminated`. Every item was submitted at creation; the
/// range can be dropped at any time.
/// **Thread safety:** iterate from one thread at a time.
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
    [[nodiscard]] iterator begin() { return iterator(state_.get()); }
    /// The end sentinel.
    /// **Thread safety:** any thread.
    [[nodiscard]] std::default_sentinel_t end() const noexcept { return {}; }
    /// Number of items.
    /// **Thread safety:** any thread.
    [[nodiscard]] std::size_t size() const noexcept { return state_->size(); }

private:
    detail::ref_ptr<detail::imap_state<T>> state_;
};

} // namespace corio
