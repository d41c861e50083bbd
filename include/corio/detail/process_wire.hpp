#pragma once
// What crosses a worker's socket: length-prefixed frames, the identity of the
// function to call, and exceptions.
//
// Frame: frame_header (size = bytes of the body that follows), then the body.
//   parent -> child  start_worker  body: u64 address of the initializer (0 = none)
//                    start_process body: call_target, then the arguments (one item)
//                    task          id = chunk id, count = items;
//                                  body: call_target, u8 stop_on_error, then
//                                  `count` argument tuples
//   child -> parent  init_ok / init_error (body: an exception)
//                    result        id, count; body: per item a u8 outcome
//                                  (0 = value follows, 1 = exception follows)
//
// Function identity: the fork server is a fork of the program, and workers are forks
// of it, so code addresses are the same on both sides. A call_target holds the
// address of `run_items<F, Keep, A...>` (instantiated per function type and argument
// types: it decodes the arguments, calls, encodes the results) and, for a plain
// function, its address; a capture-less lambda is default-constructed in the worker.

#include <corio/serialize.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace corio::detail {

enum class frame_kind : std::uint32_t {
    start_worker = 1,
    start_process = 2,
    task = 3,
    init_ok = 4,
    init_error = 5,
    result = 6,
};

struct frame_header {
    std::uint64_t size = 0; // bytes of the body
    std::uint64_t id = 0;
    frame_kind kind = frame_kind::task;
    std::uint32_t count = 0;
};
static_assert(sizeof(frame_header) == 24);

/// Writes the encoding of the current exception (inside a catch block).
void write_current_exception(byte_writer& w);
/// Writes the encoding of `e`.
void write_exception(byte_writer& w, std::exception_ptr e);
/// Rebuilds an exception written by write_exception: the same standard type with the
/// same message where possible, otherwise `remote_error`.
std::exception_ptr read_exception(byte_reader& r);

/// Decodes `count` argument tuples from `in`, calls the function on each and writes
/// one outcome per item to `out`.
/// With `stop_on_error`, the items after one that threw are skipped (no outcome).
using item_runner = void (*)(std::uintptr_t fn, std::uint32_t count, bool stop_on_error,
                             byte_reader& in, byte_writer& out);

/// What a worker calls: the runner and the function's address (0 for a lambda).
struct call_target {
    std::uintptr_t runner = 0;
    std::uintptr_t fn = 0;
};

/// A function that can run in another process: a plain function (pointer), or a
/// stateless function object such as a capture-less lambda, rebuilt there by default
/// construction.
template <class F>
concept process_function = (std::is_pointer_v<F> && std::is_function_v<std::remove_pointer_t<F>>) ||
                           (std::is_class_v<F> && std::is_empty_v<F> &&
                            std::is_default_constructible_v<F> && std::is_trivially_copyable_v<F>);

template <class F>
constexpr void check_process_function() {
    static_assert(process_function<F>,
                  "corio: a function run in another process must be a plain function or a "
                  "capture-less lambda: captured state would not exist in the worker process. "
                  "Pass the data as arguments instead.");
}

/// How an argument of type `T` travels: decayed, and C strings as `std::string` (a
/// pointer would dangle in the other process).
template <class T>
using wire_type_t = std::conditional_t<std::is_same_v<std::decay_t<T>, const char*> ||
                                           std::is_same_v<std::decay_t<T>, char*>,
                                       std::string, std::decay_t<T>>;

/// The argument as its wire type: a C string becomes a `std::string`, anything else
/// is passed through by reference.
template <class T>
decltype(auto) to_wire(const T& v) {
    if constexpr (std::is_same_v<wire_type_t<T>, std::string> &&
                  !std::is_same_v<std::decay_t<T>, std::string>) {
        return std::string(v);
    } else {
        return static_cast<const std::decay_t<T>&>(v);
    }
}

/// Calls `f` with the decoded arguments, as rvalues where the function accepts them.
template <class F, class Tuple>
decltype(auto) invoke_decoded(F& f, Tuple& args) {
    if constexpr (requires { std::apply(f, std::move(args)); }) {
        return std::apply(f, std::move(args));
    } else {
        return std::apply(f, args);
    }
}

/// The result type of calling `F` with decoded arguments `A...`.
template <class F, class... A>
using decoded_result_t = std::remove_cvref_t<decltype(invoke_decoded(
    std::declval<F&>(), std::declval<std::tuple<A...>&>()))>;

template <class F>
F rebuild_function(std::uintptr_t fn) noexcept {
    if constexpr (std::is_pointer_v<F>) {
        return reinterpret_cast<F>(fn);
    } else if constexpr (std::is_default_constructible_v<F>) {
        return F{};
    } else {
        // Never part of a program: check_process_function<F> failed at compile time.
        // This spares the reader a second error about a deleted default constructor.
        std::terminate();
    }
}

/// The runner for function type `F` and argument types `A...`; with `Keep`, results are
/// written, otherwise dropped (corio::process ignores them, as Python does).
template <class F, bool Keep, class... A>
void run_items(std::uintptr_t fn, std::uint32_t count, bool stop_on_error, byte_reader& in,
               byte_writer& out) {
    F f = rebuild_function<F>(fn);
    using R = decoded_result_t<F, A...>;
    for (std::uint32_t i = 0; i < count; ++i) {
        const std::size_t mark = out.size();
        std::exception_ptr decode_error;
        try {
            auto args = deserialize<std::tuple<A...>>(in);
            out.write_raw(std::uint8_t{0});
            try {
                if constexpr (std::is_void_v<R> || !Keep) {
                    invoke_decoded(f, args);
                } else {
                    serialize(out, invoke_decoded(f, args));
                }
            } catch (...) {
                out.buffer().resize(mark);
                out.write_raw(std::uint8_t{1});
                write_current_exception(out);
                if (stop_on_error) {
                    return;
                }
            }
        } catch (...) {
            // The arguments could not be decoded: the stream position is lost, so this
            // item and the rest of the chunk fail with the same error.
            out.buffer().resize(mark);
            decode_error = std::current_exception();
        }
        if (decode_error) {
            for (; i < (stop_on_error ? std::min(count, i + 1) : count); ++i) {
                out.write_raw(std::uint8_t{1});
                write_exception(out, decode_error);
            }
            return;
        }
    }
}

/// The call target of `f` (decayed function type `F`) on arguments `A...`.
template <class F, bool Keep, class... A>
call_target make_call_target(const F& f) noexcept {
    call_target t;
    t.runner = reinterpret_cast<std::uintptr_t>(&run_items<F, Keep, A...>);
    if constexpr (std::is_pointer_v<F>) {
        t.fn = reinterpret_cast<std::uintptr_t>(f);
    } else {
        (void)f;
    }
    return t;
}

/// Appends a frame header with a zero size; `finish_frame` patches the size.
inline std::size_t begin_frame(byte_writer& w, frame_kind kind, std::uint64_t id,
                               std::uint32_t count) {
    const std::size_t at = w.size();
    frame_header h;
    h.id = id;
    h.kind = kind;
    h.count = count;
    w.write_raw(h);
    return at;
}

inline void finish_frame(byte_writer& w, std::size_t at) noexcept {
    const std::uint64_t size = w.size() - at - sizeof(frame_header);
    std::memcpy(w.buffer().data() + at, &size, sizeof size);
}

/// Entry point of a child of the fork server (never returns).
[[noreturn]] void child_main(int channel_fd) noexcept;

} // namespace corio::detail
