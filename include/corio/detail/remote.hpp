#pragma once
// Cross-thread completion: any thread hands an intrusive node to a loop with
// `event_loop::post_remote(node)`; the node's `run` is then called on the loop's
// thread, in posting order per thread. The loop keeps these nodes on a lock-free
// list and rings its eventfd only when the list turns non-empty, so a burst of
// thousands of completions costs one wake-up. No allocation: the node lives in the
// poster's state (an async_result's shared state, a call_soon_threadsafe closure).

namespace corio::detail {

struct remote_node {
    void (*run)(remote_node&) noexcept = nullptr;
    remote_node* next = nullptr;
};

} // namespace corio::detail
