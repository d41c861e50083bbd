// The child side: a pool worker's loop, or a corio::process running its function.
// Runs in a fork of the fork server, single-threaded, with blocking I/O.
#include "process/fork_server.hpp"
#include <corio/detail/fd_passing.hpp>
#include <corio/detail/process_wire.hpp>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <sys/socket.h>
#include <unistd.h>

namespace corio::detail {

namespace {

// Buffered frame reader over the channel. Reads as much as the socket holds, so a
// burst of pipelined tasks costs one system call.
class frame_reader {
public:
    explicit frame_reader(int fd) : fd_(fd) {}

    // Next frame, blocking; false at end of stream. `body` stays valid until the next call.
    bool next(frame_header& h, std::string_view& body) {
        if (!fill_to(sizeof(frame_header))) {
            return false;
        }
        std::memcpy(&h, buf_.data() + head_, sizeof h);
        if (!fill_to(sizeof h + h.size)) {
            return false;
        }
        body = std::string_view(buf_.data() + head_ + sizeof h, h.size);
        head_ += sizeof h + h.size;
        return true;
    }

    // Descriptors that arrived with the bytes read so far (SCM_RIGHTS): a
    // corio::process's arguments bring theirs with the start frame.
    std::vector<int> take_fds() noexcept { return std::move(fds_); }

    // True if a whole frame is already buffered (no system call).
    bool frame_buffered() const noexcept { return buffered_frame(); }

    // True if a whole frame is buffered, after taking what the socket holds now
    // (without blocking).
    bool frame_ready() {
        if (buffered_frame()) {
            return true;
        }
        std::memmove(buf_.data(), buf_.data() + head_, tail_ - head_);
        tail_ -= head_;
        head_ = 0;
        if (tail_ == buf_.size()) {
            buf_.resize(buf_.size() * 2);
        }
        ssize_t r;
        do {
            r = ::recv(fd_, buf_.data() + tail_, buf_.size() - tail_, MSG_DONTWAIT);
        } while (r < 0 && errno == EINTR);
        if (r > 0) {
            tail_ += static_cast<std::size_t>(r);
        }
        return buffered_frame();
    }

private:
    bool buffered_frame() const noexcept {
        if (tail_ - head_ < sizeof(frame_header)) {
            return false;
        }
        frame_header h;
        std::memcpy(&h, buf_.data() + head_, sizeof h);
        return tail_ - head_ >= sizeof h + h.size;
    }

    // Reads until `n` bytes are buffered; false at end of stream.
    bool fill_to(std::size_t n) {
        while (tail_ - head_ < n) {
            if (buf_.size() - head_ < n || head_ == tail_) {
                // Compact, and grow to fit the whole frame: a large frame is received
                // straight into its final place, without repeated copies.
                std::memmove(buf_.data(), buf_.data() + head_, tail_ - head_);
                tail_ -= head_;
                head_ = 0;
                if (buf_.size() < n) {
                    buf_.resize(std::max(n, buf_.size() * 2));
                }
            }
            const ssize_t r = receive(buf_.data() + tail_, buf_.size() - tail_);
            if (r > 0) {
                tail_ += static_cast<std::size_t>(r);
            } else if (r == 0) {
                return false;
            } else if (errno == EINTR) {
                continue;
            } else {
                return false; // a broken channel
            }
        }
        return true;
    }

    // recv, collecting passed descriptors until the start frame is complete.
    ssize_t receive(char* at, std::size_t size) {
        if (started_) {
            return ::recv(fd_, at, size, 0);
        }
        iovec iov{at, size};
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 253)];
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        const ssize_t r = ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC);
        if (r > 0) {
            for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                    const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                    for (std::size_t i = 0; i < n; ++i) {
                        int fd = -1;
                        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
                        fds_.push_back(fd);
                    }
                }
            }
        }
        return r;
    }

public:
    // The start frame was read: no descriptors come after it.
    void started() noexcept { started_ = true; }

private:
    int fd_;
    bool started_ = false;
    std::vector<int> fds_;
    std::string buf_ = std::string(64 * 1024, '\0');
    std::size_t head_ = 0;
    std::size_t tail_ = 0;
};

void write_all(int fd, byte_writer& out, bool clear = true) noexcept {
    const std::string& b = out.buffer();
    std::size_t done = 0;
    while (done < b.size()) {
        const ssize_t n = ::send(fd, b.data() + done, b.size() - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            if (!clear) {
                return; // the parent dropped the process object: nobody wants the result
            }
            ::_exit(0); // the pool is gone: nobody wants the answer
        }
    }
    if (clear) {
        out.buffer().clear();
    }
}

[[noreturn]] void run_worker(int fd, frame_reader& in, std::string_view start_body) noexcept {
    byte_writer out;
    try {
        byte_reader r(start_body);
        const auto init = r.read_raw<std::uintptr_t>();
        const std::size_t at = begin_frame(out, frame_kind::init_ok, 0, 0);
        try {
            if (init != 0) {
                reinterpret_cast<void (*)()>(init)();
            }
        } catch (...) {
            out.buffer().clear();
            const std::size_t e = begin_frame(out, frame_kind::init_error, 0, 0);
            write_current_exception(out);
            finish_frame(out, e);
            write_all(fd, out);
            ::_exit(0);
        }
        finish_frame(out, at);
        write_all(fd, out);

        frame_header h;
        std::string_view body;
        std::size_t batch = 0; // tasks answered by the next write
        while (in.next(h, body)) {
            if (h.kind != frame_kind::task) {
                ::_exit(2);
            }
            byte_reader task(body);
            const auto target = task.read_raw<call_target>();
            const bool stop_on_error = task.read_raw<std::uint8_t>() != 0;
            const std::size_t rat = begin_frame(out, frame_kind::result, h.id, h.count);
            reinterpret_cast<item_runner>(target.runner)(target.fn, h.count, stop_on_error, task,
                                                         out);
            finish_frame(out, rat);
            // Answer now unless more tasks are already here (then answer in one batch).
            // A lone task (a call, not a stream of map chunks) is answered without
            // first asking the socket for more: that would cost a system call per call.
            ++batch;
            const bool more = in.frame_buffered() || (batch > 1 && in.frame_ready());
            if (out.size() >= (1u << 20) || !more) {
                write_all(fd, out);
                batch = 0;
            }
        }
        std::fflush(nullptr);
        ::_exit(0);
    } catch (...) {
        // Out of memory while encoding an answer: the parent sees the worker die.
        ::_exit(70);
    }
}

[[noreturn]] void run_process(int fd, std::string_view body, std::vector<int> fds) noexcept {
    int code = 0;
    try {
        byte_reader r(body);
        auto& self = self_identity();
        self.parent_pid = deserialize<std::int32_t>(r);
        self.parent_name = deserialize<std::string>(r);
        self.name = deserialize<std::string>(r);
        self.daemon = deserialize<bool>(r);
        const auto target = r.read_raw<call_target>();
        byte_writer out;
        const std::size_t at = begin_frame(out, frame_kind::result, 0, 1);
        {
            // The arguments own their descriptors once decoded; the rest close here.
            incoming_fds passed(std::move(fds));
            reinterpret_cast<item_runner>(target.runner)(target.fn, 1, false, r, out);
        }
        finish_frame(out, at);
        // The answer goes back before the exit: the parent reads it while it waits.
        write_all(fd, out, false);
        ::close(fd);
        byte_reader outcome(std::string_view(out.buffer()).substr(sizeof(frame_header)));
        if (outcome.read_raw<std::uint8_t>() != 0) {
            try {
                std::rethrow_exception(read_exception(outcome));
            } catch (const std::exception& e) {
                std::fflush(stdout);
                std::fprintf(stderr, "corio::process %d: the function threw: %s\n",
                             static_cast<int>(::getpid()), e.what());
            }
            code = 1;
        }
    } catch (...) {
        code = 1;
    }
    std::fflush(nullptr);
    // As a program's exit: its own non-daemon children are waited for, daemons ended.
    wait_for_children();
    ::_exit(code);
}

} // namespace

void child_main(int fd) noexcept {
    if (fd < 0) {
        ::_exit(2);
    }
    try {
        frame_reader in(fd);
        frame_header h;
        std::string_view body;
        if (!in.next(h, body)) {
            ::_exit(0);
        }
        in.started();
        if (h.kind == frame_kind::start_process) {
            std::string copy(body);
            run_process(fd, copy, in.take_fds());
        }
        if (h.kind == frame_kind::start_worker) {
            run_worker(fd, in, body);
        }
    } catch (...) {
        ::_exit(70);
    }
    ::_exit(2);
}

} // namespace corio::detail
