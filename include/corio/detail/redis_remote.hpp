#pragma once
// The function registry of redis_pool / redis_worker (src/redis/registry.cpp): plain
// functions under stable names, and the runner that decodes a job's argument tuples,
// calls the function on each and encodes the per-item outcomes. The client
// (detail/redis_backend.hpp) and the worker (src/redis/worker.cpp) share it.

#include <corio/serialize.hpp>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

namespace corio::detail {

/// What a remote call's runner records about the first item that threw.
struct remote_failure {
    std::uint32_t failed = 0;
    std::string type_name;
    std::string message;
};

/// Decodes `count` argument tuples from `in`, calls the function on each and writes
/// per item a u8 outcome (0 value, 1 exception) and the value or the exception.
using remote_runner = void (*)(std::uintptr_t fn, std::uint32_t count, byte_reader& in,
                               byte_writer& out, remote_failure& failure);

/// A registered function: its stable name, runner and address.
struct remote_function {
    std::string name;
    remote_runner runner = nullptr;
    std::uintptr_t fn = 0;
};

/// Adds a function to this program's registry; throws `corio::error` if `name` is
/// already taken by another function.
void register_remote(std::string name, remote_runner runner, std::uintptr_t fn);
/// The function registered as `name`, or null.
const remote_function* find_remote(std::string_view name) noexcept;
/// The function registered at address `fn`, or null.
const remote_function* find_remote(std::uintptr_t fn) noexcept;
/// Inside a catch block: writes the current exception and records it in `failure`.
void record_remote_failure(byte_writer& out, remote_failure& failure);
/// Rebuilds an exception written by `record_remote_failure` (see process_pool).
std::exception_ptr read_remote_exception(byte_reader& in);

template <class F>
struct remote_signature {
    static constexpr bool valid = false;
    using result = void; // (after the static_assert that rejects F, no further errors)
    using args = std::tuple<>;
};
template <class R, class... A>
struct remote_signature<R (*)(A...)> {
    static constexpr bool valid = true;
    using result = R;
    using args = std::tuple<std::decay_t<A>...>;
};
template <class R, class... A>
struct remote_signature<R (*)(A...) noexcept> : remote_signature<R (*)(A...)> {};

template <class R, class... A>
void run_remote(std::uintptr_t fn, std::uint32_t count, byte_reader& in, byte_writer& out,
                remote_failure& failure) {
    auto f = reinterpret_cast<R (*)(A...)>(fn);
    for (std::uint32_t i = 0; i < count; ++i) {
        auto args = deserialize<std::tuple<std::decay_t<A>...>>(in); // throws: the job fails
        const std::size_t mark = out.size();
        out.write_raw(std::uint8_t{0});
        try {
            if constexpr (std::is_void_v<R>) {
                std::apply(f, std::move(args));
            } else {
                serialize(out, std::apply(f, std::move(args)));
            }
        } catch (...) {
            out.buffer().resize(mark);
            out.write_raw(std::uint8_t{1});
            record_remote_failure(out, failure);
        }
    }
}

} // namespace corio::detail
