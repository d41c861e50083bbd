#pragma once
// Starts worker programs (redis_worker_example) for the examples that run on their own:
// each gets SIGTERM at the end (a graceful stop) and is waited for.

#include <csignal>
#include <spawn.h>
#include <stdexcept>
#include <string>
#include <sys/wait.h>
#include <vector>

extern char** environ;

namespace corio_example {

class worker_group {
public:
    worker_group(const std::string& program, const std::string& url, int n,
                 const std::string& queue = "default") {
        for (int i = 0; i < n; ++i) {
            std::vector<std::string> args = {program, url, queue, "1"};
            std::vector<char*> argv;
            for (auto& a : args) {
                argv.push_back(a.data());
            }
            argv.push_back(nullptr);
            pid_t pid = 0;
            if (::posix_spawn(&pid, program.c_str(), nullptr, nullptr, argv.data(), environ) != 0) {
                throw std::runtime_error("cannot start " + program);
            }
            pids_.push_back(pid);
        }
    }
    worker_group(const worker_group&) = delete;
    worker_group& operator=(const worker_group&) = delete;
    /// SIGTERM to every worker; true if all exited with status 0.
    bool stop() {
        bool ok = true;
        for (pid_t pid : pids_) {
            ::kill(pid, SIGTERM);
        }
        for (pid_t pid : pids_) {
            int status = 0;
            ::waitpid(pid, &status, 0);
            ok = ok && WIFEXITED(status) && WEXITSTATUS(status) == 0;
        }
        pids_.clear();
        return ok;
    }
    ~worker_group() { stop(); }

private:
    std::vector<pid_t> pids_;
};

} // namespace corio_example
