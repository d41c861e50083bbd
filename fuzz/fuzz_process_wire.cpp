// libFuzzer target: a process pool's wire frames as the parent reads them from a
// worker. The input is a byte stream cut into frames (frame_header, then `size`
// bytes of body); a result frame's body holds `count` items, each a u8 outcome
// followed by a value (std::vector<std::string> here) or an exception record
// (read_exception). Malformed input must end in serialize_error, never a crash,
// an over-read, a hang or an unbounded allocation.
#include <corio/detail/process_wire.hpp>
#include <corio/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

using corio::detail::frame_header;
using corio::detail::frame_kind;

namespace {

void decode_result_body(std::string_view body, std::uint32_t count) {
    corio::byte_reader r(body);
    for (std::uint32_t i = 0; i < count; ++i) {
        if (r.read_raw<std::uint8_t>() == 0) {
            auto v = corio::deserialize<std::vector<std::string>>(r);
            (void)v;
        } else {
            std::exception_ptr e = corio::detail::read_exception(r);
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                (void)ex.what();
            }
            break; // the worker skips the rest of a chunk after an exception
        }
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    while (in.size() >= sizeof(frame_header)) {
        frame_header h;
        std::memcpy(&h, in.data(), sizeof h);
        in.remove_prefix(sizeof h);
        if (h.size > in.size()) {
            break; // truncated frame: the reader waits for more bytes
        }
        const std::string_view body = in.substr(0, static_cast<std::size_t>(h.size));
        in.remove_prefix(static_cast<std::size_t>(h.size));
        try {
            switch (h.kind) {
            case frame_kind::result:
                decode_result_body(body, h.count);
                break;
            case frame_kind::init_error: {
                corio::byte_reader r(body);
                (void)corio::detail::read_exception(r);
                break;
            }
            default:
                break;
            }
        } catch (const corio::serialize_error&) {
            // malformed: the parent breaks the pool with this error
        }
    }
    return 0;
}
