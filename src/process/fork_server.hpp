#pragma once
// The fork server: a child forked from the program while it was single-threaded
// (corio::init() or the first process pool), which forks every worker and every
// corio::process on request. Forking from it is safe whatever threads the program
// runs later, and its children share the program's code addresses, so a function
// pointer sent over a socket is valid in them.
//
// Protocol (SOCK_SEQPACKET, one request and one reply at a time under a mutex):
//   spawn(channel fd via SCM_RIGHTS) -> {pid} + a pidfd of the child via SCM_RIGHTS
//   wait(pid)                        -> {wait status}: the child must have exited
//                                       (its pidfd was readable); reaps it
//   release(pid)                     -> no reply: reap it whenever it exits
// The child runs child_main(channel fd): it reads one start frame (worker or process).

#include <sys/types.h>

#include <string>

namespace corio::detail {

/// A child of the fork server: its pid and a pidfd (owned by the caller) that
/// becomes readable when it exits and sends signals without pid-reuse races.
struct spawned_child {
    pid_t pid = -1;
    int pidfd = -1;
};

/// Starts the fork server if needed; throws `corio::error` naming `who` and telling
/// to call `corio::init()` if the program already runs threads.
void ensure_fork_server(const char* who);

/// Forks a child that serves `channel_fd` (the child's end of a socketpair or pipe;
/// the caller keeps and then closes its own copy). Throws `broken_pool_error` if
/// the fork server is gone, `std::system_error` if fork fails.
spawned_child fork_server_spawn(int channel_fd);

/// The wait status of an exited child (reaped by the server). Blocks while the child
/// still runs, so call it after its pidfd became readable.
int fork_server_wait(pid_t pid);

/// The caller no longer wants the status of `pid`; the server reaps it when it exits.
void fork_server_release(pid_t pid) noexcept;

/// Who this process is, for current_process() / parent_process(): "MainProcess" with
/// no parent in the program; set from the start frame in a corio::process child.
struct process_identity {
    std::string name = "MainProcess";
    bool daemon = false;
    pid_t parent_pid = 0;
    std::string parent_name;
};
process_identity& self_identity() noexcept;

/// The exit rule for the children this process started through corio::process (at
/// program exit, and when a corio::process child's function returned): daemon
/// children get SIGTERM, the others are waited for.
void wait_for_children() noexcept;

/// "exited with status 3" / "was killed by signal 11 (SIGSEGV)".
std::string describe_wait_status(int status);

/// Python's exitcode: the exit status, or minus the signal number.
int exitcode_of(int status) noexcept;

/// Waits until `pidfd` is readable (the process exited), at most `timeout_ms`
/// (-1 = forever); true if it exited.
bool wait_pidfd(int pidfd, int timeout_ms) noexcept;

} // namespace corio::detail
