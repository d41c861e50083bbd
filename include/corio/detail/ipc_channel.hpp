#pragma once
// The compiled cores behind corio/ipc.hpp's templates (src/ipc/):
//
// message_channel: one end of a SOCK_SEQPACKET socket pair. A message is one
// sendmsg/recvmsg, so it arrives whole or not at all, and never interleaved with
// another sender's, whatever processes share the end. Wire: one kind byte, then
//   kind 0: the serialized value (messages up to `inline_limit()` bytes);
//   kind 1: an 8-byte size, and a memfd holding the serialized value (SCM_RIGHTS),
//           for larger ones: the socket's send buffer bounds a single message.
// A closed or dead peer shows as the end of the stream (recv) or EPIPE (send), both
// reported as end_of_stream_error.
//
// queue_core: a process_queue. Every holder shares one socket pair: puts send on
// one end, gets receive on the other, so each item goes to exactly one getter. A
// page of shared memory counts the items (qsize, and the bound of maxsize on a
// futex) and the unfinished tasks (joinable queues).

#include <corio/error.hpp>
#include <corio/serialize.hpp>
#include <corio/task.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace corio {

/// The other end of a connection was closed, or its process died: `recv` finds the
/// stream's end, `send` finds nobody to read.
/// **Thread safety:** exception objects are immutable after construction.
class end_of_stream_error : public error {
public:
    using error::error;
};

class shared_memory;

namespace detail {

class message_channel {
public:
    message_channel() noexcept = default;
    // Adopts `fd`, one end of a SOCK_SEQPACKET pair.
    message_channel(int fd, bool can_send, bool can_recv) noexcept;
    message_channel(message_channel&& o) noexcept;
    message_channel& operator=(message_channel&& o) noexcept;
    message_channel(const message_channel&) = delete;
    message_channel& operator=(const message_channel&) = delete;
    ~message_channel();

    // Two connected ends; with `duplex` false the first only receives and the second
    // only sends (Python's Pipe(duplex=False)).
    static std::pair<message_channel, message_channel> make_pair(bool duplex);

    // Sends one message (blocking while the peer's buffer is full).
    void send(std::string_view bytes);
    // The next message, waiting at most `timeout_ms` (-1: forever); empty on expiry.
    // The view is valid until the next receive.
    std::optional<std::string_view> recv(int timeout_ms);
    // True if a message (or the end of the stream) is ready within `timeout_ms`.
    bool poll(int timeout_ms);
    // On the running loop: the bytes stay the caller's until the task ends.
    task<void> async_send(std::string bytes);
    task<std::string_view> async_recv();

    void close() noexcept;
    [[nodiscard]] bool closed() const noexcept { return fd_ < 0; }
    [[nodiscard]] int fd() const noexcept { return fd_; }
    [[nodiscard]] std::size_t inline_limit() const noexcept { return inline_limit_; }

    // Encodes a duplicate of the descriptor (see fd_passing.hpp).
    void write_to(byte_writer& w, const char* what) const;
    static message_channel read_from(byte_reader& r);

private:
    void check_send() const;
    void check_recv() const;
    std::string_view decode(std::size_t n, int passed);

    int fd_ = -1;
    bool can_send_ = false;
    bool can_recv_ = false;
    std::size_t inline_limit_ = 0;
    std::string buf_;   // received messages
    std::string large_; // the last large message
};

struct queue_state;

class queue_core {
public:
    queue_core() noexcept;
    explicit queue_core(std::size_t maxsize);
    queue_core(queue_core&& o) noexcept;
    queue_core& operator=(queue_core&& o) noexcept;
    queue_core(const queue_core&) = delete;
    queue_core& operator=(const queue_core&) = delete;
    ~queue_core();

    // timeout_ms: -1 blocks, 0 does not wait; throws queue_full on expiry.
    void put(std::string_view bytes, int timeout_ms);
    // Throws queue_empty on expiry. The view is valid until the next get.
    std::string_view get(int timeout_ms);
    task<void> async_put(std::string bytes);
    task<std::string_view> async_get();
    void task_done();
    bool join(int timeout_ms);
    task<void> async_join();
    void close() noexcept;

    [[nodiscard]] std::size_t qsize() const noexcept;
    [[nodiscard]] std::size_t maxsize() const noexcept;
    [[nodiscard]] bool closed() const noexcept;

    void write_to(byte_writer& w) const;
    static queue_core read_from(byte_reader& r);

private:
    bool reserve(int timeout_ms);
    void unreserve() noexcept;
    void check_open() const;

    message_channel put_end_;
    message_channel get_end_;
    shared_memory* memory_ = nullptr; // owned
    queue_state* state_ = nullptr;
};

} // namespace detail
} // namespace corio
