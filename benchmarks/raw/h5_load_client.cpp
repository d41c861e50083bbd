// H5 load client, the one that drives every echo server: N connections to 127.0.0.1,
// each a strict ping-pong of SIZE-byte messages (send, wait for the whole echo, check
// its bytes, send the next), multiplexed with epoll. A message larger than the socket
// buffers goes out in pieces: the client keeps reading the echo while it still has
// bytes to send (waiting for EPOLLOUT only while a write is short), so a server that
// echoes as it receives never deadlocks against it. After a warm-up it counts the
// round trips completed in the window and the server's CPU time over the same window
// (sum of /proc/<pid>/task/*/schedstat run times, falling back to /proc/<pid>/stat).
// Usage: h5_load_client --port P --server-pid PID [--conns 50] [--size 64]
//                       [--seconds 5] [--warmup 0.5]
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../report.hpp"

namespace {

struct connection {
    int fd = -1;
    std::uint64_t seq = 0;
    unsigned received = 0;
    unsigned sent = 0;
    bool want_out = false; // EPOLLOUT is in the watched events
    std::vector<char> out;
    std::vector<char> in;
};

void fill(connection& c, std::size_t index) {
    for (std::size_t i = 0; i < c.out.size(); ++i) {
        c.out[i] = static_cast<char>('A' + (index * 7 + c.seq * 13 + i) % 26);
    }
    c.sent = 0;
    c.received = 0;
}

// Server CPU time so far, in nanoseconds.
std::int64_t server_cpu_ns(long pid) {
    std::int64_t total = 0;
    bool any = false;
    const std::string dir = "/proc/" + std::to_string(pid) + "/task";
    if (DIR* d = opendir(dir.c_str())) {
        while (dirent* e = readdir(d)) {
            if (e->d_name[0] == '.') {
                continue;
            }
            if (FILE* f = std::fopen((dir + "/" + e->d_name + "/schedstat").c_str(), "r")) {
                long long run = 0;
                if (std::fscanf(f, "%lld", &run) == 1) {
                    total += run;
                    any = true;
                }
                std::fclose(f);
            }
        }
        closedir(d);
    }
    if (any) {
        return total;
    }
    // /proc/<pid>/stat: fields 14 and 15 are utime and stime in clock ticks.
    FILE* f = std::fopen(("/proc/" + std::to_string(pid) + "/stat").c_str(), "r");
    if (f == nullptr) {
        return 0;
    }
    char buf[1024] = {};
    const std::size_t got = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[got] = '\0';
    const char* p = std::strrchr(buf, ')');
    if (p == nullptr) {
        return 0;
    }
    unsigned long utime = 0;
    unsigned long stime = 0;
    std::sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime);
    return static_cast<std::int64_t>(utime + stime) * (1'000'000'000 / sysconf(_SC_CLK_TCK));
}

bool send_pending(connection& c) {
    while (c.sent < c.out.size()) {
        ssize_t w = write(c.fd, c.out.data() + c.sent, c.out.size() - c.sent);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return true;
            }
            std::perror("write");
            return false;
        }
        c.sent += static_cast<unsigned>(w);
    }
    return true;
}

// Watches EPOLLOUT too while a write is short, EPOLLIN only otherwise.
bool watch_out(int ep, connection& c, std::size_t index, bool want) {
    if (want == c.want_out) {
        return true;
    }
    epoll_event ev{};
    ev.events = want ? EPOLLIN | EPOLLOUT : EPOLLIN;
    ev.data.u64 = index;
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c.fd, &ev) != 0) {
        std::perror("epoll_ctl");
        return false;
    }
    c.want_out = want;
    return true;
}

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const int port = static_cast<int>(opt.get_int("port", 0));
    const long server_pid = static_cast<long>(opt.get_int("server-pid", 0));
    const std::size_t conns = static_cast<std::size_t>(opt.get_int("conns", 50));
    const std::size_t size = static_cast<std::size_t>(opt.get_int("size", 64));
    const double seconds = std::atof(opt.get("seconds", "5").c_str());
    const double warmup = std::atof(opt.get("warmup", "0.5").c_str());
    // 1,000 connections and the epoll descriptor need more than a soft limit of 1024.
    const long long fd_limit = bench::raise_fd_limit();
    if (fd_limit >= 0 && static_cast<std::size_t>(fd_limit) < conns + 16) {
        std::fprintf(stderr, "RLIMIT_NOFILE is %lld (hard limit): too low for %zu connections\n",
                     fd_limit, conns);
        return 2;
    }
    if (conns == 0 || size == 0) {
        std::fprintf(stderr, "--conns and --size must be positive\n");
        return 2;
    }

    const int ep = epoll_create1(EPOLL_CLOEXEC);
    std::vector<connection> cs(conns);
    for (std::size_t i = 0; i < conns; ++i) {
        connection& c = cs[i];
        c.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (c.fd < 0) {
            std::perror("socket");
            return 2;
        }
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(static_cast<std::uint16_t>(port));
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            std::perror("connect");
            return 2;
        }
        int one = 1;
        setsockopt(c.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(c.fd, F_SETFL, fcntl(c.fd, F_GETFL) | O_NONBLOCK);
        c.out.resize(size);
        c.in.resize(size);
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = i;
        epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    }
    for (std::size_t i = 0; i < conns; ++i) {
        fill(cs[i], i);
        if (!send_pending(cs[i]) || !watch_out(ep, cs[i], i, cs[i].sent < cs[i].out.size())) {
            return 2;
        }
    }

    const std::int64_t start = bench::now_ns();
    const std::int64_t window_start = start + static_cast<std::int64_t>(warmup * 1e9);
    const std::int64_t window_end = window_start + static_cast<std::int64_t>(seconds * 1e9);
    bool in_window = false;
    std::int64_t round_trips = 0;
    std::int64_t mismatches = 0;
    std::int64_t trips_at_start = 0;
    std::int64_t cpu_at_start = 0;
    std::int64_t measured_start = 0;
    epoll_event events[256];
    for (;;) {
        const std::int64_t now = bench::now_ns();
        if (!in_window && now >= window_start) {
            in_window = true;
            trips_at_start = round_trips;
            cpu_at_start = server_pid ? server_cpu_ns(server_pid) : 0;
            measured_start = now;
        }
        if (now >= window_end) {
            break;
        }
        const int n = epoll_wait(ep, events, 256, 100);
        for (int k = 0; k < n; ++k) {
            const std::size_t i = events[k].data.u64;
            connection& c = cs[i];
            if (c.sent < c.out.size() && !send_pending(c)) {
                return 2;
            }
            if (!watch_out(ep, c, i, c.sent < c.out.size())) {
                return 2;
            }
            // Read what has come back, up to the end of this message (the server
            // cannot echo bytes of a message not yet sent).
            bool done = false;
            while (!done && c.received < c.sent) {
                ssize_t r = read(c.fd, c.in.data() + c.received, size - c.received);
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                    break;
                }
                if (r <= 0) {
                    std::fprintf(stderr, "connection %zu closed by the server\n", i);
                    return 2;
                }
                c.received += static_cast<unsigned>(r);
                done = c.received == size;
            }
            if (!done) {
                continue;
            }
            mismatches += std::memcmp(c.in.data(), c.out.data(), size) != 0;
            ++round_trips;
            ++c.seq;
            fill(c, i);
            if (!send_pending(c) || !watch_out(ep, c, i, c.sent < c.out.size())) {
                return 2;
            }
        }
    }
    const std::int64_t measured_end = bench::now_ns();
    const std::int64_t cpu_at_end = server_pid ? server_cpu_ns(server_pid) : 0;
    const std::int64_t trips = round_trips - trips_at_start;
    for (connection& c : cs) {
        close(c.fd);
    }

    bench::check(mismatches == 0, "echoed bytes equal the bytes sent (mismatches)", mismatches, 0);
    bench::check(trips > 0, "round trips in the window > 0", trips, 1);
    bench::report("req_per_s", static_cast<double>(trips) * 1e9 /
                                   static_cast<double>(measured_end - measured_start));
    if (server_pid) {
        bench::report("cpu_us_per_req", static_cast<double>(cpu_at_end - cpu_at_start) / 1e3 /
                                            static_cast<double>(trips));
    }
    return 0;
}
