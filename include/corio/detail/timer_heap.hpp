#pragma once
// The user-space timer structure: an intrusive binary min-heap of timer_nodes
// ordered by (deadline, insertion sequence), so equal deadlines fire in FIFO order.
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
    bool empty() const noexcept { return nodes_.empty(); }
    std::size_t size() const noexcept { return nodes_.size(); }
    timer_node& top() const noexcept { return *nodes_.front(); }

    void push(timer_node& n) {
        n.sequence = next_sequence_++;
        n.index = nodes_.size();
        nodes_.push_back(&n);
        sift_up(n.index);
    }

    void remove(timer_node& n) noexcept {
        std::size_t i = n.index;
        n.index = timer_node::not_queued;
        timer_node* last = nodes_.back();
        nodes_.pop_back();
        if (last == &n) {
            return;
        }
        nodes_[i] = last;
        last->index = i;
        sift_down(i);
        sift_up(last->index);
    }

private:
    static bool before(const timer_node* a, const timer_node* b) noexcept {
        return a->deadline < b->deadline ||
               (a->deadline == b->deadline && a->sequence < b->sequence);
    }
    void place(std::size_t i, timer_node* n) noexcept {
        nodes_[i] = n;
        n->index = i;
    }
    void sift_up(std::size_t i) noexcept {
        timer_node* n = nodes_[i];
        while (i > 0) {
            std::size_t parent = (i - 1) / 2;
            if (!before(n, nodes_[parent])) {
                break;
            }
            place(i, nodes_[parent]);
            i = parent;
        }
        place(i, n);
    }
    void sift_down(std::size_t i) noexcept {
        timer_node* n = nodes_[i];
        std::size_t count = nodes_.size();
        for (;;) {
            std::size_t child = 2 * i + 1;
            if (child >= count) {
                break;
            }
            if (child + 1 < count && before(nodes_[child + 1], nodes_[child])) {
                ++child;
            }
            if (!before(nodes_[child], n)) {
                break;
            }
            place(i, nodes_[child]);
            i = child;
        }
        place(i, n);
    }
    std::vector<timer_node*> nodes_;
    std::uint64_t next_sequence_ = 0;
};

} // namespace corio::detail
