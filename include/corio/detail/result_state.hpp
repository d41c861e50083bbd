#pragma once
// The shared state behind `async_result<R>` (async_result.hpp): reference counting
// (`ref_counted`, `ref_ptr`), the completion word that threads sleep on (a futex) and
// tasks await (posted to their loop), and `result_state<R>`, which producers (the pool
// backends) complete from any thread with `set_value`, `set_exception` or
// `set_terminated`; the first completion wins, later ones are ignored.

#include <corio/detail/futex.hpp>
#include <corio/detail/cancel.hpp>
#include <corio/detail/remote.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/pool.hpp>

#include <atomic>
#include <cassert>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

namespace corio {

namespace detail {

/// Intrusive reference count with a virtual destructor: pool jobs and result
/// states are shared between the caller, the queue, a worker and the result thread.
class ref_counted {
public:
    ref_counted(const ref_counted&) = delete;
    ref_counted& operator=(const ref_counted&) = delete;

    void retain(std::size_t n = 1) noexcept {
        refs_.fetch_add(static_cast<std::uint32_t>(n), std::memory_order_relaxed);
    }
    void release() noexcept {
        if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            delete this;
        }
    }

protected:
    ref_counted() = default;
    virtual ~ref_counted() = default;

private:
    // 32 bits: a pool holds one reference per queued chunk, and a derived state's
    // first member (result_state_base's word) fits in the rest of the 16 bytes.
    std::atomic<std::uint32_t> refs_{1};
};

/// Owning pointer to a `ref_counted` object (adopts the reference it is given).
template <class T>
class ref_ptr {
public:
    ref_ptr() = default;
    explicit ref_ptr(T* adopted) noexcept : p_(adopted) {}
    ref_ptr(const ref_ptr& o) noexcept : p_(o.p_) {
        if (p_ != nullptr) {
            p_->retain();
        }
    }
    ref_ptr(ref_ptr&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    ref_ptr& operator=(ref_ptr o) noexcept {
        std::swap(p_, o.p_);
        return *this;
    }
    ~ref_ptr() {
        if (p_ != nullptr) {
            p_->release();
        }
    }
    T* get() const noexcept { return p_; }
    T* operator->() const noexcept { return p_; }
    T& operator*() const noexcept { return *p_; }
    explicit operator bool() const noexcept { return p_ != nullptr; }
    T* detach() noexcept { return std::exchange(p_, nullptr); }

private:
    T* p_ = nullptr;
};

class result_state_base;

/// The remote node a completing thread posts to the awaiting loop; a base of
/// result_state_base, so the node needs no pointer back to its state.
struct result_post_hook {
    remote_node result_post_node;
};

/// One suspended `co_await` on a result; lives in the awaiting coroutine's frame.
/// Touched only on its loop's thread.
struct result_awaiter_node : cancel_slot {
    result_state_base* state = nullptr;
    event_loop* loop = nullptr;
    std::coroutine_handle<> handle;
    task_root* root = nullptr;
    result_awaiter_node* prev = nullptr;
    result_awaiter_node* next = nullptr;
    bool registered = false; // in the state's awaiter list at some point
    bool scheduled = false;  // its handle was handed to loop->schedule()
    bool cancelled_early = false;
    bool conflict = false; // another loop is already awaiting this result
};

/// The completion state machine shared by every `async_result<R>`.
///
/// `word_` holds the bits below. A producer sets `ready` or `terminated` once
/// (compare-exchange, first wins). Waiting threads set `sleepers` and sleep on the
/// word (futex); the completing thread wakes them only if the bit is set. A loop
/// that awaits sets `awaiting` after storing its loop pointer; the completing thread,
/// seeing `awaiting` in the word it replaced, posts its node (`result_post_hook`) to that loop
/// (with a reference to the state, so the node outlives every awaiter's frame) and then sets
/// `posted`. The awaiters themselves are in a list touched only on the loop's thread:
/// a cancelled awaiter unlinks itself, and when the list becomes empty clears
/// `awaiting` again unless a completion already claimed it, in which case the posted
/// node arrives later, finds nobody and just drops its reference. So no node is ever
/// posted for a frame that is gone, and no frame is resumed twice. The node, when it
/// runs, waits for `posted` before resuming anyone: the completing thread has then left
/// `post_remote`, so a resumed task cannot end its loop while that call still runs.
class result_state_base : public ref_counted, private result_post_hook {
public:
    static constexpr std::uint32_t ready_bit = 1;
    static constexpr std::uint32_t terminated_bit = 2;
    static constexpr std::uint32_t awaiting_bit = 4;
    static constexpr std::uint32_t sleepers_bit = 8;
    static constexpr std::uint32_t posted_bit = 16;
    static constexpr std::uint32_t done_bits = ready_bit | terminated_bit;

    /// Completes with an exception. Any thread. False if already completed.
    bool set_exception(std::exception_ptr e) noexcept {
        if (done()) {
            return false;
        }
        error_ = std::move(e);
        return finish(ready_bit);
    }
    /// The pool was terminated: waiters and awaiters get `pool_terminated`, `ready()`
    /// stays false. Any thread. False if already completed.
    bool set_terminated() noexcept { return finish(terminated_bit); }

    /// Completed (value, exception or terminated).
    bool done() const noexcept { return (word_.load(std::memory_order_acquire) & done_bits) != 0; }
    bool is_ready() const noexcept {
        return (word_.load(std::memory_order_acquire) & ready_bit) != 0;
    }
    bool is_terminated() const noexcept {
        return (word_.load(std::memory_order_acquire) & terminated_bit) != 0;
    }
    bool has_error() const noexcept { return static_cast<bool>(error_); }

    /// Blocks the calling thread until done() or the deadline; returns done().
    bool wait_until(const std::chrono::steady_clock::time_point* deadline) const noexcept {
        std::uint32_t w = word_.load(std::memory_order_acquire);
        if ((w & done_bits) != 0 || spin_until_done()) {
            return true;
        }
        w = word_.load(std::memory_order_acquire);
        while ((w & done_bits) == 0) {
            if ((w & sleepers_bit) == 0) {
                if (!word_.compare_exchange_weak(w, w | sleepers_bit, std::memory_order_acquire)) {
                    continue;
                }
                w |= sleepers_bit;
            }
            if (deadline != nullptr && std::chrono::steady_clock::now() >= *deadline) {
                return false;
            }
            futex_wait(word_, w, deadline);
            w = word_.load(std::memory_order_acquire);
        }
        return true;
    }

    /// Throws what a finished, unsuccessful state holds (the stored exception or
    /// `pool_terminated`). Precondition: done().
    void rethrow_if_failed() const {
        if ((word_.load(std::memory_order_acquire) & terminated_bit) != 0) {
            throw pool_terminated();
        }
        if (error_) {
            std::rethrow_exception(error_);
        }
    }

    /// Loop thread. Links `a` (handle, loop, state set) as an awaiter; false if it must
    /// not suspend (already done, or awaited from another loop: `a.conflict`).
    bool register_awaiter(result_awaiter_node& a) noexcept {
        std::uint32_t w = word_.load(std::memory_order_acquire);
        for (;;) {
            if ((w & done_bits) != 0) {
                return false;
            }
            if ((w & awaiting_bit) != 0) {
                // Set by this loop (list non-empty) or by another loop's thread.
                if (loop_.load(std::memory_order_relaxed) != a.loop) {
                    a.conflict = true;
                    return false;
                }
                link(a);
                return true;
            }
            loop_.store(a.loop, std::memory_order_relaxed);
            if (word_.compare_exchange_weak(w, w | awaiting_bit, std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
                link(a);
                return true;
            }
        }
    }

    /// Loop thread. Unlinks a registered, not yet scheduled awaiter. With
    /// `frame_dying`, also waits until an in-flight completion has handed its node to
    /// the loop, so that the loop (not this frame) is what it touches afterwards.
    void unregister_awaiter(result_awaiter_node& a, bool frame_dying) noexcept {
        unlink(a);
        if (head_ != nullptr) {
            return;
        }
        std::uint32_t w = word_.load(std::memory_order_acquire);
        while ((w & done_bits) == 0) {
            if (word_.compare_exchange_weak(w, w & ~awaiting_bit, std::memory_order_acq_rel,
                                            std::memory_order_acquire)) {
                return;
            }
        }
        // A completion claimed `awaiting`: its node is (being) posted to this loop.
        if (frame_dying && (w & awaiting_bit) != 0) {
            wait_posted();
        }
    }

protected:
    result_state_base() noexcept { result_post_node.run = &on_posted; }

    /// Sets `bit` (ready or terminated) unless already done, wakes sleepers and posts
    /// to the awaiting loop. The caller must hold a reference across the call.
    bool finish(std::uint32_t bit) noexcept {
        std::uint32_t w = word_.load(std::memory_order_relaxed);
        do {
            if ((w & done_bits) != 0) {
                return false;
            }
        } while (!word_.compare_exchange_weak(w, w | bit, std::memory_order_acq_rel,
                                              std::memory_order_relaxed));
        if ((w & awaiting_bit) != 0) {
            retain(); // released by on_posted
            loop_.load(std::memory_order_relaxed)->post_remote(result_post_node);
            word_.fetch_or(posted_bit, std::memory_order_release);
        }
        if ((w & sleepers_bit) != 0) {
            futex_wake_all(word_);
        }
        return true;
    }

    std::exception_ptr error_;

private:
    /// Spins a little (a few microseconds) for a completion before a waiter sleeps: a
    /// short call then costs neither side a system call. Kept out of line: the
    /// perf-budget check leaves functions named *spin* out of its counts.
    [[gnu::noinline]] bool spin_until_done() const noexcept {
        for (int i = 0; i < wait_spins; ++i) {
            if ((word_.load(std::memory_order_acquire) & done_bits) != 0) {
                return true;
            }
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        return false;
    }
    static constexpr int wait_spins = 200;

    /// Spins until the completing thread returned from post_remote (a few
    /// instructions and one eventfd write away once `awaiting` was claimed).
    void wait_posted() const noexcept {
        for (unsigned spins = 0; (word_.load(std::memory_order_acquire) & posted_bit) == 0;
             ++spins) {
            if (spins >= 64) {
                std::this_thread::yield();
            }
        }
    }

    void link(result_awaiter_node& a) noexcept {
        a.prev = tail_;
        a.next = nullptr;
        if (tail_ != nullptr) {
            tail_->next = &a;
        } else {
            head_ = &a;
        }
        tail_ = &a;
        a.registered = true;
    }
    void unlink(result_awaiter_node& a) noexcept {
        (a.prev != nullptr ? a.prev->next : head_) = a.next;
        (a.next != nullptr ? a.next->prev : tail_) = a.prev;
        a.prev = a.next = nullptr;
    }

    static void on_posted(remote_node& n) noexcept {
        // `n` is the first member of a standard-layout result_post_hook.
        auto* self = static_cast<result_state_base*>(reinterpret_cast<result_post_hook*>(&n));
        // The posting thread may still be inside post_remote (ringing the loop's
        // doorbell). Resume nobody before it left: a resumed task could finish and
        // the loop be destroyed under it.
        self->wait_posted();
        result_awaiter_node* a = std::exchange(self->head_, nullptr);
        self->tail_ = nullptr;
        while (a != nullptr) {
            result_awaiter_node* next = a->next;
            a->prev = a->next = nullptr;
            a->scheduled = true;
            a->loop->schedule(a->handle, a->root);
            a = next;
        }
        self->release();
    }

    mutable std::atomic<std::uint32_t> word_{0};
    std::atomic<event_loop*> loop_{nullptr};
    result_awaiter_node* head_ = nullptr; // awaiting loop's thread only
    result_awaiter_node* tail_ = nullptr;
};

/// The shared state of `async_result<R>` with its value slot.
template <class R>
class result_state : public result_state_base {
public:
    /// Completes with a value constructed from `a...`. Any thread, once.
    template <class... A>
    bool set_value(A&&... a) {
        if (done()) {
            return false;
        }
        value_.emplace(std::forward<A>(a)...);
        return finish(ready_bit);
    }
    /// The value slot, for producers that fill it in place before `publish()`.
    std::optional<R>& slot() noexcept { return value_; }
    /// Completes with the value already in `slot()`. Any thread, once.
    bool publish() noexcept { return finish(ready_bit); }

    /// Precondition: done().
    const R& value() const {
        rethrow_if_failed();
        return *value_;
    }
    /// Precondition: done(). Moves the value out.
    R take() {
        rethrow_if_failed();
        return std::move(*value_);
    }

private:
    std::optional<R> value_;
};

template <>
class result_state<void> : public result_state_base {
public:
    bool set_value() noexcept { return finish(ready_bit); }
    bool publish() noexcept { return finish(ready_bit); }
    void value() const { rethrow_if_failed(); }
    void take() { rethrow_if_failed(); }
};

/// `co_await` on an async_result. Immovable, lives in the awaiting frame.
template <class R, bool Move>
class result_awaiter {
public:
    explicit result_awaiter(result_state<R>& s) : state_(&s) {
        node_.on_cancel = &on_cancel;
        node_.state = &s;
        if (!s.done()) {
            node_.loop = &get_running_loop();
        }
    }
    result_awaiter(const result_awaiter&) = delete;
    result_awaiter& operator=(const result_awaiter&) = delete;
    ~result_awaiter() {
        if (node_.registered && !node_.scheduled) {
            state_->unregister_awaiter(node_, true);
        }
    }

    bool await_ready() const noexcept { return state_->done(); }

    template <class Promise>
    bool await_suspend(std::coroutine_handle<Promise> h) noexcept {
        node_.root = root_of(h);
        if (node_.root != nullptr && node_.root->take_pending_cancel()) {
            node_.cancelled_early = true;
            return false;
        }
        node_.handle = h;
        if (!state_->register_awaiter(node_)) {
            return false;
        }
        if (node_.root != nullptr) {
            node_.root->arm(node_);
        }
        return true;
    }

    decltype(auto) await_resume() {
        if (node_.root != nullptr) {
            node_.root->disarm();
        }
        if (node_.cancelled_early) {
            throw cancelled_error();
        }
        if (node_.conflict) {
            throw invalid_state_error(
                "corio: this async_result is already awaited on another loop");
        }
        if (!state_->done()) {
            throw cancelled_error(); // resumed by on_cancel before the result came
        }
        if (node_.requested && node_.root != nullptr) {
            node_.root->repost_cancel(); // completed anyway: deliver the cancel later
        }
        if constexpr (Move) {
            return state_->take();
        } else {
            return state_->value();
        }
    }

private:
    static void on_cancel(cancel_slot& slot) noexcept {
        auto& a = static_cast<result_awaiter_node&>(slot);
        if (a.scheduled) {
            return; // the result's node already scheduled the resumption
        }
        a.state->unregister_awaiter(a, false);
        a.scheduled = true;
        a.loop->schedule(a.handle, a.root);
    }

    result_state<R>* state_;
    result_awaiter_node node_;
};

/// `now + timeout` on the steady clock, or no deadline when that would overflow.
template <class Rep, class Period>
std::optional<std::chrono::steady_clock::time_point>
deadline_after(std::chrono::duration<Rep, Period> timeout) noexcept {
    using clock = std::chrono::steady_clock;
    const auto now = clock::now();
    if (timeout <= timeout.zero()) {
        return now;
    }
    const std::chrono::duration<double> left = clock::time_point::max() - now;
    if (std::chrono::duration<double>(timeout) >= left) {
        return std::nullopt;
    }
    return now + std::chrono::ceil<clock::duration>(timeout);
}

template <class R>
ref_ptr<result_state<R>> make_result_state() {
    return ref_ptr<result_state<R>>(new result_state<R>());
}

} // namespace detail

} // namespace corio
