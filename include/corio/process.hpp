#pragma once
/// \file process.hpp
/// `corio::process`: multiprocessing.Process. Runs a function with arguments in a
/// child process forked from the fork server (see `corio::init()`).

#include <corio/detail/process_wire.hpp>
#include <corio/init.hpp>
#include <corio/serialize.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <type_traits>
#include <utility>

namespace corio {

/// A function call in a child process (multiprocessing.Process):
/// ```
/// corio::process p(print_func, std::string("Europe"));
/// p.start();
/// p.join();            // p.exitcode() == 0
/// ```
/// The function is a plain function or a capture-less lambda; the arguments are
/// copied through `corio::serialize` when the process object is made, and the return
/// value is ignored. The exit code is 0 when the function returns, 1 when it throws
/// (the exception's message is printed on stderr), the status given to `exit()`, or
/// minus the number of the signal that killed it.
///
/// Children are forked from the fork server, so starting one is safe whatever threads
/// the program runs (call `corio::init()` first thing in `main` for that); the child
/// sees the program's globals as they were when the fork server started.
/// Destroying a started, unjoined process does not stop the child (as Python).
/// **Thread safety:** one process object must not be used by two threads at once;
/// distinct objects are independent.
class process {
public:
    /// Prepares a call of `f(args...)` (not started). Arguments must be serializable
    /// (a compile-time error otherwise); throws what serializing them throws.
    /// **Thread safety:** a fresh object.
    template <class F, class... Args>
    requires(!std::is_same_v<std::remove_cvref_t<F>, process>) explicit process(F&& f,
                                                                                Args&&... args) {
        using fn_type = std::decay_t<F>;
        detail::check_process_function<fn_type>();
        if constexpr (std::is_pointer_v<std::remove_cvref_t<F>>) {
            if (f == nullptr)
                throw error("corio::process: the function pointer is null");
        }
        byte_writer w;
        const std::size_t at = detail::begin_frame(w, detail::frame_kind::start_process, 0, 1);
        w.write_raw(detail::make_call_target<fn_type, false, detail::wire_type_t<Args>...>(f));
        serialize(w, detail::to_wire(args)...);
        detail::finish_frame(w, at);
        start_frame_ = w.take();
    }

    process(const process&) = delete;
    process& operator=(const process&) = delete;
    /// Moves the child (if any) into a new object.
    /// **Thread safety:** not with concurrent use of `other`.
    process(process&& other) noexcept;
    /// Releases the current child (see the destructor) and takes over `other`'s.
    /// **Thread safety:** not with concurrent use of either object.
    process& operator=(process&& other) noexcept;
    /// Forgets the child: a running child keeps running and is reaped when it ends.
    /// **Thread safety:** not with concurrent use of the object.
    ~process();

    /// Starts the child. Throws `corio::error` if already started, or if the fork
    /// server cannot start (threads already run and `corio::init()` was not called),
    /// `std::system_error` if the fork fails.
    /// **Thread safety:** not with concurrent use of the object.
    void start();

    /// Waits until the child ends. Throws `corio::error` if it was never started.
    /// **Thread safety:** not with concurrent use of the object.
    void join();

    /// Waits at most `timeout` for the child to end; returns true if it ended.
    /// **Thread safety:** not with concurrent use of the object.
    template <class Rep, class Period>
    bool join(std::chrono::duration<Rep, Period> timeout) {
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
        return join_ms(ms < 0 ? 0 : static_cast<long long>(ms));
    }

    /// Empty while the child runs (or before `start()`); then its exit status, or minus
    /// the number of the signal that killed it.
    /// **Thread safety:** not with concurrent use of the object.
    [[nodiscard]] std::optional<int> exitcode();

    /// The child's process id; 0 before `start()`.
    /// **Thread safety:** not with concurrent use of the object.
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    /// True between `start()` and the end of the child.
    /// **Thread safety:** not with concurrent use of the object.
    [[nodiscard]] bool is_alive();

    /// Sends SIGTERM to a running child (no effect once it ended).
    /// **Thread safety:** not with concurrent use of the object.
    void terminate();

    /// Sends SIGKILL to a running child (no effect once it ended).
    /// **Thread safety:** not with concurrent use of the object.
    void kill();

private:
    bool join_ms(long long timeout_ms);
    void reap();
    void signal(int sig);

    std::string start_frame_;
    pid_t pid_ = 0;
    int pidfd_ = -1;
    std::optional<int> exitcode_;
};

} // namespace corio
