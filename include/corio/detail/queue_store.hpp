#pragma once
// The item stores of corio's queues (queue.hpp): a growable ring buffer and the FIFO,
// LIFO and heap orders over it. Each store has reserve(n): the queue keeps room for
// every item it holds, handed-over ones included, so that its noexcept paths (an
// item given back by a cancelled getter, a blocked putter admitted) never allocate.

#include <algorithm>
#include <cstddef>
#include <functional>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio::detail {

/// A growable ring buffer (capacity a power of two); allocates only when it grows.
template <class T>
class ring_buffer {
public:
    ring_buffer() noexcept = default;
    ring_buffer(ring_buffer&& o) noexcept
        : data_(std::exchange(o.data_, nullptr)), cap_(std::exchange(o.cap_, 0)),
          head_(std::exchange(o.head_, 0)), size_(std::exchange(o.size_, 0)) {}
    ring_buffer(const ring_buffer&) = delete;
    ring_buffer& operator=(const ring_buffer&) = delete;
    ring_buffer& operator=(ring_buffer&&) = delete;
    ~ring_buffer() {
        clear();
        if (data_ != nullptr) {
            std::allocator<T>().deallocate(data_, cap_);
        }
    }

    std::size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    /// Grows the capacity to at least `n` items (throws std::bad_alloc, leaving the
    /// buffer unchanged); pushes within the capacity never allocate.
    void reserve(std::size_t n) {
        if (n <= cap_) {
            return;
        }
        std::size_t cap = cap_ == 0 ? 8 : cap_ * 2;
        while (cap < n) {
            cap *= 2;
        }
        T* data = std::allocator<T>().allocate(cap);
        for (std::size_t i = 0; i < size_; ++i) {
            T* p = slot(head_ + i);
            ::new (static_cast<void*>(data + i)) T(std::move(*p));
            p->~T();
        }
        if (data_ != nullptr) {
            std::allocator<T>().deallocate(data_, cap_);
        }
        data_ = data;
        cap_ = cap;
        head_ = 0;
    }

    void push_back(T&& v) {
        reserve_one();
        ::new (static_cast<void*>(slot(head_ + size_))) T(std::move(v));
        ++size_;
    }
    void push_front(T&& v) {
        reserve_one();
        std::size_t h = (head_ + cap_ - 1) & (cap_ - 1);
        ::new (static_cast<void*>(slot(h))) T(std::move(v));
        head_ = h;
        ++size_;
    }
    T pop_front() noexcept {
        T* p = slot(head_);
        T v(std::move(*p));
        p->~T();
        head_ = (head_ + 1) & (cap_ - 1);
        --size_;
        return v;
    }
    T pop_back() noexcept {
        T* p = slot(head_ + size_ - 1);
        T v(std::move(*p));
        p->~T();
        --size_;
        return v;
    }
    void clear() noexcept {
        while (size_ > 0) {
            slot(head_ + size_ - 1)->~T();
            --size_;
        }
        head_ = 0;
    }

private:
    T* slot(std::size_t i) const noexcept { return data_ + (i & (cap_ - 1)); }
    void reserve_one() { reserve(size_ + 1); }

    T* data_ = nullptr;
    std::size_t cap_ = 0;
    std::size_t head_ = 0;
    std::size_t size_ = 0;
};

template <class T>
struct fifo_store {
    ring_buffer<T> items;
    void push(T&& v) { items.push_back(std::move(v)); }
    T pop() noexcept { return items.pop_front(); }
    void put_back(T&& v) { items.push_front(std::move(v)); } // next out again
    void reserve(std::size_t n) { items.reserve(n); }
    std::size_t size() const noexcept { return items.size(); }
    void clear() noexcept { items.clear(); }
};

template <class T>
struct lifo_store {
    ring_buffer<T> items;
    void push(T&& v) { items.push_back(std::move(v)); }
    T pop() noexcept { return items.pop_back(); }
    void put_back(T&& v) { items.push_back(std::move(v)); } // next out again
    void reserve(std::size_t n) { items.reserve(n); }
    std::size_t size() const noexcept { return items.size(); }
    void clear() noexcept { items.clear(); }
};

template <class T, class Compare>
struct heap_store {
    std::vector<T> items;
    Compare compare;
    // std's heap functions keep the largest first; invert to serve the smallest.
    auto later() const {
        return [this](const T& a, const T& b) { return compare(b, a); };
    }
    void push(T&& v) {
        items.push_back(std::move(v));
        std::push_heap(items.begin(), items.end(), later());
    }
    T pop() {
        std::pop_heap(items.begin(), items.end(), later());
        T v(std::move(items.back()));
        items.pop_back();
        return v;
    }
    void put_back(T&& v) { push(std::move(v)); }
    void reserve(std::size_t n) { items.reserve(n); }
    std::size_t size() const noexcept { return items.size(); }
    void clear() noexcept { items.clear(); }
};

} // namespace corio::detail
