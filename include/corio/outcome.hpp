#pragma once
/// \file outcome.hpp
/// `corio::outcome<T>`: a value or an exception, as yielded by `gather_settled` and
/// `as_completed`.

#include <corio/detail/assert.hpp>

#include <exception>
#include <type_traits>
#include <utility>
#include <variant>

namespace corio {

/// The settled result of one awaitable: either a value of type `T` or the exception
/// it ended with (Python's `return_exceptions=True` slot). `void` results are
/// represented as `outcome<std::monostate>`, `T&` results as
/// `outcome<std::reference_wrapper<T>>`.
/// **Thread safety:** a plain value; the usual rules for concurrent access apply.
template <class T>
class outcome {
    static_assert(!std::is_void_v<T> && !std::is_reference_v<T>,
                  "outcome<T> holds an object type: use std::monostate or std::reference_wrapper");

public:
    using value_type = T;

    /// An outcome holding `value`.
    template <class U = T>
    requires std::is_constructible_v<T, U&&>
    explicit outcome(std::in_place_t, U&& value)
        : data_(std::in_place_index<0>, std::forward<U>(value)) {}
    /// An outcome holding the exception `e` (must not be null).
    explicit outcome(std::exception_ptr e) noexcept : data_(std::in_place_index<1>, std::move(e)) {
        CORIO_ASSERT(std::get<1>(data_) != nullptr,
                     "corio::outcome built from a null exception_ptr");
    }

    /// True if the awaitable produced a value.
    bool has_value() const noexcept { return data_.index() == 0; }
    /// Same as has_value().
    explicit operator bool() const noexcept { return has_value(); }

    /// The value; rethrows the stored exception if there is one.
    T& value() & {
        rethrow_if_failed();
        return std::get<0>(data_);
    }
    /// The value; rethrows the stored exception if there is one.
    const T& value() const& {
        rethrow_if_failed();
        return std::get<0>(data_);
    }
    /// The value moved out; rethrows the stored exception if there is one.
    T&& value() && {
        rethrow_if_failed();
        return std::move(std::get<0>(data_));
    }

    /// The exception, or a null `std::exception_ptr` if the outcome holds a value.
    std::exception_ptr exception() const noexcept {
        return has_value() ? std::exception_ptr() : std::get<1>(data_);
    }

private:
    void rethrow_if_failed() const {
        if (!has_value()) {
            std::rethrow_exception(std::get<1>(data_));
        }
    }
    std::variant<T, std::exception_ptr> data_;
};

} // namespace corio
