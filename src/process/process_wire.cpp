// Exceptions across the process boundary, and wait-status descriptions.
#include "process/fork_server.hpp"
#include <corio/detail/process_wire.hpp>
#include <corio/process_error.hpp>

#include <cxxabi.h>
#include <fmt/format.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <optional>
#include <signal.h>
#include <stdexcept>
#include <string.h>
#include <sys/wait.h>
#include <system_error>
#include <typeinfo>
#include <variant>

namespace corio::detail {

namespace {

enum class exception_kind : std::uint8_t {
    other = 0,
    runtime_error,
    logic_error,
    invalid_argument,
    domain_error,
    length_error,
    out_of_range,
    range_error,
    overflow_error,
    underflow_error,
    bad_alloc,
    bad_array_new_length,
    bad_cast,
    bad_typeid,
    bad_optional_access,
    bad_variant_access,
    bad_function_call,
    system_error,
    corio_error,
    cancelled_error,
    timeout_error,
    invalid_state_error,
    serialize_error,
    remote_error,
    broken_worker_error,
    broken_pool_error,
    exception,
};

std::string demangle(const char* name) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                               std::free);
    return status == 0 && out ? std::string(out.get()) : std::string(name);
}

template <class E>
bool is_exactly(const std::exception& e) noexcept {
    return typeid(e) == typeid(E);
}

exception_kind kind_of(const std::exception& e) noexcept {
    // Exact dynamic types only: a user's subclass keeps its own name as a remote_error.
#define CORIO_KIND(type, kind)                                                                     \
    if (is_exactly<type>(e))                                                                       \
    return exception_kind::kind
    CORIO_KIND(std::runtime_error, runtime_error);
    CORIO_KIND(std::logic_error, logic_error);
    CORIO_KIND(std::invalid_argument, invalid_argument);
    CORIO_KIND(std::domain_error, domain_error);
    CORIO_KIND(std::length_error, length_error);
    CORIO_KIND(std::out_of_range, out_of_range);
    CORIO_KIND(std::range_error, range_error);
    CORIO_KIND(std::overflow_error, overflow_error);
    CORIO_KIND(std::underflow_error, underflow_error);
    CORIO_KIND(std::bad_alloc, bad_alloc);
    CORIO_KIND(std::bad_array_new_length, bad_array_new_length);
    CORIO_KIND(std::bad_cast, bad_cast);
    CORIO_KIND(std::bad_typeid, bad_typeid);
    CORIO_KIND(std::bad_optional_access, bad_optional_access);
    CORIO_KIND(std::bad_variant_access, bad_variant_access);
    CORIO_KIND(std::bad_function_call, bad_function_call);
    CORIO_KIND(std::system_error, system_error);
    CORIO_KIND(corio::error, corio_error);
    CORIO_KIND(corio::cancelled_error, cancelled_error);
    CORIO_KIND(corio::timeout_error, timeout_error);
    CORIO_KIND(corio::invalid_state_error, invalid_state_error);
    CORIO_KIND(corio::serialize_error, serialize_error);
    CORIO_KIND(corio::remote_error, remote_error);
    CORIO_KIND(corio::broken_worker_error, broken_worker_error);
    CORIO_KIND(corio::broken_pool_error, broken_pool_error);
    CORIO_KIND(std::exception, exception);
#undef CORIO_KIND
    return exception_kind::other;
}

// libstdc++'s system_error::what() is "<what_arg>: <message>"; recover what_arg so the
// rebuilt exception has the same what().
std::string system_error_prefix(const std::system_error& e) {
    std::string what = e.what();
    const std::string suffix = e.code().message();
    if (what == suffix) {
        return {};
    }
    if (what.size() >= suffix.size() + 2 && what.ends_with(suffix) &&
        what.compare(what.size() - suffix.size() - 2, 2, ": ") == 0) {
        return what.substr(0, what.size() - suffix.size() - 2);
    }
    return what;
}

} // namespace

void write_exception(byte_writer& w, std::exception_ptr e) {
    try {
        std::rethrow_exception(std::move(e));
    } catch (...) {
        write_current_exception(w);
    }
}

void write_current_exception(byte_writer& w) {
    try {
        throw;
    } catch (const std::system_error& e) {
        const auto kind = kind_of(e);
        if (kind == exception_kind::system_error &&
            (e.code().category() == std::generic_category() ||
             e.code().category() == std::system_category())) {
            serialize(w, kind, std::string("std::system_error"), system_error_prefix(e));
            serialize(w, e.code().value(),
                      static_cast<std::uint8_t>(e.code().category() == std::system_category()));
        } else {
            serialize(w, exception_kind::other, demangle(typeid(e).name()), std::string(e.what()));
        }
    } catch (const corio::remote_error& e) {
        // Nested remote errors (a worker that used a pool itself) keep the original.
        serialize(w, kind_of(e), e.type_name(), e.message());
    } catch (const corio::broken_worker_error& e) {
        serialize(w, kind_of(e), demangle(typeid(e).name()), std::string(e.what()));
        serialize(w, static_cast<std::int32_t>(e.pid()), e.exitcode());
    } catch (const std::exception& e) {
        serialize(w, kind_of(e), demangle(typeid(e).name()), std::string(e.what()));
    } catch (...) {
        // Not an std::exception (throw 42;): its type name, no message.
        const std::type_info* t = abi::__cxa_current_exception_type();
        serialize(w, exception_kind::other,
                  t != nullptr ? demangle(t->name()) : std::string("unknown exception"),
                  std::string());
    }
}

std::exception_ptr read_exception(byte_reader& r) {
    const auto kind = deserialize<exception_kind>(r);
    auto type = deserialize<std::string>(r);
    auto msg = deserialize<std::string>(r);
    switch (kind) {
    case exception_kind::runtime_error:
        return std::make_exception_ptr(std::runtime_error(msg));
    case exception_kind::logic_error:
        return std::make_exception_ptr(std::logic_error(msg));
    case exception_kind::invalid_argument:
        return std::make_exception_ptr(std::invalid_argument(msg));
    case exception_kind::domain_error:
        return std::make_exception_ptr(std::domain_error(msg));
    case exception_kind::length_error:
        return std::make_exception_ptr(std::length_error(msg));
    case exception_kind::out_of_range:
        return std::make_exception_ptr(std::out_of_range(msg));
    case exception_kind::range_error:
        return std::make_exception_ptr(std::range_error(msg));
    case exception_kind::overflow_error:
        return std::make_exception_ptr(std::overflow_error(msg));
    case exception_kind::underflow_error:
        return std::make_exception_ptr(std::underflow_error(msg));
    case exception_kind::bad_alloc:
        return std::make_exception_ptr(std::bad_alloc());
    case exception_kind::bad_array_new_length:
        return std::make_exception_ptr(std::bad_array_new_length());
    case exception_kind::bad_cast:
        return std::make_exception_ptr(std::bad_cast());
    case exception_kind::bad_typeid:
        return std::make_exception_ptr(std::bad_typeid());
    case exception_kind::bad_optional_access:
        return std::make_exception_ptr(std::bad_optional_access());
    case exception_kind::bad_variant_access:
        return std::make_exception_ptr(std::bad_variant_access());
    case exception_kind::bad_function_call:
        return std::make_exception_ptr(std::bad_function_call());
    case exception_kind::system_error: {
        const auto code = deserialize<int>(r);
        const auto system = deserialize<std::uint8_t>(r);
        const std::error_code ec(code,
                                 system != 0 ? std::system_category() : std::generic_category());
        return std::make_exception_ptr(msg.empty() ? std::system_error(ec)
                                                   : std::system_error(ec, msg));
    }
    case exception_kind::corio_error:
        return std::make_exception_ptr(corio::error(msg));
    case exception_kind::cancelled_error:
        return std::make_exception_ptr(corio::cancelled_error(msg));
    case exception_kind::timeout_error:
        return std::make_exception_ptr(corio::timeout_error(msg));
    case exception_kind::invalid_state_error:
        return std::make_exception_ptr(corio::invalid_state_error(msg));
    case exception_kind::serialize_error:
        return std::make_exception_ptr(corio::serialize_error(msg));
    case exception_kind::broken_worker_error: {
        const auto pid = deserialize<std::int32_t>(r);
        const auto code = deserialize<int>(r);
        return std::make_exception_ptr(corio::broken_worker_error(msg, pid, code));
    }
    case exception_kind::broken_pool_error:
        return std::make_exception_ptr(corio::broken_pool_error(msg));
    case exception_kind::remote_error:
    case exception_kind::exception:
    case exception_kind::other:
        return std::make_exception_ptr(corio::remote_error(std::move(type), std::move(msg)));
    }
    throw serialize_error("corio: malformed exception in a worker's answer");
}

std::string describe_wait_status(int status) {
    if (WIFSIGNALED(status)) {
        const int sig = WTERMSIG(status);
        const char* abbrev = sigabbrev_np(sig);
        return fmt::format("was killed by signal {} (SIG{}{})", sig,
                           abbrev != nullptr ? abbrev : "?",
                           WCOREDUMP(status) ? ", core dumped" : "");
    }
    if (WIFEXITED(status)) {
        return fmt::format("exited with status {}", WEXITSTATUS(status));
    }
    return fmt::format("ended with wait status {:#x}", status);
}

int exitcode_of(int status) noexcept {
    if (WIFSIGNALED(status)) {
        return -WTERMSIG(status);
    }
    if (WIFEXITED(status)) {
        return WEXITSTATUS(status);
    }
    return -1;
}

} // namespace corio::detail
