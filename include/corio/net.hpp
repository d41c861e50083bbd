#pragma once
/// \file net.hpp
/// Sockets on io_uring: TCP (`tcp_listener`, `tcp_stream`, `start_server` ->
/// `server`), UDP (`udp_socket`), Unix-domain streams (`unix_listener`,
/// `unix_stream`), addresses (`endpoint`) and name resolution (`resolve`).
///
/// Every operation is an io_uring request living in the awaiting coroutine's frame
/// (or, for the multishot accept and provided-buffer receive, in a small state
/// allocated once per socket); cancelling the awaiting task (`future::cancel`,
/// `wait_for`) cancels the request in the kernel, except that a socket's multishot
/// request outlives a cancelled call by design (see docs/net.md). A cancelled
/// receive consumes no data: the next read returns it. Closing a socket ends the
/// operations waiting on it with EBADF. OS failures throw `std::system_error` carrying
/// the errno, its `what()` starting with the operation's name ("connect", "accept",
/// "recv", "send", ...). Writes use MSG_NOSIGNAL: a closed peer never raises SIGPIPE.
/// See docs/net.md for the kernel requirements of each operation.

#include <corio/byte_stream.hpp>
#include <corio/error.hpp>
#include <corio/io.hpp>
#include <corio/task.hpp>

#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corio {

namespace detail {
class accept_state;
class closable_op;
struct server_state;
} // namespace detail

/// A socket address: IPv4, IPv6 or Unix-domain (a sockaddr_storage and its size).
/// **Thread safety:** a value type; const members may be used concurrently.
class endpoint {
public:
    /// An empty endpoint (AF_UNSPEC).
    endpoint() noexcept;
    /// Copies `size` bytes of a socket address.
    endpoint(const ::sockaddr* address, ::socklen_t size) noexcept;
    /// A numeric IPv4 ("127.0.0.1") or IPv6 ("::1", "[::1]", "fe80::1%lo") address
    /// and a port; std::nullopt if `address` is not numeric.
    static std::optional<endpoint> parse(std::string_view address, std::uint16_t port);
    /// A Unix-domain address; a leading '@' names the abstract namespace. Throws
    /// std::invalid_argument if the path is too long.
    static endpoint unix_path(std::string_view path);

    /// AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC.
    int family() const noexcept { return storage_.ss_family; }
    /// The address without port ("127.0.0.1", "::1", or the Unix path).
    std::string address() const;
    /// The port (0 for Unix addresses).
    std::uint16_t port() const noexcept;
    /// "127.0.0.1:80", "[::1]:80" or the Unix path.
    std::string to_string() const;
    /// The raw address for system calls.
    const ::sockaddr* data() const noexcept {
        return reinterpret_cast<const ::sockaddr*>(&storage_);
    }
    /// Writable raw address (for accept/recvfrom style calls; then resize()).
    ::sockaddr* data() noexcept { return reinterpret_cast<::sockaddr*>(&storage_); }
    /// Size of the address in bytes.
    ::socklen_t size() const noexcept { return size_; }
    /// Sets the meaningful size after the kernel filled data().
    void resize(::socklen_t size) noexcept { size_ = size; }
    /// Capacity of data().
    static constexpr ::socklen_t capacity() noexcept { return sizeof(::sockaddr_storage); }
    /// True if both hold the same address bytes: same family, address, port (and,
    /// for IPv6, flow information and scope).
    friend bool operator==(const endpoint& a, const endpoint& b) noexcept;

private:
    ::sockaddr_storage storage_;
    ::socklen_t size_ = 0;
};

/// Resolves `host` and `service` (a port number or a name from /etc/services) to
/// stream-socket endpoints, IPv4 and IPv6, in getaddrinfo's order. getaddrinfo runs
/// on a helper thread, never blocking the loop; cancelling the awaiting task stops
/// the wait at once (the lookup itself finishes in the background). Throws
/// std::system_error ("getaddrinfo") with the errno when the system reports one,
/// else corio::error with gai_strerror's text (unknown host and the like).
/// **Thread safety:** on the loop's thread.
[[nodiscard]] task<std::vector<endpoint>> resolve(std::string host, std::string service);

/// The host and service names of an IPv4 or IPv6 `address` (asyncio's
/// loop.getnameinfo): getnameinfo(3) with `flags` (NI_NUMERICHOST, NI_NUMERICSERV,
/// NI_NAMEREQD, ...) on a helper thread, never blocking the loop. Returns
/// {host, service}. Throws std::invalid_argument for an endpoint that is neither
/// IPv4 nor IPv6, corio::error with gai_strerror's text (EAI_NONAME with
/// NI_NAMEREQD and no name, EAI_BADFLAGS), std::system_error ("getnameinfo").
/// **Thread safety:** on the loop's thread.
[[nodiscard]] task<std::pair<std::string, std::string>> getnameinfo(endpoint address,
                                                                    int flags = 0);

/// A connected stream socket: a `byte_stream` (read_some, read_exactly, read_until,
/// write_all, close; see corio/byte_stream.hpp) that knows it is a socket, plus
/// shutdown_write and its addresses; as used by `tcp_stream` and `unix_stream`.
///
/// Reads are receives: a multishot IORING_OP_RECV with a provided-buffer ring (6.0)
/// where supported, else one IORING_OP_RECV (5.6) per call; their errors name
/// "recv". Writes are IORING_OP_SEND (5.6) with MSG_NOSIGNAL; errors name "send".
/// Move-only; the destructor closes the socket.
/// **Thread safety:** one object from one thread (its loop's) at a time.
class socket_stream : public byte_stream {
public:
    /// A closed stream.
    socket_stream() noexcept = default;
    /// Adopts a connected socket descriptor.
    explicit socket_stream(int fd) noexcept : byte_stream(fd, true) {}

    /// Shuts down the sending half (the peer reads end of stream); reading goes on.
    /// Throws std::system_error ("shutdown").
    void shutdown_write();
    /// The local address (getsockname). Throws std::system_error ("getsockname").
    /// **Thread safety:** any thread.
    endpoint local_endpoint() const;
    /// The peer's address (getpeername). Throws std::system_error ("getpeername").
    /// **Thread safety:** any thread.
    endpoint remote_endpoint() const;
};

/// A TCP connection (asyncio's open_connection pair in one object).
/// TCP_NODELAY is on, as in asyncio.
/// **Thread safety:** as socket_stream.
class tcp_stream : public socket_stream {
public:
    /// socket_stream's constructors: a closed stream, and one adopting a connected
    /// TCP socket descriptor (its TCP_NODELAY setting is left as it is). Moves as
    /// socket_stream does.
    using socket_stream::socket_stream;

    /// Connects to `host` (numeric IPv4/IPv6, or a name resolved with resolve())
    /// and `port`, trying each address in turn; throws the last std::system_error
    /// ("connect"), e.g. ECONNREFUSED. Kernel: IORING_OP_CONNECT (5.5).
    [[nodiscard]] static task<tcp_stream> connect(std::string host, std::uint16_t port);
    /// Connects to one endpoint. Throws std::system_error ("connect").
    [[nodiscard]] static task<tcp_stream> connect(endpoint peer);
    /// Turns Nagle's algorithm off (true, the default) or on.
    /// Throws std::system_error ("setsockopt").
    void set_nodelay(bool on);
};

/// A connected Unix-domain stream socket.
/// **Thread safety:** as socket_stream.
class unix_stream : public socket_stream {
public:
    /// socket_stream's constructors: a closed stream, and one adopting a connected
    /// Unix-domain stream socket descriptor. Moves as socket_stream does.
    using socket_stream::socket_stream;

    /// Connects to the socket at `path` ('@' prefix: abstract namespace).
    /// Throws std::system_error ("connect"). Kernel: IORING_OP_CONNECT (5.5).
    [[nodiscard]] static task<unix_stream> connect(std::string path);
    /// A connected pair (socketpair(2)), handy in tests and between tasks.
    /// Throws std::system_error ("socketpair").
    /// **Thread safety:** any thread.
    static std::pair<unix_stream, unix_stream> pair();
};

/// Options of a listening socket.
/// **Thread safety:** a plain value.
struct listener_options {
    /// Accept with one multishot IORING_OP_ACCEPT where the kernel has it (5.19);
    /// false forces one accept request per call (the plain path).
    bool multishot = true;
    /// SO_REUSEADDR (TCP only).
    bool reuse_address = true;
};

namespace detail {
/// The accepting half shared by tcp_listener and unix_listener.
class socket_acceptor {
public:
    socket_acceptor() noexcept = default;
    socket_acceptor(int fd, bool multishot) noexcept : fd_(fd), multishot_(multishot) {}
    socket_acceptor(socket_acceptor&& other) noexcept;
    socket_acceptor& operator=(socket_acceptor&& other) noexcept;
    ~socket_acceptor();
    task<int> accept_fd();
    void close() noexcept;
    int fd() const noexcept { return fd_; }

private:
    int fd_ = -1;
    bool multishot_ = true;
    accept_state* state_ = nullptr;
    closable_op* accepting_ = nullptr; // plain accept in flight, cancelled by close()
};
} // namespace detail

/// A listening TCP socket.
/// **Thread safety:** one object from one thread (its loop's) at a time.
class tcp_listener {
public:
    /// A closed listener.
    tcp_listener() noexcept = default;

    /// Binds and listens on a numeric `host` ("127.0.0.1", "::1", "0.0.0.0", "::"),
    /// "localhost" (127.0.0.1) or "" (all IPv4 interfaces); port 0 picks a free
    /// port (see local_port()). Resolve other names with resolve() and use the
    /// endpoint overload. Throws std::system_error ("socket", "bind", "listen").
    /// **Thread safety:** any thread.
    static tcp_listener bind(std::string_view host, std::uint16_t port, int backlog = 128,
                             listener_options options = {});
    /// Binds and listens on `local`.
    /// **Thread safety:** any thread.
    static tcp_listener bind(const endpoint& local, int backlog = 128,
                             listener_options options = {});

    /// Waits for and returns the next connection. Throws std::system_error
    /// ("accept"), e.g. EMFILE when out of descriptors (the connection stays queued
    /// and a later accept gets it). Kernel: multishot IORING_OP_ACCEPT (5.19) or
    /// IORING_OP_ACCEPT (5.5).
    /// **Thread safety:** loop thread; one accept at a time.
    [[nodiscard]] task<tcp_stream> accept();
    /// The bound port.
    /// **Thread safety:** any thread.
    std::uint16_t local_port() const;
    /// The bound address. Throws std::system_error ("getsockname").
    /// **Thread safety:** any thread.
    endpoint local_endpoint() const;
    /// Stops listening; no effect if closed. An accept waiting on the listener is
    /// cancelled in the kernel and fails with std::system_error EBADF ("accept").
    void close() noexcept { acceptor_.close(); }
    /// The descriptor, or -1.
    /// **Thread safety:** read-only.
    int fd() const noexcept { return acceptor_.fd(); }
    /// True while listening.
    /// **Thread safety:** read-only.
    bool is_open() const noexcept { return acceptor_.fd() >= 0; }

private:
    detail::socket_acceptor acceptor_;
};

/// A listening Unix-domain stream socket. A stale socket file at the path is
/// replaced; the file is removed again by close() and the destructor.
/// **Thread safety:** one object from one thread (its loop's) at a time.
class unix_listener {
public:
    /// A closed listener.
    unix_listener() noexcept = default;
    /// Takes over `other`'s socket and path (and the duty to remove the file);
    /// `other` is left closed.
    unix_listener(unix_listener&& other) noexcept;
    /// Closes this listener (see close()), then takes over `other`'s socket and path.
    unix_listener& operator=(unix_listener&& other) noexcept;
    /// Closes (see close()).
    ~unix_listener();

    /// Binds and listens at `path` ('@' prefix: abstract namespace).
    /// Throws std::system_error ("socket", "bind", "listen").
    /// **Thread safety:** any thread.
    static unix_listener bind(std::string path, int backlog = 128, listener_options options = {});
    /// Waits for the next connection. Throws std::system_error ("accept").
    /// **Thread safety:** loop thread; one accept at a time.
    [[nodiscard]] task<unix_stream> accept();
    /// Stops listening and removes the socket file; no effect if closed. An accept
    /// waiting on the listener fails with std::system_error EBADF ("accept").
    void close() noexcept;
    /// The bound path ("@name" for the abstract namespace; empty once closed).
    /// **Thread safety:** read-only.
    const std::string& path() const noexcept { return path_; }
    /// The descriptor, or -1.
    /// **Thread safety:** read-only.
    int fd() const noexcept { return acceptor_.fd(); }

private:
    detail::socket_acceptor acceptor_;
    std::string path_;
};

/// What `udp_socket::recv_from` returns: `auto [size, sender] = co_await s.recv_from(buf);`
/// **Thread safety:** a plain value.
struct datagram {
    std::size_t size; ///< bytes received (a longer datagram is truncated to the buffer)
    endpoint sender;  ///< where it came from
};

/// A UDP socket (asyncio's datagram endpoint, as awaitable calls).
/// **Thread safety:** one object from one thread (its loop's) at a time.
class udp_socket {
public:
    /// A closed socket.
    udp_socket() noexcept = default;
    /// Adopts a datagram socket descriptor.
    explicit udp_socket(int fd) noexcept : fd_(fd) {}
    /// Takes over `other`'s socket and operations in flight; `other` is left closed.
    udp_socket(udp_socket&& other) noexcept;
    /// Closes this socket (see close()), then takes over `other`'s.
    udp_socket& operator=(udp_socket&& other) noexcept;
    udp_socket(const udp_socket&) = delete;
    udp_socket& operator=(const udp_socket&) = delete;
    /// Closes the socket.
    ~udp_socket();

    /// A socket bound to a numeric `host`, "localhost" or "" (0.0.0.0) and `port`
    /// (0: any free port). Throws std::system_error ("socket", "bind").
    /// **Thread safety:** any thread.
    static udp_socket bind(std::string_view host, std::uint16_t port);
    /// A socket bound to `local`.
    /// **Thread safety:** any thread.
    static udp_socket bind(const endpoint& local);

    /// Sends one datagram to `host` (numeric or a name, resolved) and `port`;
    /// returns the bytes sent. Throws std::system_error ("sendmsg").
    /// Kernel: IORING_OP_SENDMSG (5.3).
    /// **Thread safety:** loop thread; `bytes` must stay valid until done.
    [[nodiscard]] task<std::size_t> send_to(std::span<const std::byte> bytes, std::string host,
                                            std::uint16_t port);
    /// send_to() of characters.
    /// **Thread safety:** as above.
    [[nodiscard]] task<std::size_t> send_to(std::string_view bytes, std::string host,
                                            std::uint16_t port);
    /// Sends one datagram to `peer`; returns the bytes sent. Throws
    /// std::system_error ("sendmsg").
    /// **Thread safety:** as above.
    [[nodiscard]] task<std::size_t> send_to(std::span<const std::byte> bytes, endpoint peer);
    /// send_to() of characters to `peer`.
    /// **Thread safety:** as above.
    [[nodiscard]] task<std::size_t> send_to(std::string_view bytes, endpoint peer);
    /// Receives one datagram into `buffer`: its size and sender. Throws
    /// std::system_error ("recvmsg"). A cancelled receive consumes no datagram.
    /// Kernel: IORING_OP_RECVMSG (5.3).
    [[nodiscard]] task<datagram> recv_from(std::span<std::byte> buffer);
    /// recv_from() into a char buffer.
    [[nodiscard]] task<datagram> recv_from(std::span<char> buffer);

    /// The bound port.
    /// **Thread safety:** any thread.
    std::uint16_t local_port() const;
    /// The bound address. Throws std::system_error ("getsockname").
    /// **Thread safety:** any thread.
    endpoint local_endpoint() const;
    /// Closes the socket; no effect if closed. A send_to or recv_from waiting on
    /// it is cancelled in the kernel and fails with std::system_error EBADF.
    void close() noexcept;
    /// The descriptor, or -1.
    /// **Thread safety:** read-only.
    int fd() const noexcept { return fd_; }

private:
    int fd_ = -1;
    detail::closable_op* receiving_ = nullptr; // recv_from in flight, cancelled by close()
    detail::closable_op* sending_ = nullptr;   // send_to in flight, cancelled by close()
};

/// The connection callback of start_server: takes the stream by value, returns a task.
using connection_handler = std::function<task<>(tcp_stream)>;

/// A TCP server started by start_server (asyncio.Server).
///
/// Each accepted connection runs `handler(stream)` as its own task on the loop.
/// An exception escaping a handler is reported through the loop's exception
/// handler and ends only that connection. Accept errors such as EMFILE are
/// reported the same way; the server retries accepting after a short pause
/// (`accept_retry_delay`) and serves again once descriptors are free.
/// **Thread safety:** one object from one thread (its loop's) at a time.
class server {
public:
    /// An empty server.
    server() noexcept;
    /// Takes over the other server's listener and connections; it is left empty.
    server(server&&) noexcept;
    /// Closes this server (see close()), then takes over the other's.
    server& operator=(server&&) noexcept;
    /// Closes the server (see close()).
    ~server();

    /// Runs until close() is called (asyncio's serve_forever); cancelling the
    /// awaiting task closes the server and rethrows cancelled_error.
    [[nodiscard]] task<> serve_forever();
    /// Stops listening and cancels every connection task; idempotent.
    void close();
    /// Waits until the server is closed and every connection task has finished.
    [[nodiscard]] task<> wait_closed();
    /// True until close().
    bool is_serving() const noexcept;
    /// The listening port (0 once closed).
    std::uint16_t local_port() const;
    /// Connection tasks currently running.
    std::size_t connection_count() const noexcept;

    /// Internal: adopts the state made by start_server.
    explicit server(std::shared_ptr<detail::server_state> state) noexcept;

private:
    std::shared_ptr<detail::server_state> state_;
};

/// Options of start_server.
/// **Thread safety:** a plain value.
struct server_options {
    /// listen(2) backlog.
    int backlog = 128;
    /// Pause before accepting again after an accept error such as EMFILE.
    std::chrono::milliseconds accept_retry_delay{100};
    /// Listener options (multishot accept on/off, SO_REUSEADDR).
    listener_options listener{};
};

/// The connection callback of start_unix_server: takes the stream by value.
using unix_connection_handler = std::function<task<>(unix_stream)>;

/// asyncio.start_unix_server: listens at `path` ('@' prefix: abstract namespace; a
/// stale socket file is replaced, and the file is removed when the server closes) and
/// runs `handler(stream)` as a task per connection, as start_server does.
/// `server::local_port()` is 0. Throws std::invalid_argument for a bad path,
/// std::system_error ("bind", "listen").
/// **Thread safety:** loop thread.
[[nodiscard]] task<server> start_unix_server(unix_connection_handler handler, std::string path,
                                             server_options options = {});

/// Sends `count` bytes of `in` from `offset` (by default to the end of the file) to
/// the socket `out` without copying them through user memory (asyncio's
/// loop.sendfile): splice from the file into a pipe and from the pipe into the socket,
/// on the ring. Returns the bytes sent (fewer than `count` only if the file ends
/// first). Throws std::system_error: EBADF for a closed stream or file, "splice"
/// errors such as EPIPE when the peer is gone. Cancelling the task cancels the splice
/// in flight; bytes already sent stay sent.
/// Kernel: IORING_OP_SPLICE (5.7).
/// **Thread safety:** loop thread; no other write on `out` meanwhile.
[[nodiscard]] task<std::uint64_t> sendfile(socket_stream& out, file& in, std::uint64_t offset = 0,
                                           std::optional<std::uint64_t> count = std::nullopt);

/// asyncio.start_server: listens on `host` and `port` (port 0 picks a free one; a
/// non-numeric host is resolved and its first address used) and starts accepting
/// at once, running `handler(stream)` as a task per connection. Throws
/// std::system_error ("bind", "listen", "getaddrinfo").
/// **Thread safety:** loop thread.
[[nodiscard]] task<server> start_server(connection_handler handler, std::string host,
                                        std::uint16_t port, server_options options = {});

} // namespace corio
