// Subprocesses: real programs (sh, cat, sort, env, ls, sleep) started through
// create_subprocess_exec / _shell, their pipes, communicate, wait, signals, and the
// error paths. Deterministic: children that would run forever are killed by the
// test; ordering comes from the loop, never from sleeping.
#include "loop_steps.hpp"

#include <corio/combinators.hpp>
#include <corio/corio.hpp>
#include <corio/subprocess.hpp>

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using corio::stdio;
using corio_test::in_kernel;
using corio_test::yield_until;

// Catch's assertion macros evaluate their expression in ways g++ 12's coroutines
// get wrong: every co_await happens outside them.
#define CO_CHECK_THROWS_AS(awaitable, type)                                                        \
    do {                                                                                           \
        bool threw_ = false;                                                                       \
        try {                                                                                      \
            (void)(co_await awaitable);                                                            \
        } catch (const type&) {                                                                    \
            threw_ = true;                                                                         \
        }                                                                                          \
        CHECK(threw_);                                                                             \
    } while (false)

namespace {

// Argument lists live outside the coroutines: g++ 12 rejects an initializer list in
// a full-expression that holds a co_await ("array used as initializer").
const std::vector<std::string> hello_world{"hello", "world"};
const std::vector<std::string> printf_args{"a\\nbb\\nccc"};
const std::vector<std::string> pwd_args{"-P"};
const std::vector<std::string> one_arg{"x"};
const std::vector<std::string> sleep_args{"1000"};
const std::vector<std::string> grep_sig_args{"-E", "^Sig(Blk|Ign)", "/proc/self/status"};
const std::vector<std::string> ls_fd_args{"-1", "/proc/self/fd"};

// The errno of the std::system_error `t` throws (0 if it throws none).
template <class T>
int errno_of(corio::task<T> t, std::string* what = nullptr) {
    try {
        (void)corio::run(std::move(t));
    } catch (const std::system_error& e) {
        if (what != nullptr) {
            *what = e.what();
        }
        return e.code().value();
    }
    return 0;
}

// True while `pid` is a child of this process that has not been reaped (running
// or a zombie); WNOWAIT leaves it as it is.
bool unreaped(int pid) {
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0;
}

// True while `pid` is a child that has not exited yet.
bool running(int pid) {
    siginfo_t info{};
    return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
           info.si_pid == 0;
}

struct temp_dir {
    std::string path;
    temp_dir() {
        char tmpl[] = "/tmp/corio-subprocess-XXXXXX";
        REQUIRE(::mkdtemp(tmpl) != nullptr);
        path = tmpl;
    }
    ~temp_dir() { std::system(("rm -rf '" + path + "'").c_str()); }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
};

} // namespace

TEST_CASE("a child's stdout is read through a pipe and its exit status is waited for",
          "[subprocess][pipe]") {
    auto body = []() -> corio::task<> {
        corio::subprocess_options options{.stdout_mode = stdio::pipe};
        corio::subprocess p = co_await corio::create_subprocess_exec("echo", hello_world, options);
        CHECK(p.pid() > 0);
        CHECK_FALSE(p.returncode());
        {
            auto got = co_await p.stdout_pipe().read_until("\n");
            CHECK(got == "hello world\n");
        }
        {
            auto got = co_await p.wait();
            CHECK(got == 0);
        }
        CHECK(p.returncode() == 0);
        {
            auto got = co_await p.wait();
            CHECK(got == 0); // again: at once
        }
    };
    corio::run(body());
}

TEST_CASE("the exit status of a child comes back from wait", "[subprocess][wait]") {
    auto body = []() -> corio::task<int> {
        corio::subprocess p = co_await corio::create_subprocess_shell("exit 3");
        co_return co_await p.wait();
    };
    CHECK(corio::run(body()) == 3);
}

TEST_CASE("read_until and read_exactly work on a child's pipe; the end is an incomplete read",
          "[subprocess][pipe]") {
    auto body = []() -> corio::task<> {
        corio::subprocess_options options{.stdout_mode = stdio::pipe};
        corio::subprocess p =
            co_await corio::create_subprocess_exec("printf", printf_args, options);
        corio::byte_stream& out = p.stdout_pipe();
        CHECK_FALSE(out.is_socket());
        {
            auto got = co_await out.read_until("\n");
            CHECK(got == "a\n");
        }
        {
            auto got = co_await out.read_exactly(3);
            CHECK(got == "bb\n");
        }
        std::string partial;
        try {
            (void)co_await out.read_until("\n");
        } catch (const corio::incomplete_read_error& e) {
            partial = e.partial();
        }
        CHECK(partial == "ccc");
        {
            auto got = co_await p.wait();
            CHECK(got == 0);
        }
    };
    corio::run(body());
}

TEST_CASE("sort is fed through its stdin stream and its output read to the end",
          "[subprocess][stdin]") {
    auto body = []() -> corio::task<std::string> {
        corio::subprocess_options options{.stdin_mode = stdio::pipe, .stdout_mode = stdio::pipe};
        corio::subprocess p = co_await corio::create_subprocess_exec("sort", {}, options);
        co_await p.stdin_pipe().write_all("pear\napple\nfig\n");
        p.stdin_pipe().close();
        std::string out = co_await p.stdout_pipe().read_to_end();
        {
            auto got = co_await p.wait();
            CHECK(got == 0);
        }
        co_return out;
    };
    CHECK(corio::run(body()) == "apple\nfig\npear\n");
}

TEST_CASE("communicate moves 16 MiB each way through cat without deadlocking",
          "[subprocess][communicate]") {
    auto body = []() -> corio::task<> {
        std::string input(16u << 20, '\0');
        for (std::size_t i = 0; i < input.size(); ++i) {
            input[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
        }
        corio::subprocess_options options{.stdin_mode = stdio::pipe, .stdout_mode = stdio::pipe};
        corio::subprocess p = co_await corio::create_subprocess_exec("cat", {}, options);
        auto out_err = co_await p.communicate(input);
        std::string& out = out_err.first;
        std::string& err = out_err.second;
        CHECK(out.size() == input.size());
        CHECK(out == input);
        CHECK(err.empty()); // not piped
        CHECK(p.returncode() == 0);
    };
    corio::run(body());
}

TEST_CASE("communicate reads stdout and stderr at once: 8 MiB of stderr before 16 MiB of stdout",
          "[subprocess][communicate]") {
    auto body = []() -> corio::task<> {
        corio::subprocess_options options{.stdout_mode = stdio::pipe, .stderr_mode = stdio::pipe};
        corio::subprocess p = co_await corio::create_subprocess_shell(
            "head -c 8388608 /dev/zero >&2; head -c 16777216 /dev/zero; exit 5", options);
        auto out_err = co_await p.communicate();
        std::string& out = out_err.first;
        std::string& err = out_err.second;
        CHECK(out.size() == 16777216u);
        CHECK(err.size() == 8388608u);
        CHECK(std::all_of(out.begin(), out.end(), [](char c) { return c == '\0'; }));
        CHECK(p.returncode() == 5);
    };
    corio::run(body());
}

TEST_CASE("communicate with input ignores a child that exits without reading it",
          "[subprocess][communicate]") {
    auto body = []() -> corio::task<> {
        corio::subprocess_options options{.stdin_mode = stdio::pipe, .stdout_mode = stdio::pipe};
        corio::subprocess p = co_await corio::create_subprocess_exec("true", {}, options);
        auto out_err = co_await p.communicate(std::string(4u << 20, 'x'));
        std::string& out = out_err.first;
        CHECK(out.empty());
        CHECK(p.returncode() == 0);
    };
    corio::run(body());
}

TEST_CASE("writing to the stdin of a child that exited fails with EPIPE, not SIGPIPE",
          "[subprocess][stdin][error]") {
    auto body = []() -> corio::task<> {
        corio::subprocess_options options{.stdin_mode = stdio::pipe};
        corio::subprocess p = co_await corio::create_subprocess_exec("true", {}, options);
        {
            auto got = co_await p.wait();
            CHECK(got == 0);
        }
        CHECK(p.stdin_pipe().is_socket());
        int err = 0;
        try {
            co_await p.stdin_pipe().write_all(std::string(1u << 20, 'x'));
        } catch (const std::system_error& e) {
            err = e.code().value();
        }
        CHECK(err == EPIPE);
    };
    corio::run(body());
}

TEST_CASE("stderr goes to stdout with stdio::to_stdout", "[subprocess][stderr]") {
    auto body = []() -> corio::task<> {
        corio::subprocess_options options{.stdout_mode = stdio::pipe,
                                          .stderr_mode = stdio::to_stdout};
        corio::subprocess p =
            co_await corio::create_subprocess_shell("echo out; echo err >&2", options);
        auto out_err = co_await p.communicate();
        std::string& out = out_err.first;
        std::string& err = out_err.second;
        CHECK(out == "out\nerr\n");
        CHECK(err.empty());
        CHECK_THROWS_AS(p.stderr_pipe(), corio::error);
    };
    corio::run(body());
}

TEST_CASE("stdio::devnull gives the child an empty stdin and discards its output",
          "[subprocess][devnull]") {
    auto body = []() -> corio::task<> {
        corio::subprocess_options options_a{.stdin_mode = stdio::devnull,
                                            .stdout_mode = stdio::pipe};
        corio::subprocess a = co_await corio::create_subprocess_exec("cat", {}, options_a);
        auto out_err = co_await a.communicate();
        std::string& out = out_err.first;
        CHECK(out.empty());
        CHECK(a.returncode() == 0);

        corio::subprocess_options options_b{.stdin_mode = stdio::devnull,
                                            .stdout_mode = stdio::devnull,
                                            .stderr_mode = stdio::pipe};

        corio::subprocess b = co_await corio::create_subprocess_shell(
            "echo lost; echo kept >&2; test -c /dev/stdin && test ! -t 1", options_b);
        CHECK_THROWS_AS(b.stdout_pipe(), corio::error);
        CHECK_THROWS_AS(b.stdin_pipe(), corio::error);
        auto out2_err2 = co_await b.communicate();
        std::string& out2 = out2_err2.first;
        std::string& err2 = out2_err2.second;
        CHECK(out2.empty());
        CHECK(err2 == "kept\n");
        CHECK(b.returncode() == 0);
    };
    corio::run(body());
}

TEST_CASE("the child runs in options.cwd; a bad cwd fails at creation naming it",
          "[subprocess][cwd]") {
    temp_dir dir;
    auto body = [](std::string path) -> corio::task<std::string> {
        corio::subprocess_options options{.stdout_mode = stdio::pipe, .cwd = path};
        corio::subprocess p = co_await corio::create_subprocess_exec("pwd", pwd_args, options);
        auto out_err = co_await p.communicate();
        std::string& out = out_err.first;
        co_return out;
    };
    char real[PATH_MAX];
    REQUIRE(::realpath(dir.path.c_str(), real) != nullptr);
    CHECK(corio::run(body(dir.path)) == std::string(real) + "\n");

    std::string what;
    auto bad = [](std::string path) -> corio::task<> {
        corio::subprocess_options options{.cwd = path};
        (void)co_await corio::create_subprocess_exec("pwd", {}, options);
    };
    CHECK(errno_of(bad(dir.path + "/missing"), &what) == ENOENT);
    CHECK(what.find(dir.path + "/missing") != std::string::npos);
}

TEST_CASE("a non-empty env replaces the environment, and its PATH finds the program",
          "[subprocess][env]") {
    auto body = []() -> corio::task<std::string> {
        corio::subprocess_options options{.stdout_mode = stdio::pipe};
        options.env["CORIO_A"] = "one two";
        options.env["PATH"] = "/usr/bin:/bin";
        corio::subprocess p = co_await corio::create_subprocess_exec("env", {}, options);
        auto out_err = co_await p.communicate();
        std::string& out = out_err.first;
        co_return out;
    };
    CHECK(corio::run(body()) == "CORIO_A=one two\nPATH=/usr/bin:/bin\n");

    // An empty env inherits this process's.
    ::setenv("CORIO_SUBPROCESS_TEST", "inherited", 1);
    auto inherit = []() -> corio::task<std::string> {
        corio::subprocess_options options{.stdout_mode = stdio::pipe};
        corio::subprocess p = co_await corio::create_subprocess_shell(
            "printf %s \"$CORIO_SUBPROCESS_TEST\"", options);
        auto out_err = co_await p.communicate();
        std::string& out = out_err.first;
        co_return out;
    };
    CHECK(corio::run(inherit()) == "inherited");
    ::unsetenv("CORIO_SUBPROCESS_TEST");
}

TEST_CASE("a program that does not exist fails at creation with ENOENT naming it",
          "[subprocess][error]") {
    std::string what;
    auto missing = [](std::string program) -> corio::task<> {
        (void)co_await corio::create_subprocess_exec(program, one_arg);
    };
    CHECK(errno_of(missing("corio-no-such-program"), &what) == ENOENT);
    CHECK(what.find("corio-no-such-program") != std::string::npos);
    CHECK(errno_of(missing("/nonexistent/corio-prog"), &what) == ENOENT);
    CHECK(what.find("/nonexistent/corio-prog") != std::string::npos);

    // There but not executable.
    temp_dir dir;
    std::string file = dir.path + "/script";
    int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    ::close(fd);
    CHECK(errno_of(missing(file), &what) == EACCES);
    CHECK(what.find(file) != std::string::npos);
}

TEST_CASE("bad arguments give std::invalid_argument before anything starts",
          "[subprocess][error]") {
    auto exec = [](std::string program, std::vector<std::string> args,
                   corio::subprocess_options o) -> corio::task<> {
        (void)co_await corio::create_subprocess_exec(std::move(program), std::move(args),
                                                     std::move(o));
    };
    CHECK_THROWS_AS(corio::run(exec("", {}, {})), std::invalid_argument);
    CHECK_THROWS_AS(corio::run(exec("echo", {std::string("a\0b", 3)}, {})), std::invalid_argument);
    CHECK_THROWS_AS(corio::run(exec("echo", {}, {.env = {{"A=B", "c"}}})), std::invalid_argument);
    CHECK_THROWS_AS(corio::run(exec("echo", {}, {.env = {{"", "c"}}})), std::invalid_argument);
    CHECK_THROWS_AS(corio::run(exec("echo", {}, {.stdout_mode = stdio::to_stdout})),
                    std::invalid_argument);
    CHECK_THROWS_AS(corio::run(exec("cat", {}, {.stdin_mode = stdio::to_stdout})),
                    std::invalid_argument);
    auto shell = []() -> corio::task<> { (void)co_await corio::create_subprocess_shell(""); };
    CHECK_THROWS_AS(corio::run(shell()), std::invalid_argument);

    // communicate with input for a child whose stdin is not piped.
    auto input = []() -> corio::task<> {
        corio::subprocess p = co_await corio::create_subprocess_exec("true");
        std::exception_ptr e;
        try {
            (void)co_await p.communicate("data");
        } catch (const std::invalid_argument&) {
            e = std::current_exception();
        }
        {
            auto got = co_await p.wait();
            CHECK(got == 0);
        }
        if (e) {
            std::rethrow_exception(e);
        }
    };
    CHECK_THROWS_AS(corio::run(input()), std::invalid_argument);
}

TEST_CASE("an empty handle refuses to wait or signal", "[subprocess][error]") {
    auto body = []() -> corio::task<> {
        corio::subprocess p;
        CHECK(p.pid() == -1);
        CHECK_FALSE(p.returncode());
        CO_CHECK_THROWS_AS(p.wait(), corio::error);
        CHECK_THROWS_AS(p.kill(), corio::error);
        CHECK_THROWS_AS(p.stdout_pipe(), corio::error);
    };
    corio::run(body());
}

TEST_CASE("kill and terminate end a child; returncode is minus the signal",
          "[subprocess][signal]") {
    auto body = []() -> corio::task<> {
        corio::subprocess a = co_await corio::create_subprocess_exec("sleep", sleep_args);
        a.kill();
        {
            auto got = co_await a.wait();
            CHECK(got == -SIGKILL);
        }
        CHECK(a.returncode() == -SIGKILL);
        a.kill(); // reaped: no effect
        a.send_signal(SIGTERM);

        corio::subprocess b = co_await corio::create_subprocess_exec("sleep", sleep_args);
        b.terminate();
        {
            auto got = co_await b.wait();
            CHECK(got == -SIGTERM);
        }

        corio::subprocess c = co_await corio::create_subprocess_exec("sleep", sleep_args);
        CHECK_THROWS_AS(c.send_signal(-1), std::invalid_argument);
        CHECK_THROWS_AS(c.send_signal(NSIG), std::invalid_argument);
        c.send_signal(0); // a probe: the child is there
        c.send_signal(SIGUSR1);
        {
            auto got = co_await c.wait();
            CHECK(got == -SIGUSR1);
        }
    };
    corio::run(body());
}

TEST_CASE("the child gets default signal dispositions and an empty mask", "[subprocess][signal]") {
    auto body = []() -> corio::task<std::string> {
        // The loop blocks SIGUSR1 to read it through a signalfd; SIGUSR2 is ignored.
        corio::get_running_loop().add_signal_handler(SIGUSR1, [] {});
        auto old = std::signal(SIGUSR2, SIG_IGN);
        corio::subprocess_options options{.stdout_mode = stdio::pipe};
        corio::subprocess p =
            co_await corio::create_subprocess_exec("grep", grep_sig_args, options);
        std::signal(SIGUSR2, old);
        corio::get_running_loop().remove_signal_handler(SIGUSR1);
        auto out_err = co_await p.communicate();
        std::string& out = out_err.first;
        co_return out;
    };
    std::string out = corio::run(body());
    // "SigBlk:\t<hex>\nSigIgn:\t<hex>\n": nothing blocked, and no signal a program
    // uses ignored. glibc's posix_spawn leaves its own two internal real-time
    // signals (32 and 33, which no program may use) ignored in the child.
    REQUIRE(out.rfind("SigBlk:\t", 0) == 0);
    std::size_t ign = out.find("SigIgn:\t");
    REQUIRE(ign != std::string::npos);
    unsigned long long blocked = std::stoull(out.substr(8, 16), nullptr, 16);
    unsigned long long ignored = std::stoull(out.substr(ign + 8, 16), nullptr, 16);
    CHECK(blocked == 0);
    CHECK((ignored & ~(3ULL << 31)) == 0);
    CHECK((ignored & (1ULL << (SIGUSR2 - 1))) == 0);
}

TEST_CASE("the child inherits no descriptor beyond its standard streams",
          "[subprocess][descriptors]") {
    // A descriptor of the parent's without O_CLOEXEC, as other libraries leave them.
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    auto body = []() -> corio::task<std::string> {
        corio::subprocess_options options{
            .stdin_mode = stdio::pipe, .stdout_mode = stdio::pipe, .stderr_mode = stdio::pipe};
        corio::subprocess p = co_await corio::create_subprocess_exec("ls", ls_fd_args, options);
        auto out_err = co_await p.communicate();
        std::string& out = out_err.first;
        co_return out;
    };
    // ls itself holds one more: the directory it lists.
    CHECK(corio::run(body()) == "0\n1\n2\n3\n");
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_CASE("cancelling wait leaves the child running and unreaped", "[subprocess][cancel]") {
    auto body = []() -> corio::task<> {
        corio::subprocess_options options{.stdin_mode = stdio::pipe, .stdout_mode = stdio::devnull};
        corio::subprocess p = co_await corio::create_subprocess_exec("cat", {}, options);
        corio::future<int> w = corio::create_task(p.wait());
        co_await in_kernel();
        w.cancel();
        CO_CHECK_THROWS_AS(w, corio::cancelled_error);
        CHECK(running(p.pid()));
        CHECK_FALSE(p.returncode());
        // The end of its input ends cat; a new wait reaps it.
        p.stdin_pipe().close();
        {
            auto got = co_await p.wait();
            CHECK(got == 0);
        }
        CHECK_FALSE(unreaped(p.pid()));
    };
    corio::run(body());
}

TEST_CASE("cancelling communicate leaves the child running", "[subprocess][cancel]") {
    auto body = []() -> corio::task<> {
        corio::subprocess_options options{.stdout_mode = stdio::pipe};
        corio::subprocess p = co_await corio::create_subprocess_exec("sleep", sleep_args, options);
        corio::future<std::pair<std::string, std::string>> c = corio::create_task(p.communicate());
        co_await in_kernel();
        c.cancel();
        CO_CHECK_THROWS_AS(c, corio::cancelled_error);
        CHECK(running(p.pid()));
        p.kill();
        {
            auto got = co_await p.wait();
            CHECK(got == -SIGKILL);
        }
    };
    corio::run(body());
}

TEST_CASE("destroying the handle of a running child does not block; the loop reaps it",
          "[subprocess][lifetime]") {
    auto body = []() -> corio::task<> {
        int pid = -1;
        {
            corio::subprocess p = co_await corio::create_subprocess_exec("sleep", sleep_args);
            pid = p.pid();
        } // would hang here if the destructor waited for the child
        CHECK(running(pid));
        ::kill(pid, SIGKILL);
        co_await yield_until([pid] { return !unreaped(pid); });
    };
    corio::run(body());
}

TEST_CASE("a loop closed before a dropped child exits leaves it running, without leaks",
          "[subprocess][lifetime]") {
    int pid = -1;
    {
        corio::event_loop loop;
        auto body = [](int* out) -> corio::task<> {
            corio::subprocess p = co_await corio::create_subprocess_exec("sleep", sleep_args);
            *out = p.pid();
        };
        loop.run_until_complete(body(&pid));
        loop.close();
    }
    REQUIRE(pid > 0);
    CHECK(running(pid));
    ::kill(pid, SIGKILL);
    int status = 0;
    CHECK(::waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status));
}

TEST_CASE("several waiters see the same exit status", "[subprocess][wait]") {
    auto body = []() -> corio::task<> {
        corio::subprocess_options options{.stdin_mode = stdio::pipe};
        corio::subprocess p = co_await corio::create_subprocess_exec("cat", {}, options);
        corio::future<int> a = corio::create_task(p.wait());
        corio::future<int> b = corio::create_task(p.wait());
        co_await in_kernel();
        p.stdin_pipe().close();
        {
            auto got = co_await a;
            CHECK(got == 0);
        }
        {
            auto got = co_await b;
            CHECK(got == 0);
        }
    };
    corio::run(body());
}

TEST_CASE("many children spawned and waited for 8 at a time", "[subprocess][many]") {
    auto one = []() -> corio::task<int> {
        corio::subprocess p = co_await corio::create_subprocess_exec("true");
        co_return co_await p.wait();
    };
    auto body = [](decltype(one) f) -> corio::task<int> {
        int failures = 0;
        for (int round = 0; round < 25; ++round) {
            std::vector<corio::task<int>> batch;
            for (int i = 0; i < 8; ++i) {
                batch.push_back(f());
            }
            for (int rc : co_await corio::gather(std::move(batch))) {
                failures += rc != 0;
            }
        }
        co_return failures;
    };
    CHECK(corio::run(body(one)) == 0);
}
