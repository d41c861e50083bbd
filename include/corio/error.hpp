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

/// Thrown inside a task at its current or next suspension point after `cancel()`,
/// and by `result()` of a cancelled future (asyncio.CancelledError).
/// **Thread safety:** exception objects are immutable after construction.
class cancelled_error : public error {
public:
    cancelled_error() : error("corio: operation was cancelled") {}
    using error::error;
};

/// A deadline passed: `wait_for`, `async_result::get(timeout)` (asyncio.TimeoutError).
/// **Thread safety:** exception objects are immutable after construction.
class timeout_error : public error {
public:
    timeout_error() : error("corio: timed out") {}
    using error::error;
};

/// A future's result or exception was read before it was set (asyncio.InvalidStateError).
/// **Thread safety:** exception objects are immutable after construction.
class invalid_state_error : public error {
public:
    using error::error;
};

} // namespace corio
