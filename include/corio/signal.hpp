#pragma once
/// \file signal.hpp
/// Unix signals delivered on the event loop: `co_await wait_signal(sig)`, and
/// `event_loop::add_signal_handler(sig, fn)` / `remove_signal_handler(sig)`
/// (declared in event_loop.hpp).
///
/// While a signal has a handler or a waiter, it is blocked in the loop thread's
/// signal mask and read from a signalfd polled through the ring
/// (IORING_OP_POLL_ADD, 5.1); the previous mask is restored when the last handler
/// or waiter goes. A process-directed signal (kill) reaches the signalfd only if
/// no other thread leaves it unblocked: block it in every thread (for instance
/// with pthread_sigmask before starting threads), as with any signalfd.

#include <corio/task.hpp>

namespace corio {

/// Waits until signal `sig` arrives on the running loop's thread. Throws
/// std::invalid_argument for an invalid signal or SIGKILL/SIGSTOP, cancelled_error
/// if the task is cancelled first, std::system_error ("signalfd") on failure.
/// A handler added with add_signal_handler for the same signal still runs too.
/// **Thread safety:** loop thread.
[[nodiscard]] task<> wait_signal(int sig);

} // namespace corio
