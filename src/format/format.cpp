// Texts behind the fmt::formatter specializations of corio/format.hpp.
#include <corio/format.hpp>

#include <cxxabi.h>
#include <sys/socket.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <typeinfo>

namespace corio {

namespace {

std::string demangle(const char* mangled) {
    int status = 0;
    std::unique_ptr<char, decltype(&std::free)> name(
        abi::__cxa_demangle(mangled, nullptr, nullptr, &status), &std::free);
    return status == 0 && name ? std::string(name.get()) : std::string(mangled);
}

} // namespace

std::string to_string(const exit_status& status) {
    if (!status.code) {
        return "running";
    }
    const int code = *status.code;
    if (code >= 0) {
        return fmt::format("exited with status {}", code);
    }
    const int sig = -code;
    const char* abbrev = ::sigabbrev_np(sig);
    if (abbrev == nullptr) {
        return fmt::format("killed by signal {}", sig);
    }
    return fmt::format("killed by signal {} (SIG{})", sig, abbrev);
}

namespace detail {

std::string exception_type(const std::exception& e) {
    return demangle(typeid(e).name());
}

std::string exception_type(const std::exception_ptr& e) {
    if (e == nullptr) {
        return {};
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        return exception_type(ex);
    } catch (...) {
        // The runtime knows the type of the exception being handled.
        const std::type_info* type = abi::__cxa_current_exception_type();
        return type != nullptr ? demangle(type->name()) : std::string("unknown exception");
    }
}

std::string exception_message(const std::exception_ptr& e) {
    if (e == nullptr) {
        return "no exception";
    }
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        return ex.what();
    } catch (...) {
        return {};
    }
}

std::string endpoint_text(const endpoint& e) {
    return e.family() == AF_UNSPEC ? std::string("unspecified") : e.to_string();
}

} // namespace detail

} // namespace corio
