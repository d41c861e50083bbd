#pragma once
/// \file redis.hpp
/// `corio::redis::connection`: an awaitable Redis client on corio's event loop.
///
/// ```
/// auto conn = co_await corio::redis::connection::connect("redis://127.0.0.1:6379/0");
/// co_await conn.command("SET", "greeting", "hello");
/// corio::redis::reply r = co_await conn.command("GET", "greeting"); // r.str() == "hello"
/// ```
///
/// The loop owns the socket (a `tcp_stream` or `unix_stream`); hiredis is used only to
/// format commands (RESP) and to parse replies, never for I/O. Several commands awaited
/// at once by different tasks share one connection and are pipelined: they are written
/// together and their replies are matched in order. `pipeline()` sends a batch in one
/// write. Built where hiredis is found (CMake option `CORIO_REDIS`, target `corio::redis`).

#include <corio/error.hpp>
#include <corio/task.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace corio::redis {

/// A Redis failure: an error reply (`ERR ...`, `WRONGTYPE ...`), a server that cannot
/// be reached or answers nothing within the connect timeout, a dropped connection. The
/// message names the server's URL (without its password).
/// **Thread safety:** exception objects are immutable after construction.
class error : public corio::error {
public:
    using corio::error::error;
};

/// A parsed Redis URL: `redis://[[user]:password@]host[:port][/db]` (port 6379, db 0 by
/// default; an IPv6 host in brackets) or `redis+unix:///path/to/socket[?db=N&password=P]`
/// (also `unix:///path`).
/// **Thread safety:** a plain value; `parse()` and `display()` from any thread.
struct url {
    std::string host;          ///< Host name or address (empty for a Unix socket).
    std::uint16_t port = 6379; ///< TCP port.
    std::string path;          ///< Unix socket path (empty for TCP).
    int db = 0;                ///< Database number selected after connecting.
    std::string user;          ///< ACL user name (empty: the default user).
    std::string password;      ///< Password for AUTH (empty: none).

    /// Parses `text`. Throws `redis::error` naming the text for anything malformed
    /// (an unknown scheme, a bad port or database number, an empty host or path).
    static url parse(std::string_view text);
    /// The URL as text without its password (what error messages show).
    [[nodiscard]] std::string display() const;
};

/// A reply: nil, an integer, a bulk string, a status ("OK"), an array of replies, or an
/// error. `connection::command` throws for an error reply, so an error kind is seen only
/// inside arrays and in `pipeline()` results.
/// **Thread safety:** a plain value.
class reply {
public:
    /// The kind of a reply (RESP2 types).
    enum class kind { nil, integer, string, status, array, error };

    /// A nil reply.
    reply() = default;
    /// An integer reply.
    static reply from_integer(long long v);
    /// A string, status or error reply holding `s`.
    static reply from_string(kind k, std::string s);
    /// An array reply.
    static reply from_array(std::vector<reply> elements);

    /// Its kind.
    [[nodiscard]] kind type() const noexcept { return kind_; }
    /// True for nil (a missing key, a timed-out blocking command).
    [[nodiscard]] bool is_nil() const noexcept { return kind_ == kind::nil; }
    /// True for an error reply.
    [[nodiscard]] bool is_error() const noexcept { return kind_ == kind::error; }
    /// The integer; throws `redis::error` if the reply is not one.
    [[nodiscard]] long long integer() const;
    /// The text of a string, status or error reply; throws `redis::error` otherwise.
    [[nodiscard]] const std::string& str() const;
    /// The text, or nothing for nil; throws `redis::error` for other kinds.
    [[nodiscard]] std::optional<std::string> optional_str() const;
    /// The elements of an array reply; throws `redis::error` otherwise.
    [[nodiscard]] const std::vector<reply>& elements() const;
    /// Number of elements of an array (0 for any other kind).
    [[nodiscard]] std::size_t size() const noexcept;
    /// Element `i` of an array; throws `redis::error` if not an array or out of range.
    [[nodiscard]] const reply& operator[](std::size_t i) const;
    /// A short readable form for messages and debugging (`"OK"`, `(integer) 3`, ...).
    [[nodiscard]] std::string to_string() const;

private:
    kind kind_ = kind::nil;
    long long int_ = 0;
    std::string str_;
    std::vector<reply> elements_;
};

/// A Lua script run with `EVALSHA`: its SHA1 is learned with `SCRIPT LOAD` on first use
/// and the script is loaded again when the server answers `NOSCRIPT` (after a restart).
/// **Thread safety:** one object per loop (it caches the SHA1 without locking).
class script {
public:
    /// A script with source `text`.
    explicit script(std::string text) : text_(std::move(text)) {}
    /// The Lua source. **Thread safety:** any thread.
    [[nodiscard]] const std::string& text() const noexcept { return text_; }
    /// Its SHA1 once a connection loaded it (`connection::load`), else empty.
    [[nodiscard]] const std::string& sha() const noexcept { return sha_; }

private:
    friend class connection;
    std::string text_;
    std::string sha_;
};

/// Options of `connection::connect`, an aggregate.
/// **Thread safety:** a plain value.
struct connection_options {
    /// Bound on connecting, authenticating and the first answer; past it `connect`
    /// throws `redis::error` naming the URL.
    std::chrono::milliseconds connect_timeout{5000};
};

namespace detail {
struct connection_state;

/// A command argument as bytes: strings as they are, numbers in decimal.
template <class T>
std::string to_arg(const T& v) {
    if constexpr (std::is_convertible_v<const T&, std::string_view>) {
        return std::string(std::string_view(v));
    } else if constexpr (std::is_same_v<T, bool>) {
        return v ? "1" : "0";
    } else if constexpr (std::is_integral_v<T>) {
        return std::to_string(v);
    } else if constexpr (std::is_floating_point_v<T>) {
        char buf[64];
        const int n = std::snprintf(buf, sizeof buf, "%.17g", static_cast<double>(v));
        return std::string(buf, static_cast<std::size_t>(n));
    } else {
        static_assert(std::is_convertible_v<const T&, std::string_view>,
                      "corio::redis: a command argument is a string or a number");
        return {};
    }
}
} // namespace detail

/// One connection to a Redis server, driven by the running loop.
///
/// Commands may be awaited concurrently from several tasks of the connection's loop:
/// they are pipelined (written back to back, the replies matched in order). A blocking
/// command (`BLMOVE`, `XREAD BLOCK`) holds the connection until it answers, so give it a
/// connection of its own. When the connection breaks (the server closed it or restarted),
/// every pending and later command throws `redis::error`; connect again.
/// Move-only; the destructor closes the socket and fails pending commands.
/// **Thread safety:** one loop's thread; the object must be destroyed before its loop.
class connection {
public:
    /// A closed connection (every command throws).
    connection() noexcept;
    /// Takes over `other`'s socket and pending commands.
    connection(connection&& other) noexcept;
    /// Closes this connection, then takes over `other`'s.
    connection& operator=(connection&& other) noexcept;
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;
    /// Closes the connection (see close()).
    ~connection();

    /// Connects to the server at `url` (see `redis::url`), authenticates, selects the
    /// database and checks the server answers (PING), all within
    /// `options.connect_timeout`. Throws `redis::error` naming the URL when the URL is
    /// malformed, the server refuses or cannot be reached, the password is wrong, or
    /// nothing answers in time.
    [[nodiscard]] static task<connection> connect(std::string url, connection_options options = {});

    /// Sends one command (`"SET", key, value`: strings or numbers) and returns its reply.
    /// Throws `redis::error` for an error reply (its text and the URL) or a broken
    /// connection.
    template <class... A>
    [[nodiscard]] task<reply> command(const A&... args) {
        return command_argv({detail::to_arg(args)...});
    }
    /// `command` with the arguments in a vector (`argv[0]` is the command name). Throws
    /// `redis::error` for an empty `argv` too.
    [[nodiscard]] task<reply> command_argv(std::vector<std::string> argv);
    /// Sends every command of `commands` in one write and returns their replies in order;
    /// error replies are returned as `reply::kind::error` elements, not thrown. Throws
    /// `redis::error` for a broken connection or an empty command.
    [[nodiscard]] task<std::vector<reply>> pipeline(std::vector<std::vector<std::string>> commands);
    /// Runs `s` with `EVALSHA` (`keys`, then `args`), loading it first if this server
    /// does not know it. Throws `redis::error` for an error raised by the script.
    /// **Thread safety:** loop thread; `s` must outlive the call.
    [[nodiscard]] task<reply> evalsha(script& s, std::vector<std::string> keys,
                                      std::vector<std::string> args);

    /// Loads `s` on the server (`SCRIPT LOAD`) and remembers its SHA1 in `s`, for
    /// callers that put `EVALSHA` commands in a `pipeline()`. Throws `redis::error`
    /// for a script that does not compile.
    [[nodiscard]] task<> load(script& s);

    /// Closes the socket; pending commands fail with `redis::error`. Idempotent.
    void close() noexcept;
    /// True until closed or broken.
    [[nodiscard]] bool is_open() const noexcept;
    /// The server's URL without its password.
    [[nodiscard]] const std::string& url() const noexcept;

private:
    explicit connection(std::shared_ptr<detail::connection_state> s) noexcept;
    static task<connection> open_(redis::url u, std::string display);
    std::shared_ptr<detail::connection_state> state_;
};

} // namespace corio::redis
