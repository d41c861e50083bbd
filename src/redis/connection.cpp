// redis::connection: the loop owns the socket; hiredis only formats commands
// (redisFormatCommandArgv) and parses replies (redisReader). One reader task per
// connection matches replies to the pending commands in order.

#include <corio/combinators.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/net.hpp>
#include <corio/redis.hpp>

#include "decode.hpp"

#include <hiredis/hiredis.h>

#include <charconv>
#include <deque>
#include <system_error>
#include <utility>

namespace corio::redis {

// ---- url ----------------------------------------------------------------------------

namespace {

int parse_int(std::string_view s, std::string_view whole, const char* what) {
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < 0) {
        throw error("corio::redis: bad " + std::string(what) + " '" + std::string(s) +
                    "' in URL '" + std::string(whole) + "'");
    }
    return v;
}

std::string percent_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%' && i + 2 < s.size()) {
            int v = 0;
            auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
            if (ec == std::errc() && p == s.data() + i + 3) {
                out.push_back(static_cast<char>(v));
                i += 2;
                continue;
            }
        }
        out.push_back(s[i]);
    }
    return out;
}

} // namespace

url url::parse(std::string_view text) {
    url u;
    auto bad = [&](const char* why) {
        return error("corio::redis: " + std::string(why) + " in URL '" + std::string(text) +
                     "' (expected redis://host:port/db or redis+unix:///path)");
    };
    std::string_view rest;
    bool is_unix = false;
    if (text.starts_with("redis://")) {
        rest = text.substr(8);
    } else if (text.starts_with("redis+unix://")) {
        rest = text.substr(13);
        is_unix = true;
    } else if (text.starts_with("unix://")) {
        rest = text.substr(7);
        is_unix = true;
    } else {
        throw bad("unknown scheme");
    }
    if (is_unix) {
        std::string_view query;
        if (auto q = rest.find('?'); q != std::string_view::npos) {
            query = rest.substr(q + 1);
            rest = rest.substr(0, q);
        }
        if (rest.empty() || rest.front() != '/') {
            throw bad("no socket path");
        }
        u.path = percent_decode(rest);
        while (!query.empty()) {
            auto amp = query.find('&');
            std::string_view kv = query.substr(0, amp);
            query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
            auto eq = kv.find('=');
            if (eq == std::string_view::npos) {
                throw bad("a query parameter without '='");
            }
            std::string_view k = kv.substr(0, eq), v = kv.substr(eq + 1);
            if (k == "db") {
                u.db = parse_int(v, text, "database number");
            } else if (k == "password") {
                u.password = percent_decode(v);
            } else if (k == "user") {
                u.user = percent_decode(v);
            } else {
                throw bad("an unknown query parameter");
            }
        }
        return u;
    }
    // redis://[[user]:password@]host[:port][/db]
    if (auto at = rest.rfind('@'); at != std::string_view::npos) {
        std::string_view cred = rest.substr(0, at);
        rest = rest.substr(at + 1);
        if (auto colon = cred.find(':'); colon != std::string_view::npos) {
            u.user = percent_decode(cred.substr(0, colon));
            u.password = percent_decode(cred.substr(colon + 1));
        } else {
            u.password = percent_decode(cred);
        }
    }
    std::string_view hostport = rest;
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        hostport = rest.substr(0, slash);
        std::string_view db = rest.substr(slash + 1);
        if (!db.empty()) {
            u.db = parse_int(db, text, "database number");
        }
    }
    if (!hostport.empty() && hostport.front() == '[') {
        auto close = hostport.find(']');
        if (close == std::string_view::npos) {
            throw bad("an unclosed '['");
        }
        u.host = std::string(hostport.substr(1, close - 1));
        hostport = hostport.substr(close + 1);
        if (!hostport.empty()) {
            if (hostport.front() != ':') {
                throw bad("junk after ']'");
            }
            const int p = parse_int(hostport.substr(1), text, "port");
            if (p == 0 || p > 65535) {
                throw bad("a port out of range");
            }
            u.port = static_cast<std::uint16_t>(p);
        }
    } else {
        auto colon = hostport.rfind(':');
        u.host = std::string(hostport.substr(0, colon));
        if (colon != std::string_view::npos) {
            const int p = parse_int(hostport.substr(colon + 1), text, "port");
            if (p == 0 || p > 65535) {
                throw bad("a port out of range");
            }
            u.port = static_cast<std::uint16_t>(p);
        }
    }
    if (u.host.empty()) {
        throw bad("no host");
    }
    return u;
}

std::string url::display() const {
    std::string s;
    if (!path.empty()) {
        s = "redis+unix://" + path;
        if (db != 0) {
            s += "?db=" + std::to_string(db);
        }
        return s;
    }
    s = "redis://";
    if (!password.empty() || !user.empty()) {
        s += user + (password.empty() ? "@" : ":***@");
    }
    s += host.find(':') != std::string::npos ? "[" + host + "]" : host;
    s += ":" + std::to_string(port);
    if (db != 0) {
        s += "/" + std::to_string(db);
    }
    return s;
}

// ---- reply --------------------------------------------------------------------------

reply reply::from_integer(long long v) {
    reply r;
    r.kind_ = kind::integer;
    r.int_ = v;
    return r;
}

reply reply::from_string(kind k, std::string s) {
    reply r;
    r.kind_ = k;
    r.str_ = std::move(s);
    return r;
}

reply reply::from_array(std::vector<reply> elements) {
    reply r;
    r.kind_ = kind::array;
    r.elements_ = std::move(elements);
    return r;
}

long long reply::integer() const {
    if (kind_ != kind::integer) {
        throw error("corio::redis: expected an integer reply, got " + to_string());
    }
    return int_;
}

const std::string& reply::str() const {
    if (kind_ != kind::string && kind_ != kind::status && kind_ != kind::error) {
        throw error("corio::redis: expected a string reply, got " + to_string());
    }
    return str_;
}

std::optional<std::string> reply::optional_str() const {
    if (kind_ == kind::nil) {
        return std::nullopt;
    }
    return str();
}

const std::vector<reply>& reply::elements() const {
    if (kind_ != kind::array) {
        throw error("corio::redis: expected an array reply, got " + to_string());
    }
    return elements_;
}

std::size_t reply::size() const noexcept {
    return kind_ == kind::array ? elements_.size() : 0;
}

const reply& reply::operator[](std::size_t i) const {
    const auto& e = elements();
    if (i >= e.size()) {
        throw error("corio::redis: array reply index " + std::to_string(i) + " out of range (" +
                    std::to_string(e.size()) + " elements)");
    }
    return e[i];
}

std::string reply::to_string() const {
    switch (kind_) {
    case kind::nil:
        return "(nil)";
    case kind::integer:
        return "(integer) " + std::to_string(int_);
    case kind::string:
        return "\"" + (str_.size() > 64 ? str_.substr(0, 64) + "..." : str_) + "\"";
    case kind::status:
        return str_;
    case kind::error:
        return "(error) " + str_;
    case kind::array: {
        std::string s = "[";
        for (std::size_t i = 0; i < elements_.size(); ++i) {
            s += (i ? ", " : "") + elements_[i].to_string();
        }
        return s + "]";
    }
    }
    return {};
}

// ---- connection ---------------------------------------------------------------------

namespace detail {

struct connection_state {
    socket_stream stream;
    std::string display;
    corio::detail::redis_decode::reply_parser parser;
    std::deque<future<reply>> pending; // in send order
    std::string outbuf;                // formatted, not yet written
    bool writing = false;
    bool broken = false;
    std::string broken_why;
    future<void> reader_task;

    error failure(const std::string& why) const {
        return error("corio::redis: " + display + ": " + why);
    }

    void fail_all(const std::string& why) noexcept {
        if (!broken) {
            broken = true;
            broken_why = why;
        }
        while (!pending.empty()) {
            future<reply> f = std::move(pending.front());
            pending.pop_front();
            if (!f.done()) {
                f.set_exception(std::make_exception_ptr(failure(why)));
            }
        }
        stream.close();
    }
};

namespace {

task<> read_replies(std::shared_ptr<connection_state> s) {
    std::string buf(64 * 1024, '\0');
    try {
        for (;;) {
            const std::size_t n = co_await s->stream.read_some(std::span<char>(buf));
            if (n == 0) {
                s->fail_all("the server closed the connection");
                co_return;
            }
            s->parser.feed(buf.data(), n);
            while (std::optional<reply> r = s->parser.next()) {
                if (s->pending.empty()) {
                    s->fail_all("a reply nobody asked for");
                    co_return;
                }
                future<reply> f = std::move(s->pending.front());
                s->pending.pop_front();
                if (!f.done()) {
                    f.set_result(std::move(*r));
                }
            }
        }
    } catch (const corio::detail::redis_decode::protocol_error& e) {
        s->fail_all(e.what());
    } catch (const cancelled_error&) {
        s->fail_all("the connection was closed");
        throw;
    } catch (const std::exception& e) {
        s->fail_all(s->broken ? s->broken_why : e.what());
    }
}

std::string format(const std::vector<std::string>& argv, const std::string& display) {
    if (argv.empty()) {
        throw error("corio::redis: " + display + ": an empty command");
    }
    std::vector<const char*> ptrs;
    std::vector<std::size_t> lens;
    ptrs.reserve(argv.size());
    lens.reserve(argv.size());
    for (const auto& a : argv) {
        ptrs.push_back(a.data());
        lens.push_back(a.size());
    }
    char* out = nullptr;
    const int n =
        redisFormatCommandArgv(&out, static_cast<int>(argv.size()), ptrs.data(), lens.data());
    if (n < 0 || out == nullptr) {
        throw error("corio::redis: " + display + ": cannot format the command");
    }
    std::string s(out, static_cast<std::size_t>(n));
    redisFreeCommand(out);
    return s;
}

// Queues formatted bytes and a reply slot; writes unless another task is writing (it
// then sends these bytes too).
void retrieve_failed(std::vector<future<reply>>& slots) noexcept {
    for (auto& f : slots) {
        if (f.done() && !f.cancelled()) {
            (void)f.exception(); // failed by fail_all: reported once, by the caller
        }
    }
}

task<> send(std::shared_ptr<connection_state> s, std::string bytes,
            std::vector<future<reply>>* slots, std::size_t count) {
    if (s->broken || !s->stream.is_open()) {
        throw s->failure(s->broken ? s->broken_why : "the connection is closed");
    }
    event_loop& loop = get_running_loop();
    for (std::size_t i = 0; i < count; ++i) {
        future<reply> f(loop);
        s->pending.push_back(f);
        slots->push_back(std::move(f));
    }
    s->outbuf += bytes;
    if (s->writing) {
        co_return;
    }
    s->writing = true;
    try {
        std::string out;
        while (!s->outbuf.empty() && !s->broken) {
            out.clear();
            std::swap(out, s->outbuf);
            co_await s->stream.write_all(std::string_view(out));
        }
    } catch (const cancelled_error&) {
        // The task was cancelled mid-write: part of a command may be on the wire, so the
        // connection is done for, but the cancellation must reach the task as itself (a
        // redis::error here let loops that retry on redis::error swallow it).
        s->writing = false;
        s->fail_all("a write was cancelled");
        retrieve_failed(*slots);
        throw;
    } catch (const std::exception& e) {
        s->writing = false;
        s->fail_all(e.what());
        retrieve_failed(*slots); // the caller gets this exception instead
        throw s->failure(s->broken_why);
    }
    s->writing = false;
}

} // namespace
} // namespace detail

connection::connection() noexcept = default;
connection::connection(std::shared_ptr<detail::connection_state> s) noexcept
    : state_(std::move(s)) {}
connection::connection(connection&& other) noexcept = default;
connection& connection::operator=(connection&& other) noexcept {
    if (this != &other) {
        close();
        state_ = std::move(other.state_);
    }
    return *this;
}
connection::~connection() {
    close();
}

void connection::close() noexcept {
    if (state_) {
        state_->fail_all("the connection was closed");
        state_.reset();
    }
}

bool connection::is_open() const noexcept {
    return state_ && !state_->broken && state_->stream.is_open();
}

const std::string& connection::url() const noexcept {
    static const std::string none = "(closed connection)";
    return state_ ? state_->display : none;
}

task<reply> connection::command_argv(std::vector<std::string> argv) {
    if (!state_) {
        throw error("corio::redis: the connection is closed");
    }
    std::shared_ptr<detail::connection_state> s = state_;
    std::vector<future<reply>> slots;
    co_await detail::send(s, detail::format(argv, s->display), &slots, 1);
    reply r = co_await slots[0];
    if (r.is_error()) {
        throw s->failure(r.str() + " (command " + argv[0] + ")");
    }
    co_return r;
}

task<std::vector<reply>> connection::pipeline(std::vector<std::vector<std::string>> commands) {
    if (!state_) {
        throw error("corio::redis: the connection is closed");
    }
    std::shared_ptr<detail::connection_state> s = state_;
    std::string bytes;
    for (const auto& c : commands) {
        bytes += detail::format(c, s->display);
    }
    std::vector<future<reply>> slots;
    slots.reserve(commands.size());
    co_await detail::send(s, std::move(bytes), &slots, commands.size());
    std::vector<reply> out;
    out.reserve(commands.size());
    std::exception_ptr failed; // a broken connection fails every slot: throw the first
    for (auto& f : slots) {
        try {
            reply r = co_await f;
            if (!failed) {
                out.push_back(std::move(r));
            }
        } catch (const error&) { // (a cancellation propagates at once)
            if (!failed) {
                failed = std::current_exception();
            }
        }
    }
    if (failed) {
        std::rethrow_exception(failed);
    }
    co_return out;
}

task<> connection::load(script& sc) {
    reply sha = co_await command("SCRIPT", "LOAD", sc.text_);
    sc.sha_ = sha.str();
}

task<reply> connection::evalsha(script& sc, std::vector<std::string> keys,
                                std::vector<std::string> args) {
    for (int attempt = 0;; ++attempt) {
        if (sc.sha_.empty()) {
            reply sha = co_await command("SCRIPT", "LOAD", sc.text_);
            sc.sha_ = sha.str();
        }
        std::vector<std::string> argv;
        argv.reserve(3 + keys.size() + args.size());
        argv.emplace_back("EVALSHA");
        argv.push_back(sc.sha_);
        argv.push_back(std::to_string(keys.size()));
        argv.insert(argv.end(), keys.begin(), keys.end());
        argv.insert(argv.end(), args.begin(), args.end());
        std::shared_ptr<detail::connection_state> s = state_;
        if (!s) {
            throw error("corio::redis: the connection is closed");
        }
        std::vector<future<reply>> slots;
        co_await detail::send(s, detail::format(argv, s->display), &slots, 1);
        reply r = co_await slots[0];
        if (r.is_error()) {
            if (r.str().starts_with("NOSCRIPT") && attempt == 0) {
                sc.sha_.clear(); // the server restarted: load it again
                continue;
            }
            throw s->failure(r.str());
        }
        co_return r;
    }
}

task<connection> connection::open_(redis::url u, std::string display) {
    auto s = std::make_shared<detail::connection_state>();
    s->display = display;
    try {
        if (!u.path.empty()) {
            s->stream = co_await unix_stream::connect(u.path);
        } else {
            s->stream = co_await tcp_stream::connect(u.host, u.port);
        }
    } catch (const std::system_error& e) {
        throw error("corio::redis: cannot connect to " + display + ": " + e.what());
    }
    s->reader_task = create_task(detail::read_replies(s), "redis reader " + display);
    connection c(std::move(s));
    if (!u.password.empty()) {
        if (u.user.empty()) {
            co_await c.command("AUTH", u.password);
        } else {
            co_await c.command("AUTH", u.user, u.password);
        }
    }
    if (u.db != 0) {
        co_await c.command("SELECT", u.db);
    }
    co_await c.command("PING");
    co_return c;
}

task<connection> connection::connect(std::string text, connection_options options) {
    const redis::url u = redis::url::parse(text);
    const std::string display = u.display();
    try {
        co_return co_await wait_for(open_(u, display), options.connect_timeout);
    } catch (const timeout_error&) {
        throw error("corio::redis: cannot connect to " + display + ": no answer within " +
                    std::to_string(options.connect_timeout.count()) + " ms");
    }
}

} // namespace corio::redis
