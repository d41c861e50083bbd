#include "ring/uring.hpp"

#include <corio/detail/live_counts.hpp>
#include <corio/detail/loop_access.hpp>
#include <corio/event_loop.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace corio {

namespace detail {

void loop_access::register_state(event_loop& loop, future_state_base& s) noexcept {
    s.unlink();
    loop.states_.push_back(s);
}
void loop_access::register_task(event_loop& loop, task_record& t) noexcept {
    future_state_base& s = t.state();
    s.unlink();
    loop.tasks_.push_back(s);
}

void schedule_on(event_loop& loop, std::coroutine_handle<> h, task_root* root) {
    loop.schedule(h, root);
}

task_handle loop_access::current(event_loop& loop) {
    if (loop.current_ == nullptr) {
        return {};
    }
    return task_handle(&static_cast<task_record*>(loop.current_)->state());
}

std::vector<task_handle> loop_access::all(event_loop& loop) {
    std::vector<task_handle> out;
    for (list_link* h = loop.tasks_.next; h != &loop.tasks_; h = h->next) {
        out.emplace_back(static_cast<future_state_base*>(h));
    }
    return out;
}

} // namespace detail

namespace {

void default_handler(const exception_context& ctx) {
    std::string what;
    if (ctx.exception) {
        try {
            std::rethrow_exception(ctx.exception);
        } catch (const std::exception& e) {
            what = e.what();
        } catch (...) {
            what = "unknown exception";
        }
    }
    fmt::print(stderr, "corio: {}{}{}{}\n", ctx.message,
               ctx.task_name.empty() ? "" : fmt::format(" [task {}]", ctx.task_name),
               what.empty() ? "" : ": ", what);
}

} // namespace

// ---- timer_handle / task_handle -------------------------------------------------

void timer_handle::cancel() noexcept {
    if (state_ == nullptr || state_->cancelled) {
        return;
    }
    state_->cancelled = true;
    if (state_->timer.queued()) {
        detail::loop_access::remove_timer(*state_->loop, state_->timer);
        state_->release(); // the timer heap's reference
    }
}

task_handle::task_handle(detail::future_state_base* s) noexcept : state_(s) {
    if (state_ != nullptr) {
        state_->add_ref();
    }
}
task_handle::~task_handle() {
    if (state_ != nullptr) {
        state_->release();
    }
}
const std::string& task_handle::name() const noexcept {
    return state_->as_task()->name();
}
bool task_handle::done() const noexcept {
    return state_->done();
}
bool task_handle::cancel() noexcept {
    try {
        return state_->cancel();
    } catch (...) {
        return false;
    }
}
corio::source_location task_handle::created_at() const noexcept {
    return state_->as_task()->where();
}

// ---- event_loop -------------------------------------------------------------------

namespace {
std::atomic<std::size_t> live_loops{0};
}

std::size_t detail::live_event_loops() noexcept {
    return live_loops.load(std::memory_order_relaxed);
}

event_loop::event_loop(loop_options options)
    : options_(options), ring_(std::make_unique<detail::uring>(options)),
      owner_(std::this_thread::get_id()) {
    live_loops.fetch_add(1, std::memory_order_relaxed);
    ring_->mark_loop_ring();
    if (const char* env = std::getenv("CORIO_DEBUG");
        env != nullptr && std::strcmp(env, "1") == 0) {
        options_.debug = true;
    }
}

event_loop::~event_loop() {
    if (running_) {
        // Destroying a running loop is a programming error we cannot recover from.
        CORIO_ASSERT(false, "an event_loop was destroyed while running");
    }
    try {
        close();
    } catch (...) {
        // A destructor never throws: the pending tasks are leaked (their frames may
        // hold kernel operations that only this loop's thread could reap).
        call_exception_handler({"the event loop could not be closed in its destructor: its "
                                "pending tasks are destroyed without running their cleanup",
                                std::current_exception(),
                                {}});
        // Frames are freed only if no kernel operation can still write into them.
        const bool drained = ring_->in_flight() == 0 && !ring_->has_pending();
        destroy_pending_tasks(drained);
        release_remaining(drained);
    }
    while (posters_.load(std::memory_order_acquire) != 0) {
        std::this_thread::yield(); // a poster is between its push and its doorbell
    }
    for (detail::list_link* list : {&tasks_, &states_}) {
        while (!list->empty()) {
            static_cast<detail::future_state_base*>(list->next)->detach_from_loop();
        }
    }
    live_loops.fetch_sub(1, std::memory_order_relaxed);
}

void event_loop::check_can_run() const {
    if (closed_) {
        throw error("corio: the event loop is closed");
    }
    if (running_) {
        throw error("corio: the event loop is already running");
    }
    if (detail::running_loop != nullptr) {
        throw error("corio: another event loop is already running on this thread");
    }
    if (std::this_thread::get_id() != owner_) {
        // With SINGLE_ISSUER only the creating thread may enter the ring (and with
        // DEFER_TASKRUN only it gets completions): run elsewhere, the loop would
        // wait forever.
        throw error("corio: an event loop can only run on the thread that created it");
    }
    if (ring_->foreign()) {
        throw error("corio: this event loop was created by another process (the program "
                    "forked): a forked child cannot use its parent's loop (its io_uring is "
                    "shared with the parent); create a new loop in the child");
    }
}

void event_loop::check_owner_thread(const char* what) const {
    if (std::this_thread::get_id() != owner_) [[unlikely]] {
        throw error(fmt::format("corio: {} called from a thread other than the loop's (use "
                                "call_soon_threadsafe)",
                                what));
    }
}

void event_loop::enter_running() {
    check_can_run();
    running_ = true;
    detail::running_loop = this;
}

void event_loop::leave_running() noexcept {
    running_ = false;
    stopping_ = false;
    detail::running_loop = nullptr;
}

void event_loop::run_forever() {
    enter_running();
    try {
        for (;;) {
            run_once();
            if (stopping_) {
                break;
            }
        }
    } catch (...) {
        leave_running();
        throw;
    }
    leave_running();
}

void event_loop::run_until(const detail::future_state_base& state) {
    enter_running();
    try {
        while (!state.done()) {
            run_once();
            if (stopping_ && !state.done()) {
                throw error("corio: the event loop stopped before the task completed");
            }
        }
    } catch (...) {
        leave_running();
        throw;
    }
    leave_running();
}

void event_loop::stop() noexcept {
    stopping_ = true;
}

void event_loop::run_once(std::optional<std::chrono::nanoseconds> max_wait) {
    drain_remote();
    bool block = ready_.empty() && !stopping_;
    std::optional<std::chrono::nanoseconds> timeout = max_wait;
    if (block && !timers_.empty()) {
        auto wait = timers_.top().deadline - clock::now();
        if (wait <= wait.zero()) {
            block = false;
        } else if (!timeout || wait < *timeout) {
            timeout = std::chrono::ceil<std::chrono::nanoseconds>(wait);
        }
    }
    if (block || ring_->in_flight() > 0 || ring_->has_pending()) {
        ring_->submit_and_wait(block, timeout);
        drain_remote();
    }
    expire_timers();
    run_ready(ready_.size());
}

void event_loop::drain_remote() noexcept {
    if (remote_head_.load(std::memory_order_relaxed) == nullptr) {
        return; // the common case costs a plain load, not a locked exchange
    }
    detail::remote_node* list = remote_head_.exchange(nullptr, std::memory_order_acquire);
    if (list == nullptr) {
        return;
    }
    detail::remote_node* fifo = nullptr; // the list is LIFO: reverse it
    while (list != nullptr) {
        detail::remote_node* next = list->next;
        list->next = fifo;
        fifo = list;
        list = next;
    }
    while (fifo != nullptr) {
        detail::remote_node* next = fifo->next;
        fifo->run(*fifo);
        fifo = next;
    }
}

void event_loop::post_remote(detail::remote_node& node) noexcept {
    posters_.fetch_add(1, std::memory_order_acquire);
    detail::remote_node* head = remote_head_.load(std::memory_order_relaxed);
    do {
        node.next = head;
    } while (!remote_head_.compare_exchange_weak(head, &node, std::memory_order_release,
                                                 std::memory_order_relaxed));
    if (head == nullptr) {
        ring_->wake();
    }
    posters_.fetch_sub(1, std::memory_order_release);
}

void event_loop::expire_timers() {
    if (timers_.empty()) {
        return;
    }
    auto now = clock::now();
    while (!timers_.empty() && timers_.top().deadline <= now) {
        detail::timer_node& n = timers_.top();
        timers_.remove(n);
        n.fire(n);
    }
}

void event_loop::run_ready(std::size_t count) {
    if (options_.debug) [[unlikely]] {
        run_ready_debug(count);
        return;
    }
    for (std::size_t i = 0; i < count; ++i) {
        detail::ready_item item = ready_.pop();
        if (item.coroutine) [[likely]] {
            current_ = static_cast<detail::task_root*>(item.context);
            item.coroutine.resume();
        } else {
            current_ = nullptr;
            run_callback(static_cast<detail::callback_state*>(item.context));
        }
    }
    current_ = nullptr;
}

// run_ready in debug mode: every step is timed, and a slow one reported.
void event_loop::run_ready_debug(std::size_t count) {
    for (std::size_t i = 0; i < count; ++i) {
        detail::ready_item item = ready_.pop();
        auto started = clock::now();
        if (item.coroutine) {
            current_ = static_cast<detail::task_root*>(item.context);
            item.coroutine.resume();
            current_ = nullptr;
        } else {
            run_callback(static_cast<detail::callback_state*>(item.context));
        }
        auto took = clock::now() - started;
        if (took >= options_.slow_callback_duration) {
            report_slow(took,
                        item.coroutine ? static_cast<detail::task_root*>(item.context) : nullptr);
        }
    }
}

void event_loop::report_slow(std::chrono::nanoseconds took, detail::task_root* root) {
    std::string what = "a callback";
    std::string name;
    if (root != nullptr) {
        auto* rec = static_cast<detail::task_record*>(root);
        name = rec->name();
        what = fmt::format("a step of task {} (created at {}:{})", name, rec->where().file_name(),
                           rec->where().line());
    }
    call_exception_handler({fmt::format("Executing {} took {:.3f} seconds", what,
                                        std::chrono::duration<double>(took).count()),
                            nullptr, name});
}

void event_loop::run_callback(detail::callback_state* cb) noexcept {
    if (!cb->cancelled) {
        cb->cancelled = true; // a handle's cancel() after the run is a no-op
        try {
            cb->fn();
        } catch (...) {
            call_exception_handler({"exception in a callback", std::current_exception(), {}});
        }
        cb->fn = nullptr;
    }
    cb->release();
}

timer_handle event_loop::call_soon(std::function<void()> fn) {
    if (closed_) {
        throw error("corio: call_soon on a closed event loop");
    }
    check_owner_thread("call_soon");
    auto* cb = new detail::callback_state;
    cb->fn = std::move(fn);
    cb->loop = this;
    timer_handle h(cb); // refs: queue + handle
    ready_.push({nullptr, cb});
    return h;
}

timer_handle event_loop::call_at(time_point when, std::function<void()> fn) {
    if (closed_) {
        throw error("corio: call_at on a closed event loop");
    }
    check_owner_thread("call_at");
    auto* cb = new detail::callback_state;
    cb->fn = std::move(fn);
    cb->loop = this;
    cb->timer.deadline = when;
    cb->timer.context = cb;
    cb->timer.fire = [](detail::timer_node& n) noexcept {
        auto* c = static_cast<detail::callback_state*>(n.context);
        c->loop->ready_.push({nullptr, c}); // the heap's reference moves to the queue
    };
    timer_handle h(cb);
    timers_.push(cb->timer);
    return h;
}

void event_loop::call_soon_threadsafe(std::function<void()> fn) {
    if (closed_) {
        throw error("corio: call_soon_threadsafe on a closed event loop");
    }
    auto* cb = new detail::callback_state;
    cb->fn = std::move(fn);
    cb->loop = this;
    cb->run = [](detail::remote_node& n) noexcept {
        auto& c = static_cast<detail::callback_state&>(n);
        c.loop->ready_.push({nullptr, &c});
    };
    post_remote(*cb);
}

detail::future_state_base* event_loop::spawn_state(detail::future_state_base* state) {
    detail::task_record* rec = state->as_task();
    rec->set_number(next_task_number_++);
    detail::loop_access::register_task(*this, *rec);
    ready_.push({rec->coroutine, rec});
    return state;
}

void event_loop::start_eager(detail::future_state_base* state) noexcept {
    detail::task_record* rec = state->as_task();
    rec->set_number(next_task_number_++);
    detail::loop_access::register_task(*this, *rec);
    // The first step runs now, nested in the caller's step; current_task() is the new
    // task meanwhile. Exceptions stay in the coroutine's promise.
    detail::task_root* caller = current_;
    current_ = rec;
    rec->coroutine.resume();
    current_ = caller;
}

void event_loop::set_exception_handler(exception_handler handler) {
    handler_ = std::move(handler);
}

void event_loop::call_exception_handler(const exception_context& context) noexcept {
    try {
        if (handler_) {
            handler_(context);
            return;
        }
    } catch (...) {
        // fall through to the default handler
    }
    try {
        default_handler(context);
    } catch (...) {
        // nothing left to report with
    }
}

std::uint64_t event_loop::add_close_hook(std::function<void()> fn) {
    std::uint64_t id = next_hook_id_++;
    close_hooks_.emplace_back(id, std::move(fn));
    return id;
}

void event_loop::remove_close_hook(std::uint64_t id) noexcept {
    std::erase_if(close_hooks_, [id](const auto& h) { return h.first == id; });
}

void event_loop::finalize_pending_tasks() {
    if (tasks_.empty() && ready_.empty() && ring_->in_flight() == 0) {
        return;
    }
    std::vector<task_handle> victims = detail::loop_access::all(*this);
    for (auto& v : victims) {
        v.cancel();
    }
    victims.clear();
    enter_running();
    try {
        // Run while anything can still make progress. Kernel operations alone may
        // never complete (an armed multishot accept, a signal poll), so waiting on
        // them alone is bounded: after about a second without any step to run, the
        // remaining tasks are considered stuck.
        constexpr auto idle_slice = std::chrono::milliseconds(50);
        constexpr int max_idle_slices = 20;
        // Tasks that keep running (a task that swallows its cancellation and sleeps
        // or yields again) get the same bound: about a second in which no pending
        // task finishes, and the rest are considered stuck.
        constexpr auto progress_limit = std::chrono::seconds(1);
        auto count_tasks = [this] {
            std::size_t n = 0;
            for (detail::list_link* h = tasks_.next; h != &tasks_; h = h->next) {
                ++n;
            }
            return n;
        };
        std::size_t tasks_left = count_tasks();
        auto progress_deadline = clock::now() + progress_limit;
        int idle_slices = 0;
        while (!tasks_.empty() || !ready_.empty()) {
            if (auto now = clock::now(); now >= progress_deadline) {
                std::size_t n = count_tasks();
                if (n >= tasks_left) {
                    break; // no task finished within the limit
                }
                tasks_left = n;
                progress_deadline = now + progress_limit;
            }
            bool kernel_only = ready_.empty() && timers_.empty();
            if (kernel_only && ring_->in_flight() == 0 && !ring_->has_pending() &&
                remote_head_.load(std::memory_order_acquire) == nullptr) {
                break; // nothing can ever make progress
            }
            if (!kernel_only) {
                idle_slices = 0;
                run_once(std::max(
                    std::chrono::nanoseconds(0),
                    std::chrono::ceil<std::chrono::nanoseconds>(progress_deadline - clock::now())));
                continue;
            }
            run_once(idle_slice);
            if (ready_.empty() && ++idle_slices >= max_idle_slices) {
                break;
            }
        }
    } catch (...) {
        leave_running();
        throw;
    }
    leave_running();
    if (tasks_.empty()) {
        return;
    }
    // Tasks still pending wait for something that can never happen now. Their
    // frames may hold kernel operations (a task that swallowed its cancellation and
    // started another read): end every operation and reap its completion first, so
    // the kernel never writes into a freed frame and no completion is dispatched to
    // one. Completions dispatched here only schedule steps, dropped below.
    bool drained = true;
    if (ring_->in_flight() > 0 || ring_->has_pending()) {
        constexpr auto drain_limit = std::chrono::seconds(1);
        drained = ring_->cancel_all(drain_limit);
    }
    destroy_pending_tasks(drained);
}

void event_loop::destroy_pending_tasks(bool drained) noexcept {
    // Then destroy the frames (awaiters unlink themselves) and mark the tasks
    // cancelled. If some operation did not end, no frame can be known free of it:
    // the frames are leaked, which is safe, and reported.
    bool destroyed_any = false;
    while (!tasks_.empty()) {
        auto& state = *static_cast<detail::future_state_base*>(tasks_.next);
        detail::task_record* rec = state.as_task();
        state.add_ref();
        if (!drained) {
            call_exception_handler(
                {fmt::format("Task was leaked at close: a kernel operation did not end after its "
                             "cancellation, so its frame cannot be freed (created at {}:{})",
                             rec->where().file_name(), rec->where().line()),
                 nullptr, rec->name()});
        } else if (options_.debug) {
            call_exception_handler(
                {fmt::format("Task was destroyed but it is pending (created at {}:{})",
                             rec->where().file_name(), rec->where().line()),
                 nullptr, rec->name()});
        }
        std::coroutine_handle<> h = std::exchange(rec->coroutine, {});
        state.unlink(); // from the pending tasks; set_exception files it with the states
        if (h && drained) {
            h.destroy();
        }
        state.set_exception(std::make_exception_ptr(cancelled_error()));
        state.release(); // ours
        state.release(); // the loop's
        destroyed_any = true;
    }
    if (destroyed_any) {
        // Completing those states scheduled their waiters, whose frames were destroyed
        // in the same sweep: drop every coroutine step, keep the callbacks.
        for (std::size_t n = ready_.size(); n > 0; --n) {
            detail::ready_item item = ready_.pop();
            if (!item.coroutine) {
                ready_.push(item);
            }
        }
    }
}

void event_loop::close() {
    if (closed_) {
        return;
    }
    if (running_) {
        throw error("corio: cannot close a running event loop");
    }
    if (ring_->foreign()) {
        // A forked child's copy of a loop: its ring is shared with the parent, so
        // nothing may be submitted or reaped here. Tasks and callbacks are left as
        // they are (their frames may hold the parent's kernel operations).
        while (!tasks_.empty()) {
            tasks_.next->unlink();
        }
        closed_ = true;
        return;
    }
    if (std::this_thread::get_id() != owner_ &&
        (!tasks_.empty() || !ready_.empty() || ring_->in_flight() > 0)) {
        // Finalizing runs the loop, which only its own thread can do; checked before
        // anything is cancelled, so the loop is left as it was.
        throw error("corio: an event loop with pending work can only be closed on the thread that "
                    "created it");
    }
    closing_ = true;
    finalize_pending_tasks();
    while (!close_hooks_.empty()) {
        auto hooks = std::move(close_hooks_);
        close_hooks_.clear();
        for (auto& [id, fn] : hooks) {
            try {
                fn();
            } catch (...) {
                call_exception_handler({"exception in a close hook", std::current_exception(), {}});
            }
        }
        finalize_pending_tasks();
    }
    release_remaining(true);
}

void event_loop::release_remaining(bool frames_destroyed) noexcept {
    // Callbacks that never ran are dropped, as asyncio's close() does.
    drain_remote();
    while (!ready_.empty()) {
        detail::ready_item item = ready_.pop();
        if (!item.coroutine) {
            static_cast<detail::callback_state*>(item.context)->release();
        }
    }
    while (!timers_.empty()) {
        detail::timer_node& n = timers_.top();
        timers_.remove(n);
        // Only call_later/call_at nodes can remain: sleeps lived in destroyed frames.
        // With frames leaked, a node may be a sleep's: the callbacks are leaked too.
        if (frames_destroyed) {
            static_cast<detail::callback_state*>(n.context)->release();
        }
    }
    // No completion is reaped after this point, so in-flight signal reads may go.
    signals_.reset();
    fd_watches_.reset();
    closed_ = true;
    closing_ = false;
}

task_handle current_task() {
    event_loop* loop = detail::running_loop;
    if (loop == nullptr) {
        return {};
    }
    return detail::loop_access::current(*loop);
}

std::vector<task_handle> all_tasks() {
    return detail::loop_access::all(get_running_loop());
}

} // namespace corio
