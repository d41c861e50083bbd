// Decoding what a Redis server sends (decode.hpp).
#include "decode.hpp"

#include <hiredis/hiredis.h>

#include <charconv>
#include <memory>
#include <new>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace corio::detail::redis_decode {

namespace {

// The reader builds these through the functions below instead of hiredis' own
// redisReply objects: hiredis' createArray allocates the element array an array
// header announces (`*200000000\r\n`: 1.6 GB from 12 bytes), these grow with the
// elements that actually arrive, so memory follows the bytes received.
struct node {
    int type = REDIS_REPLY_NIL;
    long long integer = 0;
    std::string str;
    std::vector<std::unique_ptr<node>> elements;
};

// Why a function below refused (hiredis then reports "Out of memory"); set and read
// only inside redisReaderGetReply on this thread.
thread_local const char* refused = nullptr;

// hiredis is C: nothing may propagate through it. A null return ends the stream.
template <class Fill>
void* make_node(const redisReadTask* task, Fill&& fill) noexcept {
    try {
        auto n = std::make_unique<node>();
        fill(*n);
        node* raw = n.get();
        if (task->parent != nullptr) {
            auto* parent = static_cast<node*>(task->parent->obj);
            if (task->idx < 0 || static_cast<std::size_t>(task->idx) != parent->elements.size()) {
                refused = "array elements out of order";
                return nullptr;
            }
            parent->elements.push_back(std::move(n));
        } else {
            (void)n.release(); // the reader owns a root until it hands it out or frees it
        }
        return raw;
    } catch (const std::bad_alloc&) {
        refused = "out of memory";
        return nullptr;
    }
}

void* create_string(const redisReadTask* task, char* s, std::size_t len) {
    return make_node(task, [&](node& n) {
        n.type = task->type;
        n.str.assign(s, len);
    });
}
void* create_array(const redisReadTask* task, int elements) {
    if (elements < 0) {
        refused = "a negative array length";
        return nullptr;
    }
    return make_node(task, [](node& n) { n.type = REDIS_REPLY_ARRAY; });
}
void* create_integer(const redisReadTask* task, long long v) {
    return make_node(task, [&](node& n) {
        n.type = REDIS_REPLY_INTEGER;
        n.integer = v;
    });
}
void* create_nil(const redisReadTask* task) {
    return make_node(task, [](node&) {});
}
void free_node(void* p) {
    delete static_cast<node*>(p);
}

redisReplyObjectFunctions node_functions = {create_string, create_array, create_integer, create_nil,
                                            free_node};

redis::reply convert(node& n) {
    switch (n.type) {
    case REDIS_REPLY_INTEGER:
        return redis::reply::from_integer(n.integer);
    case REDIS_REPLY_STRING:
        return redis::reply::from_string(redis::reply::kind::string, std::move(n.str));
    case REDIS_REPLY_STATUS:
        return redis::reply::from_string(redis::reply::kind::status, std::move(n.str));
    case REDIS_REPLY_ERROR:
        return redis::reply::from_string(redis::reply::kind::error, std::move(n.str));
    case REDIS_REPLY_ARRAY: {
        std::vector<redis::reply> e;
        e.reserve(n.elements.size());
        for (auto& child : n.elements) {
            e.push_back(convert(*child)); // depth: hiredis allows 7 levels
        }
        return redis::reply::from_array(std::move(e));
    }
    default:
        return {};
    }
}

// A decimal number, all of `s` (what the scripts store is std::to_string's output).
template <class T>
T parse_number(const std::string& s, const char* what) {
    T v{};
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) {
        std::string shown = s.size() > 32 ? s.substr(0, 32) + "..." : s;
        throw redis::error("corio::redis: bad " + std::string(what) + " '" + shown +
                           "' in a job record");
    }
    return v;
}

} // namespace

reply_parser::reply_parser() : reader_(redisReaderCreateWithFunctions(&node_functions)) {
    if (!reader_) {
        throw std::bad_alloc();
    }
    reader_->maxbuf = 0; // keep the buffer: large replies arrive in many pieces
}
reply_parser::reply_parser(reply_parser&&) noexcept = default;
reply_parser& reply_parser::operator=(reply_parser&&) noexcept = default;
reply_parser::~reply_parser() = default;

void reply_parser::deleter::operator()(redisReader* r) const noexcept {
    redisReaderFree(r);
}

void reply_parser::feed(const char* data, std::size_t n) {
    if (redisReaderFeed(reader_.get(), data, n) != REDIS_OK) {
        throw protocol_error("protocol error");
    }
}

std::optional<redis::reply> reply_parser::next() {
    void* raw = nullptr;
    refused = nullptr;
    if (redisReaderGetReply(reader_.get(), &raw) != REDIS_OK) {
        throw protocol_error(std::string("protocol error: ") +
                             (refused != nullptr ? refused : reader_->errstr));
    }
    if (raw == nullptr) {
        return std::nullopt;
    }
    const std::unique_ptr<node> root(static_cast<node*>(raw));
    return convert(*root);
}

fetched_job decode_job(const redis::reply& j) {
    fetched_job job;
    job.id = j[0].str();
    job.function = j[1].str();
    job.payload = j[2].str();
    job.timeout_ms = parse_number<long long>(j[4].optional_str().value_or("0"), "timeout");
    return job;
}

redis_failed_job decode_failed_job(const redis::reply& e) {
    return redis_failed_job{e[0].str(), e[1].str(),
                            e[2].str(), e[3].str(),
                            e[4].str(), parse_number<std::size_t>(e[5].str(), "attempt count")};
}

} // namespace corio::detail::redis_decode
