// The thread backend of basic_pool: worker threads over one FIFO queue fed by a
// lock-free inbox, a lazily started result thread for callbacks, close / terminate /
// join with Python's meaning.

#include "loop/signal_mask.hpp"
#include "pool/backend_core.hpp"

#include <corio/detail/futex.hpp>
#include <corio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <latch>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace corio::detail {

namespace {
// The pool whose worker or result thread this is (none on other threads).
thread_local const thread_pool_core* current_core = nullptr;
} // namespace

class thread_pool_core {
public:
    thread_pool_core(std::size_t workers, pool_options options)
        : options_(std::move(options)), workers_(workers) {}

    const pool_options& options() const noexcept { return options_; }

    /// Starts the threads; on failure (thread creation, initializer) stops, joins and
    /// rethrows.
    void start() {
        const bool has_init = static_cast<bool>(options_.initializer);
        std::latch started(static_cast<std::ptrdiff_t>(workers_.size()));
        std::size_t launched = 0;
        try {
            for (std::size_t i = 0; i < workers_.size(); ++i) {
                signals_blocked_scope masked; // the worker inherits the blocked mask
                workers_[i].thread = std::thread([this, i, has_init, &started] {
                    current_core = this;
                    if (has_init) {
                        try {
                            options_.initializer();
                        } catch (...) {
                            std::lock_guard lock(mutex_);
                            if (!init_error_) {
                                init_error_ = std::current_exception();
                            }
                        }
                        started.count_down();
                    }
                    worker_main(workers_[i]);
                });
                ++launched;
            }
        } catch (...) {
            if (has_init) {
                started.count_down(static_cast<std::ptrdiff_t>(workers_.size() - launched));
                started.wait();
            }
            terminate();
            join();
            throw;
        }
        if (has_init) {
            started.wait();
            std::exception_ptr err;
            {
                std::lock_guard lock(mutex_);
                err = init_error_;
            }
            if (err) {
                terminate();
                join();
                std::rethrow_exception(err);
            }
        }
    }

    /// Queues the chain `first` .. `last` (linked by `next`) as one batch, in order.
    /// Lock-free unless it must start the result thread: one compare-exchange on the
    /// inbox, and a wake-up only if a worker sleeps and none is searching.
    void submit(work_item& first, work_item& last, bool needs_result_thread) {
        if (needs_result_thread && !result_thread_started_.load(std::memory_order_acquire)) {
            start_result_thread();
        }
        // The inbox is a stack (newest first): link the batch newest first too, so that
        // reversing the inbox when it is drained restores submission order.
        work_item* rev_first = &first;
        work_item* rev_last = &first;
        if (&first != &last) {
            work_item* prev = nullptr;
            work_item* cur = &first;
            for (;;) {
                work_item* next = cur->next;
                cur->next = prev;
                prev = cur;
                if (cur == &last) {
                    break;
                }
                cur = next;
            }
            rev_first = &last;
        }
        std::uintptr_t h = inbox_.load(std::memory_order_relaxed);
        do {
            if (h == closed_tag) {
                throw pool_not_running();
            }
            rev_last->next = reinterpret_cast<work_item*>(h);
        } while (!inbox_.compare_exchange_weak(h, reinterpret_cast<std::uintptr_t>(rev_first),
                                               std::memory_order_seq_cst,
                                               std::memory_order_relaxed));
        if (h == 0) {
            // The inbox was empty. Otherwise an earlier submission found it empty and
            // woke a worker (or saw one searching, which drains the whole inbox).
            wake_one();
        }
    }

    void check_running() const {
        if (inbox_.load(std::memory_order_acquire) == closed_tag) {
            throw pool_not_running();
        }
    }

    void post_result(work_item& item) noexcept {
        item.owner->retain();
        bool queued = false;
        bool wake = false;
        {
            std::lock_guard lock(result_mutex_);
            if (!result_terminated_) {
                item.next = nullptr;
                if (result_tail_ != nullptr) {
                    result_tail_->next = &item;
                } else {
                    result_head_ = &item;
                }
                result_tail_ = &item;
                queued = true;
                wake = result_waiting_;
            }
        }
        if (!queued) {
            // Terminated: the job was abandoned already; drop the new reference.
            item.owner->release();
        } else if (wake) {
            result_cv_.notify_one();
        }
    }

    void close() noexcept {
        {
            std::lock_guard lock(mutex_);
            if (state_ != run_state::running) {
                return;
            }
            state_ = run_state::closed;
            stopping_.store(true, std::memory_order_seq_cst);
            // From here on every submission throws; what came before runs.
            append(inbox_.exchange(closed_tag, std::memory_order_seq_cst));
        }
        wake_all();
    }

    void terminate() noexcept {
        work_item* dropped = nullptr;
        {
            std::lock_guard lock(mutex_);
            if (state_ == run_state::terminated) {
                return;
            }
            state_ = run_state::terminated;
            stopping_.store(true, std::memory_order_seq_cst);
            const std::uintptr_t inbox = inbox_.exchange(closed_tag, std::memory_order_seq_cst);
            if (inbox != closed_tag) {
                append(inbox);
            }
            dropped = std::exchange(head_, nullptr);
            tail_ = nullptr;
            has_work_.store(false, std::memory_order_relaxed);
            for (worker& w : workers_) {
                if (w.current != nullptr) {
                    w.current->ops->abandon(*w.current);
                }
            }
        }
        wake_all();
        work_item* results = nullptr;
        {
            std::lock_guard lock(result_mutex_);
            result_terminated_ = true;
            results = std::exchange(result_head_, nullptr);
            result_tail_ = nullptr;
            if (result_current_ != nullptr) {
                result_current_->ops->abandon(*result_current_);
            }
        }
        result_cv_.notify_all();
        for (work_item* list : {dropped, results}) {
            while (list != nullptr) {
                work_item* next = list->next;
                list->ops->abandon(*list);
                list->owner->release();
                list = next;
            }
        }
    }

    void join() {
        {
            std::lock_guard lock(mutex_);
            if (state_ == run_state::running) {
                throw invalid_state_error(
                    "corio: join() on a running pool; call close() or terminate() first");
            }
        }
        std::lock_guard join_lock(join_mutex_);
        if (joined_) {
            return;
        }
        for (worker& w : workers_) {
            if (w.thread.joinable()) {
                w.thread.join();
            }
        }
        // No worker posts any more; the result thread drains its queue and exits.
        std::thread result_thread;
        {
            std::scoped_lock lock(mutex_, result_mutex_);
            result_stop_ = true;
            result_thread = std::move(result_thread_);
        }
        result_cv_.notify_all();
        if (result_thread.joinable()) {
            result_thread.join();
        }
        joined_ = true;
    }

    /// True on one of this pool's workers or on its result thread.
    bool on_own_thread() const noexcept { return current_core == this; }

    bool running() const noexcept { return inbox_.load(std::memory_order_acquire) != closed_tag; }

private:
    enum class run_state { running, closed, terminated };

    struct worker {
        std::thread thread;
        work_item* current = nullptr; // guarded by mutex_
    };

    static constexpr std::uintptr_t closed_tag = 1; // inbox_: no more submissions

    /// Under mutex_: appends the inbox stack `h` (newest first) to the queue, oldest
    /// first.
    void append(std::uintptr_t h) noexcept {
        if (h == 0 || h == closed_tag) {
            return;
        }
        work_item* newest = reinterpret_cast<work_item*>(h);
        work_item* oldest = nullptr;
        for (work_item* cur = newest; cur != nullptr;) {
            work_item* next = cur->next;
            cur->next = oldest;
            oldest = cur;
            cur = next;
        }
        (tail_ != nullptr ? tail_->next : head_) = oldest;
        tail_ = newest;
        has_work_.store(true, std::memory_order_seq_cst); // seen by sleep_for_work
    }

    /// Work a worker could take: queued, or in the inbox (or the pool stops).
    bool work_visible() const noexcept {
        const std::uintptr_t h = inbox_.load(std::memory_order_seq_cst);
        return (h != 0 && h != closed_tag) || has_work_.load(std::memory_order_seq_cst) ||
               stopping_.load(std::memory_order_seq_cst);
    }

    /// Wakes one sleeping worker, unless none sleeps or one is searching (it will find
    /// the work without a system call). A sleeper is claimed by decrementing `idle_`
    /// and woken by a token in `tokens_`, so that a burst of submissions wakes each
    /// sleeper once.
    void wake_one() noexcept {
        std::uint32_t n = idle_.load(std::memory_order_seq_cst);
        while (n != 0) {
            if (searching_.load(std::memory_order_seq_cst) != 0) {
                return;
            }
            if (idle_.compare_exchange_weak(n, n - 1, std::memory_order_seq_cst)) {
                tokens_.fetch_add(1, std::memory_order_seq_cst);
                futex_wake_one(tokens_);
                return;
            }
        }
    }

    /// Wakes every sleeping worker (close, terminate: `stopping_` is set).
    void wake_all() noexcept {
        const std::uint32_t n = idle_.exchange(0, std::memory_order_seq_cst);
        if (n != 0) {
            tokens_.fetch_add(n, std::memory_order_seq_cst);
            futex_wake_all(tokens_);
        }
    }

    /// Without the lock: sleeps until a submission (or close / terminate) wakes this
    /// worker, unless work shows up first.
    void sleep_for_work() noexcept {
        idle_.fetch_add(1, std::memory_order_seq_cst);
        if (work_visible()) {
            // Take back the announcement; if a waker claimed it already, its token
            // is on the way and is consumed below.
            std::uint32_t n = idle_.load(std::memory_order_seq_cst);
            while (n != 0) {
                if (idle_.compare_exchange_weak(n, n - 1, std::memory_order_seq_cst)) {
                    return;
                }
            }
        }
        for (;;) {
            std::uint32_t t = tokens_.load(std::memory_order_seq_cst);
            if (t != 0) {
                if (tokens_.compare_exchange_weak(t, t - 1, std::memory_order_seq_cst)) {
                    return;
                }
                continue;
            }
            futex_wait(tokens_, 0, nullptr);
        }
    }

    /// Spins briefly, without the lock, until work shows up or the pool stops. Kept
    /// out of line: the perf-budget check leaves functions named *spin* out of its
    /// instruction counts (how long a spin lasts depends on timing, not on the code).
    [[gnu::noinline]] bool spin_for_work() const noexcept {
        for (int i = 0; i < search_spins; ++i) {
            const std::uintptr_t h = inbox_.load(std::memory_order_relaxed);
            if ((h != 0 && h != closed_tag) || has_work_.load(std::memory_order_relaxed) ||
                stopping_.load(std::memory_order_relaxed)) {
                return true;
            }
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        return false;
    }

    /// Under mutex_: the next item to run, or null when this worker should exit.
    /// Unlocks (and relocks) `lock` to search and to sleep.
    work_item* next_item(std::unique_lock<std::mutex>& lock) noexcept {
        bool searched = false;
        for (;;) {
            if (state_ == run_state::terminated) {
                return nullptr;
            }
            if (head_ == nullptr && state_ == run_state::running) {
                append(inbox_.exchange(0, std::memory_order_acquire));
            }
            if (head_ != nullptr) {
                work_item* item = head_;
                head_ = item->next;
                if (head_ == nullptr) {
                    tail_ = nullptr;
                    has_work_.store(false, std::memory_order_relaxed);
                }
                return item;
            }
            if (state_ == run_state::closed) {
                return nullptr;
            }
            lock.unlock();
            if (!searched) {
                // Out of work: search a little before parking, so that a steady
                // stream of small submissions needs no wake-up system calls
                // (submitters do not wake anyone while a worker searches).
                searching_.fetch_add(1, std::memory_order_seq_cst);
                (void)spin_for_work();
                searching_.fetch_sub(1, std::memory_order_seq_cst);
                searched = true;
            } else {
                sleep_for_work();
                searched = false;
            }
            lock.lock();
        }
    }

    void worker_main(worker& self) noexcept {
        work_item* prev = nullptr;
        std::unique_lock lock(mutex_);
        for (;;) {
            work_item* item = next_item(lock);
            self.current = item;
            if (item == nullptr) {
                break;
            }
            // Work left over: pass the baton to one more sleeper.
            const bool more = head_ != nullptr;
            lock.unlock();
            if (more) {
                wake_one();
            }
            if (prev != nullptr) {
                prev->owner->release(); // safe: no longer anyone's `current`
            }
            item->ops->execute(*item, *this);
            prev = item;
            lock.lock();
        }
        lock.unlock();
        if (prev != nullptr) {
            prev->owner->release();
        }
    }

    void start_result_thread() {
        std::lock_guard lock(mutex_);
        if (state_ != run_state::running) {
            throw pool_not_running();
        }
        if (result_thread_started_.load(std::memory_order_relaxed)) {
            return;
        }
        std::lock_guard rlock(result_mutex_);
        signals_blocked_scope masked;
        result_thread_ = std::thread([this] {
            current_core = this;
            result_main();
        });
        result_thread_started_.store(true, std::memory_order_release);
    }

    void result_main() noexcept {
        work_item* prev = nullptr;
        std::unique_lock lock(result_mutex_);
        for (;;) {
            work_item* item = nullptr;
            for (;;) {
                if (result_terminated_) {
                    break;
                }
                if (result_head_ != nullptr) {
                    item = result_head_;
                    result_head_ = item->next;
                    if (result_head_ == nullptr) {
                        result_tail_ = nullptr;
                    }
                    break;
                }
                if (result_stop_) {
                    break;
                }
                result_waiting_ = true;
                result_cv_.wait(lock);
                result_waiting_ = false;
            }
            result_current_ = item;
            if (item == nullptr) {
                break;
            }
            lock.unlock();
            if (prev != nullptr) {
                prev->owner->release();
            }
            item->ops->deliver(*item);
            prev = item;
            lock.lock();
        }
        lock.unlock();
        if (prev != nullptr) {
            prev->owner->release();
        }
    }

    pool_options options_;

    // Submissions: a lock-free stack of items (newest first), drained by a worker
    // into the queue below; `closed_tag` once the pool stops accepting work. Its own
    // cache line: submitters write it on every call.
    alignas(64) std::atomic<std::uintptr_t> inbox_{0};

    // Sleeping workers: `idle_` announced sleepers not yet claimed by a waker,
    // `tokens_` wake-ups issued and not yet consumed (the futex word), `searching_`
    // workers spinning for work.
    alignas(64) std::atomic<std::uint32_t> idle_{0};
    std::atomic<std::uint32_t> tokens_{0};
    std::atomic<std::uint32_t> searching_{0};
    std::atomic<bool> stopping_{false};              // close() or terminate() was called
    std::atomic<bool> result_thread_started_{false}; // set under mutex_
    static constexpr int search_spins = 2000;

    // The queue, in submission order, and the workers' current items.
    alignas(64) mutable std::mutex mutex_;
    work_item* head_ = nullptr;
    work_item* tail_ = nullptr;
    std::atomic<bool> has_work_{false}; // head_ != nullptr, for lock-free searching
    run_state state_ = run_state::running;
    std::exception_ptr init_error_;
    std::vector<worker> workers_;

    std::mutex result_mutex_;
    std::condition_variable result_cv_;
    work_item* result_head_ = nullptr;
    work_item* result_tail_ = nullptr;
    work_item* result_current_ = nullptr;
    bool result_waiting_ = false;
    bool result_stop_ = false;
    bool result_terminated_ = false;
    std::thread result_thread_; // guarded by mutex_ and result_mutex_

    std::mutex join_mutex_;
    bool joined_ = false;
};

void post_result(thread_pool_core& core, work_item& item) noexcept {
    core.post_result(item);
}

thread_pool& default_blocking_pool() {
    static thread_pool pool(std::min<std::size_t>(32, cpu_count() + 4));
    return pool;
}

template class backend_core<thread_pool_core>;

thread_backend::thread_backend(std::size_t workers, pool_options options)
    : backend_core(std::make_unique<thread_pool_core>(workers, std::move(options))),
      workers_(workers) {
    if (workers == 0) {
        throw error("corio: a pool needs at least one worker");
    }
    if (core_->options().on_progress) {
        progress_ = &core_->options().on_progress;
    }
    core_->start();
}

thread_backend::~thread_backend() = default;

void thread_backend::submit(work_batch batch) {
    core_->submit(*batch.first, *batch.last, batch.needs_result_thread);
}

} // namespace corio::detail
