#pragma once
/// \file subprocess.hpp
/// Subprocesses on the loop (asyncio.create_subprocess_exec / _shell):
///
///     corio::subprocess p = co_await corio::create_subprocess_exec(
///         "sort", {"-r"}, {.stdin_mode = corio::stdio::pipe, .stdout_mode = corio::stdio::pipe});
///     auto [out, err] = co_await p.communicate("b\na\nc\n");   // out == "c\nb\na\n"
///     int status = co_await p.wait();                          // 0 (already reaped)
///
/// The child is started with posix_spawn (clone(CLONE_VM | CLONE_VFORK) in glibc: no
/// copy of the parent's memory, however large), with every signal at its default
/// disposition, an empty signal mask, and no descriptor of the parent but its three
/// standard streams (everything from 3 up is closed in the child, as Python's
/// close_fds). Its exit is watched through a pidfd polled on the ring and reaped
/// with waitid(P_PIDFD). See docs/subprocess.md.

#include <corio/byte_stream.hpp>
#include <corio/error.hpp>
#include <corio/task.hpp>

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace corio {

class event_loop;

/// Where a child's standard stream goes (asyncio's None, PIPE, DEVNULL, STDOUT).
enum class stdio {
    inherit,  ///< the parent's own stream (asyncio's None)
    pipe,     ///< a stream to the parent: subprocess::stdin_pipe() and the like
    devnull,  ///< /dev/null
    to_stdout ///< stderr only: wherever stdout goes (asyncio.subprocess.STDOUT)
};

/// Options of create_subprocess_exec / create_subprocess_shell, an aggregate:
/// `{.stdout_mode = corio::stdio::pipe, .cwd = "/tmp"}`.
/// **Thread safety:** a plain value.
struct subprocess_options {
    /// The child's standard input: inherit, pipe or devnull.
    stdio stdin_mode = stdio::inherit;
    /// The child's standard output: inherit, pipe or devnull.
    stdio stdout_mode = stdio::inherit;
    /// The child's standard error: inherit, pipe, devnull or to_stdout.
    stdio stderr_mode = stdio::inherit;
    /// The child's working directory; empty: the parent's.
    std::string cwd{};
    /// The child's whole environment when not empty; empty: the parent's.
    std::map<std::string, std::string> env{};
};

/// A child process started by create_subprocess_exec or create_subprocess_shell
/// (asyncio.subprocess.Process).
///
/// Who reaps the child: wait() and communicate() do. A handle destroyed while its
/// child runs does not block: it hands the child's pidfd to the loop, which reaps
/// the child when it exits; if the loop closes first, the child is left running and,
/// once it exits, a zombie until this process waits for it or exits (as asyncio's
/// pidfd watcher leaves it). Move-only; not moved while an operation is in flight;
/// destroyed before the loop it was created on.
/// **Thread safety:** one object from one thread (its loop's) at a time.
class subprocess {
public:
    /// An empty handle (no process): pid() is -1, wait() throws corio::error.
    subprocess() noexcept;
    /// Takes over `other`'s process and pipes; `other` is left empty.
    subprocess(subprocess&& other) noexcept;
    /// Releases this handle's process (see the class comment), then takes over
    /// `other`'s.
    subprocess& operator=(subprocess&& other) noexcept;
    subprocess(const subprocess&) = delete;
    subprocess& operator=(const subprocess&) = delete;
    /// Closes the pipes; a child still running is left to the loop to reap.
    ~subprocess();

    /// The stream to the child's standard input (asyncio's `proc.stdin`); close()
    /// it to let the child read the end of its input. It is a Unix stream socket
    /// (the child reads it as any stdin), so that writing to a child that exited
    /// fails with EPIPE ("send") instead of raising SIGPIPE. Throws corio::error if
    /// stdin is not piped.
    byte_stream& stdin_pipe();
    /// The stream from the child's standard output (a pipe; asyncio's `proc.stdout`).
    /// Throws corio::error if stdout is not piped.
    byte_stream& stdout_pipe();
    /// The stream from the child's standard error (a pipe). Throws corio::error if
    /// stderr is not piped.
    byte_stream& stderr_pipe();

    /// Writes `input` to stdin and closes it, reads stdout and stderr to their end,
    /// all at once (never deadlocking on a child that fills one pipe while the
    /// other is not read), then waits for the child; returns {stdout, stderr}, an
    /// empty string for a stream that is not piped. A child that exits without
    /// reading its input is not an error (EPIPE is ignored, as asyncio does).
    /// Throws std::invalid_argument if `input` is not empty and stdin is not piped;
    /// std::system_error on I/O errors; cancelled_error when cancelled (the child
    /// keeps running).
    /// **Thread safety:** loop thread; once per process.
    [[nodiscard]] task<std::pair<std::string, std::string>> communicate(std::string input = {});
    /// Waits for the child to exit and reaps it; returns its returncode(). At once
    /// if it was reaped already. Cancelling the wait leaves the child running and
    /// unreaped. Throws corio::error on an empty handle, std::system_error
    /// ("waitid") if the child was reaped behind corio's back (SIGCHLD ignored).
    /// Kernel: IORING_OP_POLL_ADD on a pidfd (5.3).
    /// **Thread safety:** loop thread; several tasks may wait at once.
    [[nodiscard]] task<int> wait();
    /// The exit status once wait() saw the child exit, minus the signal number if a
    /// signal killed it; empty while it runs (or has not been waited for).
    std::optional<int> returncode() const noexcept { return returncode_; }
    /// The child's process id (-1 for an empty handle).
    /// **Thread safety:** read-only.
    int pid() const noexcept { return pid_; }
    /// Sends `sig` to the child through its pidfd (never to a recycled pid). No
    /// effect once the child has been reaped or if it has already exited. Throws
    /// std::invalid_argument for a signal number out of range, corio::error on an
    /// empty handle, std::system_error ("pidfd_send_signal") otherwise.
    void send_signal(int sig);
    /// send_signal(SIGTERM).
    void terminate();
    /// send_signal(SIGKILL).
    void kill();

    /// Internal: adopts a started child (used by create_subprocess_exec).
    subprocess(event_loop& loop, int pid, int pidfd, byte_stream in, byte_stream out,
               byte_stream err, bool piped_in, bool piped_out, bool piped_err) noexcept;

private:
    void release() noexcept;
    bool reap() noexcept;

    event_loop* loop_ = nullptr;
    int pid_ = -1;
    int pidfd_ = -1;
    std::optional<int> returncode_;
    int reap_errno_ = 0;
    byte_stream stdin_;
    byte_stream stdout_;
    byte_stream stderr_;
    bool piped_in_ = false;
    bool piped_out_ = false;
    bool piped_err_ = false;
};

/// Starts `program` with the arguments `args` (not counting argv[0], which is
/// `program`), as asyncio.create_subprocess_exec. A `program` without a slash is
/// looked up in the PATH (that of `options.env` when it sets one). Throws
/// std::system_error (ENOENT, EACCES, ...) naming the program when it cannot be
/// started (a missing program fails here, not at wait()), or naming the directory
/// for a bad `options.cwd`; std::invalid_argument for an empty program, a string
/// holding a NUL byte, an environment name that is empty or holds '=', or
/// stdio::to_stdout anywhere but stderr.
/// **Thread safety:** on a running loop's thread.
[[nodiscard]] task<subprocess> create_subprocess_exec(std::string program,
                                                      std::vector<std::string> args,
                                                      subprocess_options options);
/// create_subprocess_exec with the default options: every stream inherited.
/// (An overload rather than a default argument: g++ 12 miscompiles a temporary
/// aggregate holding a std::string inside a co_await expression, see
/// docs/subprocess.md.)
/// **Thread safety:** on a running loop's thread.
[[nodiscard]] task<subprocess> create_subprocess_exec(std::string program,
                                                      std::vector<std::string> args = {});

/// Runs `command` through `/bin/sh -c` (asyncio.create_subprocess_shell). Throws
/// as create_subprocess_exec; std::invalid_argument for an empty command.
/// **Thread safety:** on a running loop's thread.
[[nodiscard]] task<subprocess> create_subprocess_shell(std::string command,
                                                       subprocess_options options);
/// create_subprocess_shell with the default options (see create_subprocess_exec).
/// **Thread safety:** on a running loop's thread.
[[nodiscard]] task<subprocess> create_subprocess_shell(std::string command);

} // namespace corio
