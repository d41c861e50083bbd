// Subprocesses (include/corio/subprocess.hpp): posix_spawn with the child's standard
// streams wired to pipes, /dev/null or the parent's own; a pidfd per child, polled
// on the ring to wait and used to signal; and the loop-side reaper that takes over
// the pidfd of a child whose handle was dropped while it ran.
//
// Uses the loop (get_running_loop), the I/O layer's byte_stream and its per-ring
// state (ring_socket_state: the reaper is a multishot_state, freed with the ring).

#include "net/ring_socket_state.hpp"
#include "ring/io_ops.hpp"

#include <corio/combinators.hpp>
#include <corio/event_loop.hpp>
#include <corio/subprocess.hpp>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <system_error>

extern char** environ;

namespace corio {

namespace {

[[noreturn]] void throw_errno(int err, const std::string& what) {
    throw std::system_error(err, std::system_category(), what);
}

// A descriptor closed on scope exit unless released.
class owned_fd {
public:
    owned_fd() noexcept = default;
    explicit owned_fd(int fd) noexcept : fd_(fd) {}
    owned_fd(owned_fd&& other) noexcept : fd_(other.release()) {}
    owned_fd& operator=(owned_fd&& other) noexcept {
        reset(other.release());
        return *this;
    }
    ~owned_fd() {
        if (fd_ >= 0) {
            ::close(fd_);
        }
    }
    int get() const noexcept { return fd_; }
    int release() noexcept { return std::exchange(fd_, -1); }
    void reset(int fd) noexcept {
        if (fd_ >= 0) {
            ::close(fd_);
        }
        fd_ = fd;
    }

private:
    int fd_ = -1;
};

// Through syscall(2): glibc 2.36's <sys/pidfd.h> lacks C linkage for C++.
int pidfd_open(pid_t pid) noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
}
int pidfd_send_signal(int pidfd, int sig) noexcept {
    return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

void check_text(std::string_view text, const char* what) {
    if (text.find('\0') != std::string_view::npos) {
        throw std::invalid_argument(std::string("corio: create_subprocess_exec: ") + what +
                                    " holds a NUL byte");
    }
}

// The child's end of a pipe must not be one of 0, 1, 2: dup2 onto the standard
// streams in the child would clobber it before its own turn.
int above_stdio(int fd) {
    if (fd > 2) {
        return fd;
    }
    int moved = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    int e = errno;
    ::close(fd);
    if (moved < 0) {
        throw_errno(e, "fcntl");
    }
    return moved;
}

bool executable_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
           ::access(path.c_str(), X_OK) == 0;
}

// The program's path: as given when it holds a slash, else the first executable
// regular file of that name in the PATH (the environment's PATH when the options
// replace the environment), as execvp does.
std::string find_program(const std::string& program,
                         const std::map<std::string, std::string>& env) {
    if (program.find('/') != std::string::npos) {
        return program;
    }
    std::string search;
    if (!env.empty()) {
        auto it = env.find("PATH");
        search = it != env.end() ? it->second : "/bin:/usr/bin";
    } else if (const char* p = std::getenv("PATH")) {
        search = p;
    } else {
        search = "/bin:/usr/bin";
    }
    bool denied = false;
    std::size_t start = 0;
    for (;;) {
        std::size_t end = search.find(':', start);
        std::string dir = search.substr(start, end == std::string::npos ? end : end - start);
        std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + program;
        if (executable_file(candidate)) {
            return candidate;
        }
        if (::access(candidate.c_str(), F_OK) == 0) {
            denied = true; // there, but not an executable file
        }
        if (end == std::string::npos) {
            break;
        }
        start = end + 1;
    }
    throw_errno(denied ? EACCES : ENOENT,
                "create_subprocess_exec: '" + program + "' not found as an executable in the PATH");
}

// posix_spawn's attribute and file-action objects, destroyed on scope exit.
struct spawn_setup {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    spawn_setup() {
        if (int e = posix_spawn_file_actions_init(&actions); e != 0) {
            throw_errno(e, "posix_spawn_file_actions_init");
        }
        if (int e = posix_spawnattr_init(&attr); e != 0) {
            posix_spawn_file_actions_destroy(&actions);
            throw_errno(e, "posix_spawnattr_init");
        }
    }
    spawn_setup(const spawn_setup&) = delete;
    spawn_setup& operator=(const spawn_setup&) = delete;
    ~spawn_setup() {
        posix_spawnattr_destroy(&attr);
        posix_spawn_file_actions_destroy(&actions);
    }
    void check(int e, const char* what) {
        if (e != 0) {
            throw_errno(e, what);
        }
    }
};

// One standard stream of the child: what the child gets (`child`, to dup2 onto the
// stream's number) and what the parent keeps (`parent`).
struct stream_ends {
    owned_fd parent;
    owned_fd child;
};

stream_ends make_pipe(bool child_reads) {
    stream_ends ends;
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) {
        throw_errno(errno, "pipe2");
    }
    ends.parent.reset(child_reads ? fds[1] : fds[0]);
    ends.child.reset(above_stdio(child_reads ? fds[0] : fds[1]));
    return ends;
}

stream_ends make_input_socket() {
    stream_ends ends;
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        throw_errno(errno, "socketpair");
    }
    ends.parent.reset(fds[0]);
    ends.child.reset(above_stdio(fds[1]));
    // The child only reads its stdin; this side only writes.
    ::shutdown(fds[0], SHUT_RD);
    return ends;
}

// Reaps the child of a handle destroyed while it ran: polls the pidfd on the loop
// and waits for the child when it exits. Freed by that completion, or with the
// ring's I/O state if the loop closes first (the child is then left unreaped).
class child_reaper final : public detail::multishot_state {
public:
    child_reaper(detail::ring_socket_state& ctx, event_loop& loop, int pidfd)
        : multishot_state(ctx, loop, pidfd) {
        prep = &prep_fn;
    }
    ~child_reaper() override { ::close(fd_); }
    void start() noexcept { arm(); }

private:
    static void prep_fn(detail::uring_op& op, ::io_uring_sqe& sqe) noexcept {
        io_uring_prep_poll_add(&sqe, static_cast<child_reaper&>(op).fd_, POLLIN);
    }
    void on_result(int res, unsigned) noexcept override {
        siginfo_t info{};
        if (res >= 0 && ::waitid(P_PIDFD, static_cast<id_t>(fd_), &info, WEXITED | WNOHANG) == 0 &&
            info.si_pid == 0) {
            arm(); // woken before the child was waitable: poll again
            return;
        }
        orphan(); // not armed: frees this at once
    }
    void on_orphan_result(int, unsigned) noexcept override {}
};

} // namespace

// ---- subprocess ------------------------------------------------------------------------

subprocess::subprocess() noexcept = default;

subprocess::subprocess(event_loop& loop, int pid, int pidfd, byte_stream in, byte_stream out,
                       byte_stream err, bool piped_in, bool piped_out, bool piped_err) noexcept
    : loop_(&loop), pid_(pid), pidfd_(pidfd), stdin_(std::move(in)), stdout_(std::move(out)),
      stderr_(std::move(err)), piped_in_(piped_in), piped_out_(piped_out), piped_err_(piped_err) {}

subprocess::subprocess(subprocess&& other) noexcept
    : loop_(std::exchange(other.loop_, nullptr)), pid_(std::exchange(other.pid_, -1)),
      pidfd_(std::exchange(other.pidfd_, -1)), returncode_(std::exchange(other.returncode_, {})),
      reap_errno_(std::exchange(other.reap_errno_, 0)), stdin_(std::move(other.stdin_)),
      stdout_(std::move(other.stdout_)), stderr_(std::move(other.stderr_)),
      piped_in_(std::exchange(other.piped_in_, false)),
      piped_out_(std::exchange(other.piped_out_, false)),
      piped_err_(std::exchange(other.piped_err_, false)) {}

subprocess& subprocess::operator=(subprocess&& other) noexcept {
    if (this != &other) {
        release();
        loop_ = std::exchange(other.loop_, nullptr);
        pid_ = std::exchange(other.pid_, -1);
        pidfd_ = std::exchange(other.pidfd_, -1);
        returncode_ = std::exchange(other.returncode_, {});
        reap_errno_ = std::exchange(other.reap_errno_, 0);
        stdin_ = std::move(other.stdin_);
        stdout_ = std::move(other.stdout_);
        stderr_ = std::move(other.stderr_);
        piped_in_ = std::exchange(other.piped_in_, false);
        piped_out_ = std::exchange(other.piped_out_, false);
        piped_err_ = std::exchange(other.piped_err_, false);
    }
    return *this;
}

subprocess::~subprocess() {
    release();
}

void subprocess::release() noexcept {
    stdin_.close();
    stdout_.close();
    stderr_.close();
    if (pidfd_ >= 0 && !returncode_ && reap_errno_ == 0 && !reap() && loop_ != nullptr &&
        !loop_->is_closed()) {
        // Still running: the loop reaps it when it exits.
        try {
            detail::ring_socket_state& ctx = detail::socket_state_of(*loop_);
            (new child_reaper(ctx, *loop_, pidfd_))->start();
            pidfd_ = -1;
        } catch (...) {
            loop_->call_exception_handler({"corio: could not hand a running child to the loop; it "
                                           "will not be reaped",
                                           std::current_exception(),
                                           {}});
        }
    }
    if (pidfd_ >= 0) {
        ::close(pidfd_);
    }
    pidfd_ = -1;
    pid_ = -1;
    loop_ = nullptr;
    piped_in_ = piped_out_ = piped_err_ = false;
}

bool subprocess::reap() noexcept {
    siginfo_t info{};
    if (::waitid(P_PIDFD, static_cast<id_t>(pidfd_), &info, WEXITED | WNOHANG) != 0) {
        reap_errno_ = errno;
        return false;
    }
    if (info.si_pid == 0) {
        return false; // still running
    }
    returncode_ = info.si_code == CLD_EXITED ? info.si_status : -info.si_status;
    return true;
}

byte_stream& subprocess::stdin_pipe() {
    if (!piped_in_) {
        throw error("corio: the subprocess's stdin is not a pipe (stdin_mode = stdio::pipe)");
    }
    return stdin_;
}

byte_stream& subprocess::stdout_pipe() {
    if (!piped_out_) {
        throw error("corio: the subprocess's stdout is not a pipe (stdout_mode = stdio::pipe)");
    }
    return stdout_;
}

byte_stream& subprocess::stderr_pipe() {
    if (!piped_err_) {
        throw error("corio: the subprocess's stderr is not a pipe (stderr_mode = stdio::pipe)");
    }
    return stderr_;
}

task<int> subprocess::wait() {
    if (pidfd_ < 0 && !returncode_) {
        throw error("corio: wait() on an empty subprocess handle");
    }
    for (;;) {
        if (returncode_) {
            co_return *returncode_;
        }
        // The pidfd turns readable once the child has exited; the poll is all the
        // ring does (cancelling it leaves the child running and unreaped).
        int res = co_await detail::io_op(&detail::prep_poll, {.fd = pidfd_, .flags = POLLIN});
        if (res < 0) {
            throw_errno(-res, "poll");
        }
        if (!returncode_ && !reap() && reap_errno_ != 0) {
            throw_errno(reap_errno_, "waitid");
        }
    }
}

namespace {

task<> feed_input(byte_stream* in, std::string input) {
    try {
        if (!input.empty()) {
            co_await in->write_all(input);
        }
    } catch (const std::system_error& e) {
        // A child that exits without reading all of its input is not an error.
        if (e.code().value() != EPIPE && e.code().value() != ECONNRESET) {
            throw;
        }
    }
    in->close();
}

task<std::string> drain_output(byte_stream* out) {
    std::string all = co_await out->read_to_end();
    out->close();
    co_return all;
}

task<std::string> nothing() {
    co_return std::string();
}

task<> no_input() {
    co_return;
}

} // namespace

task<std::pair<std::string, std::string>> subprocess::communicate(std::string input) {
    if (!input.empty() && !piped_in_) {
        throw std::invalid_argument(
            "corio: communicate() with input, but the subprocess's stdin is not a pipe");
    }
    if (pidfd_ < 0 && !returncode_) {
        throw error("corio: communicate() on an empty subprocess handle");
    }
    task<> feed = piped_in_ ? feed_input(&stdin_, std::move(input)) : no_input();
    task<std::string> out = piped_out_ ? drain_output(&stdout_) : nothing();
    task<std::string> err = piped_err_ ? drain_output(&stderr_) : nothing();
    auto results = co_await gather(std::move(feed), std::move(out), std::move(err));
    co_await wait();
    co_return std::pair<std::string, std::string>(std::move(std::get<1>(results)),
                                                  std::move(std::get<2>(results)));
}

void subprocess::send_signal(int sig) {
    if (sig < 0 || sig >= NSIG) {
        throw std::invalid_argument("corio: send_signal: no signal number " + std::to_string(sig));
    }
    if (pidfd_ < 0 && !returncode_) {
        throw error("corio: send_signal() on an empty subprocess handle");
    }
    if (returncode_) {
        return; // reaped: the pid may belong to another process by now
    }
    if (pidfd_send_signal(pidfd_, sig) != 0 && errno != ESRCH) {
        throw_errno(errno, "pidfd_send_signal");
    }
}

void subprocess::terminate() {
    send_signal(SIGTERM);
}

void subprocess::kill() {
    send_signal(SIGKILL);
}

// ---- creation ---------------------------------------------------------------------------

namespace {

// The whole start, synchronous (posix_spawn returns once the child has exec'd or
// failed to); kept out of the coroutine so that its locals live on the stack.
subprocess spawn(event_loop& loop, std::string& program, std::vector<std::string>& args,
                 const subprocess_options& options) {
    if (program.empty()) {
        throw std::invalid_argument("corio: create_subprocess_exec: empty program name");
    }
    check_text(program, "the program name");
    for (const std::string& a : args) {
        check_text(a, "an argument");
    }
    check_text(options.cwd, "the working directory");
    for (const auto& [name, value] : options.env) {
        if (name.empty() || name.find('=') != std::string::npos) {
            throw std::invalid_argument("corio: create_subprocess_exec: bad environment name '" +
                                        name + "'");
        }
        check_text(name, "an environment name");
        check_text(value, "an environment value");
    }
    if (options.stdin_mode == stdio::to_stdout || options.stdout_mode == stdio::to_stdout) {
        throw std::invalid_argument(
            "corio: create_subprocess_exec: stdio::to_stdout is for stderr_mode only");
    }

    const std::string path = find_program(program, options.env);
    if (!options.cwd.empty()) {
        struct stat st {};
        if (::stat(options.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
            throw_errno(errno != 0 && !S_ISREG(st.st_mode) ? errno : ENOTDIR,
                        "create_subprocess_exec: working directory '" + options.cwd + "'");
        }
    }

    stream_ends in, out, err;
    if (options.stdin_mode == stdio::pipe) {
        in = make_input_socket();
    }
    if (options.stdout_mode == stdio::pipe) {
        out = make_pipe(false);
    }
    if (options.stderr_mode == stdio::pipe) {
        err = make_pipe(false);
    }

    spawn_setup s;
    auto wire = [&s](stdio mode, int target, const stream_ends& ends, int devnull_flags) {
        if (mode == stdio::pipe) {
            s.check(posix_spawn_file_actions_adddup2(&s.actions, ends.child.get(), target),
                    "posix_spawn_file_actions_adddup2");
        } else if (mode == stdio::devnull) {
            s.check(
                posix_spawn_file_actions_addopen(&s.actions, target, "/dev/null", devnull_flags, 0),
                "posix_spawn_file_actions_addopen");
        }
    };
    wire(options.stdin_mode, STDIN_FILENO, in, O_RDONLY);
    wire(options.stdout_mode, STDOUT_FILENO, out, O_WRONLY);
    if (options.stderr_mode == stdio::to_stdout) {
        s.check(posix_spawn_file_actions_adddup2(&s.actions, STDOUT_FILENO, STDERR_FILENO),
                "posix_spawn_file_actions_adddup2");
    } else {
        wire(options.stderr_mode, STDERR_FILENO, err, O_WRONLY);
    }
    // Nothing of the parent's beyond the three standard streams, even descriptors
    // opened without O_CLOEXEC by other code.
    s.check(posix_spawn_file_actions_addclosefrom_np(&s.actions, 3),
            "posix_spawn_file_actions_addclosefrom_np");
    if (!options.cwd.empty()) {
        s.check(posix_spawn_file_actions_addchdir_np(&s.actions, options.cwd.c_str()),
                "posix_spawn_file_actions_addchdir_np");
    }
    // Default dispositions for every signal (an ignored SIGPIPE or a handled SIGINT
    // of the parent must not leak into the child) and an empty mask (the loop blocks
    // the signals it reads through signalfd).
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    s.check(posix_spawnattr_setsigmask(&s.attr, &none), "posix_spawnattr_setsigmask");
    s.check(posix_spawnattr_setsigdefault(&s.attr, &all), "posix_spawnattr_setsigdefault");
    s.check(posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
            "posix_spawnattr_setflags");

    std::vector<char*> argv;
    argv.reserve(args.size() + 2);
    argv.push_back(program.data());
    for (std::string& a : args) {
        argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::vector<std::string> env_strings;
    std::vector<char*> envp;
    char** child_env = environ;
    if (!options.env.empty()) {
        env_strings.reserve(options.env.size());
        for (const auto& [name, value] : options.env) {
            env_strings.push_back(name + "=" + value);
        }
        for (std::string& e : env_strings) {
            envp.push_back(e.data());
        }
        envp.push_back(nullptr);
        child_env = envp.data();
    }

    pid_t pid = -1;
    // glibc's posix_spawn clones with CLONE_VM | CLONE_VFORK: the parent's memory is
    // shared, not copied, until the child's exec; an exec failure comes back here.
    if (int e = ::posix_spawn(&pid, path.c_str(), &s.actions, &s.attr, argv.data(), child_env);
        e != 0) {
        throw_errno(e, "create_subprocess_exec: '" + program + "'");
    }
    int pidfd = pidfd_open(pid);
    if (pidfd < 0) {
        int e = errno;
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0); // killed: returns at once
        throw_errno(e, "pidfd_open");
    }
    bool piped_in = in.parent.get() >= 0;
    bool piped_out = out.parent.get() >= 0;
    bool piped_err = err.parent.get() >= 0;
    return subprocess(loop, pid, pidfd, byte_stream(in.parent.release(), true),
                      byte_stream(out.parent.release(), false),
                      byte_stream(err.parent.release(), false), piped_in, piped_out, piped_err);
}

} // namespace

task<subprocess> create_subprocess_exec(std::string program, std::vector<std::string> args,
                                        subprocess_options options) {
    co_return spawn(get_running_loop(), program, args, options);
}

task<subprocess> create_subprocess_exec(std::string program, std::vector<std::string> args) {
    subprocess_options options;
    co_return spawn(get_running_loop(), program, args, options);
}

task<subprocess> create_subprocess_shell(std::string command, subprocess_options options) {
    if (command.empty()) {
        throw std::invalid_argument("corio: create_subprocess_shell: empty command");
    }
    std::string shell = "/bin/sh";
    std::vector<std::string> args;
    args.emplace_back("-c");
    args.push_back(std::move(command));
    co_return spawn(get_running_loop(), shell, args, options);
}

task<subprocess> create_subprocess_shell(std::string command) {
    subprocess_options options;
    co_return co_await create_subprocess_shell(std::move(command), std::move(options));
}

} // namespace corio
