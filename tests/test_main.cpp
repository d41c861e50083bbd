// The test main: Catch2's, with a leak gate. After every test case, the open file
// descriptors, live future/task states, event loops, io_uring rings, kernel
// operations pending on this thread's rings, and live descendant processes must be
// back to what they were before it; otherwise the program names the test case and
// exactly what leaked, and exits with a failure status.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <corio/detail/live_counts.hpp>

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_THREAD__)
// libstdc++ is not instrumented, so ThreadSanitizer does not see the atomic reference
// count of an exception object shared through std::exception_ptr: when a caller reads
// a rethrown exception and a pool thread later drops the last reference to the result
// that stored it, the exception's destructor (reached from exception_ptr's release)
// looks like a race with the read (with the release inlined into the destructor of a
// standard exception, only that destructor shows on the stack). The programs are
// correct: the reader's in-flight exception holds a reference until its handler ends.
extern "C" const char* __tsan_default_suppressions() {
    return "race:std::__exception_ptr::exception_ptr::_M_release\n"
           "race:std::runtime_error::~runtime_error\n"
           "race:std::logic_error::~logic_error\n";
}
#endif

namespace {

// Open descriptors and what they point at (the listing's own descriptor and the
// fork server's socket, which lives as long as the program, left out).
std::map<int, std::string> open_fds() {
    std::map<int, std::string> fds;
    DIR* d = ::opendir("/proc/self/fd");
    if (d == nullptr) {
        return fds;
    }
    const int own = ::dirfd(d);
    const int server = corio::detail::fork_server_fd();
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') {
            continue;
        }
        const int fd = std::atoi(e->d_name);
        if (fd == own || fd == server) {
            continue;
        }
        char target[256] = {};
        const std::string link = std::string("/proc/self/fd/") + e->d_name;
        const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
        fds.emplace(fd, n > 0 ? std::string(target, static_cast<std::size_t>(n)) : "?");
    }
    ::closedir(d);
    return fds;
}

std::vector<int> children_of(int pid) {
    std::vector<int> out;
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
        return out;
    }
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') {
            continue;
        }
        std::ifstream f(dir + "/" + e->d_name + "/children");
        int child = 0;
        while (f >> child) {
            out.push_back(child);
        }
    }
    ::closedir(d);
    return out;
}

// "R", "S", "Z", ... of a process; empty if it is gone.
std::string state_of(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(f, stat);
    const auto close = stat.rfind(')');
    return close == std::string::npos || close + 2 >= stat.size() ? std::string()
                                                                  : stat.substr(close + 2, 1);
}

std::string command_of(int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/comm");
    std::string comm;
    std::getline(f, comm);
    return comm;
}

// Live (not zombie) descendants, the fork server itself left out (its children,
// the workers, are counted).
std::set<int> live_descendants() {
    std::set<int> out;
    const int server = corio::detail::fork_server_pid();
    std::vector<int> todo = children_of(static_cast<int>(::getpid()));
    while (!todo.empty()) {
        const int pid = todo.back();
        todo.pop_back();
        const std::string st = state_of(pid);
        if (st.empty() || st == "Z" || st == "X") {
            continue;
        }
        if (pid != server) {
            out.insert(pid);
        }
        for (int c : children_of(pid)) {
            todo.push_back(c);
        }
    }
    return out;
}

struct snapshot {
    std::map<int, std::string> fds;
    std::size_t states = 0;
    std::size_t loops = 0;
    std::size_t rings = 0;
    std::size_t kernel_ops = 0;
    std::set<int> processes;

    static snapshot take() {
        snapshot s;
        s.fds = open_fds();
        s.states = corio::detail::live_future_states();
        s.loops = corio::detail::live_event_loops();
        s.rings = corio::detail::live_rings();
        s.kernel_ops = corio::detail::pending_kernel_ops();
        s.processes = live_descendants();
        return s;
    }
};

// What `after` holds beyond `before`, one line per kind; empty if nothing leaked.
std::string leaks(const snapshot& before, const snapshot& after) {
    std::ostringstream out;
    std::ostringstream fds;
    for (const auto& [fd, target] : after.fds) {
        auto it = before.fds.find(fd);
        if (it == before.fds.end() || it->second != target) {
            fds << " " << fd << " -> " << target << ";";
        }
    }
    if (!fds.str().empty()) {
        out << "  open file descriptors " << before.fds.size() << " -> " << after.fds.size()
            << ", new:" << fds.str() << "\n";
    }
    auto count = [&out](const char* what, std::size_t b, std::size_t a) {
        if (a > b) {
            out << "  " << what << " " << b << " -> " << a << "\n";
        }
    };
    count("live future/task states", before.states, after.states);
    count("live event loops", before.loops, after.loops);
    count("live io_uring rings", before.rings, after.rings);
    count("kernel operations pending on this thread's rings", before.kernel_ops, after.kernel_ops);
    std::ostringstream procs;
    for (int pid : after.processes) {
        if (before.processes.count(pid) == 0) {
            procs << " " << pid << " (" << command_of(pid) << ");";
        }
    }
    if (!procs.str().empty()) {
        out << "  live child processes " << before.processes.size() << " -> "
            << after.processes.size() << ", new:" << procs.str() << "\n";
    }
    return out.str();
}

std::vector<std::string>& failures() {
    static std::vector<std::string> f;
    return f;
}

struct leak_gate : Catch::TestEventListenerBase {
    using TestEventListenerBase::TestEventListenerBase;

    void testCaseStarting(const Catch::TestCaseInfo& info) override {
        TestEventListenerBase::testCaseStarting(info);
        before_ = snapshot::take();
    }

    void testCaseEnded(const Catch::TestCaseStats& stats) override {
        std::string leaked = leaks(before_, snapshot::take());
        // A process SIGKILLed at the end of a test may take the kernel a moment to
        // tear down, and a worker told to exit a moment to go: give what leaked at
        // most 5 s to go away before calling it a leak (nothing waits when clean).
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        while (!leaked.empty() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
            leaked = leaks(before_, snapshot::take());
        }
        if (!leaked.empty()) {
            std::string report = "LEAK GATE: test case \"" + stats.testInfo.name +
                                 "\" left behind what it did not have before it:\n" + leaked;
            std::fputs(report.c_str(), stderr);
            std::fflush(stderr);
            failures().push_back(std::move(report));
        }
        TestEventListenerBase::testCaseEnded(stats);
    }

private:
    snapshot before_;
};

} // namespace

CATCH_REGISTER_LISTENER(leak_gate)

int main(int argc, char* argv[]) {
    int result = Catch::Session().run(argc, argv);
    if (!failures().empty()) {
        std::fprintf(stderr, "LEAK GATE: %zu test case(s) leaked (reported above)\n",
                     failures().size());
        result = result != 0 ? result : 1;
    }
    if (result != 0) {
        // A failed test may have left a corio::process child running: exit now rather
        // than wait for it at exit (the rule for non-daemon children).
        std::fflush(nullptr);
        std::_Exit(result);
    }
    return result;
}
