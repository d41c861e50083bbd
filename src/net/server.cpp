// start_server() and server: an accept loop task plus one task per connection.

#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/net.hpp>
#include <corio/sleep.hpp>

#include <cerrno>
#include <optional>
#include <system_error>
#include <type_traits>
#include <unordered_map>
#include <vector>

namespace corio {

namespace detail {

struct server_state {
    explicit server_state(event_loop& l) : loop(&l), closed(l), drained(l) {}

    event_loop* loop;
    tcp_listener listener;
    connection_handler handler;
    unix_listener local_listener; // start_unix_server
    unix_connection_handler unix_handler;
    server_options options;
    std::optional<future<>> accept_task;
    std::unordered_map<std::uint64_t, future<>> connections;
    std::uint64_t next_id = 0;
    future<> closed;  // set by close(): serve_forever returns
    future<> drained; // closed, accept loop and every connection finished
    bool serving = true;
    bool accept_done = false;

    void check_drained() {
        if (!serving && accept_done && connections.empty() && !drained.done()) {
            drained.set_result();
        }
    }
};

namespace {

template <class Stream>
task<> run_connection(std::shared_ptr<server_state> st, std::uint64_t id, Stream stream) {
    std::exception_ptr failure;
    try {
        if constexpr (std::is_same_v<Stream, tcp_stream>) {
            co_await st->handler(std::move(stream));
        } else {
            co_await st->unix_handler(std::move(stream));
        }
    } catch (const cancelled_error&) {
        // closing the server cancels its connections: an expected end
    } catch (...) {
        failure = std::current_exception();
    }
    if (failure) {
        st->loop->call_exception_handler(
            {"corio: unhandled exception in a connection handler", failure, current_task().name()});
    }
    st->connections.erase(id);
    st->check_drained();
}

bool transient_accept_error(int e) noexcept {
    // Linux hands pending network errors of the new connection to accept(2).
    return e == ECONNABORTED || e == EPROTO || e == ENETDOWN || e == ENOPROTOOPT ||
           e == EHOSTDOWN || e == ENONET || e == EHOSTUNREACH || e == EOPNOTSUPP ||
           e == ENETUNREACH || e == EPERM || e == EINTR;
}

bool resource_accept_error(int e) noexcept {
    return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
}

template <class Stream>
task<> accept_loop(std::shared_ptr<server_state> st) {
    for (;;) {
        std::optional<Stream> stream;
        bool pause = false;
        bool give_up = false;
        try {
            if constexpr (std::is_same_v<Stream, tcp_stream>) {
                stream.emplace(co_await st->listener.accept());
            } else {
                stream.emplace(co_await st->local_listener.accept());
            }
        } catch (const std::system_error& e) {
            int code = e.code().value();
            if (!transient_accept_error(code)) {
                st->loop->call_exception_handler(
                    {resource_accept_error(code)
                         ? "corio: accept failed (server retries shortly)"
                         : "corio: accept failed; the server stops accepting",
                     std::current_exception(),
                     {}});
                give_up = !resource_accept_error(code);
                pause = !give_up;
            }
        }
        if (give_up) {
            co_return; // reported above
        }
        if (pause) {
            co_await sleep(st->options.accept_retry_delay);
            continue;
        }
        if (!stream) {
            continue;
        }
        std::uint64_t id = st->next_id++;
        st->connections.emplace(
            id,
            st->loop->create_task(run_connection(st, id, std::move(*stream)), "corio-connection"));
    }
}

} // namespace
} // namespace detail

server::server() noexcept = default;
server::server(server&&) noexcept = default;
server& server::operator=(server&& other) noexcept {
    if (this != &other) {
        close();
        state_ = std::move(other.state_);
    }
    return *this;
}
server::server(std::shared_ptr<detail::server_state> state) noexcept : state_(std::move(state)) {}

server::~server() {
    close();
}

void server::close() {
    if (!state_ || !state_->serving) {
        return;
    }
    detail::server_state& st = *state_;
    st.serving = false;
    if (st.accept_task) {
        st.accept_task->cancel();
    }
    st.listener.close();
    st.local_listener.close();
    std::vector<future<>> victims;
    victims.reserve(st.connections.size());
    for (auto& [id, f] : st.connections) {
        victims.push_back(f);
    }
    for (auto& f : victims) {
        f.cancel();
    }
    if (!st.closed.done()) {
        st.closed.set_result();
    }
    st.check_drained();
}

task<> server::serve_forever() {
    std::shared_ptr<detail::server_state> st = state_;
    if (!st) {
        co_return;
    }
    bool cancelled = false;
    try {
        co_await future<>(st->closed);
    } catch (const cancelled_error&) {
        cancelled = true;
    }
    if (cancelled) {
        close(); // asyncio: cancelling serve_forever closes the server
        throw cancelled_error();
    }
}

task<> server::wait_closed() {
    std::shared_ptr<detail::server_state> st = state_;
    if (!st) {
        co_return;
    }
    co_await future<>(st->drained);
}

bool server::is_serving() const noexcept {
    return state_ && state_->serving;
}

std::uint16_t server::local_port() const {
    return state_ && state_->serving ? state_->listener.local_port() : 0;
}

std::size_t server::connection_count() const noexcept {
    return state_ ? state_->connections.size() : 0;
}

namespace {

/// Starts the server's accept loop; its end counts towards the server's drain.
template <class Stream>
void start_accepting(event_loop& loop, const std::shared_ptr<detail::server_state>& st,
                     const char* name) {
    st->accept_task.emplace(loop.create_task(detail::accept_loop<Stream>(st), name));
    std::weak_ptr<detail::server_state> weak = st;
    st->accept_task->add_done_callback([weak](const future<>&) {
        if (auto s = weak.lock()) {
            s->accept_done = true;
            s->check_drained();
        }
    });
}

} // namespace

task<server> start_server(connection_handler handler, std::string host, std::uint16_t port,
                          server_options options) {
    std::optional<endpoint> local;
    if (host.empty() || host == "localhost") {
        local = endpoint::parse(host.empty() ? "0.0.0.0" : "127.0.0.1", port);
    } else {
        local = endpoint::parse(host, port);
    }
    if (!local) {
        std::vector<endpoint> found = co_await resolve(host, std::to_string(port));
        if (found.empty()) {
            throw error("corio: start_server: no address for '" + host + "'");
        }
        local = found.front();
    }
    event_loop& loop = get_running_loop();
    auto st = std::make_shared<detail::server_state>(loop);
    st->listener = tcp_listener::bind(*local, options.backlog, options.listener);
    st->handler = std::move(handler);
    st->options = options;
    start_accepting<tcp_stream>(loop, st, "corio-server-accept");
    co_return server(std::move(st));
}

task<server> start_unix_server(unix_connection_handler handler, std::string path,
                               server_options options) {
    event_loop& loop = get_running_loop();
    auto st = std::make_shared<detail::server_state>(loop);
    st->local_listener = unix_listener::bind(std::move(path), options.backlog, options.listener);
    st->unix_handler = std::move(handler);
    st->options = options;
    start_accepting<unix_stream>(loop, st, "corio-unix-server-accept");
    co_return server(std::move(st));
}

} // namespace corio
