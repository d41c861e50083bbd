#pragma once
// The serializers of the standard types that corio::serialize supports out of the box
// (arithmetic types, enums, strings, containers, pair, tuple, optional, variant,
// chrono durations). Part of serialize.hpp, which includes it after the API it uses
// (byte_writer, byte_reader, serializer, serialize, deserialize): include that.
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
        if (r.remaining() == before) {
            r.count_empty_element();
        }
    }
}

// Upper bound of elements to reserve: never trust a length beyond the bytes left.
inline std::size_t serialize_reserve_bound(std::size_t n, const byte_reader& r) noexcept {
    return n < r.remaining() ? n : r.remaining();
}

template <class C>
void serialize_range(byte_writer& w, const C& c) {
    w.write_size(static_cast<std::size_t>(std::distance(c.begin(), c.end())));
    for (const auto& e : c) {
        serialize(w, e);
    }
}
} // namespace detail

/// Arithmetic types and enums with a fixed underlying type: their object
/// representation (`bool` as one byte, 0 or 1).
/// **Thread safety:** reentrant.
template <detail::serialize_bitwise T>
requires(!std::is_const_v<T> && !std::is_volatile_v<T>) struct serializer<T> {
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const T& v) {
        if constexpr (std::is_same_v<T, bool>) {
            w.write_raw(static_cast<std::uint8_t>(v ? 1 : 0));
        } else {
            w.write_raw(v);
        }
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input
    /// (a `bool` byte other than 0 or 1).
    static T read(byte_reader& r) {
        if constexpr (std::is_same_v<T, bool>) {
            const auto b = r.read_raw<std::uint8_t>();
            if (b > 1) {
                throw serialize_error("corio::deserialize: invalid bool byte");
            }
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
    /// Appends the encoding of the value.
    static void write(byte_writer&, const std::monostate&) noexcept {}
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    static std::monostate read(byte_reader&) noexcept { return {}; }
};

/// Strings: length, then the characters in one copy.
/// **Thread safety:** reentrant.
template <class Char, class Traits, class Alloc>
requires detail::serialize_bitwise<Char>
struct serializer<std::basic_string<Char, Traits, Alloc>> {
    /// The serialized type.
    using type = std::basic_string<Char, Traits, Alloc>;
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const type& s) {
        w.write_size(s.size());
        w.write(s.data(), s.size() * sizeof(Char));
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    static type read(byte_reader& r) {
        std::size_t n = r.read_size();
        if (n > r.remaining() / sizeof(Char)) {
            throw serialize_error("corio::deserialize: input is truncated");
        }
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
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const type& v) {
        w.write_size(v.size());
        if constexpr (detail::serialize_bitwise<T> && !std::is_same_v<T, bool>) {
            w.write(v.data(), v.size() * sizeof(T));
        } else {
            for (const auto& e : v) {
                serialize<T>(w, e);
            }
        }
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    static type read(byte_reader& r) {
        std::size_t n = r.read_size();
        type v;
        if constexpr (detail::serialize_bitwise<T> && !std::is_same_v<T, bool>) {
            if (n > r.remaining() / sizeof(T)) {
                throw serialize_error("corio::deserialize: input is truncated");
            }
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
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const std::array<T, N>& a) {
        for (const auto& e : a) {
            serialize<T>(w, e);
        }
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
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
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const C& c) { detail::serialize_range(w, c); }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
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
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const std::pair<A, B>& p) { serialize(w, p.first, p.second); }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
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
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const std::tuple<T...>& t) {
        std::apply([&](const T&... e) { serialize(w, e...); }, t);
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
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
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const std::optional<T>& o) {
        w.write_raw(static_cast<std::uint8_t>(o.has_value()));
        if (o) {
            serialize<T>(w, *o);
        }
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    static std::optional<T> read(byte_reader& r) {
        if (r.read_raw<std::uint8_t>() == 0) {
            return std::nullopt;
        }
        return std::optional<T>(deserialize<T>(r));
    }
};

/// `std::variant`: the alternative's index, then its value.
/// **Thread safety:** reentrant.
template <class... T>
requires(serializable<T>&&...) struct serializer<std::variant<T...>> {
    /// The serialized type.
    using type = std::variant<T...>;
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const type& v) {
        if (v.valueless_by_exception()) {
            throw serialize_error("corio::serialize: a valueless variant cannot be serialized");
        }
        w.write_size(v.index());
        std::visit([&](const auto& alt) { serialize(w, alt); }, v);
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    static type read(byte_reader& r) {
        std::size_t index = r.read_size();
        if (index >= sizeof...(T)) {
            throw serialize_error("corio::deserialize: variant index out of range");
        }
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
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const C& c) {
        w.write_size(c.size());
        for (const auto& [k, v] : c) {
            serialize(w, k, v);
        }
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
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
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const C& c) { detail::serialize_range(w, c); }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
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
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const std::chrono::duration<Rep, Period>& d) {
        serialize(w, d.count());
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    static std::chrono::duration<Rep, Period> read(byte_reader& r) {
        return std::chrono::duration<Rep, Period>(deserialize<Rep>(r));
    }
};

} // namespace corio
