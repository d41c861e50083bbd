#pragma once
// The aggregate rule of corio::serialize: a plain struct (up to 16 fields, no base
// class, no C-array field) whose fields are all serializable is written field by
// field. Part of serialize.hpp, which includes it after the API it uses: include that.
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
    if constexpr (serialize_braces_at<T, P, K, N - P - K>()) {
        return !serialize_braces_at<T, P, K, N - P - K + 1>();
    } else {
        return false;
    }
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
    /// Appends the encoding of the value.
    static void write(byte_writer& w, const T& v) {
        detail::serialize_visit_fields<fields>(v, [&](const auto&... f) { serialize(w, f...); });
    }
    /// Decodes one value; throws `serialize_error` on truncated or malformed input.
    static T read(byte_reader& r) {
        // Decode into a tuple first (braced init evaluates left to right), then
        // build the aggregate from it.
        auto t = serializer<detail::serialize_field_tuple<T>>::read(r);
        return std::apply([](auto&&... f) { return T{std::move(f)...}; }, std::move(t));
    }
};

} // namespace corio
