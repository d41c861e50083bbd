// Per-ring I/O state: feature probe, provided-buffer ring, multishot socket states.

#include "net/ring_socket_state.hpp"

#include "net/io_features.hpp"

#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace corio::detail {

namespace {

// Queued chunks (receive) or descriptors (accept) beyond which a multishot op is
// stopped until the socket's owner catches up: a socket nobody reads must not
// drain the loop's shared buffer ring.
constexpr std::size_t max_queued_chunks = 8;
constexpr std::size_t max_queued_fds = 64;

bool fallback_forced() noexcept {
    const char* env = std::getenv("CORIO_IO_FALLBACK");
    return env != nullptr && std::strcmp(env, "1") == 0;
}

} // namespace

ring_socket_state::ring_socket_state(uring& ring) : ring_(&ring) {
    states.owner = nullptr;
    if (!fallback_forced()) {
        // Opcode probes stand in for flag probes: IORING_OP_SOCKET arrived with
        // multishot accept (5.19), IORING_OP_SEND_ZC with multishot receive (6.0).
        multishot_accept_ = ring.supports(IORING_OP_SOCKET);
        multishot_recv_ = ring.supports(IORING_OP_SEND_ZC);
    }
}

ring_socket_state::~ring_socket_state() {
    // The ring is gone: nothing references these states or the buffers any more.
    while (!states.empty()) {
        delete static_cast<multishot_state*>(states.first_owner());
    }
    if (buf_ring_ != nullptr) {
        ::munmap(buf_ring_, ring_bytes_);
    }
    if (buffers_ != nullptr) {
        ::munmap(buffers_, std::size_t{buffer_count} * buffer_size);
    }
}

bool ring_socket_state::buffer_receive() {
    if (!multishot_recv_) {
        return false;
    }
    if (!buffers_tried_) {
        buffers_tried_ = true;
        ring_bytes_ = buffer_count * sizeof(io_uring_buf);
        void* ring_mem = ::mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE,
                                MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        void* data = ::mmap(nullptr, std::size_t{buffer_count} * buffer_size,
                            PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
        if (ring_mem != MAP_FAILED && data != MAP_FAILED) {
            buf_ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
            buffers_ = static_cast<std::byte*>(data);
            io_uring_buf_reg reg{};
            reg.ring_addr = reinterpret_cast<std::uintptr_t>(ring_mem);
            reg.ring_entries = buffer_count;
            reg.bgid = group_id;
            // liburing 2.3 has no io_uring_setup_buf_ring: register our own mapping.
            if (io_uring_register_buf_ring(ring_->native(), &reg, 0) == 0) {
                io_uring_buf_ring_init(buf_ring_);
                int mask = io_uring_buf_ring_mask(buffer_count);
                for (unsigned i = 0; i < buffer_count; ++i) {
                    io_uring_buf_ring_add(buf_ring_, buffer(static_cast<std::uint16_t>(i)),
                                          buffer_size, static_cast<unsigned short>(i), mask,
                                          static_cast<int>(i));
                }
                io_uring_buf_ring_advance(buf_ring_, static_cast<int>(buffer_count));
                buffers_ok_ = true;
            }
        }
        if (!buffers_ok_) {
            if (ring_mem != MAP_FAILED) {
                ::munmap(ring_mem, ring_bytes_);
            }
            if (data != MAP_FAILED) {
                ::munmap(data, std::size_t{buffer_count} * buffer_size);
            }
            buf_ring_ = nullptr;
            buffers_ = nullptr;
        }
    }
    return buffers_ok_;
}

void ring_socket_state::recycle(std::uint16_t id) noexcept {
    io_uring_buf_ring_add(buf_ring_, buffer(id), buffer_size, id,
                          io_uring_buf_ring_mask(buffer_count), 0);
    io_uring_buf_ring_advance(buf_ring_, 1);
}

ring_socket_state& socket_state_of(event_loop& loop) {
    uring& ring = loop_access::ring(loop);
    if (!ring.io_state) {
        ring.io_state = {new ring_socket_state(ring),
                         [](void* p) { delete static_cast<ring_socket_state*>(p); }};
    }
    return *static_cast<ring_socket_state*>(ring.io_state.get());
}

io_features io_features_of(event_loop& loop) {
    ring_socket_state& ctx = socket_state_of(loop);
    return {ctx.multishot_accept(), ctx.buffer_receive()};
}

// ---- multishot_state -----------------------------------------------------------

multishot_state::multishot_state(ring_socket_state& ctx, event_loop& loop, int fd)
    : ctx_(&ctx), loop_(&loop), fd_(fd) {
    complete = &on_complete;
    hook_.owner = this;
    ctx.states.push_back(hook_);
}

multishot_state::~multishot_state() {
    hook_.unlink();
}

void multishot_state::wake(int result) noexcept {
    io_waiter* w = waiter;
    waiter = nullptr;
    w->result = result;
    w->done = true;
    schedule_on(*loop_, w->coroutine, w->root);
}

void multishot_state::arm() noexcept {
    if (!armed_) {
        armed_ = true;
        submit_op(*loop_, *this);
    }
}

void multishot_state::stop() noexcept {
    if (armed_ && !stopping_) {
        stopping_ = true;
        cancel_op(*loop_, *this); // may complete synchronously (a parked op)
    }
}

void multishot_state::orphan() noexcept {
    orphaned_ = true;
    if (waiter != nullptr) {
        wake(-EBADF);
    }
    if (!armed_) {
        delete this;
        return;
    }
    if (!stopping_) {
        stopping_ = true;
        cancel_op(*loop_, *this); // the final completion deletes this
    }
}

void multishot_state::on_complete(uring_op& op, int res, unsigned flags) noexcept {
    auto& self = static_cast<multishot_state&>(op);
    if ((flags & IORING_CQE_F_MORE) == 0) {
        self.armed_ = false;
        self.stopping_ = false;
    }
    if (self.orphaned_) {
        self.on_orphan_result(res, flags);
        if (!self.armed_) {
            delete &self;
        }
        return;
    }
    self.on_result(res, flags);
}

// ---- recv_state ------------------------------------------------------------------

recv_state::~recv_state() {
    for (const chunk& c : chunks_) {
        ctx_->recycle(c.id);
    }
}

void recv_state::prep_fn(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    auto& self = static_cast<recv_state&>(op);
    io_uring_prep_recv_multishot(&sqe, self.fd_, nullptr, 0, 0);
    sqe.flags |= IOSQE_BUFFER_SELECT;
    sqe.buf_group = self.ctx_->group();
}

void recv_state::start() noexcept {
    if (end_ > 0 && !nobufs_) {
        arm();
    }
}

int recv_state::take(std::span<std::byte> dst) noexcept {
    if (!chunks_.empty()) {
        std::size_t n = 0;
        while (!chunks_.empty() && n < dst.size()) {
            chunk& c = chunks_.front();
            std::size_t k = std::min<std::size_t>(c.size, dst.size() - n);
            std::memcpy(dst.data() + n, ctx_->buffer(c.id) + c.offset, k);
            n += k;
            c.offset += static_cast<std::uint32_t>(k);
            c.size -= static_cast<std::uint32_t>(k);
            if (c.size == 0) {
                ctx_->recycle(c.id);
                chunks_.pop_front();
            }
        }
        return static_cast<int>(n);
    }
    if (end_ <= 0) {
        return end_;
    }
    return nobufs_ ? -ENOBUFS : -EAGAIN;
}

void recv_state::on_result(int res, unsigned flags) noexcept {
    if (res > 0 && (flags & IORING_CQE_F_BUFFER) != 0) {
        auto id = static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT);
        chunks_.push_back({id, 0, static_cast<std::uint32_t>(res)});
    } else if (res == 0) {
        end_ = 0;
    } else if (res == -ENOBUFS) {
        nobufs_ = true;
    } else if (res < 0 && res != -ECANCELED) {
        end_ = res;
    }
    if (waiter != nullptr) {
        int r = take(waiter->buffer);
        if (r != -EAGAIN) {
            wake(r);
        } else if (!armed_) {
            start(); // stopped for backpressure and drained since: go on
        }
    } else if (chunks_.size() >= max_queued_chunks) {
        stop();
    }
}

void recv_state::on_orphan_result(int res, unsigned flags) noexcept {
    if (res > 0 && (flags & IORING_CQE_F_BUFFER) != 0) {
        ctx_->recycle(static_cast<std::uint16_t>(flags >> IORING_CQE_BUFFER_SHIFT));
    }
}

// ---- accept_state ----------------------------------------------------------------

accept_state::~accept_state() {
    for (int fd : fds_) {
        ::close(fd);
    }
}

void accept_state::prep_fn(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    auto& self = static_cast<accept_state&>(op);
    io_uring_prep_multishot_accept(&sqe, self.fd_, nullptr, nullptr, SOCK_CLOEXEC);
}

int accept_state::take() noexcept {
    if (!fds_.empty()) {
        int fd = fds_.front();
        fds_.pop_front();
        return fd;
    }
    if (error_ != 0) {
        return std::exchange(error_, 0);
    }
    return -EAGAIN;
}

void accept_state::on_result(int res, unsigned) noexcept {
    if (res == -ECANCELED) {
        if (waiter != nullptr && !armed_) {
            arm(); // stopped for backpressure, and someone waits again
        }
        return;
    }
    if (waiter != nullptr) {
        wake(res);
    } else if (res >= 0) {
        fds_.push_back(res);
        if (fds_.size() >= max_queued_fds) {
            stop();
        }
    } else {
        error_ = res; // reported by the next accept(); it re-arms the op
    }
}

void accept_state::on_orphan_result(int res, unsigned) noexcept {
    if (res >= 0) {
        ::close(res);
    }
}

} // namespace corio::detail
