// libFuzzer target: what a Redis client reads from the server. The input is the byte
// stream of a connection: it goes through corio's reply parser (hiredis' reader,
// then the conversion into redis::reply values), once in one piece and once in
// small chunks (both must give the same replies and the same error), and each reply
// through the job protocol's decoders: an XREAD reply of the pool's result stream
// (entries, then an entry's data: per-item outcomes or an encoded exception), a
// fetched job, a failed-job record. Malformed input must end in a corio::error
// (redis::error, serialize_error), never a crash, an over-read, a hang or an
// allocation beyond what the input's bytes justify.
#include "redis/decode.hpp"

#include <corio/redis.hpp>
#include <corio/redis_pool.hpp>
#include <corio/serialize.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rd = corio::detail::redis_decode;

namespace {

// A result stream entry's data, as redis_pool's sinks read it.
void decode_data(const std::string& status, const std::string& data) {
    corio::byte_reader r(data);
    if (status == "error") {
        std::exception_ptr e = corio::detail::read_remote_exception(r);
        try {
            std::rethrow_exception(e);
        } catch (const std::exception& ex) {
            (void)ex.what(); // the rebuilt remote exception: a value here
        }
        return;
    }
    // Outcomes of a map chunk of strings (at most as many items as bytes left).
    while (r.remaining() > 0) {
        std::string value;
        if (std::exception_ptr e = corio::detail::read_outcome<std::string>(
                r, [&](std::string&& v) { value = std::move(v); })) {
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                (void)ex.what();
            }
        }
    }
}

void exercise(const corio::redis::reply& r) {
    (void)r.to_string();
    try {
        rd::for_each_stream_entry(
            r, [](const std::string&) {},
            [](const std::string&, const std::string& status, const std::string& data) {
                try {
                    decode_data(status, data);
                } catch (const corio::error&) {
                    // malformed data: that job fails with this error
                }
            });
    } catch (const corio::redis::error&) {
        // malformed reply: the pool reconnects
    }
    const std::vector<corio::redis::reply> none;
    const auto& elements = r.type() == corio::redis::reply::kind::array ? r.elements() : none;
    for (const auto& e : elements) {
        try {
            (void)rd::decode_job(e);
        } catch (const corio::redis::error&) {
        }
        try {
            (void)rd::decode_failed_job(e);
        } catch (const corio::redis::error&) {
        }
    }
}

// The replies of `in` fed in chunks of `chunk` bytes (0: at once), as text, then the
// protocol error if one ended the stream.
std::vector<std::string> parse(std::string_view in, std::size_t chunk) {
    std::vector<std::string> out;
    rd::reply_parser p;
    try {
        const std::size_t step = chunk == 0 ? std::max<std::size_t>(in.size(), 1) : chunk;
        for (std::size_t i = 0; i < in.size(); i += step) {
            const std::size_t n = std::min(step, in.size() - i);
            p.feed(in.data() + i, n);
            while (std::optional<corio::redis::reply> r = p.next()) {
                out.push_back(r->to_string());
                if (chunk == 0) {
                    exercise(*r);
                }
            }
        }
    } catch (const rd::protocol_error& e) {
        out.emplace_back(e.what());
    }
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const std::vector<std::string> whole = parse(in, 0);
    // Chunked: the reader keeps its state between reads of a socket.
    const std::size_t chunk = 1 + size % 7;
    if (parse(in, chunk) != whole) {
        std::abort(); // the replies depend on how the bytes were cut
    }
    return 0;
}
