#pragma once
// What the Redis pool tests (and tests/stress/stress_redis.cpp) share: a worker program
// (tests/redis_test_worker.cpp) started by a test and SIGKILLed at its end unless it
// exited.

#include <cerrno>
#include <chrono>
#include <csignal>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/types.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

extern char** environ;

namespace redis_test {

/// A worker program started by a test; SIGKILLed at the end unless it exited.
class worker_process {
public:
    worker_process(const std::string& url, const std::string& queue, int concurrency = 1,
                   bool processes = true, int grace_ms = 5000) {
        std::vector<std::string> args = {
            CORIO_REDIS_TEST_WORKER, url, queue, std::to_string(concurrency), processes ? "1" : "0",
            std::to_string(grace_ms)};
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        if (::posix_spawn(&pid_, argv[0], nullptr, nullptr, argv.data(), environ) != 0) {
            throw std::runtime_error("cannot start the test worker");
        }
    }
    worker_process(const worker_process&) = delete;
    worker_process& operator=(const worker_process&) = delete;
    ~worker_process() { kill(); }
    /// SIGKILLs the program (unless it exited) and reaps it.
    void kill() noexcept {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            int status = 0;
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
            pid_ = 0;
        }
    }
    pid_t pid() const noexcept { return pid_; }
    void signal(int sig) const { ::kill(pid_, sig); }
    /// Waits for the exit, at most `bound`; returns the exit status, or minus the signal.
    /// A worker that has not exited by then is killed and the wait throws, naming it: a
    /// stuck worker fails its test instead of hanging it.
    int wait(std::chrono::seconds bound = std::chrono::seconds(60)) {
        const auto deadline = std::chrono::steady_clock::now() + bound;
        int status = 0;
        for (;;) {
            const pid_t got = ::waitpid(pid_, &status, WNOHANG);
            if (got == pid_ || (got < 0 && errno != EINTR)) {
                break;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                ::kill(pid_, SIGKILL);
                while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
                }
                pid_ = 0;
                throw std::runtime_error("the worker program did not exit within " +
                                         std::to_string(bound.count()) + " s (killed)");
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5)); // another process
        }
        pid_ = 0;
        return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
    }

private:
    pid_t pid_ = 0;
};

} // namespace redis_test
