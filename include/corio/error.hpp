#pragma once
/// \file error.hpp
/// corio's exception hierarchy. Everything corio throws for its own reasons derives
/// from `corio::error`; operating-system failures are `std::system_error` instead.

#include <stdexcept>
#include <string>

namespace corio {

/// Base of every corio-specific exception (a `std::runtime_error`).
/// **Thread safety:** exception objects are immutable after construction.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

namespace detail {
/// The message of a cancelled_error nobody gave one to.
inline constexpr const char* default_cancel_message = "corio: operation was cancelled";
/// The message passed to `cancel(message)` of the task running on this thread, or
/// default_cancel_message (defined in src/future.cpp).
std::string current_cancel_message();
} // namespace detail

/// Thrown inside a task at its current or next suspension point after `cancel()`,
/// and by `result()` of a cancelled future (asyncio.CancelledError). Thrown inside
/// a task cancelled with `cancel(message)`, its what() is that message.
/// **Thread safety:** exception objects are immutable after construction.
class cancelled_error : public error {
public:
    /// A cancellation of the running task, carrying its cancel message if it has one.
    cancelled_error() : error(detail::current_cancel_message()) {}
    using error::error;
};

/// A deadline passed: `wait_for`, `async_result::get(timeout)` (asyncio.TimeoutError).
/// **Thread safety:** exception objects are immutable after construction.
class timeout_error : public error {
public:
    timeout_error() : error("corio: timed out") {}
    using error::error;
};

/// Thrown by `corio::run` when Ctrl+C (SIGINT) interrupted the main task, after the
/// task finished its cleanup and the loop closed (Python's KeyboardInterrupt).
/// **Thread safety:** exception objects are immutable after construction.
class keyboard_interrupt : public error {
public:
    keyboard_interrupt() : error("corio: interrupted by SIGINT (Ctrl+C)") {}
    using error::error;
};

/// A future's result or exception was read before it was set (asyncio.InvalidStateError).
/// **Thread safety:** exception objects are immutable after construction.
class invalid_state_error : public error {
public:
    using error::error;
};

} // namespace corio
