// corio::process: a call in a child of the fork server.
#include "process/fork_server.hpp"
#include <corio/process.hpp>

#include <cerrno>
#include <csignal>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <system_error>
#include <unistd.h>

namespace corio {

process::process(process&& other) noexcept
    : start_frame_(std::move(other.start_frame_)), pid_(std::exchange(other.pid_, 0)),
      pidfd_(std::exchange(other.pidfd_, -1)),
      exitcode_(std::exchange(other.exitcode_, std::nullopt)) {}

process& process::operator=(process&& other) noexcept {
    if (this != &other) {
        process old(std::move(*this));
        start_frame_ = std::move(other.start_frame_);
        pid_ = std::exchange(other.pid_, 0);
        pidfd_ = std::exchange(other.pidfd_, -1);
        exitcode_ = std::exchange(other.exitcode_, std::nullopt);
    }
    return *this;
}

process::~process() {
    if (pidfd_ >= 0) {
        if (!exitcode_)
            detail::fork_server_release(pid_);
        ::close(pidfd_);
    }
}

void process::start() {
    if (pid_ != 0)
        throw error("corio::process: start() called twice");
    detail::ensure_fork_server("corio::process");
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        throw std::system_error(errno, std::generic_category(), "corio::process: socketpair");
    }
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
    // The child reads the whole frame before it runs anything, so this cannot block
    // for long; if it died already, the send fails and exitcode() tells why.
    std::size_t done = 0;
    while (done < start_frame_.size()) {
        const ssize_t n =
            ::send(sv[0], start_frame_.data() + done, start_frame_.size() - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            break;
        }
    }
    ::close(sv[0]);
    std::string().swap(start_frame_);
}

void process::reap() {
    exitcode_ = detail::exitcode_of(detail::fork_server_wait(pid_));
    ::close(pidfd_);
    pidfd_ = -1;
}

void process::join() {
    if (pid_ == 0)
        throw error("corio::process: join() before start()");
    if (exitcode_)
        return;
    detail::wait_pidfd(pidfd_, -1);
    reap();
}

bool process::join_ms(long long timeout_ms) {
    if (pid_ == 0)
        throw error("corio::process: join() before start()");
    if (exitcode_)
        return true;
    const int ms = timeout_ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(timeout_ms);
    if (!detail::wait_pidfd(pidfd_, ms))
        return false;
    reap();
    return true;
}

std::optional<int> process::exitcode() {
    if (pid_ != 0 && !exitcode_ && detail::wait_pidfd(pidfd_, 0))
        reap();
    return exitcode_;
}

bool process::is_alive() {
    return pid_ != 0 && !exitcode();
}

void process::signal(int sig) {
    if (pid_ == 0 || exitcode_)
        return;
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
