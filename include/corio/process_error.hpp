#pragma once
/// \file process_error.hpp
/// The errors of work that runs in another process (`process_pool`, `process`):
/// an exception that is not a standard one, a worker that died, a pool that broke.

#include <corio/error.hpp>

#include <string>
#include <sys/types.h>

namespace corio {

/// An exception thrown by a function in a worker process whose type has no
/// counterpart here (anything but the standard exception types and corio's own
/// errors): its dynamic type name and its `what()` cross the process boundary.
/// `what()` is "type: message".
/// **Thread safety:** exception objects are immutable after construction.
class remote_error : public error {
public:
    /// An error from a worker that threw a `type_name` with message `message`.
    remote_error(std::string type_name, std::string message)
        : error(type_name + ": " + message), type_name_(std::move(type_name)),
          message_(std::move(message)) {}

    /// The demangled dynamic type of the original exception (e.g. "my::parse_error").
    [[nodiscard]] const std::string& type_name() const noexcept { return type_name_; }
    /// The original `what()` (empty for a thrown non-exception).
    [[nodiscard]] const std::string& message() const noexcept { return message_; }

private:
    std::string type_name_;
    std::string message_;
};

/// The worker process that ran this call died before answering (a signal such as
/// SIGSEGV or SIGKILL, `abort()`, `exit()`): exactly the call it was running fails
/// with this error; the pool replaced the worker and keeps serving.
/// **Thread safety:** exception objects are immutable after construction.
class broken_worker_error : public error {
public:
    /// A worker `pid` ended with `exitcode` (Python's convention: the exit status, or
    /// minus the signal number); `what` is the full message.
    broken_worker_error(const std::string& what, pid_t pid, int exitcode)
        : error(what), pid_(pid), exitcode_(exitcode) {}

    /// Process id of the dead worker.
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }
    /// Its exit status, or minus the number of the signal that killed it.
    [[nodiscard]] int exitcode() const noexcept { return exitcode_; }

private:
    pid_t pid_;
    int exitcode_;
};

/// A process pool that cannot serve any more: a worker's initializer failed or
/// crashed (so a replacement would fail the same way), or the fork server is gone.
/// Work not yet started fails with it, and so do later submissions.
/// **Thread safety:** exception objects are immutable after construction.
class broken_pool_error : public error {
public:
    using error::error;
};

} // namespace corio
