#pragma once
/// \file format.hpp
/// `{fmt}` support for the corio types a program prints: task handles, outcomes,
/// corio's exceptions and `std::exception_ptr`, endpoints, and process exit statuses.
/// Optional: no other corio header includes it, so code that does not format corio
/// types never needs `<fmt/format.h>` through corio.
///
/// ```cpp
/// #include <corio/format.hpp>
/// fmt::print("{}\n", corio::current_task());  // worker-3 (pending)
/// fmt::print("{}\n", outcome);                // 42, or timeout_error("...")
/// fmt::print("{:t}\n", err);                  // corio::queue_full: ...
/// fmt::print("{}\n", stream.remote_endpoint()); // 127.0.0.1:4242
/// fmt::print("{}\n", corio::exit_status(p.exitcode())); // killed by signal 9 (SIGKILL)
/// ```
///
/// corio links fmt privately: a target that includes this header links `fmt::fmt`
/// itself.
///
/// Format specifications: `{}` everywhere; `{:n}` for a task handle's name alone;
/// `{:t}` for an exception with its type name. Any other specification throws
/// `fmt::format_error` (or fails to compile when the format string is checked at
/// compile time).

#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/net.hpp>
#include <corio/outcome.hpp>

#include <fmt/format.h>

#include <concepts>
#include <exception>
#include <optional>
#include <string>
#include <variant>

namespace corio {

/// A process's exit status for printing: `exit_status(p.exitcode())` formats as
/// "running" (empty), "exited with status N", or "killed by signal N (SIGNAME)"
/// (negative: minus the signal number, as `process::exitcode()` reports it).
/// **Thread safety:** a plain value.
struct exit_status {
    /// The status as `process::exitcode()` returns it.
    std::optional<int> code;
    /// Wraps `code`.
    explicit exit_status(std::optional<int> c) noexcept : code(c) {}
};

/// "exited with status 0", "killed by signal 9 (SIGKILL)" or "running".
/// **Thread safety:** any thread.
[[nodiscard]] std::string to_string(const exit_status& status);

namespace detail {

/// The demangled dynamic type of an exception: "corio::timeout_error",
/// "std::system_error"; "unknown exception" when the runtime cannot tell; "" for null.
[[nodiscard]] std::string exception_type(const std::exception_ptr& e);
/// The message of an exception (`what()`), "" when it is not a `std::exception`,
/// "no exception" for null.
[[nodiscard]] std::string exception_message(const std::exception_ptr& e);
/// The demangled dynamic type of `e`.
[[nodiscard]] std::string exception_type(const std::exception& e);
/// `endpoint::to_string()`, or "unspecified" for an empty endpoint.
[[nodiscard]] std::string endpoint_text(const endpoint& e);

/// Parses an empty specification, or the single letter `letter` (then sets `flag`);
/// throws fmt::format_error for anything else.
constexpr auto parse_flag(fmt::format_parse_context& ctx, char letter, bool& flag) {
    auto it = ctx.begin();
    const auto end = ctx.end();
    if (it != end && *it == letter) {
        flag = true;
        ++it;
    }
    if (it != end && *it != '}') {
        throw fmt::format_error("invalid format specification for a corio type");
    }
    return it;
}

/// Parses an empty specification; throws fmt::format_error for anything else.
constexpr auto parse_empty(fmt::format_parse_context& ctx) {
    auto it = ctx.begin();
    if (it != ctx.end() && *it != '}') {
        throw fmt::format_error("invalid format specification for a corio type");
    }
    return it;
}

} // namespace detail

} // namespace corio

// The specializations below are described in this file's comment; Doxygen cannot
// place members of a namespace (fmt) that it does not see, so it skips them.
/// \cond CORIO_FMT_FORMATTERS

/// `{}`: "name (pending)" / "name (done)", "no task" for an empty handle;
/// `{:n}`: the name alone.
template <>
struct fmt::formatter<corio::task_handle> {
    bool name_only = false; ///< `{:n}` was given.
    /// Accepts `{}` and `{:n}`.
    constexpr auto parse(fmt::format_parse_context& ctx) {
        return corio::detail::parse_flag(ctx, 'n', name_only);
    }
    /// Writes the handle.
    template <class FormatContext>
    auto format(const corio::task_handle& h, FormatContext& ctx) const {
        if (!h) {
            return fmt::format_to(ctx.out(), "no task");
        }
        if (name_only) {
            return fmt::format_to(ctx.out(), "{}", h.name());
        }
        return fmt::format_to(ctx.out(), "{} ({})", h.name(), h.done() ? "done" : "pending");
    }
};

/// Every exception type derived from `corio::error`: `{}` its message, `{:t}`
/// "type: message".
template <std::derived_from<corio::error> E>
struct fmt::formatter<E, char> {
    bool with_type = false; ///< `{:t}` was given.
    /// Accepts `{}` and `{:t}`.
    constexpr auto parse(fmt::format_parse_context& ctx) {
        return corio::detail::parse_flag(ctx, 't', with_type);
    }
    /// Writes the exception.
    template <class FormatContext>
    auto format(const E& e, FormatContext& ctx) const {
        if (with_type) {
            return fmt::format_to(ctx.out(), "{}: {}", corio::detail::exception_type(e), e.what());
        }
        return fmt::format_to(ctx.out(), "{}", e.what());
    }
};

/// `std::exception_ptr` (what an `error_callback` receives, `outcome::exception()`):
/// `{}` the message, `{:t}` "type: message", "no exception" when null.
template <>
struct fmt::formatter<std::exception_ptr> {
    bool with_type = false; ///< `{:t}` was given.
    /// Accepts `{}` and `{:t}`.
    constexpr auto parse(fmt::format_parse_context& ctx) {
        return corio::detail::parse_flag(ctx, 't', with_type);
    }
    /// Writes the exception.
    template <class FormatContext>
    auto format(const std::exception_ptr& e, FormatContext& ctx) const {
        if (e == nullptr || !with_type) {
            return fmt::format_to(ctx.out(), "{}", corio::detail::exception_message(e));
        }
        return fmt::format_to(ctx.out(), "{}: {}", corio::detail::exception_type(e),
                              corio::detail::exception_message(e));
    }
};

/// `outcome<T>` for a formattable `T` (or `std::monostate`, shown as "ok"): the value
/// as `T` formats it, or the exception as Python shows one in a
/// `gather(return_exceptions=True)` list: `type("message")`.
template <class T>
requires(fmt::is_formattable<T>::value ||
         std::is_same_v<T, std::monostate>) struct fmt::formatter<corio::outcome<T>> {
    /// Accepts `{}` only.
    constexpr auto parse(fmt::format_parse_context& ctx) { return corio::detail::parse_empty(ctx); }
    /// Writes the value or the exception.
    template <class FormatContext>
    auto format(const corio::outcome<T>& o, FormatContext& ctx) const {
        if (o.has_value()) {
            if constexpr (std::is_same_v<T, std::monostate>) {
                return fmt::format_to(ctx.out(), "ok");
            } else {
                return fmt::format_to(ctx.out(), "{}", o.value());
            }
        }
        return fmt::format_to(ctx.out(), "{}(\"{}\")", corio::detail::exception_type(o.exception()),
                              corio::detail::exception_message(o.exception()));
    }
};

/// `endpoint`: "127.0.0.1:80", "[::1]:80", a Unix path, or "unspecified" when empty.
template <>
struct fmt::formatter<corio::endpoint> {
    /// Accepts `{}` only.
    constexpr auto parse(fmt::format_parse_context& ctx) { return corio::detail::parse_empty(ctx); }
    /// Writes the address.
    template <class FormatContext>
    auto format(const corio::endpoint& e, FormatContext& ctx) const {
        return fmt::format_to(ctx.out(), "{}", corio::detail::endpoint_text(e));
    }
};

/// `exit_status`: see `corio::to_string(const exit_status&)`.
template <>
struct fmt::formatter<corio::exit_status> {
    /// Accepts `{}` only.
    constexpr auto parse(fmt::format_parse_context& ctx) { return corio::detail::parse_empty(ctx); }
    /// Writes the status.
    template <class FormatContext>
    auto format(const corio::exit_status& s, FormatContext& ctx) const {
        return fmt::format_to(ctx.out(), "{}", corio::to_string(s));
    }
};
/// \endcond
