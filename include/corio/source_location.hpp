#pragma once
/// \file source_location.hpp
/// `corio::source_location`: where a task was created. std::source_location is not
/// usable with clang 14 on libstdc++ 12 (clang 14 lacks the
/// __builtin_source_location intrinsic that libstdc++'s <source_location> needs), so
/// corio carries this minimal equivalent built on the __builtin_FILE/LINE/FUNCTION
/// intrinsics that both compilers have.

#include <cstdint>

namespace corio {

/// A source position captured as a default argument, like std::source_location.
/// **Thread safety:** an immutable value.
class source_location {
public:
    /// The caller's position when used as a default argument.
    static constexpr source_location current(const char* file = __builtin_FILE(),
                                             const char* function = __builtin_FUNCTION(),
                                             std::uint_least32_t line = __builtin_LINE()) noexcept {
        source_location loc;
        loc.file_ = file;
        loc.function_ = function;
        loc.line_ = line;
        return loc;
    }
    constexpr source_location() noexcept = default;
    /// The file name ("" for a default-constructed location).
    constexpr const char* file_name() const noexcept { return file_; }
    /// The enclosing function's name.
    constexpr const char* function_name() const noexcept { return function_; }
    /// The line number (0 for a default-constructed location).
    constexpr std::uint_least32_t line() const noexcept { return line_; }

private:
    const char* file_ = "";
    const char* function_ = "";
    std::uint_least32_t line_ = 0;
};

} // namespace corio
