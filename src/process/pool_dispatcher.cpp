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
    if (options_.initializer) {
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
        if (chunks != 0) {
            queue_.emplace_back(&job, 0);
        }
    }
    wake();
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
        for (std::size_t k = next; k < job->chunk_count(); ++k) {
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
        {
            std::lock_guard lock(mutex_);
            state = state_;
            work_left = work_left_locked();
            broken = static_cast<bool>(broken_);
        }
        if (state == pool_state::terminating) {
            finish_terminate();
            return;
        }
        if (!broken) {
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
        try {
            ring_->submit_and_wait(true, std::nullopt);
        } catch (...) {
            // Nothing in submit_and_wait throws once the ring exists; keep serving regardless.
        }
        try {
            reap_dead();
        } catch (...) {
            break_pool_on_current("handling a worker's end failed");
        }
    }
}

} // namespace corio::detail
