// corio::file, read_file, write_file on io_uring.

#include "ring/io_ops.hpp"
#include <corio/io.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <stdexcept>
#include <system_error>
#include <utility>

namespace corio {

namespace {

// A single read or write request moves at most this much (the kernel caps one
// request a little below 2 GiB anyway).
constexpr std::size_t max_chunk = std::size_t{1} << 30;

[[noreturn]] void throw_errno(int err, const char* what) {
    throw std::system_error(err, std::system_category(), what);
}

[[noreturn]] void throw_errno(int err, const char* what, const std::string& path) {
    throw std::system_error(err, std::system_category(), std::string(what) + " '" + path + "'");
}

} // namespace

file::file(file&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}

file& file::operator=(file&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
}

file::~file() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

int file::flags_for_mode(std::string_view mode) {
    int access = -1;
    int extra = 0;
    bool plus = false;
    for (char c : mode) {
        switch (c) {
        case 'r':
        case 'w':
        case 'a':
        case 'x':
            if (access != -1) {
                throw std::invalid_argument("corio::file: bad mode '" + std::string(mode) + "'");
            }
            access = c;
            break;
        case '+':
            if (plus) {
                throw std::invalid_argument("corio::file: bad mode '" + std::string(mode) + "'");
            }
            plus = true;
            break;
        case 'b':
        case 't':
            break;
        default:
            throw std::invalid_argument("corio::file: bad mode '" + std::string(mode) + "'");
        }
    }
    switch (access) {
    case 'r':
        extra = 0;
        break;
    case 'w':
        extra = O_CREAT | O_TRUNC;
        break;
    case 'a':
        extra = O_CREAT | O_APPEND;
        break;
    case 'x':
        extra = O_CREAT | O_EXCL;
        break;
    default:
        throw std::invalid_argument("corio::file: bad mode '" + std::string(mode) + "'");
    }
    int rw = plus ? O_RDWR : (access == 'r' ? O_RDONLY : O_WRONLY);
    return rw | extra;
}

task<file> file::open(std::string path, std::string_view mode, unsigned permissions) {
    int flags = flags_for_mode(mode); // throws before any suspension
    return open(std::move(path), flags, permissions);
}

task<file> file::open(std::string path, int flags, unsigned permissions) {
    int res = co_await detail::io_op(&detail::prep_openat,
                                     {.addr = path.data(),
                                      .len = permissions,
                                      .flags = static_cast<std::uint32_t>(flags | O_CLOEXEC)});
    if (res < 0) {
        throw_errno(-res, "open", path);
    }
    co_return file(res);
}

task<std::size_t> file::read(std::span<std::byte> buffer, std::uint64_t offset) {
    std::size_t done = 0;
    while (done < buffer.size()) {
        std::size_t chunk = std::min(buffer.size() - done, max_chunk);
        int res =
            co_await detail::io_op(&detail::prep_read, {.fd = fd_,
                                                        .addr = buffer.data() + done,
                                                        .len = static_cast<std::uint32_t>(chunk),
                                                        .off = offset + done});
        if (res < 0) {
            throw_errno(-res, "read");
        }
        if (res == 0) {
            break; // end of file
        }
        done += static_cast<std::size_t>(res);
    }
    co_return done;
}

task<std::size_t> file::read(std::span<char> buffer, std::uint64_t offset) {
    return read(detail::writable_bytes(buffer), offset);
}

task<std::size_t> file::write(std::span<const std::byte> bytes, std::uint64_t offset) {
    std::size_t done = 0;
    while (done < bytes.size()) {
        std::size_t chunk = std::min(bytes.size() - done, max_chunk);
        int res = co_await detail::io_op(&detail::prep_write,
                                         {.fd = fd_,
                                          .addr = const_cast<std::byte*>(bytes.data() + done),
                                          .len = static_cast<std::uint32_t>(chunk),
                                          .off = offset + done});
        if (res < 0) {
            throw_errno(-res, "write");
        }
        if (res == 0) {
            throw_errno(EIO, "write"); // no progress: avoid spinning forever
        }
        done += static_cast<std::size_t>(res);
    }
    co_return done;
}

task<std::size_t> file::write(std::string_view bytes, std::uint64_t offset) {
    return write(detail::readable_bytes(bytes), offset);
}

task<std::uint64_t> file::size() {
    struct statx st {};
    int res = co_await detail::io_op(&detail::prep_statx_size, {.fd = fd_, .addr = &st});
    if (res < 0) {
        throw_errno(-res, "statx");
    }
    co_return st.stx_size;
}

task<> file::fsync() {
    int res = co_await detail::io_op(&detail::prep_fsync, {.fd = fd_});
    if (res < 0) {
        throw_errno(-res, "fsync");
    }
}

task<> file::close() {
    if (fd_ < 0) {
        co_return;
    }
    int fd = std::exchange(fd_, -1);
    int res = co_await detail::io_op(&detail::prep_close, {.fd = fd});
    if (res < 0) {
        throw_errno(-res, "close");
    }
}

task<std::string> read_file(std::string path) {
    file f = co_await file::open(path, O_RDONLY);
    std::uint64_t size = co_await f.size();
    // Files in /proc and /sys report 0 or a guess: read until the end regardless.
    std::string out(static_cast<std::size_t>(size) + 1, '\0');
    std::size_t have = 0;
    for (;;) {
        std::span<char> room(out.data() + have, out.size() - have);
        std::size_t n = co_await f.read(room, have);
        have += n;
        if (have < out.size()) {
            break;
        }
        out.resize(out.size() * 2);
    }
    out.resize(have);
    co_await f.close();
    co_return out;
}

task<> write_file(std::string path, std::span<const std::byte> bytes) {
    file f = co_await file::open(path, O_WRONLY | O_CREAT | O_TRUNC);
    co_await f.write(bytes, 0);
    co_await f.close();
}

task<> write_file(std::string path, std::string_view bytes) {
    return write_file(std::move(path), detail::readable_bytes(bytes));
}

} // namespace corio
