#pragma once
// What a Redis server sends, decoded: RESP bytes into redis::reply values
// (reply_parser, on hiredis' reader), and the job protocol's replies (protocol.hpp)
// into what redis_pool and redis_worker use. All of it reads bytes from another
// machine: malformed input throws redis::error (protocol_error for bytes that are not
// RESP), never crashes, hangs or allocates beyond what the input's bytes justify.
// fuzz/fuzz_redis_reply.cpp feeds it arbitrary bytes.

#include <corio/redis.hpp>
#include <corio/redis_pool.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <string>

struct redisReader; // hiredis

namespace corio::detail::redis_decode {

/// Bytes that are not RESP: the connection that read them is unusable.
class protocol_error : public redis::error {
public:
    using redis::error::error;
};

/// RESP bytes in, replies out (hiredis' reader; nesting is limited to its 7 levels).
/// **Thread safety:** one thread at a time.
class reply_parser {
public:
    /// Throws std::bad_alloc if hiredis cannot allocate its reader.
    reply_parser();
    reply_parser(reply_parser&&) noexcept;
    reply_parser& operator=(reply_parser&&) noexcept;
    ~reply_parser();

    /// Appends bytes read from the server; throws protocol_error ("protocol error").
    void feed(const char* data, std::size_t n);
    /// The next complete reply, or nothing until more bytes are fed; throws
    /// protocol_error ("protocol error: <hiredis' reason>") for malformed bytes.
    std::optional<redis::reply> next();

private:
    struct deleter {
        void operator()(redisReader* r) const noexcept;
    };
    std::unique_ptr<redisReader, deleter> reader_;
};

/// A job as the fetch and start scripts return it: {id, fn, payload, attempts, timeout}.
struct fetched_job {
    std::string id;
    std::string function;
    std::string payload;
    long long timeout_ms = 0;
};

/// Decodes one job of a fetch/start reply; throws redis::error if it is malformed
/// (too few elements, a non-string field, a timeout that is not a number).
fetched_job decode_job(const redis::reply& j);

/// Decodes one element of the failed script's reply
/// ({id, fn, set, error_type, error_message, attempts}); throws redis::error if it is
/// malformed.
redis_failed_job decode_failed_job(const redis::reply& e);

/// Walks an XREAD reply ([[stream, [[entry id, [field, value, ...]], ...]], ...]):
/// `on_entry_id(entry id)` first, then `on_entry(id, status, data)` from the fields
/// of that name (missing ones empty, unknown ones skipped), entry by entry. Throws
/// redis::error where the reply is malformed (the entries before it were handed on).
template <class OnEntryId, class OnEntry>
void for_each_stream_entry(const redis::reply& r, OnEntryId&& on_entry_id, OnEntry&& on_entry) {
    for (const auto& s : r.elements()) {
        for (const auto& entry : s[1].elements()) {
            on_entry_id(entry[0].str());
            const auto& f = entry[1].elements();
            std::string id;
            std::string status;
            std::string data;
            for (std::size_t i = 0; i + 1 < f.size(); i += 2) {
                const std::string& k = f[i].str();
                if (k == "id") {
                    id = f[i + 1].str();
                } else if (k == "status") {
                    status = f[i + 1].str();
                } else if (k == "data") {
                    data = f[i + 1].str();
                }
            }
            on_entry(id, status, data);
        }
    }
}

} // namespace corio::detail::redis_decode
