// libFuzzer target: corio::from_bytes on arbitrary bytes, for a spread of types.
// Any input must give a value or serialize_error: never a crash, an over-read
// (ASan), undefined behaviour (UBSan), a hang or an unbounded allocation
// (-rss_limit_mb). A sequence type that decodes must re-encode to the same bytes.
#include <corio/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <variant>
#include <vector>

namespace {

enum class colour : std::uint8_t { red, green };

struct record {
    int id;
    bool flag;
    std::string name;
    std::vector<double> values;
    std::optional<colour> tint;
};

// Decodes `bytes` as T; if it decodes and `canonical`, the encoding must round-trip.
template <class T, bool canonical>
void try_decode(std::string_view bytes) {
    try {
        T v = corio::from_bytes<T>(bytes);
        if constexpr (canonical) {
            if (corio::to_bytes(v) != bytes) {
                std::abort(); // decoded, but not the value that was encoded
            }
        }
    } catch (const corio::serialize_error&) {
        // malformed input: the one allowed failure
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    // The first byte picks the type, the rest is the encoding.
    const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
    switch (data[0] % 14) {
    case 0:
        try_decode<std::vector<std::string>, true>(bytes);
        break;
    case 1:
        try_decode<std::vector<std::monostate>, true>(bytes);
        break;
    case 2:
        try_decode<std::set<std::tuple<>>, false>(bytes);
        break;
    case 3:
        try_decode<std::map<int, std::vector<double>>, false>(bytes);
        break;
    case 4:
        try_decode<std::variant<int, std::string, std::monostate, bool>, true>(bytes);
        break;
    case 5:
        try_decode<std::optional<bool>, false>(bytes);
        break;
    case 6:
        try_decode<std::tuple<bool, colour, std::vector<std::monostate>>, true>(bytes);
        break;
    case 7:
        try_decode<std::list<std::pair<int, std::string>>, true>(bytes);
        break;
    case 8:
        try_decode<record, false>(bytes);
        break;
    case 9:
        try_decode<std::vector<std::vector<std::vector<std::tuple<>>>>, true>(bytes);
        break;
    case 10:
        try_decode<std::vector<bool>, true>(bytes);
        break;
    case 11:
        try_decode<std::deque<std::optional<std::string>>, false>(bytes);
        break;
    case 12:
        try_decode<std::wstring, true>(bytes);
        break;
    default:
        try_decode<std::map<std::string, std::set<long>>, false>(bytes);
        break;
    }
    return 0;
}
