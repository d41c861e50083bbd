#pragma once
// Internal access to the loop's timer structure for corio's own awaitables.

#include <corio/event_loop.hpp>

namespace corio::detail {

struct loop_access {
    static void add_timer(event_loop& loop, timer_node& n) { loop.timers_.push(n); }
    static void remove_timer(event_loop& loop, timer_node& n) noexcept {
        if (n.queued()) {
            loop.timers_.remove(n);
        }
    }
    static void register_state(event_loop& loop, future_state_base& s) noexcept;
    static void register_task(event_loop& loop, task_record& t) noexcept;
    static bool closing(const event_loop& loop) noexcept { return loop.closing_; }
    static uring& ring(event_loop& loop) noexcept { return *loop.ring_.get(); }
    static auto& signals(event_loop& loop) noexcept { return loop.signals_; }
    static task_handle current(event_loop& loop);
    static task_root* current_root(event_loop& loop) noexcept { return loop.current_; }
    static std::vector<task_handle> all(event_loop& loop);
};

} // namespace corio::detail
