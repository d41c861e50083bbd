#pragma once
// The suspended side of queues and synchronization primitives: a `waiter` lives in
// the awaiting frame (inside the awaitable), is linked into the primitive's FIFO
// list while it waits, and follows the cancellation protocol of detail/cancel.hpp.
//
// A waiter goes idle -> waiting -> granted -> done. `grant` unlinks it and schedules
// its coroutine; what it was granted (an item, the lock, a permit) is recorded by
// the primitive in the derived awaiter before the grant.
//
// A cancel request arriving:
//   - while waiting: the waiter is unlinked and resumed; await_resume throws.
//   - after the grant, before the coroutine resumed: if the waiter has an
//     `abandon` hook, cancellation wins: the hook hands the grant on (puts the item
//     back, passes the lock or permit to the next waiter) and await_resume throws.
//     Without a hook, completion wins: await_resume returns normally and reposts
//     the cancel so that it lands at the next suspension point.
// A frame destroyed while granted (loop teardown) also abandons the grant; the
// waiter is therefore declared LAST in its awaitable, so that what `abandon` hands
// on (an item) is still alive when the waiter's destructor runs.

#include <corio/detail/assert.hpp>
#include <corio/detail/cancel.hpp>
#include <corio/detail/intrusive_list.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>

#include <coroutine>

namespace corio::detail {

struct waiter {
    enum class state : unsigned char { idle, waiting, granted, done };

    waiter() noexcept {
        hook.owner = this;
        slot.on_cancel = &on_cancel;
        slot.context = this;
    }
    waiter(void (*abandon_hook)(waiter&) noexcept, void* ctx) noexcept : waiter() {
        abandon = abandon_hook;
        context = ctx;
    }
    /// Moves an idle waiter (an awaitable not awaited yet, moved into a combinator):
    /// the hook and context are kept; an awaitable whose context is itself re-seats it.
    waiter(waiter&& other) noexcept : waiter(other.abandon, other.context) {
        CORIO_ASSERT(other.st == state::idle && !other.hook.linked(),
                     "a corio awaitable was moved while it was being awaited");
    }
    waiter(const waiter&) = delete;
    waiter& operator=(const waiter&) = delete;
    ~waiter() {
        if (st == state::waiting) {
            hook.unlink();
        } else if (st == state::granted && !cancelled && abandon != nullptr) {
            abandon(*this);
        }
        if (hook.linked()) {
            hook.unlink(); // a primitive's list of granted waiters (queue getters)
        }
    }

    /// Links the waiter into `list` and arms cancellation; false (do not suspend) if
    /// a cancel was pending, in which case finish() throws.
    template <class Promise>
    bool suspend(list_hook& list, std::coroutine_handle<Promise> h) noexcept {
        root = root_of(h);
        if (root != nullptr && root->take_pending_cancel()) {
            cancelled = true;
            st = state::done;
            return false;
        }
        loop = running_loop;
        CORIO_ASSERT(loop != nullptr, "awaiting a corio queue or primitive without a running loop");
        coroutine = h;
        list.push_back(hook);
        st = state::waiting;
        if (root != nullptr) {
            root->arm(slot);
        }
        return true;
    }

    /// Called in await_resume: disarms, throws cancelled_error if cancellation won,
    /// reposts a cancel that lost the race against the grant.
    void finish() {
        if (st == state::idle) {
            return; // completed without suspending
        }
        if (root != nullptr && st != state::done) {
            root->disarm();
        }
        st = state::done;
        if (cancelled) {
            throw cancelled_error();
        }
        if (slot.requested && root != nullptr) {
            root->repost_cancel();
        }
    }

    bool is_waiting() const noexcept { return st == state::waiting; }

    list_hook hook;
    std::coroutine_handle<> coroutine;
    task_root* root = nullptr;
    event_loop* loop = nullptr;
    cancel_slot slot;
    void (*abandon)(waiter&) noexcept = nullptr;
    void* context = nullptr; // the awaitable embedding this waiter (for `abandon`)
    state st = state::idle;
    bool cancelled = false;

private:
    static void on_cancel(cancel_slot& s) noexcept {
        waiter& w = *static_cast<waiter*>(s.context);
        if (w.st == state::waiting) {
            w.hook.unlink();
            w.cancelled = true;
            w.st = state::granted;
            w.loop->schedule(w.coroutine, w.root);
        } else if (w.st == state::granted && !w.cancelled && w.abandon != nullptr) {
            w.cancelled = true;
            w.abandon(w);
        }
    }
};

/// Unlinks `w` from its list and schedules it (the primitive recorded the grant).
inline void grant(waiter& w) noexcept {
    w.hook.unlink();
    w.st = waiter::state::granted;
    w.loop->schedule(w.coroutine, w.root);
}

/// The first waiter of a non-empty list.
inline waiter& front(list_hook& list) noexcept {
    return *static_cast<waiter*>(list.first_owner());
}

/// Leaves every waiter of a dying primitive unlinked (they wait until cancelled).
inline void detach_all(list_hook& list) noexcept {
    while (!list.empty()) {
        list.next->unlink();
    }
}

/// A no-op abandon hook: cancellation wins, nothing to hand on (event, notify_all).
inline void abandon_nothing(waiter&) noexcept {}

} // namespace corio::detail
