// process_pool: starting worker processes through the fork server, handling a
// worker's end (reaping, failing or retrying what it held), replacing it, terminating.

#include "process/pool_core.hpp"
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
#include <utility>

namespace corio::detail {

void process_pool_core::spawn_worker() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        throw std::system_error(errno, std::generic_category(), "corio::process_pool: socketpair");
    }
    spawned_child child;
    try {
        child = fork_server_spawn(sv[1]);
    } catch (...) {
        ::close(sv[0]);
        ::close(sv[1]);
        throw;
    }
    ::close(sv[1]);
    ::fcntl(sv[0], F_SETFL, ::fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    auto w = std::make_unique<pool_worker>();
    w->pid = child.pid;
    w->pidfd = child.pidfd;
    w->fd = sv[0];
    for (auto [op, prep, done] : {std::tuple{&w->recv_op, &prep_recv, &recv_done},
                                  std::tuple{&w->send_op, &prep_send, &send_done},
                                  std::tuple{&w->exit_op, &prep_exit, &exit_done}}) {
        op->core = this;
        op->worker = w.get();
        op->prep = prep;
        op->complete = done;
    }
    byte_writer out;
    const std::size_t at = begin_frame(out, frame_kind::start_worker, 0, 0);
    out.write_raw(initializer_);
    out.write_raw(options_.initializer.remote_); // runner 0: no initializer with arguments
    out.write(options_.initializer.remote_args_.data(), options_.initializer.remote_args_.size());
    finish_frame(out, at);
    w->iov.reserve(max_frames_per_send); // start_send never allocates
    w->start_frame = out.take();
    w->unsent.push_back(w->start_frame);
    workers_.push_back(std::move(w));
    publish_pids();
}

void process_pool_core::publish_pids() {
    std::vector<pid_t> p;
    p.reserve(workers_.size());
    for (auto& w : workers_) {
        p.push_back(w->pid);
    }
    std::lock_guard lock(mutex_);
    pids_ = std::move(p);
}

std::vector<pid_t> process_pool_core::pids() const {
    std::lock_guard lock(mutex_);
    return pids_;
}

void process_pool_core::handle_exit(pool_worker& w) {
    ::close(w.fd);
    w.fd = -1;
    if (!wait_pidfd(w.pidfd, 2000)) {
        // It closed its socket but lives on: it cannot serve any more.
        send_signal(w.pidfd, SIGKILL);
        wait_pidfd(w.pidfd, -1);
    }
    int status = -1;
    std::string how;
    try {
        status = fork_server_wait(w.pid);
        how = describe_wait_status(status);
    } catch (const std::exception& e) {
        how = fmt::format("ended (its status is unknown: {})", e.what());
    }
    ::close(w.pidfd);
    w.pidfd = -1;

    if (w.phase == worker_phase::starting) {
        const std::string what = fmt::format(
            "corio::process_pool is broken: worker process {} {} while running its initializer",
            w.pid, how);
        auto e = std::make_exception_ptr(broken_pool_error(what));
        break_pool(e, e);
    } else if (!w.inflight.empty()) {
        const chunk_ref running = w.inflight.front();
        w.inflight.pop_front();
        fail_chunk(
            running,
            std::make_exception_ptr(broken_worker_error(
                fmt::format("corio::process_pool: worker process {} {} while running this call",
                            w.pid, how),
                w.pid, status == -1 ? -1 : exitcode_of(status))));
        // The chunks behind it never started: another worker runs them.
        std::exception_ptr broken;
        {
            std::lock_guard lock(mutex_);
            broken = broken_;
        }
        for (auto it = w.inflight.rbegin(); it != w.inflight.rend(); ++it) {
            if (broken) {
                fail_chunk(*it, broken);
            } else {
                retry_.push_front(*it);
            }
        }
        w.inflight.clear();
    }
    // A chunk a caller sent directly that could not be taken over (out of memory).
    chunk_ref left;
    {
        std::lock_guard lock(mutex_);
        left = std::exchange(w.handed, {});
        w.handed_rest = {};
    }
    if (left.job != nullptr) {
        fail_chunk(left, std::make_exception_ptr(broken_worker_error(
                             fmt::format("corio::process_pool: worker process {} {} while "
                                         "running this call",
                                         w.pid, how),
                             w.pid, status == -1 ? -1 : exitcode_of(status))));
    }
    // A worker that died idle (killed from outside) fails nothing; it is replaced.
}

void process_pool_core::finish_terminate() noexcept {
    terminating_ = true;
    std::deque<std::pair<process_job*, std::size_t>> queued;
    {
        std::lock_guard lock(mutex_);
        queued.swap(queue_);
    }
    for (auto& wp : workers_) {
        send_signal(wp->pidfd, SIGKILL);
    }
    // Every receive, send and pidfd watch ends before the memory it uses goes.
    const bool all_ended = ring_->cancel_all(std::chrono::seconds(10));
    for (auto& [job, next] : queued) {
        // Each chunk's drop may release the job: count its chunks first.
        for (std::size_t k = next, n = job->chunk_count(); k < n; ++k) {
            job->on_terminated();
            job->drop();
        }
    }
    auto abandon = [](chunk_ref c) {
        c.job->on_terminated();
        c.job->drop();
    };
    std::for_each(retry_.begin(), retry_.end(), abandon);
    retry_.clear();
    for (auto& wp : workers_) {
        chunk_ref left; // a chunk a caller sent directly, not taken over (out of memory)
        {
            std::lock_guard lock(mutex_);
            take_handed_locked(*wp);
            left = std::exchange(wp->handed, {});
        }
        if (left.job != nullptr) {
            abandon(left);
        }
        std::for_each(wp->inflight.begin(), wp->inflight.end(), abandon);
        wp->inflight.clear();
        if (all_ended) {
            for (process_job* job : wp->held) {
                job->drop();
            }
            wp->held.clear();
        }
        ::close(wp->fd);
        wait_pidfd(wp->pidfd, -1);
        try {
            fork_server_wait(wp->pid);
        } catch (...) {
            // The fork server is gone, and its zombies with it.
        }
        ::close(wp->pidfd);
    }
    if (!all_ended) {
        // The kernel may still write into a worker's buffers: leak them, never free.
        for (auto& wp : workers_) {
            (void)wp.release();
        }
    }
    workers_.clear();
    publish_pids();
}

void process_pool_core::reap_dead() {
    // A worker whose socket ended or whose process is gone: cancel its operations,
    // and once their completions are in, read what it sent last and handle its end.
    std::size_t lost = 0;
    for (auto it = workers_.begin(); it != workers_.end();) {
        pool_worker& w = **it;
        if (!w.eof && !w.exited) {
            ++it;
            continue;
        }
        if (!w.dying) {
            w.dying = true;
            for (worker_op* op : {&w.recv_op, &w.send_op, &w.exit_op}) {
                ring_->cancel(*op);
            }
        }
        if (!w.ops_idle()) {
            ++it;
            continue;
        }
        drain(w);
        handle_exit(w);
        it = workers_.erase(it);
        ++lost;
    }
    if (lost == 0) {
        return;
    }
    bool replace;
    {
        std::lock_guard lock(mutex_);
        replace = state_ != pool_state::terminating && !broken_ &&
                  (state_ == pool_state::running || work_left_locked());
    }
    for (std::size_t i = 0; replace && i < lost && workers_.size() < size_; ++i) {
        try {
            spawn_worker();
        } catch (...) {
            break_pool_on_current("a worker could not be replaced");
            break;
        }
    }
    publish_pids();
}

} // namespace corio::detail
