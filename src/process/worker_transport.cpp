// process_pool: the transport to one worker process, three ring operations per
// worker (a receive of answer frames, a sendmsg of queued frames, a poll of its pidfd)
// and the decoding of the frames it answers.

#include "process/pool_core.hpp"

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

void process_pool_core::prep_recv(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    pool_worker& w = *static_cast<worker_op&>(op).worker;
    io_uring_prep_recv(&sqe, w.fd, w.in.data() + w.tail, w.in.size() - w.tail, 0);
}

void process_pool_core::prep_send(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    pool_worker& w = *static_cast<worker_op&>(op).worker;
    io_uring_prep_sendmsg(&sqe, w.fd, &w.msg, MSG_NOSIGNAL | MSG_WAITALL);
}

void process_pool_core::prep_exit(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    pool_worker& w = *static_cast<worker_op&>(op).worker;
    io_uring_prep_poll_add(&sqe, w.pidfd, POLLIN);
}

void process_pool_core::recv_done(uring_op& op, int res, unsigned) noexcept {
    auto& o = static_cast<worker_op&>(op);
    o.core->on_received(*o.worker, res);
}

void process_pool_core::send_done(uring_op& op, int res, unsigned) noexcept {
    auto& o = static_cast<worker_op&>(op);
    o.core->on_sent(*o.worker, res);
}

void process_pool_core::exit_done(uring_op& op, int res, unsigned) noexcept {
    // Any outcome but our own cancel (POLLIN once the process exited, an error for
    // a broken pidfd) means the worker cannot serve.
    if (res != -ECANCELED) {
        static_cast<worker_op&>(op).worker->exited = true;
    }
}

void process_pool_core::arm(pool_worker& w) noexcept {
    if (w.dying) {
        return;
    }
    if (w.recv_op.state == uring_op::op_state::idle && !w.eof) {
        ring_->submit(w.recv_op);
    }
    if (w.exit_op.state == uring_op::op_state::idle && !w.exited) {
        ring_->submit(w.exit_op);
    }
    if (!w.sending() && !w.unsent.empty()) {
        start_send(w);
    }
}

void process_pool_core::start_send(pool_worker& w) noexcept {
    // One sendmsg takes up to max_frames_per_send frames; `iov` and `msg` stay untouched until its
    // completion, and assign_work only appends to `unsent` meanwhile. MSG_WAITALL
    // lets the kernel finish a frame larger than the socket buffer on its own (one
    // completion, not one per buffer-full); where it is not supported, or when the
    // worker dies, a short count leaves the rest in `unsent`.
    const std::size_t n = std::min(w.unsent.size(), max_frames_per_send);
    w.iov.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
        w.iov[i] = {const_cast<char*>(w.unsent[i].data()), w.unsent[i].size()};
    }
    w.msg = {};
    w.msg.msg_iov = w.iov.data();
    w.msg.msg_iovlen = n;
    ring_->submit(w.send_op);
}

void process_pool_core::on_sent(pool_worker& w, int res) noexcept {
    if (res > 0) {
        auto left = static_cast<std::size_t>(res);
        while (left > 0 && !w.unsent.empty()) {
            std::string_view& front = w.unsent.front();
            const std::size_t k = std::min(left, front.size());
            front.remove_prefix(k);
            left -= k;
            if (front.empty()) {
                w.unsent.pop_front();
            }
        }
    } else if (res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        // EPIPE and the like: the worker is gone; what it holds fails in handle_exit.
        w.unsent.clear();
        w.eof = true;
    }
    // Answers that came while this send could still read their frames.
    for (process_job* job : w.held) {
        job->drop();
    }
    w.held.clear();
}

void process_pool_core::on_received(pool_worker& w, int res) noexcept {
    // An answer may be to a chunk a caller sent directly: take it over first.
    take_handed(w);
    if (res > 0 && !terminating_) {
        try {
            take_bytes(w, static_cast<std::size_t>(res));
        } catch (...) {
            w.eof = true; // out of memory for an answer: treat the worker as lost
        }
    } else if (res == 0 || (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED)) {
        w.eof = true;
    }
}

void process_pool_core::take_bytes(pool_worker& w, std::size_t n) {
    w.tail += n;
    while (w.tail - w.head >= sizeof(frame_header)) {
        frame_header h;
        std::memcpy(&h, w.in.data() + w.head, sizeof h);
        const std::size_t whole = sizeof h + h.size;
        if (w.tail - w.head < whole) {
            // A large answer: make room for all of it at once (no repeated growth).
            if (w.in.size() - w.head < whole) {
                std::memmove(w.in.data(), w.in.data() + w.head, w.tail - w.head);
                w.tail -= w.head;
                w.head = 0;
                if (w.in.size() < whole) {
                    w.in.resize(whole);
                }
            }
            break;
        }
        handle_frame(w, h, std::string_view(w.in.data() + w.head + sizeof h, h.size));
        w.head += whole;
    }
    if (w.head == w.tail) {
        w.head = w.tail = 0;
    }
    if (w.tail == w.in.size()) {
        // Room for the next receive.
        std::memmove(w.in.data(), w.in.data() + w.head, w.tail - w.head);
        w.tail -= w.head;
        w.head = 0;
        if (w.tail == w.in.size()) {
            w.in.resize(w.in.size() * 2);
        }
    }
}

void process_pool_core::drain(pool_worker& w) noexcept {
    // No operation of `w` is in flight any more: read what the worker sent before it
    // died directly, so that only the chunk it was running fails.
    while (w.fd >= 0) {
        const ssize_t n = ::recv(w.fd, w.in.data() + w.tail, w.in.size() - w.tail, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return;
        }
        try {
            take_bytes(w, static_cast<std::size_t>(n));
        } catch (...) {
            return;
        }
    }
}

} // namespace corio::detail
