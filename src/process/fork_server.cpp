// The fork server (see src/process/fork_server.hpp) and corio::init().
#include "process/fork_server.hpp"
#include <corio/detail/live_counts.hpp>
#include <corio/detail/process_wire.hpp>
#include <corio/init.hpp>
#include <corio/process_error.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <dirent.h>
#include <mutex>
#include <new>
#include <poll.h>
#include <set>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <system_error>
#include <unistd.h>

namespace corio::detail {

namespace {

enum class server_op : std::uint32_t { spawn = 1, wait = 2, release = 3 };

struct server_request {
    server_op op = server_op::spawn;
    std::int32_t pid = 0;
};

struct server_reply {
    std::int32_t pid = 0;
    std::int32_t status = 0;
    std::int32_t error = 0; // errno of a failed fork
};

// The program's end of the server's socket. Children of the server are forks of a
// snapshot taken before `fd` was set, so in them it is -1 and a pool created there
// starts a fork server of its own.
struct server_link {
    std::mutex mutex; // one request/reply exchange at a time
    int fd = -1;
    pid_t pid = -1;
};

server_link& link() noexcept {
    static server_link l;
    return l;
}

std::mutex& start_mutex() noexcept {
    static std::mutex m;
    return m;
}

// True if thread `tid` of this process is an io_uring kernel worker (iou-wrk-*,
// iou-sqp-*): PF_IO_WORKER in the flags field of /proc/self/task/<tid>/stat. Such a
// thread runs no user code and does not exist in a forked child, so it does not make
// the program multi-threaded for the fork server's purpose.
bool is_io_worker(const char* tid) noexcept {
    constexpr unsigned long pf_io_worker = 0x10; // include/linux/sched.h
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%s/stat", tid);
    std::FILE* f = std::fopen(path, "re");
    if (f == nullptr) {
        return false;
    }
    char buf[512];
    const std::size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    // "tid (comm) state ppid pgrp session tty_nr tpgid flags ...": comm may hold
    // spaces and parentheses, so fields are counted from its last ')'.
    const char* p = std::strrchr(buf, ')');
    if (p == nullptr) {
        return false;
    }
    unsigned long flags = 0;
    if (std::sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %lu", &flags) != 1) {
        return false;
    }
    return (flags & pf_io_worker) != 0;
}

// Threads of this process that run user code, from /proc/self/task (io_uring's
// kernel workers excluded); 0 if unknown.
std::size_t thread_count() noexcept {
    DIR* d = ::opendir("/proc/self/task");
    if (d == nullptr) {
        return 0;
    }
    std::size_t n = 0;
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.' && !is_io_worker(e->d_name)) {
            ++n;
        }
    }
    ::closedir(d);
    return n;
}

bool send_with_fd(int sock, const void* data, std::size_t size, int fd) noexcept {
    iovec iov{const_cast<void*>(data), size};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    if (fd >= 0) {
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
    }
    for (;;) {
        const ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
        if (n >= 0) {
            return static_cast<std::size_t>(n) == size;
        }
        if (errno != EINTR) {
            return false;
        }
    }
}

// Receives one message; returns its size (0 at end of stream, -1 on error) and the
// passed descriptor, if any, in `fd`.
ssize_t recv_with_fd(int sock, void* data, std::size_t size, int& fd) noexcept {
    fd = -1;
    iovec iov{data, size};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t n;
    do {
        n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
            }
        }
    }
    return n;
}

int waitpid_retry(pid_t pid, int* status, int flags) noexcept {
    int r;
    do {
        r = ::waitpid(pid, status, flags);
    } while (r < 0 && errno == EINTR);
    return r;
}

// Every signal back to its default disposition and an empty blocked mask: what a
// freshly exec'ed program starts with, whatever handlers (a test framework's) or
// mask (a loop's signalfd) the program had when the server was forked.
void reset_signals() noexcept {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) {
            ::sigaction(sig, &dfl, nullptr); // EINVAL for the glibc-reserved ones
        }
    }
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

[[noreturn]] void server_main(int sock, pid_t program) noexcept {
    // Forked while start_server_locked held this mutex: in this process and in its
    // children (where a nested pool may start a fork server of its own) it must be free.
    new (&start_mutex()) std::mutex();
    // Die with the program; ignore the terminal's Ctrl-C (the program decides).
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != program) {
        ::_exit(0);
    }
    // Children must stay waitable even if the program ignores SIGCHLD (reset here).
    reset_signals();
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGPIPE, SIG_IGN);
    std::set<pid_t> released;
    for (;;) {
        server_request req;
        int passed = -1;
        const ssize_t n = recv_with_fd(sock, &req, sizeof req, passed);
        if (n <= 0) {
            ::_exit(0); // the program closed its end or exited
        }
        for (auto it = released.begin(); it != released.end();) {
            int st = 0;
            it = waitpid_retry(*it, &st, WNOHANG) == 0 ? std::next(it) : released.erase(it);
        }
        server_reply rep;
        rep.pid = req.pid;
        switch (req.op) {
        case server_op::spawn: {
            const pid_t child = ::fork();
            if (child == 0) {
                ::close(sock);
                reset_signals();
                ::prctl(PR_SET_PDEATHSIG, SIGKILL);
                child_main(passed);
            }
            if (passed >= 0) {
                ::close(passed);
            }
            int pidfd = -1;
            if (child < 0) {
                rep.error = errno;
            } else {
                rep.pid = child;
                pidfd = static_cast<int>(::syscall(SYS_pidfd_open, child, 0));
                if (pidfd < 0) {
                    rep.error = errno;
                }
            }
            send_with_fd(sock, &rep, sizeof rep, pidfd);
            if (pidfd >= 0) {
                ::close(pidfd);
            }
            break;
        }
        case server_op::wait: {
            int st = 0;
            if (waitpid_retry(req.pid, &st, 0) < 0) {
                rep.error = errno;
            }
            rep.status = st;
            send_with_fd(sock, &rep, sizeof rep, -1);
            break;
        }
        case server_op::release: {
            int st = 0;
            if (waitpid_retry(req.pid, &st, WNOHANG) == 0) {
                released.insert(req.pid);
            }
            break;
        }
        }
    }
}

void start_server_locked() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        throw std::system_error(errno, std::generic_category(), "corio: fork server socketpair");
    }
    // Unwritten stdio buffers would be written again by every child.
    std::fflush(nullptr);
    const pid_t program = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        const int e = errno;
        ::close(sv[0]);
        ::close(sv[1]);
        throw std::system_error(e, std::generic_category(), "corio: fork of the fork server");
    }
    if (pid == 0) {
        ::close(sv[0]);
        server_main(sv[1], program);
    }
    ::close(sv[1]);
    auto& l = link();
    std::lock_guard lock(l.mutex);
    l.fd = sv[0];
    l.pid = pid;
}

server_reply exchange(server_request req, int pass_fd, int* received_fd) {
    auto& l = link();
    std::lock_guard lock(l.mutex);
    if (l.fd < 0) {
        throw broken_pool_error("corio: the fork server is not running");
    }
    if (!send_with_fd(l.fd, &req, sizeof req, pass_fd)) {
        throw broken_pool_error("corio: the fork server is gone (it was killed?)");
    }
    if (req.op == server_op::release) {
        return {};
    }
    server_reply rep;
    int fd = -1;
    const ssize_t n = recv_with_fd(l.fd, &rep, sizeof rep, fd);
    if (n != static_cast<ssize_t>(sizeof rep)) {
        if (fd >= 0) {
            ::close(fd);
        }
        throw broken_pool_error("corio: the fork server is gone (it was killed?)");
    }
    if (received_fd != nullptr) {
        *received_fd = fd;
    } else if (fd >= 0) {
        ::close(fd);
    }
    return rep;
}

} // namespace

int fork_server_pid() noexcept {
    auto& l = link();
    std::lock_guard lock(l.mutex);
    return l.pid;
}

int fork_server_fd() noexcept {
    auto& l = link();
    std::lock_guard lock(l.mutex);
    return l.fd;
}

// With start_mutex held: if the server died (killed, or crashed), forgets it and
// returns a description of how it ended; empty if it runs (or never started).
std::string forget_dead_server() {
    auto& l = link();
    std::lock_guard lock(l.mutex);
    if (l.pid <= 0) {
        return {};
    }
    // The server never writes unless asked, and requests are answered under this
    // mutex: readable or hung up now means its end of the socket is closed.
    pollfd p{l.fd, POLLIN, 0};
    int r;
    do {
        r = ::poll(&p, 1, 0);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        return {};
    }
    std::string how = "exited";
    int status = 0;
    // The server is the program's child; reap it (unless the program reaps all).
    if (waitpid_retry(l.pid, &status, 0) == l.pid) {
        how = describe_wait_status(status);
    }
    std::string what = fmt::format("the fork server (pid {}) {}", l.pid, how);
    ::close(l.fd);
    l.fd = -1;
    l.pid = -1;
    return what;
}

void ensure_fork_server(const char* who) {
    std::lock_guard lock(start_mutex());
    const std::string died = forget_dead_server();
    if (link().pid > 0) {
        return;
    }
    const std::size_t threads = thread_count();
    if (threads != 1) {
        if (!died.empty()) {
            throw broken_pool_error(fmt::format(
                "corio: {} needs a new fork server because {}, but a fork server must be "
                "forked while the program is single-threaded and it now runs {} threads. "
                "Stop the other threads (pools) first, or keep the fork server alive.",
                who, died, threads));
        }
        throw error(fmt::format("corio: {} needs the fork server, which must be forked while the "
                                "program is single-threaded, "
                                "but it already runs {} threads. Call corio::init() at the top of "
                                "main(), before starting threads.",
                                who, threads));
    }
    start_server_locked();
}

spawned_child fork_server_spawn(int channel_fd) {
    int pidfd = -1;
    const server_reply rep = exchange({server_op::spawn, 0}, channel_fd, &pidfd);
    if (rep.error != 0) {
        if (pidfd >= 0) {
            ::close(pidfd);
        }
        if (rep.pid > 0) {
            fork_server_release(rep.pid);
        }
        throw std::system_error(rep.error, std::generic_category(),
                                "corio: the fork server could not fork");
    }
    return {rep.pid, pidfd};
}

int fork_server_wait(pid_t pid) {
    const server_reply rep = exchange({server_op::wait, pid}, -1, nullptr);
    if (rep.error != 0) {
        throw std::system_error(rep.error, std::generic_category(),
                                "corio: waiting for a worker process");
    }
    return rep.status;
}

void fork_server_release(pid_t pid) noexcept {
    try {
        exchange({server_op::release, pid}, -1, nullptr);
    } catch (...) {
        // The server is gone, and with it the zombie: nothing left to release.
    }
}

bool wait_pidfd(int pidfd, int timeout_ms) noexcept {
    pollfd p{pidfd, POLLIN, 0};
    for (;;) {
        const int r = ::poll(&p, 1, timeout_ms);
        if (r > 0) {
            return true;
        }
        if (r == 0) {
            return false;
        }
        if (errno != EINTR) {
            return true; // a broken pidfd: do not wait forever
        }
    }
}

} // namespace corio::detail

namespace corio {

void init() {
    std::lock_guard lock(detail::start_mutex());
    (void)detail::forget_dead_server(); // a dead one is replaced
    if (detail::link().pid > 0) {
        return;
    }
    const std::size_t threads = detail::thread_count();
    if (threads != 1) {
        throw error(
            fmt::format("corio::init() must run while the program is single-threaded (before any "
                        "thread starts); it already runs {} threads",
                        threads));
    }
    detail::start_server_locked();
}

} // namespace corio
