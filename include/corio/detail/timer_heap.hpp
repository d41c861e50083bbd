#pragma once
// The user-space timer structure: a 4-ary min-heap of timer_nodes ordered by
// (deadline, insertion sequence), so equal deadlines fire in FIFO order.
// Each node remembers its index, so cancellation removes it in O(log n). The loop
// arms ONE kernel wait, for the earliest deadline.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace corio::detail {

struct timer_node {
    static constexpr std::size_t not_queued = static_cast<std::size_t>(-1);
    std::chrono::steady_clock::time_point deadline{};
    std::uint64_t sequence = 0;
    std::size_t index = not_queued;
    void (*fire)(timer_node&) noexcept = nullptr;
    void* context = nullptr; // the owner of the node
    bool queued() const noexcept { return index != not_queued; }
};

class timer_heap {
public:
    bool empty() const noexcept { return entries_.empty(); }
    std::size_t size() const noexcept { return entries_.size(); }
    timer_node& top() const noexcept { return *entries_.front().node; }

    void push(timer_node& n) {
        entries_.push_back({n.deadline, &n}); // may throw: the node stays unqueued
        n.sequence = next_sequence_++;
        n.index = entries_.size() - 1;
        sift_up(n.index);
    }

    void remove(timer_node& n) noexcept {
        std::size_t i = n.index;
        n.index = timer_node::not_queued;
        entry last = entries_.back();
        entries_.pop_back();
        if (last.node == &n) {
            return;
        }
        entries_[i] = last;
        last.node->index = i;
        if (i > 0 && before(last, entries_[(i - 1) / arity])) {
            sift_up(i);
        } else {
            sift_down(i);
        }
    }

private:
    // A 4-ary heap of (deadline, node) pairs: comparing reads the array only (the
    // nodes live in scattered coroutine frames), and the tree is half as deep as a
    // binary one. Equal deadlines are ordered by the nodes' sequence numbers.
    static constexpr std::size_t arity = 4;
    struct entry {
        std::chrono::steady_clock::time_point deadline;
        timer_node* node;
    };
    static bool before(const entry& a, const entry& b) noexcept {
        return a.deadline < b.deadline ||
               (a.deadline == b.deadline && a.node->sequence < b.node->sequence);
    }
    void place(std::size_t i, const entry& e) noexcept {
        entries_[i] = e;
        e.node->index = i;
    }
    void sift_up(std::size_t i) noexcept {
        entry e = entries_[i];
        while (i > 0) {
            std::size_t parent = (i - 1) / arity;
            if (!before(e, entries_[parent])) {
                break;
            }
            place(i, entries_[parent]);
            i = parent;
        }
        place(i, e);
    }
    void sift_down(std::size_t i) noexcept {
        entry e = entries_[i];
        std::size_t count = entries_.size();
        for (;;) {
            std::size_t first = arity * i + 1;
            if (first >= count) {
                break;
            }
            std::size_t last = first + arity < count ? first + arity : count;
            std::size_t best = first;
            for (std::size_t c = first + 1; c < last; ++c) {
                if (before(entries_[c], entries_[best])) {
                    best = c;
                }
            }
            if (!before(entries_[best], e)) {
                break;
            }
            place(i, entries_[best]);
            i = best;
        }
        place(i, e);
    }
    std::vector<entry> entries_;
    std::uint64_t next_sequence_ = 0;
};

} // namespace corio::detail
