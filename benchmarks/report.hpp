#pragma once
// Shared by every C++ benchmark program (corio's and the peers'): argument parsing,
// a monotonic clock, the machine-readable RESULT line the runner parses, and the
// self-check that turns a wrong answer into a non-zero exit.

#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

namespace bench {

/// `--name value` pairs from the command line; absent names give the default.
class options {
public:
    options(int argc, char** argv) : argc_(argc), argv_(argv) {}

    std::string get(std::string_view name, std::string_view fallback) const {
        for (int i = 1; i + 1 < argc_; ++i) {
            if (argv_[i][0] == '-' && argv_[i][1] == '-' && name == argv_[i] + 2) {
                return argv_[i + 1];
            }
        }
        return std::string(fallback);
    }
    long long get_int(std::string_view name, long long fallback) const {
        std::string v = get(name, "");
        return v.empty() ? fallback : std::atoll(v.c_str());
    }

private:
    int argc_;
    char** argv_;
};

/// Nanoseconds on the monotonic clock.
inline std::int64_t now_ns() noexcept {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

/// Raises this process's soft limit on open descriptors to its hard limit (H5 at
/// 1,000 connections needs more than the usual soft limit of 1024 on some systems);
/// returns the soft limit in force afterwards.
inline long long raise_fd_limit() noexcept {
    rlimit lim{};
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0) {
        return -1;
    }
    if (lim.rlim_cur < lim.rlim_max) {
        rlimit raised = lim;
        raised.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0) {
            lim = raised;
        }
    }
    return lim.rlim_cur == RLIM_INFINITY ? -1 : static_cast<long long>(lim.rlim_cur);
}

/// Prints the line the runner parses: `RESULT metric=<name> value=<number>`.
inline void report(const char* metric, double value) {
    std::printf("RESULT metric=%s value=%.6g\n", metric, value);
    std::fflush(stdout);
}

/// A benchmark that computes a wrong answer fails loudly: a fast wrong answer is no figure.
inline void check(bool ok, const char* what, long long got, long long want) {
    if (!ok) {
        std::fprintf(stderr, "CHECK FAILED: %s: got %lld, want %lld\n", what, got, want);
        std::exit(3);
    }
    std::printf("CHECK %s ok\n", what);
}

/// Peak resident set size of this program so far, in MiB: VmHWM of /proc/self/status,
/// the high-water mark of this executable's address space. getrusage's ru_maxrss is
/// the fallback only: it survives execve, so it would include the RSS of whatever
/// forked us (the runner's Python) before the exec.
inline double peak_rss_mib() noexcept {
    if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
        char line[256];
        long kib = -1;
        while (std::fgets(line, sizeof line, f) != nullptr) {
            if (std::strncmp(line, "VmHWM:", 6) == 0) {
                kib = std::atol(line + 6);
                break;
            }
        }
        std::fclose(f);
        if (kib >= 0) {
            return static_cast<double>(kib) / 1024.0;
        }
    }
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

} // namespace bench
