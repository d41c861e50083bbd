// Message channels over SOCK_SEQPACKET socket pairs, and process queues on top of
// them (see include/corio/detail/ipc_channel.hpp for the wire).
#include "ipc/futex.hpp"
#include "ring/io_ops.hpp"

#include <corio/detail/fd_passing.hpp>
#include <corio/ipc.hpp>

#include <fmt/format.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <system_error>
#include <unistd.h>

namespace corio::detail {

namespace {

// Messages up to this size go inline. A SOCK_SEQPACKET message must fit the socket's
// send buffer (net.core.wmem_default, 208 KiB on most systems); larger ones, or a
// send refused with EMSGSIZE, travel in a memfd.
constexpr std::size_t default_inline_limit = 192 * 1024;

enum : std::uint8_t { inline_message = 0, memfd_message = 1 };

[[noreturn]] void throw_closed_peer() {
    throw end_of_stream_error("corio: the other end of the connection is closed (or its process "
                              "died)");
}

[[noreturn]] void throw_errno(int e, const char* what) {
    if (e == EPIPE || e == ECONNRESET || e == ENOTCONN) {
        throw_closed_peer();
    }
    throw std::system_error(e, std::generic_category(), what);
}

// A memfd holding `bytes`, for a message too large to go inline.
int memfd_with(std::string_view bytes) {
    const int fd = ::memfd_create("corio-message", MFD_CLOEXEC);
    if (fd < 0) {
        throw std::system_error(errno, std::generic_category(), "corio: memfd_create");
    }
    std::size_t done = 0;
    while (done < bytes.size()) {
        const ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
        if (n > 0) {
            done += static_cast<std::size_t>(n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else {
            const int e = n < 0 ? errno : EIO;
            ::close(fd);
            throw std::system_error(e, std::generic_category(), "corio: writing a large message");
        }
    }
    return fd;
}

// The msghdr of one receive into [data, data + size), with room for passed
// descriptors. Not copyable: `msg` points into the object.
struct receive_header {
    iovec iov;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    receive_header(char* data, std::size_t size) : iov{data, size} {
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
    }
    receive_header(const receive_header&) = delete;
    receive_header& operator=(const receive_header&) = delete;
};

// Fills `msg` for a memfd message: `header` (kind + size), `fd` in `control`.
void prepare_memfd_message(msghdr& msg, iovec& iov, char (&header)[9], char* control,
                           std::size_t control_size, int fd, std::size_t size) {
    header[0] = static_cast<char>(memfd_message);
    const std::uint64_t n = size;
    std::memcpy(header + 1, &n, sizeof n);
    iov = {header, sizeof header};
    msg = {};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = control_size;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
}

int passed_fd(msghdr& msg) noexcept {
    int fd = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            const std::size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (std::size_t i = 0; i < n; ++i) {
                int f = -1;
                std::memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
                if (fd < 0) {
                    fd = f;
                } else {
                    ::close(f); // never sent by corio: drop it
                }
            }
        }
    }
    return fd;
}

} // namespace

message_channel::message_channel(int fd, bool can_send, bool can_recv) noexcept
    : fd_(fd), can_send_(can_send), can_recv_(can_recv), inline_limit_(default_inline_limit) {}

message_channel::message_channel(message_channel&& o) noexcept
    : fd_(std::exchange(o.fd_, -1)), can_send_(o.can_send_), can_recv_(o.can_recv_),
      inline_limit_(o.inline_limit_), buf_(std::move(o.buf_)), large_(std::move(o.large_)) {}

message_channel& message_channel::operator=(message_channel&& o) noexcept {
    if (this != &o) {
        close();
        fd_ = std::exchange(o.fd_, -1);
        can_send_ = o.can_send_;
        can_recv_ = o.can_recv_;
        inline_limit_ = o.inline_limit_;
        buf_ = std::move(o.buf_);
        large_ = std::move(o.large_);
    }
    return *this;
}

message_channel::~message_channel() {
    close();
}

void message_channel::close() noexcept {
    if (fd_ >= 0) {
        ::close(fd_);
    }
    fd_ = -1;
}

std::pair<message_channel, message_channel> message_channel::make_pair(bool duplex) {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
        throw std::system_error(errno, std::generic_category(), "corio::pipe: socketpair");
    }
    // Room for many messages in flight (the kernel caps it at net.core.wmem_max).
    const int want = 4 << 20;
    ::setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
    ::setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &want, sizeof want);
    if (duplex) {
        return {message_channel(sv[0], true, true), message_channel(sv[1], true, true)};
    }
    return {message_channel(sv[0], false, true), message_channel(sv[1], true, false)};
}

void message_channel::check_send() const {
    if (fd_ < 0) {
        throw error("corio::connection: send on a closed connection");
    }
    if (!can_send_) {
        throw error("corio::connection: send on the receiving end of a one-way pipe");
    }
}

void message_channel::check_recv() const {
    if (fd_ < 0) {
        throw error("corio::connection: recv on a closed connection");
    }
    if (!can_recv_) {
        throw error("corio::connection: recv on the sending end of a one-way pipe");
    }
}

void message_channel::send(std::string_view bytes) {
    check_send();
    if (bytes.size() < inline_limit_) {
        char kind = static_cast<char>(inline_message);
        iovec iov[2] = {{&kind, 1}, {const_cast<char*>(bytes.data()), bytes.size()}};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = 2;
        for (;;) {
            const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
            if (n >= 0) {
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno == EMSGSIZE) {
                break; // a smaller send buffer than usual: go through a memfd
            }
            throw_errno(errno, "corio: sendmsg");
        }
    }
    const int fd = memfd_with(bytes);
    char header[9];
    iovec iov;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg;
    prepare_memfd_message(msg, iov, header, control, sizeof control, fd, bytes.size());
    for (;;) {
        const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
        if (n >= 0) {
            break;
        }
        if (errno == EINTR) {
            continue;
        }
        const int e = errno;
        ::close(fd);
        throw_errno(e, "corio: sendmsg");
    }
    ::close(fd);
}

std::string_view message_channel::decode(std::size_t n, int passed) {
    if (n == 0) {
        if (passed >= 0) {
            ::close(passed);
        }
        throw_closed_peer();
    }
    const auto kind = static_cast<std::uint8_t>(buf_[0]);
    if (kind == inline_message) {
        if (passed >= 0) {
            ::close(passed);
        }
        return std::string_view(buf_.data() + 1, n - 1);
    }
    std::uint64_t size = 0;
    if (kind != memfd_message || n != 9 || passed < 0) {
        if (passed >= 0) {
            ::close(passed);
        }
        throw serialize_error("corio: a malformed message on a connection");
    }
    std::memcpy(&size, buf_.data() + 1, sizeof size);
    struct stat st {};
    if (::fstat(passed, &st) != 0 || static_cast<std::uint64_t>(st.st_size) != size) {
        ::close(passed);
        throw serialize_error("corio: a large message's memfd has the wrong size");
    }
    try {
        large_.resize(size);
    } catch (...) {
        ::close(passed);
        throw;
    }
    std::size_t done = 0;
    while (done < size) {
        const ssize_t r =
            ::pread(passed, large_.data() + done, size - done, static_cast<off_t>(done));
        if (r > 0) {
            done += static_cast<std::size_t>(r);
        } else if (r < 0 && errno == EINTR) {
            continue;
        } else {
            ::close(passed);
            throw serialize_error("corio: a large message could not be read");
        }
    }
    ::close(passed);
    return large_;
}

std::optional<std::string_view> message_channel::recv(int timeout_ms) {
    check_recv();
    if (buf_.size() != inline_limit_ + 1) {
        buf_.resize(inline_limit_ + 1);
    }
    const long long deadline = deadline_after(timeout_ms);
    for (;;) {
        if (timeout_ms >= 0) {
            pollfd p{fd_, POLLIN, 0};
            const int r = ::poll(&p, 1, remaining_ms(deadline));
            if (r < 0 && errno == EINTR) {
                continue;
            }
            if (r == 0) {
                return std::nullopt;
            }
        }
        receive_header header(buf_.data(), buf_.size());
        msghdr& msg = header.msg;
        const ssize_t n =
            ::recvmsg(fd_, &msg, MSG_CMSG_CLOEXEC | (timeout_ms >= 0 ? MSG_DONTWAIT : 0));
        if (n < 0) {
            // EAGAIN: another process took the message between poll and recvmsg.
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            throw_errno(errno, "corio: recvmsg");
        }
        const int fd = n > 0 ? passed_fd(msg) : -1;
        if ((msg.msg_flags & MSG_TRUNC) != 0) {
            if (fd >= 0) {
                ::close(fd);
            }
            throw serialize_error("corio: a message larger than the channel's limit");
        }
        return decode(static_cast<std::size_t>(n), fd);
    }
}

bool message_channel::poll(int timeout_ms) {
    check_recv();
    const long long deadline = deadline_after(timeout_ms);
    for (;;) {
        pollfd p{fd_, POLLIN, 0};
        const int r = ::poll(&p, 1, remaining_ms(deadline));
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r < 0) {
            throw std::system_error(errno, std::generic_category(), "corio: poll");
        }
        return r > 0;
    }
}

task<void> message_channel::async_send(std::string bytes) {
    check_send();
    if (bytes.size() < inline_limit_) {
        char kind = static_cast<char>(inline_message);
        iovec iov[2] = {{&kind, 1}, {bytes.data(), bytes.size()}};
        msghdr msg{};
        msg.msg_iov = iov;
        msg.msg_iovlen = 2;
        const int r =
            co_await io_op(&prep_sendmsg, {.fd = fd_, .addr = &msg, .flags = MSG_NOSIGNAL});
        if (r >= 0) {
            co_return;
        }
        if (r != -EMSGSIZE) {
            throw_errno(-r, "corio: sendmsg");
        }
    }
    const int fd = memfd_with(bytes);
    char header[9];
    iovec iov;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg;
    prepare_memfd_message(msg, iov, header, control, sizeof control, fd, bytes.size());
    int r = 0;
    try {
        r = co_await io_op(&prep_sendmsg, {.fd = fd_, .addr = &msg, .flags = MSG_NOSIGNAL});
    } catch (...) {
        ::close(fd);
        throw;
    }
    ::close(fd);
    if (r < 0) {
        throw_errno(-r, "corio: sendmsg");
    }
}

task<std::string_view> message_channel::async_recv() {
    check_recv();
    if (buf_.size() != inline_limit_ + 1) {
        buf_.resize(inline_limit_ + 1);
    }
    receive_header header(buf_.data(), buf_.size());
    msghdr& msg = header.msg;
    const int n =
        co_await io_op(&prep_recvmsg, {.fd = fd_, .addr = &msg, .flags = MSG_CMSG_CLOEXEC});
    if (n < 0) {
        throw_errno(-n, "corio: recvmsg");
    }
    const int fd = n > 0 ? passed_fd(msg) : -1;
    if ((msg.msg_flags & MSG_TRUNC) != 0) {
        if (fd >= 0) {
            ::close(fd);
        }
        throw serialize_error("corio: a message larger than the channel's limit");
    }
    co_return decode(static_cast<std::size_t>(n), fd);
}

void message_channel::write_to(byte_writer& w, const char* what) const {
    w.write_raw(pass_fd(fd_, what));
    w.write_raw(static_cast<std::uint8_t>((can_send_ ? 1 : 0) | (can_recv_ ? 2 : 0)));
}

message_channel message_channel::read_from(byte_reader& r) {
    const int fd = receive_fd(r.read_raw<std::uint32_t>());
    std::uint8_t flags = 0;
    try {
        flags = r.read_raw<std::uint8_t>();
    } catch (...) {
        ::close(fd);
        throw;
    }
    return message_channel(fd, (flags & 1) != 0, (flags & 2) != 0);
}

// ----------------------------------------------------------------------------
// process_queue

struct queue_state {
    std::atomic<std::uint32_t> count{0};         // items put and not yet got (futex word)
    std::atomic<std::uint32_t> count_waiters{0}; // putters waiting for room
    std::atomic<std::uint32_t> unfinished{0};    // items not yet task_done (futex word)
    std::uint64_t maxsize = 0;
};

queue_core::queue_core() noexcept = default;

queue_core::queue_core(std::size_t maxsize) {
    if (maxsize > 0x7fffffff) {
        throw error("corio::process_queue: maxsize too large");
    }
    auto [get_end, put_end] = message_channel::make_pair(false);
    auto memory = std::make_unique<shared_memory>(sizeof(queue_state));
    state_ = new (memory->data()) queue_state();
    state_->maxsize = maxsize;
    memory_ = memory.release();
    put_end_ = std::move(put_end);
    get_end_ = std::move(get_end);
}

queue_core::queue_core(queue_core&& o) noexcept
    : put_end_(std::move(o.put_end_)), get_end_(std::move(o.get_end_)),
      memory_(std::exchange(o.memory_, nullptr)), state_(std::exchange(o.state_, nullptr)) {}

queue_core& queue_core::operator=(queue_core&& o) noexcept {
    if (this != &o) {
        close();
        put_end_ = std::move(o.put_end_);
        get_end_ = std::move(o.get_end_);
        memory_ = std::exchange(o.memory_, nullptr);
        state_ = std::exchange(o.state_, nullptr);
    }
    return *this;
}

queue_core::~queue_core() {
    close();
}

void queue_core::close() noexcept {
    put_end_.close();
    get_end_.close();
    delete memory_;
    memory_ = nullptr;
    state_ = nullptr;
}

bool queue_core::closed() const noexcept {
    return state_ == nullptr;
}

void queue_core::check_open() const {
    if (state_ == nullptr) {
        throw error("corio::process_queue: the queue is closed");
    }
}

std::size_t queue_core::qsize() const noexcept {
    return state_ == nullptr ? 0 : state_->count.load(std::memory_order_acquire);
}

std::size_t queue_core::maxsize() const noexcept {
    return state_ == nullptr ? 0 : state_->maxsize;
}

bool queue_core::reserve(int timeout_ms) {
    auto& s = *state_;
    if (s.maxsize == 0) {
        s.count.fetch_add(1, std::memory_order_acq_rel);
        return true;
    }
    const long long deadline = deadline_after(timeout_ms);
    for (;;) {
        std::uint32_t c = s.count.load(std::memory_order_acquire);
        if (c < s.maxsize) {
            if (s.count.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) {
                return true;
            }
            continue;
        }
        const int left = remaining_ms(deadline);
        if (left == 0) {
            return false;
        }
        s.count_waiters.fetch_add(1, std::memory_order_acq_rel);
        futex_wait(&s.count, c, left);
        s.count_waiters.fetch_sub(1, std::memory_order_acq_rel);
    }
}

void queue_core::unreserve() noexcept {
    auto& s = *state_;
    s.count.fetch_sub(1, std::memory_order_acq_rel);
    // Wake them all: a waiter woken in vain (a cancelled awaiting task) must not
    // swallow the only wake-up.
    if (s.maxsize != 0 && s.count_waiters.load(std::memory_order_acquire) != 0) {
        futex_wake(&s.count, INT_MAX);
    }
}

void queue_core::put(std::string_view bytes, int timeout_ms) {
    check_open();
    if (!reserve(timeout_ms)) {
        throw queue_full();
    }
    state_->unfinished.fetch_add(1, std::memory_order_acq_rel);
    try {
        put_end_.send(bytes);
    } catch (...) {
        state_->unfinished.fetch_sub(1, std::memory_order_acq_rel);
        unreserve();
        throw;
    }
}

std::string_view queue_core::get(int timeout_ms) {
    check_open();
    auto v = get_end_.recv(timeout_ms);
    if (!v) {
        throw queue_empty();
    }
    unreserve();
    return *v;
}

namespace {
// Counts a putter waiting for room while its task awaits.
struct waiting_putter {
    explicit waiting_putter(std::atomic<std::uint32_t>& n) noexcept : n_(n) {
        n_.fetch_add(1, std::memory_order_acq_rel);
    }
    waiting_putter(const waiting_putter&) = delete;
    waiting_putter& operator=(const waiting_putter&) = delete;
    ~waiting_putter() { n_.fetch_sub(1, std::memory_order_acq_rel); }
    std::atomic<std::uint32_t>& n_;
};
} // namespace

task<void> queue_core::async_put(std::string bytes) {
    check_open();
    while (!reserve(0)) {
        const std::uint32_t c = state_->count.load(std::memory_order_acquire);
        waiting_putter w(state_->count_waiters);
        if (c >= state_->maxsize) {
            co_await futex_wait_async(&state_->count, c);
        }
    }
    state_->unfinished.fetch_add(1, std::memory_order_acq_rel);
    bool sent = false;
    try {
        co_await put_end_.async_send(std::move(bytes));
        sent = true;
    } catch (...) {
        state_->unfinished.fetch_sub(1, std::memory_order_acq_rel);
        unreserve();
        throw;
    }
    (void)sent;
}

task<std::string_view> queue_core::async_get() {
    check_open();
    std::string_view v = co_await get_end_.async_recv();
    unreserve();
    co_return v;
}

void queue_core::task_done() {
    check_open();
    auto& u = state_->unfinished;
    std::uint32_t n = u.load(std::memory_order_acquire);
    for (;;) {
        if (n == 0) {
            throw error("corio::joinable_process_queue: task_done() called more times than items "
                        "were put");
        }
        if (u.compare_exchange_weak(n, n - 1, std::memory_order_acq_rel)) {
            break;
        }
    }
    if (n == 1) {
        futex_wake(&u, INT_MAX);
    }
}

bool queue_core::join(int timeout_ms) {
    check_open();
    const long long deadline = deadline_after(timeout_ms);
    for (;;) {
        const std::uint32_t n = state_->unfinished.load(std::memory_order_acquire);
        if (n == 0) {
            return true;
        }
        const int left = remaining_ms(deadline);
        if (left == 0) {
            return false;
        }
        futex_wait(&state_->unfinished, n, left);
    }
}

task<void> queue_core::async_join() {
    check_open();
    for (;;) {
        const std::uint32_t n = state_->unfinished.load(std::memory_order_acquire);
        if (n == 0) {
            co_return;
        }
        co_await futex_wait_async(&state_->unfinished, n);
    }
}

void queue_core::write_to(byte_writer& w) const {
    check_open();
    put_end_.write_to(w, "a corio::process_queue");
    get_end_.write_to(w, "a corio::process_queue");
    memory_->write_to(w);
}

queue_core queue_core::read_from(byte_reader& r) {
    queue_core q;
    q.put_end_ = message_channel::read_from(r);
    q.get_end_ = message_channel::read_from(r);
    auto memory = std::make_unique<shared_memory>(shared_memory::read_from(r));
    if (memory->size() < sizeof(queue_state)) {
        throw serialize_error("corio::process_queue: the passed memory is too small");
    }
    q.state_ = std::launder(reinterpret_cast<queue_state*>(memory->data()));
    q.memory_ = memory.release();
    return q;
}

} // namespace corio::detail
