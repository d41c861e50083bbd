#pragma once
/// \file descriptor.hpp
/// Waiting on descriptors that other code owns (a library's socket, a pipe, an
/// eventfd): `co_await wait_readable(fd)` and `co_await wait_writable(fd)`. The
/// callback form is on the loop: `event_loop::add_reader`, `add_writer`,
/// `remove_reader`, `remove_writer` (asyncio's). corio never reads, writes or closes
/// such a descriptor. See docs/descriptors.md.

#include <corio/task.hpp>

namespace corio {

/// Waits until `fd` is readable (or has an error or hang-up to report): one
/// IORING_OP_POLL_ADD (5.1). Cancelling the awaiting task cancels the poll in the
/// kernel. Throws std::invalid_argument for a negative descriptor,
/// std::system_error ("poll") from the kernel, e.g. EBADF.
/// **Thread safety:** on a running loop's thread.
[[nodiscard]] task<> wait_readable(int fd);
/// Waits until `fd` is writable (or has an error or hang-up to report); as
/// wait_readable().
/// **Thread safety:** on a running loop's thread.
[[nodiscard]] task<> wait_writable(int fd);

} // namespace corio
