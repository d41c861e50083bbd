#pragma once
// The loop's FIFO of runnable work: a growable ring buffer of (coroutine, root)
// pairs. A null coroutine means "run the callback_state in `context`".

#include <coroutine>
#include <cstddef>
#include <memory>
#include <utility>

namespace corio::detail {

struct ready_item {
    std::coroutine_handle<> coroutine;
    void* context; // task_root* for a coroutine, callback_state* for a callback
};

class ready_queue {
public:
    ready_queue() : items_(std::make_unique<ready_item[]>(initial)), mask_(initial - 1) {}

    bool empty() const noexcept { return head_ == tail_; }
    std::size_t size() const noexcept { return tail_ - head_; }

    void push(ready_item item) {
        if (tail_ - head_ == mask_ + 1) [[unlikely]] {
            grow();
        }
        items_[tail_ & mask_] = item;
        ++tail_;
    }
    ready_item pop() noexcept {
        ready_item item = items_[head_ & mask_];
        ++head_;
        return item;
    }

private:
    static constexpr std::size_t initial = 256;
    // Out of line and cold: inlined, its loop made every push save and restore
    // six registers.
    [[gnu::noinline, gnu::cold]] void grow() {
        std::size_t cap = mask_ + 1;
        auto bigger = std::make_unique<ready_item[]>(cap * 2);
        for (std::size_t i = 0; i < cap; ++i) {
            bigger[i] = items_[(head_ + i) & mask_];
        }
        items_ = std::move(bigger);
        head_ = 0;
        tail_ = cap;
        mask_ = cap * 2 - 1;
    }
    std::unique_ptr<ready_item[]> items_;
    std::size_t mask_;
    std::size_t head_ = 0;
    std::size_t tail_ = 0;
};

} // namespace corio::detail
