#pragma once
/// \file io.hpp
/// Files on io_uring: `corio::file` (open, positional read and write, size, fsync,
/// close) and the conveniences `read_file` and `write_file`.
///
/// Every operation is one io_uring request per kernel call, living in the awaiting
/// coroutine's frame; cancelling the awaiting task cancels the request in the
/// kernel. Failures throw `std::system_error` carrying the errno, its `what()`
/// starting with the operation's name ("open", "read", "write", ...).

#include <corio/task.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace corio {

namespace detail {
inline std::span<std::byte> writable_bytes(std::span<char> s) noexcept {
    return {reinterpret_cast<std::byte*>(s.data()), s.size()};
}
inline std::span<const std::byte> readable_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}
} // namespace detail

/// An open file descriptor driven through io_uring (asyncio has none; this is what
/// aiofiles offers, with positional reads and writes).
///
/// Move-only; the destructor closes a descriptor still open with close(2), without
/// waiting on the ring. Reads and writes take an explicit offset (pread/pwrite
/// semantics; on a file opened for appending, writes go to the end whatever the
/// offset), so several may be in flight at once on one file.
/// **Thread safety:** distinct objects may be used on distinct loops; one object
/// from one thread at a time. Operations must be awaited on a running loop.
class file {
public:
    /// A closed file.
    file() noexcept = default;
    /// Adopts an open descriptor (closed by this object from now on): a regular
    /// file, or a stream such as a pipe (whose reads and writes ignore the offset).
    explicit file(int fd) noexcept : fd_(fd) {}
    /// Takes over `other`'s descriptor; `other` is left closed.
    file(file&& other) noexcept;
    /// Closes this file's descriptor (synchronous close(2)), then takes over
    /// `other`'s; `other` is left closed.
    file& operator=(file&& other) noexcept;
    file(const file&) = delete;
    file& operator=(const file&) = delete;
    /// Closes the descriptor if still open (synchronous close(2)).
    ~file();

    /// Opens `path` with a Python mode string: "r", "w", "a", "x", each with an
    /// optional "+" (read and write) and "b"/"t" (accepted, no effect). "w" and "w+"
    /// truncate, "a" appends, "x" fails with EEXIST if the file exists; files are
    /// created with `permissions` (less the umask). Throws std::invalid_argument for
    /// a malformed mode, std::system_error ("open") otherwise.
    /// Kernel: IORING_OP_OPENAT (5.6).
    [[nodiscard]] static task<file> open(std::string path, std::string_view mode = "r",
                                         unsigned permissions = 0666);
    /// Opens `path` with raw open(2) `flags` (O_CLOEXEC is always added).
    /// Throws std::system_error ("open"). Kernel: IORING_OP_OPENAT (5.6).
    [[nodiscard]] static task<file> open(std::string path, int flags, unsigned permissions = 0666);

    /// The open(2) flags for a Python mode string; throws std::invalid_argument.
    /// **Thread safety:** pure function.
    static int flags_for_mode(std::string_view mode);

    /// Reads into `buffer` from `offset`, looping over short reads until the buffer
    /// is full or the end of the file; returns the bytes read (fewer than asked only
    /// at the end of file, 0 at or past it). Throws std::system_error ("read"), for
    /// example EBADF on a descriptor not open for reading.
    /// Kernel: IORING_OP_READ (5.6).
    /// **Thread safety:** on the loop's thread; concurrent reads are allowed.
    [[nodiscard]] task<std::size_t> read(std::span<std::byte> buffer, std::uint64_t offset);
    /// read() into a char buffer.
    /// **Thread safety:** as read().
    [[nodiscard]] task<std::size_t> read(std::span<char> buffer, std::uint64_t offset);
    /// Writes all of `bytes` at `offset`, looping over short writes; returns the
    /// size written (always `bytes.size()`). Throws std::system_error ("write"), for
    /// example EBADF on a read-only descriptor.
    /// Kernel: IORING_OP_WRITE (5.6).
    /// **Thread safety:** on the loop's thread; concurrent writes are allowed.
    [[nodiscard]] task<std::size_t> write(std::span<const std::byte> bytes, std::uint64_t offset);
    /// write() of characters.
    /// **Thread safety:** as write().
    [[nodiscard]] task<std::size_t> write(std::string_view bytes, std::uint64_t offset);
    /// The file's size in bytes. Throws std::system_error ("statx").
    /// Kernel: IORING_OP_STATX (5.6).
    [[nodiscard]] task<std::uint64_t> size();
    /// Flushes data and metadata to the device. Throws std::system_error ("fsync").
    /// Kernel: IORING_OP_FSYNC (5.1).
    [[nodiscard]] task<> fsync();
    /// Closes the descriptor through the ring; no effect if already closed. Throws
    /// std::system_error ("close") if the kernel reports an error (the descriptor is
    /// released regardless). Kernel: IORING_OP_CLOSE (5.6).
    /// **Thread safety:** on the loop's thread, with no other operation in flight.
    [[nodiscard]] task<> close();

    /// The descriptor, or -1 when closed.
    /// **Thread safety:** read-only.
    int fd() const noexcept { return fd_; }
    /// True while a descriptor is held.
    /// **Thread safety:** read-only.
    bool is_open() const noexcept { return fd_ >= 0; }
    /// Gives up ownership of the descriptor and returns it.
    int release() noexcept {
        int fd = fd_;
        fd_ = -1;
        return fd;
    }

private:
    int fd_ = -1;
};

/// Reads a whole file into a string (asyncio-style `Path.read_bytes`). Throws
/// std::system_error ("open", "statx", "read").
/// **Thread safety:** on the loop's thread.
[[nodiscard]] task<std::string> read_file(std::string path);
/// Creates or truncates `path` and writes `bytes` to it. Throws std::system_error
/// ("open", "write", "close").
/// **Thread safety:** on the loop's thread; `bytes` must stay valid until done.
[[nodiscard]] task<> write_file(std::string path, std::span<const std::byte> bytes);
/// write_file() of characters.
/// **Thread safety:** as above.
[[nodiscard]] task<> write_file(std::string path, std::string_view bytes);

} // namespace corio
