#pragma once
/// \file process.hpp
/// `corio::process`: multiprocessing.Process. Runs a function with arguments in a
/// child process forked from the fork server (see `corio::init()`).

#include <corio/detail/fd_passing.hpp>
#include <corio/detail/process_wire.hpp>
#include <corio/init.hpp>
#include <corio/serialize.hpp>
#include <corio/task.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <sys/types.h>
#include <type_traits>
#include <typeinfo>
#include <utility>
#include <vector>

namespace corio {

/// What `current_process()`, `parent_process()` and `active_children()` tell about a
/// process (Python's Process objects, reduced to their identity).
/// **Thread safety:** a plain value.
struct process_info {
    pid_t pid = 0;       ///< its process id
    std::string name;    ///< "MainProcess" for the program, else the name given to `process`
    bool daemon = false; ///< started as a daemon (ended when its parent exits)
};

/// This process: pid and name ("MainProcess" in the program; in a `corio::process`
/// child, the name of its `process` object).
/// **Thread safety:** any thread.
[[nodiscard]] process_info current_process();

/// The program that started this `corio::process` child; empty in the program itself.
/// **Thread safety:** any thread.
[[nodiscard]] std::optional<process_info> parent_process();

/// The children started by this process (through `corio::process`) that still run.
/// **Thread safety:** any thread.
[[nodiscard]] std::vector<process_info> active_children();

/// The value a `corio::process` child returned, read with `get<T>()` or converted to
/// `T` (`int n = p.result();`); `T` must be the function's return type, else
/// `corio::error` is thrown.
/// **Thread safety:** a plain value.
class process_result {
public:
    /// Decodes the value as `T`; throws `corio::error` if `T` is not the function's
    /// return type, `serialize_error` if the bytes are malformed.
    template <class T>
    [[nodiscard]] T get() const {
        if (type_ == nullptr || *type_ != typeid(T)) {
            mismatch(typeid(T).name());
        }
        byte_reader r(bytes_);
        return deserialize<T>(r);
    }
    /// The same as `get<T>()`.
    template <class T>
    operator T() const { // NOLINT(google-explicit-constructor): `int n = p.result();`
        return get<T>();
    }

private:
    friend class process;
    process_result(std::string_view bytes, const std::type_info* type) noexcept
        : bytes_(bytes), type_(type) {}
    [[noreturn]] void mismatch(const char* asked) const;
    std::string_view bytes_;
    const std::type_info* type_;
};

/// A function call in a child process (multiprocessing.Process):
/// ```
/// corio::process p(print_func, std::string("Europe"));
/// p.start();
/// p.join();            // p.exitcode() == 0
/// ```
/// The function is a plain function or a capture-less lambda; the arguments are
/// copied through `corio::serialize` when the process object is made. The exit code
/// is 0 when the function returns, 1 when it throws (the exception's message is
/// printed on stderr), the status given to `exit()`, or minus the number of the signal
/// that killed it. A serializable return value comes back: `join()`, then `result()`
/// (the child's exception is rethrown there, as in the pools). Connections, queues,
/// shared memory, shared arrays and process locks (corio/ipc.hpp) may be arguments:
/// their descriptors travel with the start frame.
///
/// Children are forked from the fork server, so starting one is safe whatever threads
/// the program runs (call `corio::init()` first thing in `main` for that); the child
/// sees the program's globals as they were when the fork server started.
/// Destroying a started, unjoined process does not stop the child (as Python). At
/// exit the program waits for its non-daemon children (joined or not) and sends
/// SIGTERM to its daemon ones, as Python does; see `daemon()`.
/// **Thread safety:** one process object must not be used by two threads at once (that
/// includes moving from it); distinct objects are independent.
class process {
public:
    /// Prepares a call of `f(args...)` (not started). Arguments must be serializable
    /// (a compile-time error otherwise); throws what serializing them throws.
    template <class F, class... Args>
    requires(!std::is_same_v<std::remove_cvref_t<F>, process>) explicit process(F&& f,
                                                                                Args&&... args) {
        using fn_type = std::decay_t<F>;
        detail::check_process_function<fn_type>();
        if constexpr (std::is_pointer_v<std::remove_cvref_t<F>>) {
            if (f == nullptr) {
                throw error("corio::process: the function pointer is null");
            }
        }
        using result_type = detail::decoded_result_t<fn_type, detail::wire_type_t<Args>...>;
        constexpr bool keep = std::is_void_v<result_type> || serializable<result_type>;
        detail::outgoing_fds fds;
        byte_writer w;
        w.write_raw(detail::make_call_target<fn_type, keep, detail::wire_type_t<Args>...>(f));
        serialize(w, detail::to_wire(args)...);
        call_body_ = w.take();
        start_fds_ = fds.take();
        name_ = next_name();
        if constexpr (keep) {
            result_type_ = &typeid(result_type);
        }
    }

    process(const process&) = delete;
    process& operator=(const process&) = delete;
    /// Moves the child (if any) into a new object.
    process(process&& other) noexcept;
    /// Releases the current child (see the destructor) and takes over `other`'s.
    process& operator=(process&& other) noexcept;
    /// Forgets the child: a running child keeps running and is reaped when it ends.
    ~process();

    /// Starts the child. Throws `corio::error` if already started, or if the fork
    /// server cannot start (threads already run and `corio::init()` was not called),
    /// `std::system_error` if the fork fails.
    void start();

    /// Waits until the child ends. Throws `corio::error` if it was never started.
    void join();

    /// Waits at most `timeout` for the child to end; returns true if it ended.
    template <class Rep, class Period>
    bool join(std::chrono::duration<Rep, Period> timeout) {
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(timeout).count();
        return join_ms(ms < 0 ? 0 : static_cast<long long>(ms));
    }

    /// Empty while the child runs (or before `start()`); then its exit status, or minus
    /// the number of the signal that killed it.
    [[nodiscard]] std::optional<int> exitcode();

    /// The child's process id; 0 before `start()`.
    [[nodiscard]] pid_t pid() const noexcept { return pid_; }

    /// True between `start()` and the end of the child.
    [[nodiscard]] bool is_alive();

    /// Sends SIGTERM to a running child (no effect once it ended).
    void terminate();

    /// Sends SIGKILL to a running child (no effect once it ended).
    void kill();

    /// Waits on the running loop, without blocking it, until the child ends (its
    /// pidfd and result channel are awaited on the ring). Throws `corio::error` if it
    /// was never started.
    /// **Thread safety:** on the loop's thread (and, as the class, not with concurrent
    /// use of the object).
    [[nodiscard]] task<void> async_join();

    /// After `join()`: the function's return value (see `process_result`); for a
    /// function returning void, nothing. Rethrows the child's exception as the pools
    /// do (a standard exception as its own type, else `remote_error`); throws
    /// `broken_worker_error` if the child died without a result (signal, `exit()`),
    /// `corio::error` before the child ended or if the return type is not serializable.
    process_result result() const;

    /// The process's name: "Process-N" unless set.
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    /// Sets the name the child sees in `current_process()` (before `start()`).
    void name(std::string n);
    /// True for a daemon process: terminated (SIGTERM, then SIGKILL with the fork
    /// server) when the program exits, where a non-daemon one is waited for at exit.
    [[nodiscard]] bool daemon() const noexcept { return daemon_; }
    /// Sets the daemon flag; throws `corio::error` after `start()`.
    void daemon(bool on);

private:
    bool join_ms(long long timeout_ms);
    void reap();
    void signal(int sig);
    bool drain_channel(bool block);
    static std::string next_name();

    std::string call_body_;
    std::vector<int> start_fds_;
    std::string name_;
    bool daemon_ = false;
    bool registered_ = false; // listed for active_children() and the wait at exit
    const std::type_info* result_type_ = nullptr;
    pid_t pid_ = 0;
    int pidfd_ = -1;
    int channel_fd_ = -1;
    std::string answer_; // the child's result frame, as read so far
    std::optional<int> exitcode_;
};

} // namespace corio
