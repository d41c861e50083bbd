#pragma once
// Descriptors that travel with a corio::process's arguments (connections, queues,
// shared memory, process locks). While a process object serializes its arguments, an
// `outgoing_fds` scope is current on the thread: each such argument adds a duplicate
// of its descriptor and writes the index. The parent sends the duplicates with the
// start frame (SCM_RIGHTS); in the child an `incoming_fds` scope is current while the
// arguments are decoded, and each argument takes its descriptor back by index.

#include <cstdint>
#include <vector>

namespace corio::detail {

/// Adds a duplicate of `fd` to the arguments being serialized on this thread and
/// returns its index. Throws `corio::error` naming `what` when no `corio::process` is
/// serializing arguments (a process pool cannot carry descriptors), or
/// `std::system_error` if dup fails.
std::uint32_t pass_fd(int fd, const char* what);

/// Takes the descriptor at `index` of those received with the arguments (the caller
/// owns it). Throws `serialize_error` if there is none.
int receive_fd(std::uint32_t index);

/// Makes a fresh list current for `pass_fd` on this thread (restoring the previous
/// one on destruction, closing what was not taken).
class outgoing_fds {
public:
    outgoing_fds() noexcept;
    outgoing_fds(const outgoing_fds&) = delete;
    outgoing_fds& operator=(const outgoing_fds&) = delete;
    ~outgoing_fds();
    /// The collected descriptors (the caller owns them).
    std::vector<int> take() noexcept;

private:
    std::vector<int> fds_;
    outgoing_fds* previous_;
    friend std::uint32_t pass_fd(int, const char*);
};

/// Makes `fds` current for `receive_fd` on this thread; closes those not taken.
class incoming_fds {
public:
    explicit incoming_fds(std::vector<int> fds) noexcept;
    incoming_fds(const incoming_fds&) = delete;
    incoming_fds& operator=(const incoming_fds&) = delete;
    ~incoming_fds();

private:
    std::vector<int> fds_;
    incoming_fds* previous_;
    friend int receive_fd(std::uint32_t);
};

/// Closes every descriptor in `fds` and empties it.
void close_all(std::vector<int>& fds) noexcept;

} // namespace corio::detail
