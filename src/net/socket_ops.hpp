#pragma once
// Plain socket calls shared by the protocol files of src/net/ (blocking setup done
// before a socket meets the ring: socket, bind, listen, options, names).

#include <corio/net.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace corio::detail {

/// Throws std::system_error(err) naming `what`.
[[noreturn]] void throw_errno(int err, const char* what);

/// The most one socket operation moves (io_uring takes a 32-bit length).
inline constexpr std::size_t max_io = std::size_t{1} << 30;

/// `n` capped at max_io.
std::uint32_t io_len(std::size_t n) noexcept;

/// The endpoint bind() takes for `host` without resolving ("", "localhost" or numeric).
endpoint bind_endpoint(std::string_view host, std::uint16_t port);

/// A new close-on-exec socket; throws on failure.
int open_socket(int family, int type);

/// setsockopt of an int option; throws naming `what` on failure.
void set_int_option(int fd, int level, int name, int value, const char* what);

/// A socket bound to `local` (SO_REUSEADDR if `reuse` and not AF_UNIX).
int bound_socket(const endpoint& local, int type, bool reuse);

/// A bound stream socket that listens with `backlog`.
int listening_socket(const endpoint& local, int backlog, bool reuse);

/// The local (or, if `peer`, the remote) address of `fd`.
endpoint socket_name(int fd, bool peer);

} // namespace corio::detail
