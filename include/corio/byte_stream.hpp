#pragma once
/// \file byte_stream.hpp
/// `corio::byte_stream`: a buffered byte stream over one descriptor (a connected
/// socket, a pipe, a terminal), the read and write halves of asyncio's
/// StreamReader / StreamWriter in one object: `read_some`, `read_exactly`,
/// `read_until`, `write_all`, `close`. `socket_stream` (corio/net.hpp) and the pipes of
/// a `subprocess` (corio/subprocess.hpp) are byte streams. Also the errors of the
/// reads, `incomplete_read_error` and `limit_overrun_error`.

#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/task.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace corio {

namespace detail {
class recv_state;
class closable_op;
} // namespace detail

/// `read_exactly` or `read_until` reached the end of the stream first
/// (asyncio.IncompleteReadError); `partial()` holds the bytes that did arrive.
/// **Thread safety:** immutable after construction.
class incomplete_read_error : public error {
public:
    /// `expected` is the size asked for (empty for read_until).
    incomplete_read_error(std::string partial, std::optional<std::size_t> expected);
    /// The bytes read before the end of the stream (consumed from the stream).
    const std::string& partial() const noexcept { return partial_; }
    /// How many bytes were expected, if known.
    std::optional<std::size_t> expected() const noexcept { return expected_; }

private:
    std::string partial_;
    std::optional<std::size_t> expected_;
};

/// `read_until` saw `limit` bytes without the delimiter (asyncio.LimitOverrunError).
/// The data stays buffered in the stream: a later read returns it.
/// **Thread safety:** immutable after construction.
class limit_overrun_error : public error {
public:
    /// `message` becomes what(); `consumed` is the number of bytes buffered when
    /// the limit was overrun.
    limit_overrun_error(std::string message, std::size_t consumed);
    /// Bytes buffered when the limit was overrun.
    std::size_t consumed() const noexcept { return consumed_; }

private:
    std::size_t consumed_;
};

/// A buffered byte stream over one descriptor: a connected stream socket, a pipe,
/// a terminal or any other descriptor read and written as a stream (the offset is
/// ignored).
///
/// On a socket, reads are receives (a multishot IORING_OP_RECV into provided
/// buffers where the kernel has it) and writes are sends with MSG_NOSIGNAL, so a
/// closed peer gives EPIPE, never SIGPIPE; errors name "recv" and "send". On any
/// other descriptor, reads and writes are IORING_OP_READ / IORING_OP_WRITE (5.6) at
/// the current position, errors name "read" and "write"; writing to a pipe whose
/// reader is gone raises SIGPIPE there, as write(2) does (a subprocess's stdin is a
/// socket for that reason).
///
/// Reads are buffered only as far as `read_until` needs to look ahead; `read_some`
/// returns buffered bytes first. A cancelled read consumes no data: the next read
/// returns it. Move-only (not while an operation is in flight); the destructor
/// closes the descriptor. At most one read and one write may be in flight at a
/// time; a stream must be closed or destroyed before the loop it was read on.
/// **Thread safety:** one object from one thread (its loop's) at a time.
class byte_stream {
public:
    /// A closed stream.
    byte_stream() noexcept = default;
    /// Adopts a descriptor; whether it is a socket is asked of fstat(2) once.
    explicit byte_stream(int fd) noexcept;
    /// Adopts a descriptor known to be a socket (`is_socket`) or not.
    byte_stream(int fd, bool is_socket) noexcept : fd_(fd), socket_(is_socket) {}
    /// Takes over `other`'s descriptor, read-ahead and operations in flight;
    /// `other` is left closed.
    byte_stream(byte_stream&& other) noexcept;
    /// Closes this stream (see close()), then takes over `other`'s descriptor.
    byte_stream& operator=(byte_stream&& other) noexcept;
    byte_stream(const byte_stream&) = delete;
    byte_stream& operator=(const byte_stream&) = delete;
    /// Closes the descriptor (see close()).
    ~byte_stream();

    /// Reads at least one byte into `buffer` and returns how many; 0 means the
    /// other side closed (end of stream) or `buffer` is empty. Throws
    /// std::system_error ("recv" or "read"), e.g. ECONNRESET, EBADF once closed;
    /// cancelled_error if the task is cancelled before data arrived (no data is
    /// lost: the next read gets it).
    /// **Thread safety:** loop thread; one read at a time.
    [[nodiscard]] task<std::size_t> read_some(std::span<std::byte> buffer);
    /// read_some() into a char buffer.
    /// **Thread safety:** as read_some().
    [[nodiscard]] task<std::size_t> read_some(std::span<char> buffer);
    /// Reads exactly `n` bytes. Throws incomplete_read_error (with the bytes that
    /// did arrive) at the end of the stream, std::system_error on errors.
    /// **Thread safety:** loop thread; one read at a time.
    [[nodiscard]] task<std::string> read_exactly(std::size_t n);
    /// Reads up to and including `delimiter` and returns it all (delimiter kept, as
    /// asyncio's readuntil). Throws limit_overrun_error when `limit` bytes arrived
    /// without the delimiter ending within them (the bytes stay buffered);
    /// incomplete_read_error with everything buffered at the end of the stream;
    /// std::invalid_argument for an empty delimiter.
    /// **Thread safety:** loop thread; one read at a time.
    [[nodiscard]] task<std::string> read_until(std::string delimiter, std::size_t limit = 65536);
    /// Reads until the end of the stream and returns everything (asyncio's
    /// `read()` with no size). Throws std::system_error on errors.
    /// **Thread safety:** loop thread; one read at a time.
    [[nodiscard]] task<std::string> read_to_end();
    /// Writes all of `bytes`, looping over partial writes. Throws
    /// std::system_error ("send" or "write"), e.g. EPIPE once the other side is gone.
    /// **Thread safety:** loop thread; one write at a time; `bytes` must stay valid.
    [[nodiscard]] task<> write_all(std::span<const std::byte> bytes);
    /// write_all() of characters.
    /// **Thread safety:** as write_all().
    [[nodiscard]] task<> write_all(std::string_view bytes);
    /// Closes the descriptor at once and drops the read-ahead; no effect if closed.
    /// A read or write waiting on it is cancelled in the kernel and fails with
    /// std::system_error EBADF, unless it completed first.
    void close() noexcept;

    /// The descriptor, or -1 when closed.
    /// **Thread safety:** read-only.
    int fd() const noexcept { return fd_; }
    /// True while open.
    /// **Thread safety:** read-only.
    bool is_open() const noexcept { return fd_ >= 0; }
    /// True if the descriptor is a socket (reads are receives, writes are sends).
    /// **Thread safety:** read-only.
    bool is_socket() const noexcept { return socket_; }
    /// Bytes read ahead by read_until and not yet returned.
    /// **Thread safety:** read-only.
    std::size_t buffered() const noexcept { return rbuf_.size() - rpos_; }

private:
    task<std::size_t> receive(std::span<std::byte> buffer);
    task<std::size_t> take_buffered(std::span<std::byte> buffer);

    int fd_ = -1;
    detail::recv_state* recv_ = nullptr; // multishot provided-buffer receive, lazily
    std::string rbuf_;                   // read-ahead of read_until / read_exactly
    std::size_t rpos_ = 0;
    detail::closable_op* reading_ = nullptr; // plain read in flight, cancelled by close()
    detail::closable_op* writing_ = nullptr; // write in flight, cancelled by close()
    bool socket_ = false;
    bool plain_ = false; // no provided-buffer receive (not a socket, or not supported)
};

} // namespace corio
