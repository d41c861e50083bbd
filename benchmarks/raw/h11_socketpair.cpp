// H11 limit: a raw C++ program over an AF_UNIX SOCK_STREAM socketpair and fork(). The
// child writes N length-prefixed messages of SIZE bytes (one writev each); the parent
// reads in 256 KiB chunks and splits the frames, checking each index and the byte
// count. Timed like h11_corio: from the first message after a ready message.
// Usage: h11_raw_socketpair --size 64 --n 200000
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "../report.hpp"

namespace {

void write_all(int fd, iovec* iov, int count) {
    while (count > 0) {
        ssize_t n = ::writev(fd, iov, count);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            std::_Exit(5);
        }
        while (count > 0 && static_cast<std::size_t>(n) >= iov->iov_len) {
            n -= static_cast<ssize_t>(iov->iov_len);
            ++iov;
            --count;
        }
        if (count > 0) {
            iov->iov_base = static_cast<char*>(iov->iov_base) + n;
            iov->iov_len -= static_cast<std::size_t>(n);
        }
    }
}

void sender(int fd, std::int64_t n, std::int64_t size) {
    std::string m(static_cast<std::size_t>(size), 'x');
    for (std::int64_t i = -1; i < n; ++i) { // -1: the ready message
        std::memcpy(m.data(), &i, std::min(m.size(), sizeof i));
        std::uint32_t len = static_cast<std::uint32_t>(size);
        iovec iov[2] = {{&len, sizeof len}, {m.data(), m.size()}};
        write_all(fd, iov, 2);
    }
}

// Buffered frame reader.
class reader {
public:
    explicit reader(int fd) : fd_(fd), buf_(256 * 1024) {}
    // The next message's bytes (valid until the next call).
    std::string_view next() {
        fill(4);
        std::uint32_t len = 0;
        std::memcpy(&len, buf_.data() + head_, 4);
        fill(4 + len);
        std::string_view v(buf_.data() + head_ + 4, len);
        head_ += 4 + len;
        return v;
    }

private:
    void fill(std::size_t need) {
        while (tail_ - head_ < need) {
            if (buf_.size() - head_ < need || head_ == tail_) {
                std::memmove(buf_.data(), buf_.data() + head_, tail_ - head_);
                tail_ -= head_;
                head_ = 0;
                if (buf_.size() < need) {
                    buf_.resize(need);
                }
            }
            const ssize_t r = ::read(fd_, buf_.data() + tail_, buf_.size() - tail_);
            if (r <= 0) {
                if (r < 0 && errno == EINTR) {
                    continue;
                }
                std::fprintf(stderr, "unexpected end of stream\n");
                std::exit(3);
            }
            tail_ += static_cast<std::size_t>(r);
        }
    }
    int fd_;
    std::vector<char> buf_;
    std::size_t head_ = 0;
    std::size_t tail_ = 0;
};

} // namespace

int main(int argc, char** argv) {
    bench::options opt(argc, argv);
    const std::int64_t size = opt.get_int("size", 64);
    const std::int64_t n = opt.get_int("n", 200'000);
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        return 2;
    }
    const pid_t child = ::fork();
    if (child == 0) {
        ::close(sv[0]);
        sender(sv[1], n, size);
        ::_exit(0);
    }
    ::close(sv[1]);
    reader in(sv[0]);
    const std::string_view ready = in.next();
    bench::check(ready.size() == static_cast<std::size_t>(size), "ready message size",
                 static_cast<long long>(ready.size()), size);
    const std::int64_t t0 = bench::now_ns();
    std::int64_t in_order = 0;
    std::int64_t bytes = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const std::string_view m = in.next();
        std::int64_t idx = i;
        if (size >= 8) {
            std::memcpy(&idx, m.data(), 8);
        }
        // The message as the program would hold it: a copy, as corio's recv returns one.
        const std::string owned(m);
        in_order += idx == i ? 1 : 0;
        bytes += static_cast<std::int64_t>(owned.size());
    }
    const std::int64_t t1 = bench::now_ns();
    bench::check(in_order == n, "messages in order", in_order, n);
    bench::check(bytes == n * size, "bytes received", bytes, n * size);
    const double secs = static_cast<double>(t1 - t0) / 1e9;
    bench::report("msgs_per_s", static_cast<double>(n) / secs);
    bench::report("mb_per_s", static_cast<double>(bytes) / 1e6 / secs);
    int status = 0;
    ::waitpid(child, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 4;
}
