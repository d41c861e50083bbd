#pragma once
// Waking a task of some loop from any thread, for states guarded by a mutex: a
// `cross_waiter` lives in the waiting coroutine's frame and is linked in the state's
// `cross_waiter_list` under the state's mutex; a producer signals it (posts it to the
// waiter's loop) under that mutex; `cross_wait` is the awaiter that suspends a task
// until the state is ready, cancellation included. Used by threadsafe_queue,
// concurrent_future and imap_result::next.

#include <corio/detail/cancel.hpp>
#include <corio/detail/remote.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>

#include <coroutine>
#include <mutex>
#include <utility>

namespace corio::detail {

/// A coroutine of some loop waiting for a cross-thread state; lives in its frame.
/// Linked in the state's list under the state's mutex; resumed by posting `node` to
/// its loop.
struct cross_waiter : remote_node {
    cross_waiter* prev = nullptr;
    cross_waiter* next_waiter = nullptr;
    event_loop* loop = nullptr;
    std::coroutine_handle<> coroutine;
    task_root* root = nullptr;
    bool linked = false;
    bool signalled = false; // posted (or about to be): it will be resumed by the node
};

/// A FIFO list of cross_waiters; every member is called under the owner's mutex.
class cross_waiter_list {
public:
    bool empty() const noexcept { return head_ == nullptr; }
    void push(cross_waiter& w) noexcept {
        w.linked = true;
        w.next_waiter = nullptr;
        w.prev = tail_;
        (tail_ != nullptr ? tail_->next_waiter : head_) = &w;
        tail_ = &w;
    }
    void unlink(cross_waiter& w) noexcept {
        if (!w.linked) {
            return;
        }
        (w.prev != nullptr ? w.prev->next_waiter : head_) = w.next_waiter;
        (w.next_waiter != nullptr ? w.next_waiter->prev : tail_) = w.prev;
        w.prev = w.next_waiter = nullptr;
        w.linked = false;
    }
    /// Unlinks the first waiter and posts it to its loop; false if none.
    bool signal_one() noexcept {
        if (head_ == nullptr) {
            return false;
        }
        cross_waiter& w = *head_;
        unlink(w);
        post(w);
        return true;
    }
    void signal_all() noexcept {
        while (signal_one()) {
        }
    }
    static void post(cross_waiter& w) noexcept {
        w.signalled = true;
        w.run = [](remote_node& n) noexcept {
            auto& self = static_cast<cross_waiter&>(n);
            self.loop->schedule(self.coroutine, self.root);
        };
        w.loop->post_remote(w);
    }

private:
    cross_waiter* head_ = nullptr;
    cross_waiter* tail_ = nullptr;
};

/// Suspends a task until `ready()` holds (checked under `mutex`) or it is signalled
/// from `list`; a cancelled waiter that was already signalled passes the signal on.
template <class Ready>
class cross_wait {
public:
    cross_wait(std::mutex& mutex, cross_waiter_list& list, Ready ready) noexcept
        : mutex_(&mutex), list_(&list), ready_(std::move(ready)) {
        slot_.on_cancel = &on_cancel;
        slot_.context = this;
    }
    cross_wait(const cross_wait&) = delete;
    cross_wait& operator=(const cross_wait&) = delete;
    ~cross_wait() {
        std::lock_guard guard(*mutex_);
        list_->unlink(waiter_);
    }
    bool await_ready() const noexcept { return false; }
    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) {
        waiter_.root = root_of(h);
        waiter_.coroutine = h;
        waiter_.loop = &get_running_loop();
        if (waiter_.root != nullptr && waiter_.root->take_pending_cancel()) {
            cancelled_ = true;
            return false;
        }
        std::lock_guard guard(*mutex_);
        if (ready_()) {
            return false;
        }
        list_->push(waiter_);
        if (waiter_.root != nullptr) {
            waiter_.root->arm(slot_);
        }
        return true;
    }
    void await_resume() {
        if (waiter_.root != nullptr) {
            waiter_.root->disarm();
        }
        if (cancelled_ || slot_.requested) {
            std::lock_guard guard(*mutex_);
            if (waiter_.signalled) {
                list_->signal_one(); // the wake-up was meant for somebody: pass it on
            }
            throw cancelled_error();
        }
    }

private:
    static void on_cancel(cancel_slot& slot) noexcept {
        auto& self = *static_cast<cross_wait*>(slot.context);
        std::lock_guard guard(*self.mutex_);
        if (self.waiter_.linked) {
            self.list_->unlink(self.waiter_);
            self.waiter_.loop->schedule(self.waiter_.coroutine, self.waiter_.root);
        }
        // otherwise it was signalled: the posted node resumes it
    }

    std::mutex* mutex_;
    cross_waiter_list* list_;
    Ready ready_;
    cross_waiter waiter_;
    cancel_slot slot_;
    bool cancelled_ = false;
};

} // namespace corio::detail
