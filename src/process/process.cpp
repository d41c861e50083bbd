// corio::process: a call in a child of the fork server; the identity of processes
// (current_process, parent_process, active_children) and the at-exit rule for
// daemon and non-daemon children.
#include "process/fork_server.hpp"
#include "ring/io_ops.hpp"
#include <corio/process.hpp>
#include <corio/process_error.hpp>

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <mutex>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <system_error>
#include <unistd.h>

namespace corio {

namespace detail {

process_identity& self_identity() noexcept {
    static process_identity id;
    return id;
}

namespace {

struct child_record {
    pid_t pid = 0;
    std::string name;
    bool daemon = false;
    bool dropped = false; // its process object is gone; the record owns the zombie
};

// A pidfd of a child the fork server has not reaped (so the pid cannot have been
// reused): every registered child stays unreaped until it leaves the registry.
int open_pidfd(pid_t pid) noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

// True if the unreaped child `pid` has exited (or cannot be looked at).
bool has_exited(pid_t pid, int timeout_ms) noexcept {
    const int fd = open_pidfd(pid);
    if (fd < 0) {
        return true;
    }
    const bool done = wait_pidfd(fd, timeout_ms);
    ::close(fd);
    return done;
}

// Every child started here that was not reaped yet, by pid only (no descriptors are
// held for it). A child whose process object was destroyed while it ran stays listed
// (and unreaped by the fork server) until it is seen to have exited: at the next
// start() or active_children(), as Python's _cleanup(), or at exit. At exit, daemon
// children get SIGTERM and the program waits for the others, as Python does; without
// that wait they would die with the fork server (their parent-death signal).
// The registry is never destroyed: process objects with static storage may outlive
// any static of this file.
struct child_registry {
    std::mutex mutex;
    pid_t owner = ::getpid(); // a forked copy (a child's) forgets its parent's children
    std::vector<child_record> children;

    // With the mutex held: a copy inherited through fork lists none of this
    // process's children.
    void adopt_locked() noexcept {
        if (owner != ::getpid()) {
            owner = ::getpid();
            children.clear();
        }
    }

    // Releases (to the fork server) the dropped children that have exited.
    void cleanup_locked() noexcept {
        adopt_locked();
        for (auto it = children.begin(); it != children.end();) {
            if (it->dropped && has_exited(it->pid, 0)) {
                fork_server_release(it->pid);
                it = children.erase(it);
            } else {
                ++it;
            }
        }
    }
};

std::atomic<child_registry*> the_registry{nullptr};

void wait_at_exit() noexcept {
    wait_for_children();
}

child_registry& registry() {
    static child_registry* r = [] {
        auto* created = new child_registry; // NOLINT(cppcoreguidelines-owning-memory)
        the_registry.store(created, std::memory_order_release);
        std::atexit(wait_at_exit);
        return created;
    }();
    return *r;
}

} // namespace

void wait_for_children() noexcept {
    child_registry* r = the_registry.load(std::memory_order_acquire);
    if (r == nullptr) {
        return; // no child was ever started here
    }
    std::vector<child_record> children;
    try {
        std::lock_guard lock(r->mutex);
        r->adopt_locked();
        children = r->children;
    } catch (...) {
        return;
    }
    for (const auto& c : children) {
        if (c.daemon) {
            ::kill(c.pid, SIGTERM); // unreaped: the pid is still this child's
        }
    }
    for (const auto& c : children) {
        if (!c.daemon) {
            has_exited(c.pid, -1);
        }
    }
}

namespace {

// False if the child could not be listed (then the caller releases it as before).
bool register_child(pid_t pid, const std::string& name, bool daemon) noexcept {
    try {
        auto& r = registry();
        std::lock_guard lock(r.mutex);
        r.cleanup_locked();
        r.children.push_back({pid, name, daemon, false});
        return true;
    } catch (...) {
        return false;
    }
}

// Called before the child is reaped.
void forget_child(pid_t pid) noexcept {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    for (auto it = r.children.begin(); it != r.children.end(); ++it) {
        if (it->pid == pid) {
            r.children.erase(it);
            return;
        }
    }
}

// The process object of `pid` is gone while the child may run: the registry keeps
// it (waited for at exit). False if it was not listed.
bool drop_child(pid_t pid) noexcept {
    auto& r = registry();
    std::lock_guard lock(r.mutex);
    for (auto& c : r.children) {
        if (c.pid == pid) {
            c.dropped = true;
            return true;
        }
    }
    return false;
}

} // namespace
} // namespace detail

process_info current_process() {
    const auto& id = detail::self_identity();
    return {::getpid(), id.name, id.daemon};
}

std::optional<process_info> parent_process() {
    const auto& id = detail::self_identity();
    if (id.parent_pid == 0) {
        return std::nullopt;
    }
    return process_info{id.parent_pid, id.parent_name, false};
}

std::vector<process_info> active_children() {
    auto& r = detail::registry();
    std::lock_guard lock(r.mutex);
    r.cleanup_locked();
    std::vector<process_info> out;
    for (const auto& c : r.children) {
        if (!detail::has_exited(c.pid, 0)) {
            out.push_back({c.pid, c.name, c.daemon});
        }
    }
    return out;
}

void process_result::mismatch(const char* asked) const {
    throw error(fmt::format("corio::process::result(): asked for a {} but the function returns "
                            "{}",
                            asked,
                            type_ == nullptr ? "type that is not serializable" : type_->name()));
}

std::string process::next_name() {
    static std::atomic<unsigned> counter{0};
    return fmt::format("Process-{}", counter.fetch_add(1, std::memory_order_relaxed) + 1);
}

process::process(process&& other) noexcept
    : call_body_(std::move(other.call_body_)), start_fds_(std::move(other.start_fds_)),
      name_(std::move(other.name_)), daemon_(other.daemon_), registered_(other.registered_),
      result_type_(other.result_type_), pid_(std::exchange(other.pid_, 0)),
      pidfd_(std::exchange(other.pidfd_, -1)), channel_fd_(std::exchange(other.channel_fd_, -1)),
      answer_(std::move(other.answer_)), exitcode_(std::exchange(other.exitcode_, std::nullopt)) {
    other.start_fds_.clear();
}

process& process::operator=(process&& other) noexcept {
    if (this != &other) {
        process old(std::move(*this));
        call_body_ = std::move(other.call_body_);
        start_fds_ = std::move(other.start_fds_);
        other.start_fds_.clear();
        name_ = std::move(other.name_);
        daemon_ = other.daemon_;
        registered_ = other.registered_;
        result_type_ = other.result_type_;
        pid_ = std::exchange(other.pid_, 0);
        pidfd_ = std::exchange(other.pidfd_, -1);
        channel_fd_ = std::exchange(other.channel_fd_, -1);
        answer_ = std::move(other.answer_);
        exitcode_ = std::exchange(other.exitcode_, std::nullopt);
    }
    return *this;
}

process::~process() {
    detail::close_all(start_fds_);
    if (channel_fd_ >= 0) {
        ::close(channel_fd_);
    }
    if (pidfd_ >= 0) {
        if (!exitcode_ && !(registered_ && detail::drop_child(pid_))) {
            detail::fork_server_release(pid_);
        }
        ::close(pidfd_);
    }
}

void process::name(std::string n) {
    name_ = std::move(n);
}

void process::daemon(bool on) {
    if (pid_ != 0) {
        throw error("corio::process: daemon() set after start()");
    }
    daemon_ = on;
}

void process::start() {
    if (pid_ != 0) {
        throw error("corio::process: start() called twice");
    }
    detail::ensure_fork_server("corio::process");
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        throw std::system_error(errno, std::generic_category(), "corio::process: socketpair");
    }
    byte_writer w;
    const std::size_t at = detail::begin_frame(w, detail::frame_kind::start_process, 0, 1);
    const auto& self = detail::self_identity();
    serialize(w, static_cast<std::int32_t>(::getpid()), self.name, name_, daemon_);
    w.write(call_body_.data(), call_body_.size());
    detail::finish_frame(w, at);
    const std::string frame = w.take();

    detail::spawned_child child;
    try {
        child = detail::fork_server_spawn(sv[1]);
    } catch (...) {
        ::close(sv[0]);
        ::close(sv[1]);
        throw;
    }
    ::close(sv[1]);
    pid_ = child.pid;
    pidfd_ = child.pidfd;
    channel_fd_ = sv[0];
    registered_ = detail::register_child(pid_, name_, daemon_);
    // The child reads the whole frame before it runs anything, so this cannot block
    // for long; if it died already, the send fails and exitcode() tells why. The
    // descriptors of the arguments ride on the first bytes (SCM_RIGHTS).
    std::size_t done = 0;
    bool first = true;
    while (done < frame.size()) {
        iovec iov{const_cast<char*>(frame.data() + done), frame.size() - done};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        std::vector<char> control;
        if (first && !start_fds_.empty()) {
            control.resize(CMSG_SPACE(sizeof(int) * start_fds_.size()));
            msg.msg_control = control.data();
            msg.msg_controllen = control.size();
            cmsghdr* c = CMSG_FIRSTHDR(&msg);
            c->cmsg_level = SOL_SOCKET;
            c->cmsg_type = SCM_RIGHTS;
            c->cmsg_len = CMSG_LEN(sizeof(int) * start_fds_.size());
            std::memcpy(CMSG_DATA(c), start_fds_.data(), sizeof(int) * start_fds_.size());
        }
        const ssize_t n = ::sendmsg(sv[0], &msg, MSG_NOSIGNAL);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
            first = false;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    ::shutdown(channel_fd_, SHUT_WR);
    detail::close_all(start_fds_);
    std::string().swap(call_body_);
}

// Reads what the child wrote on its channel; true once the channel is at its end.
bool process::drain_channel(bool block) {
    if (channel_fd_ < 0) {
        return true;
    }
    char buf[65536];
    for (;;) {
        const ssize_t n = ::recv(channel_fd_, buf, sizeof buf, block ? 0 : MSG_DONTWAIT);
        if (n > 0) {
            answer_.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return false;
        }
        ::close(channel_fd_); // end of stream, or a broken channel
        channel_fd_ = -1;
        return true;
    }
}

void process::reap() {
    // The child wrote its whole answer before it exited: take what is buffered.
    drain_channel(false);
    if (channel_fd_ >= 0) {
        ::close(channel_fd_);
        channel_fd_ = -1;
    }
    if (registered_) {
        detail::forget_child(pid_); // before the pid can be reused
    }
    exitcode_ = detail::exitcode_of(detail::fork_server_wait(pid_));
    ::close(pidfd_);
    pidfd_ = -1;
}

void process::join() {
    if (pid_ == 0) {
        throw error("corio::process: join() before start()");
    }
    if (exitcode_) {
        return;
    }
    join_ms(-1);
}

bool process::join_ms(long long timeout_ms) {
    if (pid_ == 0) {
        throw error("corio::process: join() before start()");
    }
    if (exitcode_) {
        return true;
    }
    // Read the answer while waiting: a large result would otherwise fill the socket
    // and keep the child from exiting.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
        pollfd p[2] = {{pidfd_, POLLIN, 0}, {channel_fd_, POLLIN, 0}};
        int ms = -1;
        if (timeout_ms >= 0) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(
                                  deadline - std::chrono::steady_clock::now())
                                  .count();
            ms = left <= 0 ? 0 : (left > 0x7fffffff ? 0x7fffffff : static_cast<int>(left));
        }
        const int r = ::poll(p, channel_fd_ >= 0 ? 2 : 1, ms);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0 || (p[0].revents != 0)) {
            reap();
            return true;
        }
        if (r > 0 && p[1].revents != 0) {
            drain_channel(false);
            continue;
        }
        if (r == 0) {
            return false;
        }
    }
}

task<void> process::async_join() {
    if (pid_ == 0) {
        throw error("corio::process: async_join() before start()");
    }
    std::string buf(65536, '\0');
    while (channel_fd_ >= 0 && !exitcode_) {
        const int n = co_await detail::io_op(
            &detail::prep_read,
            {.fd = channel_fd_, .addr = buf.data(), .len = static_cast<std::uint32_t>(buf.size())});
        if (n > 0) {
            answer_.append(buf.data(), static_cast<std::size_t>(n));
        } else if (n != -EINTR && n != -EAGAIN) {
            ::close(channel_fd_);
            channel_fd_ = -1;
        }
    }
    if (!exitcode_) {
        (void)co_await detail::io_op(&detail::prep_poll, {.fd = pidfd_, .flags = POLLIN});
        reap();
    }
}

process_result process::result() const {
    if (pid_ == 0 || !exitcode_) {
        throw error("corio::process::result(): the process has not been joined");
    }
    if (answer_.size() < sizeof(detail::frame_header)) {
        throw broken_worker_error(
            fmt::format("corio::process {} ended without a result (exitcode {})", pid_, *exitcode_),
            pid_, *exitcode_);
    }
    byte_reader r(std::string_view(answer_).substr(sizeof(detail::frame_header)));
    if (r.read_raw<std::uint8_t>() != 0) {
        std::rethrow_exception(detail::read_exception(r));
    }
    if (result_type_ == nullptr) {
        throw error("corio::process::result(): the function's return type is not serializable");
    }
    const std::string_view rest =
        std::string_view(answer_).substr(sizeof(detail::frame_header) + 1);
    return process_result(rest, result_type_);
}

std::optional<int> process::exitcode() {
    if (pid_ != 0 && !exitcode_ && detail::wait_pidfd(pidfd_, 0)) {
        reap();
    }
    return exitcode_;
}

bool process::is_alive() {
    return pid_ != 0 && !exitcode();
}

void process::signal(int sig) {
    if (pid_ == 0 || exitcode_) {
        return;
    }
    if (::syscall(SYS_pidfd_send_signal, pidfd_, sig, nullptr, 0) != 0 && errno != ESRCH) {
        throw std::system_error(errno, std::generic_category(),
                                "corio::process: pidfd_send_signal");
    }
}

void process::terminate() {
    signal(SIGTERM);
}

void process::kill() {
    signal(SIGKILL);
}

} // namespace corio
