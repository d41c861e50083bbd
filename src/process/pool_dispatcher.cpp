// process_pool: lifecycle, the job queue, scheduling chunks on workers, and the
// dispatcher thread's loop (submit and wait on its ring, then reap dead workers).

#include "process/pool_core.hpp"
#include "loop/signal_mask.hpp"
#include "process/fork_server.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <fcntl.h>
#include <mutex>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace corio::detail {

process_pool_core::process_pool_core(std::size_t workers, pool_options options)
    : size_(workers), options_(std::move(options)) {
    if (workers == 0) {
        throw error("corio::process_pool: the number of workers must be at least 1");
    }
    if (options_.initializer && options_.initializer.bound_) {
        if (options_.initializer.remote_.runner == 0) {
            throw error("corio::process_pool: options.initializer runs in the worker processes, so "
                        "with arguments its function must be a plain function or a capture-less "
                        "lambda and every argument serializable");
        }
    } else if (options_.initializer) {
        void (*plain)() = options_.initializer.plain();
        if (plain == nullptr) {
            throw error("corio::process_pool: options.initializer runs in the worker processes, so "
                        "it must be "
                        "a plain function or a capture-less lambda");
        }
        initializer_ = reinterpret_cast<std::uintptr_t>(plain);
    }
    ensure_fork_server("corio::process_pool");
    // Three operations per worker, the doorbell and cancels; a full queue parks.
    unsigned entries = 64;
    while (entries < 4 * workers + 8 && entries < 4096) {
        entries *= 2;
    }
    ring_ = std::make_unique<uring>(loop_options{.entries = entries, .single_issuer = false});
    try {
        for (std::size_t i = 0; i < workers; ++i) {
            spawn_worker();
        }
    } catch (...) {
        for (auto& w : workers_) {
            send_signal(w->pidfd, SIGKILL);
            ::close(w->fd);
            wait_pidfd(w->pidfd, -1);
            fork_server_release(w->pid);
            ::close(w->pidfd);
        }
        throw;
    }
    startup_pending_ = workers;
    {
        signals_blocked_scope masked; // the dispatcher inherits the blocked mask
        thread_ = std::thread([this] { run(); });
        dispatcher_id_ = thread_.get_id();
    }
    std::exception_ptr failed;
    {
        std::unique_lock lock(mutex_);
        started_cv_.wait(lock, [&] { return startup_pending_ == 0 || startup_error_; });
        starting_up_ = false;
        failed = startup_error_;
    }
    if (failed) {
        terminate();
        std::rethrow_exception(failed);
    }
}

process_pool_core::~process_pool_core() {
    if (thread_.joinable()) {
        terminate();
    }
}

void process_pool_core::wake() noexcept {
    ring_->wake();
}

void process_pool_core::check_running() const {
    std::lock_guard lock(mutex_);
    if (state_ != pool_state::running) {
        throw pool_not_running();
    }
    if (broken_) {
        std::rethrow_exception(broken_);
    }
}

void process_pool_core::submit(process_job& job, std::size_t chunks) {
    {
        std::lock_guard lock(mutex_);
        if (state_ != pool_state::running) {
            throw pool_not_running();
        }
        if (broken_) {
            std::rethrow_exception(broken_);
        }
        if (chunks == 0) {
            return;
        }
        if (chunks == 1 && queue_.empty() && try_direct(job)) {
            return; // sent: the dispatcher finds the chunk when the answer comes
        }
        queue_.emplace_back(&job, 0);
    }
    wake();
}

namespace {

// Mutex held: `w`'s offer is claimed or withdrawn.
void withdraw_counted_offer(pool_worker& w) noexcept {
    if (w.offer_counted) {
        w.offer_counted = false;
        direct_offer_count.fetch_sub(1, std::memory_order_relaxed);
    }
}

} // namespace

// The direct path, with the mutex held: if a worker is ready and idle (nothing sent to
// it is unanswered, no send of the dispatcher in flight), the caller's thread sends
// the job's one frame on the worker's socket itself and leaves the chunk in
// `handed`, where the dispatcher takes it into `inflight` before it handles the
// answer or the worker's end. No dispatcher wake-up on the way out. The dispatcher
// offers a worker (`direct_ok`) only while it does not touch the socket or the
// worker's bookkeeping, and a claim withdraws the offer, so one send at a time writes
// to a socket; the mutex, held through the send, keeps the descriptor open. False
// (nothing done) if no worker is free or the socket refused the frame.
bool process_pool_core::try_direct(process_job& job) {
    const std::string_view frame = job.frame(0);
    if (frame.size() > direct_send_limit) {
        return false; // a large frame: the dispatcher's ring sends it, not this thread
    }
    for (pool_worker* wp : offered_) {
        pool_worker& w = *wp;
        if (!w.direct_ok) {
            continue;
        }
        // Handed over before the send: the answer can reach the dispatcher before
        // this thread is back from send(), and its receive must find the chunk
        // (has_handed makes it take the mutex, so it waits for the outcome here).
        w.direct_ok = false;
        withdraw_counted_offer(w);
        w.handed = {&job, 0};
        w.handed_at = clock_type::now();
        w.has_handed.store(true, std::memory_order_release);
        ssize_t n;
        do {
            n = ::send(w.fd, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
        } while (n < 0 && errno == EINTR);
        if (n <= 0) {
            // Nothing written: a full socket (EAGAIN), or the worker is gone (EPIPE
            // and the like; the dispatcher sees it end and replaces it). The chunk
            // goes through the queue to another worker.
            w.handed = {};
            w.has_handed.store(false, std::memory_order_relaxed);
            return false;
        }
        w.handed_rest = frame.substr(static_cast<std::size_t>(n));
        direct_send_count.fetch_add(1, std::memory_order_relaxed);
        if (!w.handed_rest.empty()) {
            wake(); // a short send: the dispatcher sends the rest
        }
        return true;
    }
    return false;
}

// Dispatcher thread, on bytes from `w`: takes a chunk a caller sent directly into
// `inflight`. Out of memory, the chunk stays in `handed` and the worker is treated as
// lost: handle_exit fails it. The dispatcher is awake now, so the offers it made before
// it slept stop counting in direct_offer_count (they stay open): a caller woken by
// this answer must not take one for an offer that outlasts the wake-up.
void process_pool_core::take_handed(pool_worker& w) noexcept {
    if (w.has_handed.load(std::memory_order_acquire) ||
        direct_offer_count.load(std::memory_order_relaxed) > 0) {
        std::lock_guard lock(mutex_);
        take_handed_locked(w);
        for (pool_worker* wp : offered_) {
            withdraw_counted_offer(*wp);
        }
    }
}

void process_pool_core::take_handed_locked(pool_worker& w) noexcept {
    w.direct_ok = false;
    withdraw_counted_offer(w);
    if (w.handed.job == nullptr) {
        return;
    }
    try {
        w.inflight.push_back(w.handed);
        if (!w.handed_rest.empty()) {
            try {
                w.unsent.push_back(w.handed_rest);
            } catch (...) {
                w.inflight.pop_back();
                throw;
            }
        }
    } catch (...) {
        w.eof = true;
        return;
    }
    if (w.inflight.size() == 1) {
        w.busy_since = w.handed_at;
    }
    w.handed = {};
    w.handed_rest = {};
    w.has_handed.store(false, std::memory_order_relaxed);
    if (options_.max_tasks_per_child != 0 && ++w.sent >= options_.max_tasks_per_child) {
        w.phase = worker_phase::retiring;
    }
}

// Dispatcher thread, mutex held, while it waits on the ring: offers `w` to callers if
// it is ready and idle and nothing waits ahead of a new call.
void process_pool_core::open_direct_locked(pool_worker& w, bool before_sleep) noexcept {
    if (w.direct_ok) {
        return;
    }
    w.direct_ok = waiting_ && state_ == pool_state::running && !broken_ && queue_.empty() &&
                  retry_.empty() && !terminating_ && w.phase == worker_phase::ready && !w.dying &&
                  !w.eof && !w.exited && w.fd >= 0 && w.handed.job == nullptr &&
                  w.inflight.empty() && w.unsent.empty() && !w.sending();
    if (w.direct_ok) {
        try {
            offered_.push_back(&w);
            if (before_sleep) {
                w.offer_counted = true;
                direct_offer_count.fetch_add(1, std::memory_order_release);
            }
        } catch (...) {
            w.direct_ok = false; // out of memory: no offer, the queue serves
        }
    }
}

void process_pool_core::close() noexcept {
    {
        std::lock_guard lock(mutex_);
        if (state_ == pool_state::running) {
            state_ = pool_state::closed;
        }
    }
    wake();
}

void process_pool_core::terminate() noexcept {
    {
        std::lock_guard lock(mutex_);
        state_ = pool_state::terminating;
    }
    wake();
    if (std::this_thread::get_id() == dispatcher_id_) {
        return; // from a callback
    }
    std::lock_guard lock(join_mutex_);
    if (thread_.joinable()) {
        thread_.join();
    }
}

void process_pool_core::join() {
    {
        std::lock_guard lock(mutex_);
        if (state_ == pool_state::running) {
            throw invalid_state_error(
                "corio::process_pool: join() needs close() or terminate() first");
        }
    }
    // basic_pool::join() refused the dispatcher thread (a callback) already.
    std::lock_guard lock(join_mutex_);
    if (thread_.joinable()) {
        thread_.join();
    }
}

std::size_t process_pool_core::depth() const noexcept {
    // Pipeline about 2 ms of work per worker: tiny chunks travel in batches, long ones
    // one at a time so that no chunk waits behind a slow one while a worker idles.
    const double d = 2e6 / std::max(service_ns_, 1.0);
    return static_cast<std::size_t>(std::clamp(d, 1.0, 64.0));
}

bool process_pool_core::work_left_locked() const noexcept {
    if (!queue_.empty() || !retry_.empty()) {
        return true;
    }
    return std::any_of(workers_.begin(), workers_.end(),
                       [](const auto& w) { return !w->inflight.empty(); });
}

void process_pool_core::assign_work() {
    const std::size_t max_depth = depth();
    const std::size_t max_tasks = options_.max_tasks_per_child;
    const auto now = clock_type::now();
    // Pipelining (sending a worker more chunks while it runs one) is for the chunks of
    // one map: a chunk never queues behind an unrelated call, which could run long
    // while other workers idle, and not behind a chunk that already runs much longer
    // than usual.
    const auto stalled_after =
        std::chrono::nanoseconds(static_cast<std::int64_t>(std::max(4 * service_ns_, 5e5)));
    auto accepts = [&](const pool_worker& w, const process_job* job) {
        if (w.phase != worker_phase::ready) {
            return false;
        }
        if (w.inflight.empty()) {
            return true;
        }
        return w.inflight.size() < max_depth && w.inflight.back().job == job &&
               now - w.busy_since < stalled_after;
    };
    std::vector<std::pair<pool_worker*, chunk_ref>> assigned;
    {
        std::lock_guard lock(mutex_);
        for (;;) {
            if (retry_.empty() && queue_.empty()) {
                break;
            }
            const process_job* next_job =
                !retry_.empty() ? retry_.front().job : queue_.front().first;
            // The least loaded worker takes the next chunk.
            pool_worker* best = nullptr;
            for (auto& wp : workers_) {
                if (accepts(*wp, next_job) &&
                    (best == nullptr || wp->inflight.size() < best->inflight.size())) {
                    best = wp.get();
                }
            }
            if (best == nullptr) {
                break;
            }
            pool_worker& w = *best;
            chunk_ref c;
            if (!retry_.empty()) {
                c = retry_.front();
                retry_.pop_front();
            } else {
                auto& [job, next] = queue_.front();
                c = {job, next++};
                if (next == job->chunk_count()) {
                    queue_.pop_front();
                }
            }
            if (w.inflight.empty()) {
                w.busy_since = now;
            }
            w.inflight.push_back(c);
            assigned.emplace_back(&w, c);
            if (max_tasks != 0 && ++w.sent >= max_tasks) {
                w.phase = worker_phase::retiring;
            }
        }
    }
    // Frames are immutable once submitted and live as long as their chunk is held
    // by a worker: they are sent from where the caller encoded them, not copied.
    for (auto& [w, c] : assigned) {
        w->unsent.push_back(c.job->frame(c.k));
    }
}

void process_pool_core::handle_frame(pool_worker& w, const frame_header& h, std::string_view body) {
    switch (h.kind) {
    case frame_kind::init_ok: {
        w.phase = worker_phase::ready;
        std::lock_guard lock(mutex_);
        if (starting_up_ && startup_pending_ > 0 && --startup_pending_ == 0) {
            started_cv_.notify_all();
        }
        return;
    }
    case frame_kind::init_error: {
        std::exception_ptr original;
        try {
            byte_reader r(body);
            original = read_exception(r);
        } catch (...) {
            original = std::current_exception();
        }
        break_pool(std::make_exception_ptr(broken_pool_error(
                       "corio::process_pool is broken: a worker's initializer threw: " +
                       what_of(original))),
                   original);
        w.phase = worker_phase::closing; // it exits after answering
        return;
    }
    case frame_kind::result: {
        if (w.inflight.empty()) {
            return; // cannot happen with a well-behaved worker
        }
        const chunk_ref c = w.inflight.front();
        w.inflight.pop_front();
        const auto now = clock_type::now();
        const double ns = static_cast<double>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - w.busy_since).count());
        service_ns_ = 0.8 * service_ns_ + 0.2 * ns;
        w.busy_since = now;
        if (w.inflight.empty() && waiting_) {
            // Idle again: offer the worker before the answer wakes its caller, whose
            // next call then goes out directly.
            std::lock_guard lock(mutex_);
            open_direct_locked(w, false);
        }
        byte_reader r(body);
        c.job->on_chunk(c.k, r);
        if (w.sending()) {
            w.held.push_back(c.job); // the send in flight may still read its frame
        } else {
            c.job->drop();
        }
        return;
    }
    default:
        return;
    }
}

void process_pool_core::fail_chunk(chunk_ref c, std::exception_ptr e) noexcept {
    c.job->on_chunk_failed(c.k, std::move(e));
    c.job->drop();
}

void process_pool_core::break_pool(std::exception_ptr cause, std::exception_ptr original) {
    std::deque<std::pair<process_job*, std::size_t>> queued;
    {
        std::lock_guard lock(mutex_);
        if (broken_) {
            return;
        }
        broken_ = cause;
        if (starting_up_ && !startup_error_) {
            startup_error_ = original;
            started_cv_.notify_all();
        }
        queued.swap(queue_);
    }
    for (auto& [job, next] : queued) {
        // Each chunk's drop may release the job: count its chunks first.
        for (std::size_t k = next, n = job->chunk_count(); k < n; ++k) {
            fail_chunk({job, k}, cause);
        }
    }
    while (!retry_.empty()) {
        fail_chunk(retry_.front(), cause);
        retry_.pop_front();
    }
}

// Inside a catch block: breaks the pool with "<why>: <what the exception says>".
void process_pool_core::break_pool_on_current(std::string_view why) noexcept {
    std::exception_ptr cause;
    try {
        cause = std::make_exception_ptr(broken_pool_error(fmt::format(
            "corio::process_pool is broken: {}: {}", why, what_of(std::current_exception()))));
    } catch (...) {
        cause = std::current_exception(); // out of memory for the message
    }
    break_pool(cause, cause);
}

void process_pool_core::run() noexcept {
    for (;;) {
        pool_state state;
        bool work_left;
        bool broken;
        bool queued;
        {
            std::lock_guard lock(mutex_);
            state = state_;
            work_left = work_left_locked();
            broken = static_cast<bool>(broken_);
            queued = !queue_.empty();
        }
        if (state == pool_state::terminating) {
            finish_terminate();
            return;
        }
        // A job queued after this look rings the doorbell: the next round assigns it.
        if (!broken && (queued || !retry_.empty())) {
            try {
                assign_work();
            } catch (...) {
                // Out of memory queueing frames: fail the pool rather than spin.
                break_pool(std::current_exception(), std::current_exception());
            }
        }
        // Close workers that have nothing more to do: retired ones, or all of them
        // once the pool is closed and no work is left.
        for (auto& wp : workers_) {
            pool_worker& w = *wp;
            const bool idle = w.inflight.empty() && w.unsent.empty() && !w.sending();
            const bool done =
                w.phase == worker_phase::retiring ||
                (state == pool_state::closed && !work_left && w.phase == worker_phase::ready);
            if (idle && done && !w.dying) {
                w.phase = worker_phase::closing;
                ::shutdown(w.fd, SHUT_WR);
            }
        }
        if (state == pool_state::closed && workers_.empty()) {
            std::lock_guard lock(mutex_);
            if (!work_left_locked()) {
                return;
            }
        }
        // Per worker a receive, a send when frames wait, and a watch of its pidfd.
        // End of file alone would miss a death when another process holds the
        // worker's end of the socket (a child the function forked inherits it); the
        // pidfd turns readable when the worker itself is gone, whoever else holds
        // the socket. Submitting and waiting is one system call.
        for (auto& wp : workers_) {
            arm(*wp);
        }
        // Idle workers are offered to callers (the direct path) while the dispatcher
        // waits; the offers are withdrawn, and the chunks sent meanwhile taken over,
        // before anything else touches the workers.
        waiting_ = true;
        {
            std::lock_guard lock(mutex_);
            for (auto& wp : workers_) {
                open_direct_locked(*wp, true);
            }
        }
        try {
            ring_->submit_and_wait(true, std::nullopt);
        } catch (...) {
            // Nothing in submit_and_wait throws once the ring exists; keep serving regardless.
        }
        waiting_ = false;
        {
            std::lock_guard lock(mutex_);
            offered_.clear();
            for (auto& wp : workers_) {
                take_handed_locked(*wp);
            }
        }
        try {
            reap_dead();
        } catch (...) {
            break_pool_on_current("handling a worker's end failed");
        }
    }
}

} // namespace corio::detail
