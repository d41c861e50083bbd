// The function registry of redis_pool / redis_worker: stable names for plain
// functions, filled at static initialization in the client and the worker programs.

#include <corio/detail/process_wire.hpp>
#include <corio/redis_pool.hpp>

#include <cxxabi.h>

#include <map>
#include <memory>
#include <mutex>
#include <typeinfo>

namespace corio::detail {

namespace {

struct registry {
    std::mutex mutex;
    std::map<std::string, remote_function, std::less<>> by_name;
    std::map<std::uintptr_t, const remote_function*> by_fn;
};

// A function-local static: registrations run during other files' static initialization.
registry& the_registry() {
    static registry r;
    return r;
}

std::string demangled(const char* name) {
    int status = 0;
    std::unique_ptr<char, void (*)(void*)> out(abi::__cxa_demangle(name, nullptr, nullptr, &status),
                                               std::free);
    return status == 0 && out ? std::string(out.get()) : std::string(name);
}

} // namespace

void register_remote(std::string name, remote_runner runner, std::uintptr_t fn) {
    if (name.empty()) {
        throw error("corio::register_function: the name is empty");
    }
    registry& r = the_registry();
    std::lock_guard lock(r.mutex);
    if (auto it = r.by_name.find(name); it != r.by_name.end()) {
        if (it->second.fn == fn) {
            return; // the same function registered twice under its name: harmless
        }
        throw error("corio::register_function: the name '" + name +
                    "' is already registered for another function");
    }
    auto [it, inserted] = r.by_name.emplace(name, remote_function{name, runner, fn});
    r.by_fn.emplace(fn, &it->second);
}

const remote_function* find_remote(std::string_view name) noexcept {
    registry& r = the_registry();
    std::lock_guard lock(r.mutex);
    auto it = r.by_name.find(name);
    return it == r.by_name.end() ? nullptr : &it->second;
}

const remote_function* find_remote(std::uintptr_t fn) noexcept {
    registry& r = the_registry();
    std::lock_guard lock(r.mutex);
    auto it = r.by_fn.find(fn);
    return it == r.by_fn.end() ? nullptr : it->second;
}

void record_remote_failure(byte_writer& out, remote_failure& failure) {
    const std::exception_ptr e = std::current_exception();
    if (failure.failed++ == 0) {
        try {
            std::rethrow_exception(e);
        } catch (const remote_error& re) {
            failure.type_name = re.type_name();
            failure.message = re.message();
        } catch (const std::exception& ex) {
            failure.type_name = demangled(typeid(ex).name());
            failure.message = ex.what();
        } catch (...) {
            failure.type_name = "(not an exception)";
        }
    }
    write_exception(out, e);
}

std::exception_ptr read_remote_exception(byte_reader& in) {
    return read_exception(in);
}

} // namespace corio::detail
