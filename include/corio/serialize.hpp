#pragma once
/// \file serialize.hpp
/// `corio::serialize`: the binary encoding that carries arguments, results and
/// exceptions across a process boundary (process_pool, process).
///
/// Supported out of the box: arithmetic types, enums with a fixed underlying type
/// (every `enum class`; `enum E : int`), `std::string`, `std::vector`,
/// `std::array`, `std::deque`, `std::list`, `std::pair`, `std::tuple`,
/// `std::optional`, `std::variant`, `std::monostate`, `std::map`,
/// `std::unordered_map`, `std::set`, `std::unordered_set`, `std::chrono::duration`,
/// any nesting of those, and aggregates (plain structs, up to 16 fields, no base
/// class, no C-array fields) whose fields are all serializable.
///
/// **The one customization point** for any other type is a specialization of
/// `corio::serializer<T>` with two static members:
/// ```
/// template <> struct corio::serializer<point> {
///     static void write(corio::byte_writer& w, const point& p) { corio::serialize(w, p.x, p.y); }
///     static point read(corio::byte_reader& r) {
///         auto x = corio::deserialize<double>(r);
///         auto y = corio::deserialize<double>(r);
///         return point{x, y};
///     }
/// };
/// ```
/// A specialization takes precedence over the aggregate rule. The encoding is the
/// machine's native one (both ends are the same binary on the same host); it is not
/// a storage or network format.
///
/// **Hostile input.** Decoding never crashes, hangs or allocates without bound: a
/// length is trusted only as far as the bytes left can back it, elements that
/// encode in zero bytes (`std::monostate`, `std::tuple<>`) count against a budget of
/// `byte_reader::max_empty_elements` per reader, and a `bool` byte other than 0 or 1
/// is refused; each gives `serialize_error`. (An enum without a fixed underlying
/// type is not serializable: its valid values cannot be checked.)

#include <corio/error.hpp>

#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

namespace corio {

/// Thrown by `deserialize` when the input is truncated or malformed.
/// **Thread safety:** exception objects are immutable after construction.
class serialize_error : public error {
public:
    using error::error;
};

/// Append-only byte sink that `serialize` writes to; amortized O(1) per byte, so a
/// large payload is written in linear time.
/// **Thread safety:** none; one writer per thread.
class byte_writer {
public:
    /// An empty writer.
    byte_writer() = default;
    /// Writes after the existing content of `buffer` (which it takes over).
    explicit byte_writer(std::string buffer) noexcept : buf_(std::move(buffer)) {}

    /// Appends `n` raw bytes.
    void write(const void* data, std::size_t n) {
        if (n != 0) {
            buf_.append(static_cast<const char*>(data), n);
        }
    }
    /// Appends the object representation of a trivially copyable value.
    template <class T>
    requires std::is_trivially_copyable_v<T>
    void write_raw(const T& v) { write(&v, sizeof v); }
    /// Appends a length (as 64 bits).
    void write_size(std::size_t n) { write_raw(static_cast<std::uint64_t>(n)); }
    /// Reserves room for `n` more bytes.
    void reserve(std::size_t n) { buf_.reserve(buf_.size() + n); }
    /// Bytes written so far (including any initial content).
    [[nodiscard]] std::size_t size() const noexcept { return buf_.size(); }
    /// The bytes written so far.
    [[nodiscard]] std::string& buffer() noexcept { return buf_; }
    /// Moves the bytes out, leaving the writer empty.
    [[nodiscard]] std::string take() noexcept { return std::move(buf_); }

private:
    std::string buf_;
};

/// Bounds-checked cursor over bytes that `deserialize` reads from; it does not own
/// the bytes. Reading past the end throws `serialize_error`.
/// **Thread safety:** none; one reader per thread.
class byte_reader {
public:
    /// Reads `bytes`, which must outlive the reader.
    explicit byte_reader(std::string_view bytes) noexcept
        : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

    /// Copies the next `n` bytes to `out`; throws `serialize_error` if fewer remain.
    void read(void* out, std::size_t n) {
        if (n != 0) {
            std::memcpy(out, take(n).data(), n);
        }
    }
    /// Returns a view of the next `n` bytes and skips them; throws if fewer remain.
    [[nodiscard]] std::string_view take(std::size_t n) {
        if (n > remaining()) {
            throw serialize_error("corio::deserialize: input is truncated");
        }
        std::string_view v(p_, n);
        p_ += n;
        return v;
    }
    /// Reads a trivially copyable value from its object representation.
    template <class T>
    requires std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>
    [[nodiscard]] T read_raw() {
        T v;
        read(&v, sizeof v);
        return v;
    }
    /// Reads a length written by `byte_writer::write_size`.
    [[nodiscard]] std::size_t read_size() {
        auto n = read_raw<std::uint64_t>();
        if (n > SIZE_MAX) {
            throw serialize_error("corio::deserialize: length out of range");
        }
        return static_cast<std::size_t>(n);
    }
    /// Bytes not read yet.
    [[nodiscard]] std::size_t remaining() const noexcept {
        return static_cast<std::size_t>(end_ - p_);
    }
    /// How many container elements that encode in zero bytes (`std::monostate`,
    /// `std::tuple<>`) one reader decodes at most: such elements are not backed by
    /// input bytes, so a hostile length could otherwise make the decoder loop or
    /// allocate without bound.
    static constexpr std::size_t max_empty_elements = std::size_t{1} << 20;
    /// Counts one decoded element that took no bytes; throws `serialize_error` once
    /// more than `max_empty_elements` were counted.
    void count_empty_element() {
        if (++empty_elements_ > max_empty_elements) {
            throw serialize_error("corio::deserialize: too many zero-size elements (a length "
                                  "not backed by the input)");
        }
    }
    /// True when every byte was read.
    [[nodiscard]] bool empty() const noexcept { return p_ == end_; }

private:
    const char* p_;
    const char* end_;
    std::size_t empty_elements_ = 0;
};

/// The customization point: specialize `serializer<T>` with
/// `static void write(byte_writer&, const T&)` and `static T read(byte_reader&)`.
/// The primary template has neither, which makes `T` not `serializable`.
/// **Thread safety:** specializations must be callable from any thread.
template <class T>
struct serializer {
    /// Marks the primary template: no encoding is known for `T`.
    /// **Thread safety:** a constant.
    static constexpr bool corio_unsupported = true;
};

/// A type that `serialize` can write and `deserialize` can read back.
/// **Thread safety:** a compile-time property.
template <class T>
concept serializable = std::is_object_v<T> && !std::is_const_v<T> && !std::is_volatile_v<T> &&
                       requires(byte_writer & w, byte_reader& r, const T& v) {
    serializer<T>::write(w, v);
    { serializer<T>::read(r) } -> std::same_as<T>;
};

namespace detail {
template <class T>
inline constexpr bool serialize_type_is_supported = serializable<T>;

template <class T>
void serialize_one(byte_writer& w, const T& v) {
    static_assert(serialize_type_is_supported<T>,
                  "corio::serialize: this type cannot cross a process boundary. Use arithmetic, "
                  "enum with a fixed underlying type (enum class, or enum E : int), std::string, "
                  "standard containers, pair/tuple/optional/variant, or an aggregate of those (a "
                  "plain struct of at most 16 fields, without base classes "
                  "or C-array fields); for any other type specialize corio::serializer<T> with "
                  "static void write(corio::byte_writer&, const T&) and static T "
                  "read(corio::byte_reader&). (Pointers, references and views are never "
                  "serializable.)");
    if constexpr (serialize_type_is_supported<T>) {
        serializer<T>::write(w, v);
    }
}
} // namespace detail

/// Appends the encoding of each value to `w`.
/// Throws what the element serializers throw (`std::bad_alloc`).
/// A non-serializable type is a compile-time error that says what to do.
/// **Thread safety:** reentrant; `w` must not be shared between threads.
template <class... T>
void serialize(byte_writer& w, const T&... values) {
    (detail::serialize_one<T>(w, values), ...);
}

/// Reads one `T` from `r`; throws `serialize_error` on truncated or malformed input.
/// **Thread safety:** reentrant; `r` must not be shared between threads.
template <class T>
[[nodiscard]] T deserialize(byte_reader& r) {
    static_assert(detail::serialize_type_is_supported<T>,
                  "corio::deserialize: this type cannot cross a process boundary; see "
                  "corio::serializer<T> in corio/serialize.hpp");
    if constexpr (detail::serialize_type_is_supported<T>) {
        return serializer<T>::read(r);
    } else {
        // Never part of a program (the static_assert failed); spares the reader a
        // second error about the missing serializer<T>::read.
        throw serialize_error("corio::deserialize: unsupported type");
    }
}

/// The encoding of `values` as a string of bytes.
/// **Thread safety:** reentrant.
template <class... T>
[[nodiscard]] std::string to_bytes(const T&... values) {
    byte_writer w;
    serialize(w, values...);
    return w.take();
}

/// Decodes a `T` that makes up all of `bytes`; throws `serialize_error` if the input is
/// truncated, malformed or has trailing bytes.
/// **Thread safety:** reentrant.
template <class T>
[[nodiscard]] T from_bytes(std::string_view bytes) {
    byte_reader r(bytes);
    T v = deserialize<T>(r);
    if (!r.empty()) {
        throw serialize_error("corio::from_bytes: trailing bytes after the value");
    }
    return v;
}

} // namespace corio

// The parts behind the API above: the standard types, then the aggregate rule.
#include <corio/detail/serialize_std.hpp>
#include <corio/detail/serialize_aggregate.hpp>
