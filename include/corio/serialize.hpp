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

#include "corio/error.hpp"

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
    /// An empty writer. **Thread safety:** a fresh object.
    byte_writer() = default;
    /// Writes after the existing content of `buffer` (which it takes over).
    /// **Thread safety:** a fresh object.
    explicit byte_writer(std::string buffer) noexcept : buf_(std::move(buffer)) {}

    /// Appends `n` raw bytes. **Thread safety:** one thread at a time.
    void write(const void* data, std::size_t n) {
        if (n != 0)
            buf_.append(static_cast<const char*>(data), n);
    }
    /// Appends the object representation of a trivially copyable value.
    /// **Thread safety:** one thread at a time.
    template <class T>
    requires std::is_trivially_copyable_v<T>
    void write_raw(const T& v) { write(&v, sizeof v); }
    /// Appends a length (as 64 bits). **Thread safety:** one thread at a time.
    void write_size(std::size_t n) { write_raw(static_cast<std::uint64_t>(n)); }
    /// Reserves room for `n` more bytes. **Thread safety:** one thread at a time.
    void reserve(std::size_t n) { buf_.reserve(buf_.size() + n); }
    /// Bytes written so far (including any initial content).
    /// **Thread safety:** one thread at a time.
    [[nodiscard]] std::size_t size() const noexcept { return buf_.size(); }
    /// The bytes written so far. **Thread safety:** one thread at a time.
    [[nodiscard]] std::string& buffer() noexcept { return buf_; }
    /// Moves the bytes out, leaving the writer empty.
    /// **Thread safety:** one thread at a time.
    [[nodiscard]] std::string take() noexcept { return std::move(buf_); }

private:
    std::string buf_;
};

/// Bounds-checked cursor over bytes that `deserialize` reads from; it does not own
/// the bytes. Reading past the end throws `serialize_error`.
/// **Thread safety:** none; one reader per thread.
class byte_reader {
public:
    /// Reads `bytes`, which must outlive the reader. **Thread safety:** a fresh object.
    explicit byte_reader(std::string_view bytes) noexcept
        : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

    /// Copies the next `n` bytes to `out`; throws `serialize_error` if fewer remain.
    /// **Thread safety:** one thread at a time.
    void read(void* out, std::size_t n) {
        if (n != 0)
            std::memcpy(out, take(n).data(), n);
    }
    /// Returns a view of the next `n` bytes and skips them; throws if fewer remain.
    /// **Thread safety:** one thread at a time.
    [[nodiscard]] std::string_view take(std::size_t n) {
        if (n > remaining())
            throw serialize_error("corio::deserialize: input is truncated");
        std::string_view v(p_, n);
        p_ += n;
        return v;
    }
    /// Reads a trivially copyable value from its object representation.
    /// **Thread safety:** one thread at a time.
    template <class T>
    requires std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>
    [[nodiscard]] T read_raw() {
        T v;
        read(&v, sizeof v);
        return v;
    }
    /// Reads a length written by `byte_writer::write_size`.
    /// **Thread safety:** one thread at a time.
    [[nodiscard]] std::size_t read_size() {
        auto n = read_raw<std::uint64_t>();
        if (n > SIZE_MAX)
            throw serialize_error("corio::deserialize: length out of range");
        return static_cast<std::size_t>(n);
    }
    /// Bytes not read yet. **Thread safety:** one thread at a time.
    [[nodiscard]] std::size_t remaining() const noexcept {
        return static_cast<std::size_t>(end_ - p_);
    }
    /// How many container elements that encode in zero bytes (`std::monostate`,
    /// `std::tuple<>`) one reader decodes at most: such elements are not backed by
    /// input bytes, so a hostile length could otherwise make the decoder loop or
    /// allocate without bound.
    static constexpr std::size_t max_empty_elements = std::size_t{1} << 20;
    /// Counts one decoded element that took no bytes; throws `serialize_error` once
    /// more than `max_empty_elements` were counted. **Thread safety:** one thread at a time.
    void count_empty_element() {
        if (++empty_elements_ > max_empty_elements)
            throw serialize_error("corio::deserialize: too many zero-size elements (a length "
                                  "not backed by the input)");
    }
    /// True when every byte was read. **Thread safety:** one thread at a time.
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
    if constexpr (serialize_type_is_supported<T>)
        serializer<T>::write(w, v);
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
    if (!r.empty())
        throw serialize_error("corio::from_bytes: trailing bytes after the value");
    return v;
}

// ---------------------------------------------------------------------------------
// Built-in serializers. Categories are mutually exclusive so partial specializations
// never compete.

namespace detail {
// An enum with a fixed underlying type (direct-list-initializable from it): every
// value of the underlying type is a valid value of the enum.
template <class T>
concept serialize_fixed_enum = std::is_enum_v<T> && requires {
    T{std::underlying_type_t<T>{}};
};

template <class T>
concept serialize_bitwise = std::is_arithmetic_v<T> || serialize_fixed_enum<T>;

// Reads n elements with read_one(), counting those that took no input bytes
// against the reader's budget (a length is otherwise backed by the bytes left).
template <class F>
void serialize_read_n(byte_reader& r, std::size_t n, F&& read_one) {
    for (std::size_t i = 0; i < n; ++i) {
        const std::size_t before = r.remaining();
        read_one();
        if (r.remaining() == before)
            r.count_empty_element();
    }
}

// Upper bound of elements to reserve: never trust a length beyond the bytes left.
inline std::size_t serialize_reserve_bound(std::size_t n, const byte_reader& r) noexcept {
    return n < r.remaining() ? n : r.remaining();
}

template <class C>
void serialize_range(byte_writer& w, const C& c) {
    w.write_size(static_cast<std::size_t>(std::distance(c.begin(), c.end())));
    for (const auto& e : c)
        serialize(w, e);
}
} // namespace detail

/// Arithmetic types and enums with a fixed underlying type: their object
/// representation (`bool` as one byte, 0 or 1).
/// **Thread safety:** reentrant.
template <detail::serialize_bitwise T>
requires(!std::is_const_v<T> && !std::is_volatile_v<T>) struct serializer<T> {
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const T& v) {
        if constexpr (std::is_same_v<T, bool>)
            w.write_raw(static_cast<std::uint8_t>(v ? 1 : 0));
        else
            w.write_raw(v);
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input
    /// (a `bool` byte other than 0 or 1). **Thread safety:** reentrant.
    static T read(byte_reader& r) {
        if constexpr (std::is_same_v<T, bool>) {
            const auto b = r.read_raw<std::uint8_t>();
            if (b > 1)
                throw serialize_error("corio::deserialize: invalid bool byte");
            return b != 0;
        } else {
            return r.read_raw<T>();
        }
    }
};

/// `std::monostate` (empty alternative of variants): no bytes.
/// **Thread safety:** reentrant.
template <>
struct serializer<std::monostate> {
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer&, const std::monostate&) noexcept {}
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static std::monostate read(byte_reader&) noexcept { return {}; }
};

/// Strings: length, then the characters in one copy.
/// **Thread safety:** reentrant.
template <class Char, class Traits, class Alloc>
requires detail::serialize_bitwise<Char>
struct serializer<std::basic_string<Char, Traits, Alloc>> {
    /// The serialized type.
    using type = std::basic_string<Char, Traits, Alloc>;
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const type& s) {
        w.write_size(s.size());
        w.write(s.data(), s.size() * sizeof(Char));
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static type read(byte_reader& r) {
        std::size_t n = r.read_size();
        if (n > r.remaining() / sizeof(Char))
            throw serialize_error("corio::deserialize: input is truncated");
        type s(n, Char{});
        r.read(s.data(), n * sizeof(Char));
        return s;
    }
};

/// `std::vector`: length, then elements; arithmetic elements in one copy.
/// **Thread safety:** reentrant.
template <class T, class Alloc>
requires serializable<T>
struct serializer<std::vector<T, Alloc>> {
    /// The serialized type.
    using type = std::vector<T, Alloc>;
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const type& v) {
        w.write_size(v.size());
        if constexpr (detail::serialize_bitwise<T> && !std::is_same_v<T, bool>) {
            w.write(v.data(), v.size() * sizeof(T));
        } else {
            for (const auto& e : v)
                serialize<T>(w, e);
        }
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static type read(byte_reader& r) {
        std::size_t n = r.read_size();
        type v;
        if constexpr (detail::serialize_bitwise<T> && !std::is_same_v<T, bool>) {
            if (n > r.remaining() / sizeof(T))
                throw serialize_error("corio::deserialize: input is truncated");
            v.resize(n);
            r.read(v.data(), n * sizeof(T));
        } else {
            v.reserve(detail::serialize_reserve_bound(n, r));
            detail::serialize_read_n(r, n, [&] { v.push_back(deserialize<T>(r)); });
        }
        return v;
    }
};

/// `std::array`: the elements (the size is part of the type).
/// **Thread safety:** reentrant.
template <class T, std::size_t N>
requires serializable<T>
struct serializer<std::array<T, N>> {
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const std::array<T, N>& a) {
        for (const auto& e : a)
            serialize<T>(w, e);
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static std::array<T, N> read(byte_reader& r) {
        return [&]<std::size_t... I>(std::index_sequence<I...>) {
            // Braced initialization evaluates left to right.
            return std::array<T, N>{((void)I, deserialize<T>(r))...};
        }
        (std::make_index_sequence<N>{});
    }
};

/// `std::deque` and `std::list`: length, then elements.
/// **Thread safety:** reentrant.
template <class C>
requires(serializable<typename C::value_type> &&
         (std::is_same_v<C, std::deque<typename C::value_type, typename C::allocator_type>> ||
          std::is_same_v<C, std::list<typename C::value_type,
                                      typename C::allocator_type>>)) struct serializer<C> {
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const C& c) { detail::serialize_range(w, c); }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static C read(byte_reader& r) {
        std::size_t n = r.read_size();
        C c;
        detail::serialize_read_n(r, n,
                                 [&] { c.push_back(deserialize<typename C::value_type>(r)); });
        return c;
    }
};

/// `std::pair`: first, then second.
/// **Thread safety:** reentrant.
template <class A, class B>
requires serializable<A> && serializable<B>
struct serializer<std::pair<A, B>> {
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const std::pair<A, B>& p) { serialize(w, p.first, p.second); }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static std::pair<A, B> read(byte_reader& r) {
        A a = deserialize<A>(r);
        B b = deserialize<B>(r);
        return {std::move(a), std::move(b)};
    }
};

/// `std::tuple`: the elements in order.
/// **Thread safety:** reentrant.
template <class... T>
requires(serializable<T>&&...) struct serializer<std::tuple<T...>> {
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const std::tuple<T...>& t) {
        std::apply([&](const T&... e) { serialize(w, e...); }, t);
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static std::tuple<T...> read(byte_reader& r) {
        // Braced initialization evaluates left to right.
        return std::tuple<T...>{deserialize<T>(r)...};
    }
};

/// `std::optional`: a presence flag, then the value if any.
/// **Thread safety:** reentrant.
template <class T>
requires serializable<T>
struct serializer<std::optional<T>> {
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const std::optional<T>& o) {
        w.write_raw(static_cast<std::uint8_t>(o.has_value()));
        if (o)
            serialize<T>(w, *o);
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static std::optional<T> read(byte_reader& r) {
        if (r.read_raw<std::uint8_t>() == 0)
            return std::nullopt;
        return std::optional<T>(deserialize<T>(r));
    }
};

/// `std::variant`: the alternative's index, then its value.
/// **Thread safety:** reentrant.
template <class... T>
requires(serializable<T>&&...) struct serializer<std::variant<T...>> {
    /// The serialized type.
    using type = std::variant<T...>;
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const type& v) {
        if (v.valueless_by_exception())
            throw serialize_error("corio::serialize: a valueless variant cannot be serialized");
        w.write_size(v.index());
        std::visit([&](const auto& alt) { serialize(w, alt); }, v);
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static type read(byte_reader& r) {
        std::size_t index = r.read_size();
        if (index >= sizeof...(T))
            throw serialize_error("corio::deserialize: variant index out of range");
        using reader_fn = type (*)(byte_reader&);
        static constexpr reader_fn readers[] = {[](byte_reader& rr) -> type {
            return type(std::in_place_type<T>, deserialize<T>(rr));
        }...};
        return readers[index](r);
    }
};

/// Associative containers (map, unordered_map, set, unordered_set): size, then the
/// elements in iteration order.
/// **Thread safety:** reentrant.
template <class C>
requires(serializable<typename C::key_type> &&
         ((std::is_same_v<C, std::map<typename C::key_type, typename C::mapped_type,
                                      typename C::key_compare, typename C::allocator_type>> ||
           std::is_same_v<C, std::unordered_map<typename C::key_type, typename C::mapped_type,
                                                typename C::hasher, typename C::key_equal,
                                                typename C::allocator_type>>)) &&
         serializable<typename C::mapped_type>) struct serializer<C> {
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const C& c) {
        w.write_size(c.size());
        for (const auto& [k, v] : c)
            serialize(w, k, v);
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static C read(byte_reader& r) {
        std::size_t n = r.read_size();
        C c;
        detail::serialize_read_n(r, n, [&] {
            auto k = deserialize<typename C::key_type>(r);
            auto v = deserialize<typename C::mapped_type>(r);
            c.emplace(std::move(k), std::move(v));
        });
        return c;
    }
};

/// `std::set` and `std::unordered_set`: size, then the keys.
/// **Thread safety:** reentrant.
template <class C>
requires(serializable<typename C::key_type> &&
         (std::is_same_v<C, std::set<typename C::key_type, typename C::key_compare,
                                     typename C::allocator_type>> ||
          std::is_same_v<
              C, std::unordered_set<typename C::key_type, typename C::hasher, typename C::key_equal,
                                    typename C::allocator_type>>)) struct serializer<C> {
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const C& c) { detail::serialize_range(w, c); }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static C read(byte_reader& r) {
        std::size_t n = r.read_size();
        C c;
        detail::serialize_read_n(r, n, [&] { c.emplace(deserialize<typename C::key_type>(r)); });
        return c;
    }
};

/// `std::chrono::duration`: its count.
/// **Thread safety:** reentrant.
template <class Rep, class Period>
requires serializable<Rep>
struct serializer<std::chrono::duration<Rep, Period>> {
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const std::chrono::duration<Rep, Period>& d) {
        serialize(w, d.count());
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static std::chrono::duration<Rep, Period> read(byte_reader& r) {
        return std::chrono::duration<Rep, Period>(deserialize<Rep>(r));
    }
};

// ---------------------------------------------------------------------------------
// Aggregates: fields counted by brace initialization, visited by structured bindings.

namespace detail {
struct serialize_any_field {
    // Only named in unevaluated brace-initialization checks; never called. Defined
    // because clang treats the conversion as used when the field type has no linkage.
    template <class T>
    operator T&() const&& noexcept {
        static T* never = nullptr;
        return *never;
    }
};

template <class T, std::size_t... I>
concept serialize_brace_constructible_n = requires {
    T{(static_cast<void>(I), serialize_any_field{})...};
};

template <class T, std::size_t N>
consteval bool serialize_constructible_with() {
    return []<std::size_t... I>(std::index_sequence<I...>) {
        return serialize_brace_constructible_n<T, I...>;
    }
    (std::make_index_sequence<N>{});
}

inline constexpr std::size_t serialize_max_fields = 16;

template <class T, std::size_t N = serialize_max_fields>
consteval std::size_t serialize_field_count() {
    if constexpr (N == 0) {
        return 0;
    } else if constexpr (serialize_constructible_with<T, N>()) {
        return N;
    } else {
        return serialize_field_count<T, N - 1>();
    }
}

// Converts only to a proper base class of T: `T{serialize_base_field<T>{}}` compiles
// exactly when T's first element is a base class subobject. Structured bindings
// cannot decompose most such types, and the brace count would include the bases.
template <class T>
struct serialize_base_field {
    template <class B>
    requires(std::is_base_of_v<B, T> && !std::is_same_v<B, std::remove_cv_t<T>>)
    operator B&() const&& noexcept {
        static B* never = nullptr;
        return *never;
    }
};

template <class T>
concept serialize_has_base = requires {
    T{serialize_base_field<T>{}};
};

// T{any x P, {any x sizeof...(Inner)}, any x sizeof...(After)}: a braced list of
// sizeof...(Inner) initializers (`{}` when none) at brace position P.
template <class T, std::size_t... Before, std::size_t... Inner, std::size_t... After>
consteval bool serialize_braces_at(std::index_sequence<Before...>, std::index_sequence<Inner...>,
                                   std::index_sequence<After...>) {
    return requires {
        T{(static_cast<void>(Before), serialize_any_field{})...,
          {(static_cast<void>(Inner), serialize_any_field{})...},
          (static_cast<void>(After), serialize_any_field{})...};
    };
}

template <class T, std::size_t P, std::size_t K, std::size_t After>
consteval bool serialize_braces_at() {
    return serialize_braces_at<T>(std::make_index_sequence<P>{}, std::make_index_sequence<K>{},
                                  std::make_index_sequence<After>{});
}

// True when brace position P starts a C array of exactly K > 1 elements (N brace
// positions in all): braced there, its K initializers fill it and the N - P - K
// positions after it are all taken, so one more initializer is one too many. Any
// other field at P takes the braced list as one position, and then one more
// initializer only fills a position that was value-initialized. Every position is
// initialized, so this holds whatever the element type (no default constructor
// needed), and whatever the fields after the array.
template <class T, std::size_t N, std::size_t P, std::size_t K>
consteval bool serialize_array_of_at() {
    if constexpr (serialize_braces_at<T, P, K, N - P - K>())
        return !serialize_braces_at<T, P, K, N - P - K + 1>();
    else
        return false;
}

// A C-array field counts once per element in the brace count (brace elision), so
// structured bindings would see fewer fields. It shows at the array's first brace
// position P: `{}` there takes the whole array, leaving too many initializers after
// it. When `{}` leaves too many and is fine on its own, P starts an array (the
// cheap check for default-constructible elements); when `{}` does not fit at all
// (no default constructor: the field, or the elements of an array), each array
// length that fits is tried.
template <class T, std::size_t N, std::size_t P>
consteval bool serialize_array_starts_at() {
    if constexpr (serialize_braces_at<T, P, 0, N - 1 - P>()) {
        return false;
    } else if constexpr (serialize_braces_at<T, P, 0, 0>()) {
        return true;
    } else {
        return []<std::size_t... K>(std::index_sequence<K...>) {
            return (serialize_array_of_at<T, N, P, K + 2>() || ...);
        }
        (std::make_index_sequence<N - 1 - P>{});
    }
}

// Needs N to be the exact number of brace positions (see serialize_too_many_fields).
template <class T, std::size_t N>
consteval bool serialize_has_c_array() {
    return []<std::size_t... P>(std::index_sequence<P...>) {
        return (serialize_array_starts_at<T, N, P>() || ...);
    }
    (std::make_index_sequence<N>{});
}

// More brace positions than the limit: more than 16 fields, or C arrays that make
// it so. Excluding it makes serialize_field_count exact (it stops at the limit).
template <class T>
concept serialize_too_many_fields = serialize_constructible_with<T, serialize_max_fields + 1>();

template <class T>
struct serialize_is_std_array : std::false_type {};
template <class T, std::size_t N>
struct serialize_is_std_array<std::array<T, N>> : std::true_type {};

// Copyable: the brace count copies each field from an lvalue, so a move-only field
// (or a C array of them) would be miscounted.
template <class T>
concept serialize_aggregate_candidate =
    std::is_class_v<T> && std::is_aggregate_v<T> && !std::is_union_v<T> &&
    !std::is_polymorphic_v<T> && !serialize_is_std_array<T>::value &&
    std::is_move_constructible_v<T> && std::is_copy_constructible_v<T>;

// Calls f(fields...) with references to the fields of an aggregate with N fields.
template <std::size_t N, class T, class F>
decltype(auto) serialize_visit_fields(T&& t, F&& f) {
    // clang-format off
    if constexpr (N == 1) { auto&& [a] = t; return f(a); }
    else if constexpr (N == 2) { auto&& [a, b] = t; return f(a, b); }
    else if constexpr (N == 3) { auto&& [a, b, c] = t; return f(a, b, c); }
    else if constexpr (N == 4) { auto&& [a, b, c, d] = t; return f(a, b, c, d); }
    else if constexpr (N == 5) { auto&& [a, b, c, d, e] = t; return f(a, b, c, d, e); }
    else if constexpr (N == 6) { auto&& [a, b, c, d, e, g] = t; return f(a, b, c, d, e, g); }
    else if constexpr (N == 7) { auto&& [a, b, c, d, e, g, h] = t; return f(a, b, c, d, e, g, h); }
    else if constexpr (N == 8) { auto&& [a, b, c, d, e, g, h, i] = t; return f(a, b, c, d, e, g, h, i); }
    else if constexpr (N == 9) { auto&& [a, b, c, d, e, g, h, i, j] = t; return f(a, b, c, d, e, g, h, i, j); }
    else if constexpr (N == 10) { auto&& [a, b, c, d, e, g, h, i, j, k] = t; return f(a, b, c, d, e, g, h, i, j, k); }
    else if constexpr (N == 11) { auto&& [a, b, c, d, e, g, h, i, j, k, l] = t; return f(a, b, c, d, e, g, h, i, j, k, l); }
    else if constexpr (N == 12) { auto&& [a, b, c, d, e, g, h, i, j, k, l, m] = t; return f(a, b, c, d, e, g, h, i, j, k, l, m); }
    else if constexpr (N == 13) { auto&& [a, b, c, d, e, g, h, i, j, k, l, m, n] = t; return f(a, b, c, d, e, g, h, i, j, k, l, m, n); }
    else if constexpr (N == 14) { auto&& [a, b, c, d, e, g, h, i, j, k, l, m, n, o] = t; return f(a, b, c, d, e, g, h, i, j, k, l, m, n, o); }
    else if constexpr (N == 15) { auto&& [a, b, c, d, e, g, h, i, j, k, l, m, n, o, p] = t; return f(a, b, c, d, e, g, h, i, j, k, l, m, n, o, p); }
    else { static_assert(N == 16); auto&& [a, b, c, d, e, g, h, i, j, k, l, m, n, o, p, q] = t; return f(a, b, c, d, e, g, h, i, j, k, l, m, n, o, p, q); }
    // clang-format on
}

struct serialize_field_types_fn {
    template <class... F>
    std::type_identity<std::tuple<std::remove_cv_t<F>...>> operator()(F&...) const noexcept {
        return {};
    }
};

// std::tuple of the field types of an aggregate.
template <class T>
using serialize_field_tuple = typename decltype(serialize_visit_fields<serialize_field_count<T>()>(
    std::declval<T&>(), serialize_field_types_fn{}))::type;

template <class T>
struct serialize_all_serializable : std::false_type {};
template <class... F>
struct serialize_all_serializable<std::tuple<F...>> : std::bool_constant<(serializable<F> && ...)> {
};

// Checked in this order, so that a base class, more than 16 fields or a C-array
// field makes T not serializable (one readable static_assert) before structured
// bindings, which would fail to compile on it, are ever tried.
template <class T>
concept serialize_aggregate_fields_ok =
    !serialize_has_base<T> && !serialize_too_many_fields<T> && serialize_field_count<T>() > 0 &&
    !serialize_has_c_array<T, serialize_field_count<T>()>() &&
    serialize_all_serializable<serialize_field_tuple<T>>::value;

template <class T>
concept serialize_aggregate = serialize_aggregate_candidate<T> && serialize_aggregate_fields_ok<T>;
} // namespace detail

/// Aggregates (plain structs with up to 16 fields, no base class and no C-array
/// field) whose fields are all serializable: the fields in declaration order. An
/// aggregate with a base class or a C-array field is not serializable (give it a
/// `serializer<T>`). An explicit `serializer<T>` specialization takes precedence.
/// **Thread safety:** reentrant.
template <detail::serialize_aggregate T>
requires(!std::is_const_v<T> && !std::is_volatile_v<T>) struct serializer<T> {
    /// Number of fields of the aggregate.
    static constexpr std::size_t fields = detail::serialize_field_count<T>();
    /// Appends the encoding of the value. **Thread safety:** reentrant.
    static void write(byte_writer& w, const T& v) {
        detail::serialize_visit_fields<fields>(v, [&](const auto&... f) { serialize(w, f...); });
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    /// **Thread safety:** reentrant.
    static T read(byte_reader& r) {
        // Decode into a tuple first (braced init evaluates left to right), then
        // build the aggregate from it.
        auto t = serializer<detail::serialize_field_tuple<T>>::read(r);
        return std::apply([](auto&&... f) { return T{std::move(f)...}; }, std::move(t));
    }
};

} // namespace corio
