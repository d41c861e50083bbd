// The thread backend of basic_pool: worker threads over one global FIFO queue, a lazily
// started result thread for callbacks, close / terminate / join with Python's meaning.

#include "loop/signal_mask.hpp"
#include "pool/backend_core.hpp"

#include <corio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
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

    void submit(work_item& first, work_item& last, bool needs_result_thread) {
        bool wake = false;
        {
            std::lock_guard lock(mutex_);
            if (state_ != run_state::running) {
                throw pool_not_running();
            }
            if (needs_result_thread && !result_thread_started_) {
                std::lock_guard rlock(result_mutex_);
                signals_blocked_scope masked;
                result_thread_ = std::thread([this] {
                    current_core = this;
                    result_main();
                });
                result_thread_started_ = true;
            }
            last.next = nullptr;
            if (tail_ != nullptr) {
                tail_->next = &first;
            } else {
                head_ = &first;
            }
            tail_ = &last;
            has_work_.store(true, std::memory_order_relaxed);
            wake = claim_wake();
        }
        if (wake) {
            work_cv_.notify_one();
        }
    }

    void check_running() const {
        std::lock_guard lock(mutex_);
        if (state_ != run_state::running) {
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
            stopping_.store(true, std::memory_order_relaxed);
        }
        work_cv_.notify_all();
    }

    void terminate() noexcept {
        work_item* dropped = nullptr;
        {
            std::lock_guard lock(mutex_);
            if (state_ == run_state::terminated) {
                return;
            }
            state_ = run_state::terminated;
            stopping_.store(true, std::memory_order_relaxed);
            dropped = std::exchange(head_, nullptr);
            tail_ = nullptr;
            has_work_.store(false, std::memory_order_relaxed);
            for (worker& w : workers_) {
                if (w.current != nullptr) {
                    w.current->ops->abandon(*w.current);
                }
            }
        }
        work_cv_.notify_all();
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

    bool running() const noexcept {
        std::lock_guard lock(mutex_);
        return state_ == run_state::running;
    }

private:
    enum class run_state { running, closed, terminated };

    struct worker {
        std::thread thread;
        work_item* current = nullptr; // guarded by mutex_
    };

    /// Under mutex_: wake a sleeping worker unless one is already on its way or a
    /// worker is searching (it will find the work without a system call).
    bool claim_wake() noexcept {
        if (head_ != nullptr && sleepers_ > 0 && !wake_pending_ && searching_ == 0) {
            wake_pending_ = true;
            return true;
        }
        return false;
    }

    /// Spins briefly, without the lock, until work shows up or the pool stops. Kept
    /// out of line: the perf-budget check leaves functions named *spin* out of its
    /// instruction counts (how long a spin lasts depends on timing, not on the code).
    [[gnu::noinline]] bool spin_for_work() const noexcept {
        for (int i = 0; i < search_spins; ++i) {
            if (has_work_.load(std::memory_order_relaxed) ||
                stopping_.load(std::memory_order_relaxed)) {
                return true;
            }
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        return false;
    }

    void worker_main(worker& self) noexcept {
        work_item* prev = nullptr;
        bool searched = false;
        std::unique_lock lock(mutex_);
        for (;;) {
            work_item* item = nullptr;
            for (;;) {
                if (state_ == run_state::terminated) {
                    break;
                }
                if (head_ != nullptr) {
                    item = head_;
                    head_ = item->next;
                    if (head_ == nullptr) {
                        tail_ = nullptr;
                        has_work_.store(false, std::memory_order_relaxed);
                    }
                    break;
                }
                if (state_ == run_state::closed) {
                    break;
                }
                if (!searched) {
                    // Out of work: search a little before parking, so that a steady
                    // stream of small submissions needs no wake-up system calls
                    // (submitters do not wake anyone while a worker searches).
                    ++searching_;
                    lock.unlock();
                    (void)spin_for_work();
                    lock.lock();
                    --searching_;
                    searched = true;
                    continue;
                }
                ++sleepers_;
                work_cv_.wait(lock);
                --sleepers_;
                wake_pending_ = false;
                searched = false;
            }
            searched = false;
            self.current = item;
            if (item == nullptr) {
                break;
            }
            // Work left over: pass the baton to one more sleeper.
            const bool wake = claim_wake();
            lock.unlock();
            if (wake) {
                work_cv_.notify_one();
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

    mutable std::mutex mutex_;
    std::condition_variable work_cv_;
    work_item* head_ = nullptr;
    work_item* tail_ = nullptr;
    std::size_t sleepers_ = 0;
    std::size_t searching_ = 0;
    bool wake_pending_ = false;
    std::atomic<bool> has_work_{false}; // head_ != nullptr, for lock-free searching
    std::atomic<bool> stopping_{false}; // close() or terminate() was called
    static constexpr int search_spins = 2000;
    run_state state_ = run_state::running;
    std::exception_ptr init_error_;
    std::vector<worker> workers_;
    bool result_thread_started_ = false; // guarded by mutex_

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
