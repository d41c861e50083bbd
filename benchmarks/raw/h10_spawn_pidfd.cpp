// H10, the limit: posix_spawn + pidfd, no event loop library. spawn_wait: N children
// of /bin/true, `parallel` at a time, each pidfd polled with poll(2) and reaped with
// waitid(P_PIDFD); pipe_64MiB: `cat` of a file read through a pipe with read(2).
#include "../report.hpp"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

extern char** environ;

namespace {

int pidfd_open(pid_t pid) {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}

struct child {
    pid_t pid;
    int pidfd;
};

child spawn(const char* path, char* const argv[], posix_spawn_file_actions_t* fa) {
    pid_t pid = -1;
    if (::posix_spawn(&pid, path, fa, nullptr, argv, environ) != 0) {
        std::perror("posix_spawn");
        std::exit(2);
    }
    int fd = pidfd_open(pid);
    if (fd < 0) {
        std::perror("pidfd_open");
        std::exit(2);
    }
    return {pid, fd};
}

int reap(int pidfd) {
    siginfo_t info{};
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd), &info, WEXITED) != 0) {
        std::perror("waitid");
        std::exit(2);
    }
    ::close(pidfd);
    return info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    std::string variant = opt.get("variant", "spawn_wait");
    if (variant == "spawn_wait") {
        long long n = opt.get_int("n", 2000);
        long long parallel = opt.get_int("parallel", 8);
        char true_path[] = "/bin/true";
        char* const args[] = {true_path, nullptr};
        long long ok = 0;
        std::int64_t t0 = bench::now_ns();
        std::vector<pollfd> running;
        long long started = 0;
        while (started < n || !running.empty()) {
            while (started < n && static_cast<long long>(running.size()) < parallel) {
                child c = spawn(true_path, args, nullptr);
                running.push_back({c.pidfd, POLLIN, 0});
                ++started;
            }
            if (::poll(running.data(), running.size(), -1) < 0) {
                std::perror("poll");
                return 2;
            }
            for (std::size_t i = 0; i < running.size();) {
                if (running[i].revents != 0) {
                    ok += reap(running[i].fd) == 0;
                    running[i] = running.back();
                    running.pop_back();
                } else {
                    ++i;
                }
            }
        }
        std::int64_t t1 = bench::now_ns();
        bench::check(ok == n, "every child exited 0", ok, n);
        bench::report("spawns_per_s", static_cast<double>(n) * 1e9 / static_cast<double>(t1 - t0));
    } else {
        long long mib = opt.get_int("mib", 64);
        std::string path = opt.get("file", "");
        bench::check(!path.empty(), "--file given", 0, 1);
        std::int64_t t0 = bench::now_ns();
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) {
            return 2;
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
        char cat[] = "/bin/cat";
        char* const args[] = {cat, path.data(), nullptr};
        child c = spawn(cat, args, &fa);
        posix_spawn_file_actions_destroy(&fa);
        ::close(fds[1]);
        std::vector<char> buf(1 << 20);
        long long total = 0;
        for (;;) {
            ssize_t k = ::read(fds[0], buf.data(), buf.size());
            if (k <= 0) {
                break;
            }
            total += k;
        }
        ::close(fds[0]);
        int rc = reap(c.pidfd);
        std::int64_t t1 = bench::now_ns();
        bench::check(rc == 0 && total == mib << 20, "bytes read", total, mib << 20);
        bench::report("mb_per_s",
                      static_cast<double>(total) / 1e6 * 1e9 / static_cast<double>(t1 - t0));
    }
    return 0;
}
