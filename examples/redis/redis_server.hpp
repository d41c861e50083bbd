#pragma once
// A private redis-server for tests, examples and the demo: started on loopback (a free
// TCP port, or a Unix socket) with its data in a fresh temporary directory, without
// persistence unless asked (`--save '' --appendonly no`), and stopped by the destructor.
// It dies with the process that started it (PR_SET_PDEATHSIG), so a crashed test leaves
// no server behind. Blocking calls: use it outside the event loop.

#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <netinet/in.h>
#include <stdexcept>
#include <string>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace corio_example {

/// Options of a private redis-server.
struct redis_server_options {
    bool unix_socket = false; ///< Listen on a Unix socket in the temp dir instead of TCP.
    bool aof = false;         ///< appendonly yes, appendfsync always (restarts lose nothing).
};

/// A redis-server child process on loopback with a temp dir of its own.
class redis_server {
public:
    explicit redis_server(redis_server_options o = {}) : options_(o) {
        char tmpl[] = "/tmp/corio-redis-XXXXXX";
        if (::mkdtemp(tmpl) == nullptr) {
            throw std::runtime_error("redis_server: mkdtemp failed");
        }
        dir_ = tmpl;
        if (!options_.unix_socket) {
            port_ = free_port();
        }
        start();
    }
    redis_server(const redis_server&) = delete;
    redis_server& operator=(const redis_server&) = delete;
    ~redis_server() {
        stop();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }

    /// `redis://127.0.0.1:port` or `redis+unix:///tmp/.../redis.sock`.
    std::string url() const {
        return options_.unix_socket ? "redis+unix://" + dir_ + "/redis.sock"
                                    : "redis://127.0.0.1:" + std::to_string(port_);
    }
    /// The TCP port (0 with a Unix socket).
    int port() const noexcept { return port_; }
    /// The server's process id (0 when stopped).
    pid_t pid() const noexcept { return pid_; }

    /// Starts the server (again, same port and directory) and waits until it answers.
    void start() {
        std::vector<std::string> args = {"redis-server",
                                         "--bind",
                                         "127.0.0.1",
                                         "--port",
                                         std::to_string(options_.unix_socket ? 0 : port_),
                                         "--dir",
                                         dir_,
                                         "--save",
                                         "",
                                         "--maxmemory-policy",
                                         "noeviction",
                                         "--daemonize",
                                         "no",
                                         "--logfile",
                                         dir_ + "/redis.log"};
        if (options_.unix_socket) {
            args.insert(args.end(), {"--unixsocket", dir_ + "/redis.sock"});
        }
        if (options_.aof) {
            args.insert(args.end(), {"--appendonly", "yes", "--appendfsync", "always"});
        } else {
            args.insert(args.end(), {"--appendonly", "no"});
        }
        std::vector<char*> argv;
        for (auto& a : args) {
            argv.push_back(a.data());
        }
        argv.push_back(nullptr);
        const pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ < 0) {
            throw std::runtime_error("redis_server: fork failed");
        }
        if (pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) {
                ::_exit(1);
            }
            ::execvp("redis-server", argv.data());
            ::_exit(127);
        }
        wait_ready();
    }

    /// Stops the server (SIGTERM, or SIGKILL with `hard`) and reaps it.
    void stop(bool hard = false) noexcept {
        if (pid_ > 0) {
            ::kill(pid_, hard ? SIGKILL : SIGTERM);
            int status = 0;
            while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
            }
            pid_ = 0;
        }
    }

    /// Stops and starts the server; with persistence off, every key is gone.
    void restart(bool hard = false) {
        stop(hard);
        start();
    }

private:
    static int free_port() {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof a;
        if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
            ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
            throw std::runtime_error("redis_server: no free port");
        }
        ::close(fd);
        return ntohs(a.sin_port);
    }

    // Connects and sends PING until +PONG comes back (the server loaded its data).
    bool ping() const {
        int fd = -1;
        if (options_.unix_socket) {
            fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
            sockaddr_un a{};
            a.sun_family = AF_UNIX;
            const std::string p = dir_ + "/redis.sock";
            std::strncpy(a.sun_path, p.c_str(), sizeof a.sun_path - 1);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                ::close(fd);
                return false;
            }
        } else {
            fd = ::socket(AF_INET, SOCK_STREAM, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(static_cast<std::uint16_t>(port_));
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
                ::close(fd);
                return false;
            }
        }
        timeval tv{1, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        const char ping_cmd[] = "PING\r\n";
        char buf[64] = {};
        const bool ok = ::write(fd, ping_cmd, sizeof ping_cmd - 1) == sizeof ping_cmd - 1 &&
                        ::read(fd, buf, sizeof buf - 1) > 0 && std::strncmp(buf, "+PONG", 5) == 0;
        ::close(fd);
        return ok;
    }

    void wait_ready() {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!ping()) {
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) {
                pid_ = 0;
                throw std::runtime_error("redis_server: redis-server exited at start (see " + dir_ +
                                         "/redis.log)");
            }
            if (std::chrono::steady_clock::now() > deadline) {
                stop(true);
                throw std::runtime_error("redis_server: redis-server did not answer in 10 s");
            }
            // Polling a child process that has no readiness signal to offer.
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
    }

    redis_server_options options_;
    std::string dir_;
    int port_ = 0;
    pid_t pid_ = 0;
};

} // namespace corio_example
