#pragma once
// The machinery under gather, gather_settled, wait_for, wait_any, as_completed,
// shield and task_group.
//
// A `combinator_scope` is a small reference-counted record of the children one
// combinator started. Every child is a loop task (create_task) running
// `combinator_child`, a wrapper coroutine that awaits the user's awaitable and, in
// the same step in which that finishes, tells the scope (`child_finished`). So the
// scope reacts to a failure at once (it cancels the siblings before anything else
// runs) and the waiting parent is resumed on the next iteration, after the child's
// future is done. The scope is shared by the parent and every child wrapper: the
// loop may destroy them in any order at close, and whichever goes last frees it.
//
// The parent waits with `scope_wait`, which follows the cancellation protocol of
// detail/cancel.hpp: a cancel of the waiting task cancels every child and keeps
// waiting for them all (structured), or, for shield, resumes the parent at once.

#include <corio/detail/cancel.hpp>
#include <corio/detail/future_state.hpp>
#include <corio/detail/loop_access.hpp>
#include <corio/detail/timer_heap.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/source_location.hpp>
#include <corio/task.hpp>

#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace corio::detail {

// ---- awaitable traits ---------------------------------------------------------------

template <class A>
decltype(auto) get_awaiter(A&& a) noexcept {
    if constexpr (requires { static_cast<A&&>(a).operator co_await(); }) {
        return static_cast<A&&>(a).operator co_await();
    } else if constexpr (requires { operator co_await(static_cast<A&&>(a)); }) {
        return operator co_await(static_cast<A&&>(a));
    } else {
        return static_cast<A&&>(a);
    }
}

template <class A>
using await_result_t =
    decltype(std::declval<decltype(get_awaiter(std::declval<A>()))&>().await_resume());

template <class>
inline constexpr bool is_future_v = false;
template <class T>
inline constexpr bool is_future_v<future<T>> = true;

template <class A>
struct generic_child_result {};
template <class A>
requires requires {
    typename await_result_t<A>;
}
struct generic_child_result<A> {
    using raw = await_result_t<A>;
    using type = std::conditional_t<std::is_rvalue_reference_v<raw>, std::remove_cvref_t<raw>, raw>;
};
template <class A>
struct child_result : generic_child_result<A> {};
template <class T>
struct child_result<task<T>> {
    using type = T;
};
template <class T>
struct child_result<future<T>> {
    using type = T;
};

/// What awaiting `A` (held by value, a task awaited as an rvalue, a future as an
/// lvalue) produces: `T` for task<T> and future<T>.
template <class A>
using child_result_t = typename child_result<A>::type;

/// A type the combinators accept: a movable awaitable held by value.
template <class A>
concept combinator_awaitable = std::is_object_v<A> && std::is_move_constructible_v<A> && requires {
    typename child_result_t<A>;
};

/// How a child result is stored in a tuple, vector, variant or outcome.
template <class R>
struct stored_value {
    using type = R;
};
template <>
struct stored_value<void> {
    using type = std::monostate;
};
template <class T>
struct stored_value<T&> {
    using type = std::reference_wrapper<T>;
};
template <class R>
using stored_value_t = typename stored_value<R>::type;

/// Moves the value of a finished child future out (rethrows its exception).
template <class R>
stored_value_t<R> take_value(future<R>& f) {
    if constexpr (std::is_void_v<R>) {
        f.result();
        return std::monostate{};
    } else if constexpr (std::is_reference_v<R>) {
        return std::ref(f.result());
    } else {
        return std::move(f.result());
    }
}

// ---- the scope ----------------------------------------------------------------------

enum class scope_policy : std::uint8_t {
    settle,     // gather_settled, wait_for, as_completed: no reaction
    fail_fast,  // gather: the first exception cancels the others
    first_wins, // wait_any: the first completion cancels the others
    group,      // task_group: every non-cancel failure is collected
    shield,     // shield: a parent cancel resumes the parent, the child runs on
};

class combinator_scope;

/// Intrusive reference to a combinator_scope.
class scope_ref {
public:
    scope_ref() noexcept = default;
    explicit scope_ref(combinator_scope* s) noexcept;
    scope_ref(const scope_ref& o) noexcept;
    scope_ref(scope_ref&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
    scope_ref& operator=(scope_ref o) noexcept {
        std::swap(s_, o.s_);
        return *this;
    }
    ~scope_ref();
    combinator_scope* operator->() const noexcept { return s_; }
    combinator_scope& operator*() const noexcept { return *s_; }
    combinator_scope* get() const noexcept { return s_; }

private:
    combinator_scope* s_ = nullptr;
};

/// "parent/what[": the common prefix of the names of one combinator's children.
inline std::string child_name_prefix(const char* what) {
    task_handle parent = current_task();
    std::string prefix = parent ? parent.name() : std::string("(no task)");
    prefix += '/';
    prefix += what;
    prefix += '[';
    return prefix;
}

/// The name of child `index`: "parent/what[index]".
inline std::string child_name(const std::string& prefix, std::size_t index) {
    std::string name = prefix;
    name += std::to_string(index);
    name += ']';
    return name;
}

/// The name of child `index` of the running task's `what`: "parent/what[index]".
inline std::string child_name(const char* what, std::size_t index) {
    return child_name(child_name_prefix(what), index);
}

/// Where the running task was created (the best location a variadic call can give).
inline corio::source_location parent_location() noexcept {
    task_handle parent = current_task();
    return parent ? parent.created_at() : corio::source_location();
}

class combinator_scope {
public:
    static scope_ref make(event_loop& loop, scope_policy policy) {
        return scope_ref(new combinator_scope(loop, policy));
    }
    combinator_scope(const combinator_scope&) = delete;
    combinator_scope& operator=(const combinator_scope&) = delete;

    void add_ref() noexcept { ++refs_; }
    void release() noexcept {
        if (--refs_ == 0) {
            delete this;
        }
    }

    event_loop& loop() const noexcept { return *loop_; }
    scope_policy policy() const noexcept { return policy_; }
    std::size_t running() const noexcept { return running_; }
    bool parent_cancelled() const noexcept { return parent_cancelled_; }
    bool cancelling() const noexcept { return cancelling_; }
    bool timed_out() const noexcept { return timed_out_; }
    const std::optional<std::size_t>& winner() const noexcept { return winner_; }
    /// wait_for: its child stands for an inline await and runs to its first suspension
    /// even when cancelled before it started (so do task_group children); the other
    /// combinators' children cancelled before their first step never start.
    void start_cancelled_children() noexcept { start_cancelled_ = true; }
    bool starts_cancelled_children() const noexcept {
        return start_cancelled_ || policy_ == scope_policy::group;
    }
    void reserve(std::size_t n) { entries_.reserve(n); }

    /// Rethrows the exception the scope took responsibility for (fail_fast: the
    /// first failure; first_wins: the winner's exception).
    void rethrow_taken() const {
        if (taken_) {
            std::rethrow_exception(taken_);
        }
    }

    /// Starts `aw` as a child task; the returned future is the child.
    template <class R, class A>
    future<R> spawn(A aw, std::string name, corio::source_location where);

    /// Called by a child wrapper in the step in which its awaitable finished;
    /// true if the scope took responsibility for the exception `e`.
    bool child_finished(std::size_t i, const std::exception_ptr& e) noexcept {
        entry& en = entries_[i];
        if (!en.running) {
            return false;
        }
        en.running = false;
        --running_;
        bool taken = false;
        switch (policy_) {
        case scope_policy::settle:
        case scope_policy::shield:
            break;
        case scope_policy::fail_fast:
            // A cancelled_error after we started cancelling is our own doing.
            if (e && !taken_ && !(cancelling_ && is_cancellation(e))) {
                taken_ = e;
                taken = true;
                cancel_children();
            }
            break;
        case scope_policy::first_wins:
            if (!winner_) {
                winner_ = i;
                if (e) {
                    taken_ = e;
                    taken = true;
                }
                cancel_children();
            }
            break;
        case scope_policy::group:
            if (e && !orphaned_ && !is_cancellation(e)) {
                try {
                    errors_.push_back(e);
                    taken = true;
                } catch (...) {
                    // Out of memory: leave the exception to the child's future, which
                    // reports it as never retrieved.
                }
                group_failed();
            }
            break;
        }
        if (wake_each_) {
            try {
                completed_.push_back(i);
            } catch (...) {
                // as_completed reserves room for every child up front.
            }
        }
        if (policy_ == scope_policy::group) {
            en.handle = task_handle(); // the slot is reused by a later spawn
            free_.push_back(i);        // cannot throw: reserved in spawn
        }
        wake();
        return taken;
    }

    /// Called when a child's frame is destroyed before it finished (only when the
    /// loop closes and destroys pending tasks): forget it, resume nobody.
    void child_abandoned(std::size_t i) noexcept {
        entry& en = entries_[i];
        if (en.running) {
            en.running = false;
            --running_;
            en.handle = task_handle();
        }
    }

    /// Requests cancellation of every running child (once each).
    void cancel_children() noexcept {
        cancelling_ = true;
        // While the loop destroys the frames of pending tasks at close, nothing may be
        // scheduled any more; those children are being destroyed anyway.
        if (loop_access::closing(*loop_) && !loop_->is_running()) {
            return;
        }
        for (std::size_t i = 0; i < entries_.size(); ++i) {
            entry& en = entries_[i];
            if (en.running && !en.cancel_sent) {
                en.cancel_sent = true;
                task_handle h = en.handle; // cancel() may not touch `entries_` but be safe
                h.cancel();
            }
        }
    }

    /// A cancel of the waiting (parent) task arrived while children run.
    void cancel_from_parent() noexcept {
        parent_cancelled_ = true;
        if (policy_ != scope_policy::shield) {
            cancel_children();
        }
    }

    /// wait_for's deadline passed.
    void time_out() noexcept {
        if (running_ > 0) {
            timed_out_ = true;
            cancel_children();
        }
    }

    // -- the parent's wait --
    bool wake_condition() const noexcept {
        return running_ == 0 || (wake_each_ && read_ < completed_.size());
    }
    void set_waiter(std::coroutine_handle<> h, task_root* root) noexcept {
        waiter_ = h;
        waiter_root_ = root;
    }
    void clear_waiter() noexcept { waiter_ = {}; }
    /// Resumes the waiting parent now (shield's early exit).
    void wake_now() noexcept {
        if (waiter_) {
            loop_->schedule(std::exchange(waiter_, {}), waiter_root_);
        }
    }

    // -- as_completed --
    void wake_on_each_completion() { wake_each_ = true; }
    std::optional<std::size_t> pop_completed() noexcept {
        if (read_ < completed_.size()) {
            return completed_[read_++];
        }
        return std::nullopt;
    }
    void reserve_completed(std::size_t n) { completed_.reserve(n); }

    // -- task_group --
    void set_owner(task_handle owner) noexcept { owner_ = owner; }
    const task_handle& owner() const noexcept { return owner_; }
    bool owner_cancel_requested() const noexcept { return owner_cancel_requested_; }
    void set_owner_joining(bool on) noexcept { owner_joining_ = on; }
    void set_orphaned() noexcept { orphaned_ = true; }
    std::vector<std::exception_ptr>& errors() noexcept { return errors_; }
    /// The group body failed or was cancelled from outside: cancel the children.
    void abort() noexcept { cancel_children(); }

private:
    struct entry {
        task_handle handle;
        bool running = false;
        bool cancel_sent = false;
    };

    combinator_scope(event_loop& loop, scope_policy policy) noexcept
        : loop_(&loop), policy_(policy) {}
    ~combinator_scope() = default;

    void wake() noexcept {
        if (waiter_ && wake_condition()) {
            loop_->schedule(std::exchange(waiter_, {}), waiter_root_);
        }
    }

    // First failure of a group child: cancel the siblings and, unless it already
    // waits in join(), the group body (the task that owns the group).
    void group_failed() noexcept {
        if (group_aborted_) {
            return;
        }
        group_aborted_ = true;
        cancel_children();
        if (!owner_joining_ && owner_ && !owner_.done() &&
            !(loop_access::closing(*loop_) && !loop_->is_running())) {
            owner_cancel_requested_ = true;
            owner_.cancel();
        }
    }

    event_loop* loop_;
    std::vector<entry> entries_;
    std::vector<std::size_t> free_;      // group: reusable entry slots
    std::vector<std::size_t> completed_; // as_completed: indices in completion order
    std::vector<std::exception_ptr> errors_;
    std::exception_ptr taken_;
    std::optional<std::size_t> winner_;
    task_handle owner_;
    std::coroutine_handle<> waiter_;
    task_root* waiter_root_ = nullptr;
    std::size_t read_ = 0;
    std::size_t running_ = 0;
    std::uint32_t refs_ = 1;
    scope_policy policy_;
    bool parent_cancelled_ = false;
    bool cancelling_ = false;
    bool timed_out_ = false;
    bool wake_each_ = false;
    bool orphaned_ = false;
    bool group_aborted_ = false;
    bool owner_joining_ = false;
    bool owner_cancel_requested_ = false;
    bool start_cancelled_ = false;
};

inline scope_ref::scope_ref(combinator_scope* s) noexcept : s_(s) {}
inline scope_ref::scope_ref(const scope_ref& o) noexcept : s_(o.s_) {
    if (s_ != nullptr) {
        s_->add_ref();
    }
}
inline scope_ref::~scope_ref() {
    if (s_ != nullptr) {
        s_->release();
    }
}

// ---- the child wrapper ----------------------------------------------------------

/// Reports the end of a child to its scope exactly once.
class child_guard {
public:
    child_guard(combinator_scope& scope, std::size_t index, future_state_base* self) noexcept
        : scope_(&scope), self_(self), index_(index) {}
    child_guard(const child_guard&) = delete;
    child_guard& operator=(const child_guard&) = delete;
    ~child_guard() {
        if (!done_) {
            scope_->child_abandoned(index_);
        }
    }
    void finish(const std::exception_ptr& e) noexcept {
        done_ = true;
        if (scope_->child_finished(index_, e) && self_ != nullptr) {
            self_->mark_retrieved(); // the combinator rethrows it (or reports it)
        }
    }

private:
    combinator_scope* scope_;
    future_state_base* self_;
    std::size_t index_;
    bool done_ = false;
};

/// The body of every child task: awaits `aw` and reports to the scope in the same
/// step. A future is awaited as an lvalue: its value is copied (the caller's future
/// keeps it), or moved out when the type cannot be copied; anything else is awaited
/// as an rvalue.
template <class R, class A>
task<R> combinator_child(A aw, scope_ref scope, std::size_t index) {
    task_root* root = co_await current_root_awaiter{};
    // Every child runs as a loop task, whose root is its task_record.
    child_guard guard(*scope, index,
                      root != nullptr ? &static_cast<task_record*>(root)->state() : nullptr);
    try {
        // Cancelled before it ran (a sibling won or failed, the parent was cancelled):
        // the awaitable is never started. Started, an awaitable that completes without
        // suspending would finish with the cancel still pending, and the combinator
        // would then drop what it did (an item taken from a queue). Two kinds of child
        // keep running to their first suspension: a task_group child (a task's rule),
        // and wait_for's inner work, which stands for an inline await (wait_for
        // returns what it completes, see there).
        if (!scope->starts_cancelled_children() && root != nullptr && root->take_pending_cancel()) {
            throw cancelled_error();
        }
        if constexpr (std::is_void_v<R>) {
            if constexpr (is_future_v<A>) {
                co_await aw;
            } else {
                co_await std::move(aw);
            }
            guard.finish(nullptr);
        } else if constexpr (is_future_v<A> && std::is_copy_constructible_v<R>) {
            R value = co_await aw;
            guard.finish(nullptr);
            co_return static_cast<R&&>(value);
        } else if constexpr (is_future_v<A>) {
            R value = std::move(co_await aw);
            guard.finish(nullptr);
            co_return static_cast<R&&>(value);
        } else {
            R value = co_await std::move(aw);
            guard.finish(nullptr);
            co_return static_cast<R&&>(value);
        }
    } catch (...) {
        guard.finish(std::current_exception());
        throw;
    }
}

template <class R, class A>
future<R> combinator_scope::spawn(A aw, std::string name, corio::source_location where) {
    const bool fresh = free_.empty();
    const std::size_t i = fresh ? entries_.size() : free_.back();
    if (fresh) {
        entries_.emplace_back();
        if (policy_ == scope_policy::group) {
            free_.reserve(entries_.size()); // child_finished may then push without throwing
        }
    }
    std::optional<future<R>> f;
    try {
        add_ref(); // adopted by the child's scope_ref
        f.emplace(loop_->create_task(combinator_child<R>(std::move(aw), scope_ref(this), i),
                                     std::move(name), where));
    } catch (...) {
        if (fresh) {
            entries_.pop_back();
        }
        throw;
    }
    if (!fresh) {
        free_.pop_back();
    }
    entry& en = entries_[i];
    en.handle = f->as_task();
    en.running = true;
    en.cancel_sent = false;
    ++running_;
    if (cancelling_) {
        // A group that is shutting down still runs late children, cancelled at once.
        en.cancel_sent = true;
        en.handle.cancel();
    }
    return std::move(*f);
}

// ---- the parent's wait ------------------------------------------------------------

/// Suspends the parent until the scope's wake condition holds (every child finished,
/// or, for as_completed, one more finished). Optionally arms wait_for's deadline.
class scope_wait {
public:
    explicit scope_wait(combinator_scope& s) noexcept : scope_(&s) {
        slot_.on_cancel = &on_cancel;
        slot_.context = this;
    }
    scope_wait(combinator_scope& s, std::chrono::steady_clock::time_point deadline) noexcept
        : scope_wait(s) {
        timer_.deadline = deadline;
        timer_.fire = &on_fire;
        timer_.context = this;
        has_deadline_ = true;
    }
    scope_wait(const scope_wait&) = delete;
    scope_wait& operator=(const scope_wait&) = delete;
    ~scope_wait() {
        loop_access::remove_timer(scope_->loop(), timer_);
        if (suspended_) {
            scope_->clear_waiter(); // our frame is being destroyed (loop close)
        }
    }

    bool await_ready() const noexcept { return scope_->wake_condition(); }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        root_ = root_of(h);
        if (root_ != nullptr && root_->take_pending_cancel()) {
            if (scope_->running() == 0) {
                root_->repost_cancel(); // nothing left to cancel: deliver it later
                return false;
            }
            scope_->cancel_from_parent();
            if (scope_->policy() == scope_policy::shield) {
                return false;
            }
        }
        if (scope_->wake_condition()) {
            return false;
        }
        if (has_deadline_) {
            loop_access::add_timer(scope_->loop(), timer_);
        }
        scope_->set_waiter(h, root_);
        suspended_ = true;
        if (root_ != nullptr) {
            root_->arm(slot_);
        }
        return true;
    }
    void await_resume() noexcept {
        if (suspended_) {
            suspended_ = false;
            if (root_ != nullptr) {
                root_->disarm();
            }
            scope_->clear_waiter();
        }
        loop_access::remove_timer(scope_->loop(), timer_);
        if (late_cancel_ && root_ != nullptr) {
            root_->repost_cancel();
        }
    }

private:
    static void on_cancel(cancel_slot& slot) noexcept {
        auto* self = static_cast<scope_wait*>(slot.context);
        combinator_scope& s = *self->scope_;
        if (s.running() == 0) {
            // Everything finished and we are about to resume: keep the result and
            // let the cancel land at the next suspension point.
            self->late_cancel_ = true;
            return;
        }
        s.cancel_from_parent();
        if (s.policy() == scope_policy::shield) {
            s.wake_now();
        }
    }
    static void on_fire(timer_node& n) noexcept {
        auto* self = static_cast<scope_wait*>(n.context);
        self->scope_->time_out();
    }

    combinator_scope* scope_;
    task_root* root_ = nullptr;
    cancel_slot slot_;
    timer_node timer_;
    bool has_deadline_ = false;
    bool suspended_ = false;
    bool late_cancel_ = false;
};

} // namespace corio::detail
