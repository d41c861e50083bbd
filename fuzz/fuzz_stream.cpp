// libFuzzer target: socket_stream::read_until and read_exactly over a real socket
// pair, the bytes arriving in arbitrary chunks, against a reference that splits the
// whole byte string directly. Every result, every exception and its contents
// (incomplete_read_error::partial, limit_overrun_error) must match.
#include <corio/corio.hpp>

#include <cstddef>
#include <cstdint>
#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

// Takes parameters from the front of the input, the rest is the byte stream.
class input {
public:
    input(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
    std::size_t in_range(std::size_t lo, std::size_t hi) {
        std::size_t v = 0;
        if (p_ != end_) {
            v = *p_++;
        }
        if (hi - lo >= 256 && p_ != end_) {
            v = v << 8 | *p_++;
        }
        return lo + v % (hi - lo + 1);
    }
    bool flag() { return in_range(0, 1) == 1; }
    std::string short_string(std::size_t max) {
        const std::size_t n = std::min(in_range(0, max), static_cast<std::size_t>(end_ - p_));
        std::string s(reinterpret_cast<const char*>(p_), n);
        p_ += n;
        return s;
    }
    std::string rest() {
        std::string s(reinterpret_cast<const char*>(p_), static_cast<std::size_t>(end_ - p_));
        p_ = end_;
        return s;
    }

private:
    const std::uint8_t* p_;
    const std::uint8_t* end_;
};

struct op {
    bool until = false;
    std::string delimiter; // read_until
    std::size_t limit = 0; // read_until
    std::size_t n = 0;     // read_exactly
};

// The outcome of one read, as text: "ok:<bytes>", "eof:<partial>", "overrun".
using outcome = std::string;

std::vector<outcome> reference(std::string stream, const std::vector<op>& ops) {
    std::vector<outcome> out;
    for (const op& o : ops) {
        if (o.until) {
            const auto pos = stream.find(o.delimiter);
            if (pos != std::string::npos && pos + o.delimiter.size() <= o.limit) {
                out.push_back("ok:" + stream.substr(0, pos + o.delimiter.size()));
                stream.erase(0, pos + o.delimiter.size());
            } else if (stream.size() >= o.limit) {
                out.push_back("overrun"); // the bytes stay buffered
            } else {
                out.push_back("eof:" + stream);
                stream.clear();
            }
        } else if (stream.size() >= o.n) {
            out.push_back("ok:" + stream.substr(0, o.n));
            stream.erase(0, o.n);
        } else {
            out.push_back("eof:" + stream);
            stream.clear();
        }
    }
    return out;
}

corio::task<> writer(corio::unix_stream s, std::string stream, std::vector<std::size_t> chunks) {
    std::size_t at = 0;
    for (std::size_t c : chunks) {
        if (at >= stream.size()) {
            break;
        }
        const std::size_t n = std::min(c, stream.size() - at);
        co_await s.write_all(std::string_view(stream).substr(at, n));
        at += n;
        co_await corio::yield_now(); // let the reader see this chunk on its own
    }
    if (at < stream.size()) {
        co_await s.write_all(std::string_view(stream).substr(at));
    }
    s.shutdown_write();
}

corio::task<std::vector<outcome>> reader(corio::unix_stream& s, const std::vector<op>& ops) {
    std::vector<outcome> out;
    for (const op& o : ops) {
        try {
            if (o.until) {
                out.push_back("ok:" + co_await s.read_until(o.delimiter, o.limit));
            } else {
                out.push_back("ok:" + co_await s.read_exactly(o.n));
            }
        } catch (const corio::incomplete_read_error& e) {
            out.push_back("eof:" + e.partial());
        } catch (const corio::limit_overrun_error&) {
            out.push_back("overrun");
        }
    }
    co_return out;
}

corio::task<std::vector<outcome>> run_case(std::string stream, std::vector<std::size_t> chunks,
                                           std::vector<op> ops) {
    auto [a, b] = corio::unix_stream::pair();
    auto w = corio::create_task(writer(std::move(b), stream, std::move(chunks)));
    std::vector<outcome> got = co_await reader(a, ops);
    a.close();
    try {
        co_await w;
    } catch (const std::exception&) {
        // the reader stopped early and closed its end: the writer may see EPIPE
    }
    co_return got;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    input in(data, size);
    std::vector<op> ops;
    const std::size_t op_count = in.in_range(1, 8);
    for (std::size_t i = 0; i < op_count; ++i) {
        op o;
        o.until = in.flag();
        if (o.until) {
            o.delimiter = in.short_string(4);
            if (o.delimiter.empty()) {
                o.delimiter = "\n";
            }
            o.limit = in.in_range(1, 300);
        } else {
            o.n = in.in_range(0, 300);
        }
        ops.push_back(std::move(o));
    }
    std::vector<std::size_t> chunks;
    const std::size_t chunk_count = in.in_range(0, 16);
    for (std::size_t i = 0; i < chunk_count; ++i) {
        chunks.push_back(in.in_range(1, 64));
    }
    std::string stream = in.rest();

    const std::vector<outcome> want = reference(stream, ops);
    const std::vector<outcome> got =
        corio::run(run_case(std::move(stream), std::move(chunks), ops));
    if (got != want) {
        std::abort(); // the stream helpers disagree with the reference split
    }
    return 0;
}
