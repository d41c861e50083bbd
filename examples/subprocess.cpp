// Subprocesses (asyncio.create_subprocess_exec): runs `ls` on a directory this
// example fills, feeds `sort` through its stdin, and pipes a shell's stderr into
// its stdout. Exits non-zero if any output is not what it should be.
#include <corio/corio.hpp>

#include <fmt/core.h>

#include <cstdlib>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

corio::task<int> run_ls(std::string dir) {
    corio::subprocess_options options{.stdout_mode = corio::stdio::pipe};
    std::vector<std::string> args{"-1", dir};
    corio::subprocess ls = co_await corio::create_subprocess_exec("ls", args, options);
    // Line by line, as a StreamReader would be read.
    std::string listing;
    for (;;) {
        std::string line;
        try {
            line = co_await ls.stdout_pipe().read_until("\n");
        } catch (const corio::incomplete_read_error& e) {
            listing += e.partial(); // the end of the output
            break;
        }
        listing += line;
    }
    int status = co_await ls.wait();
    fmt::print("ls exited with {}:\n{}", status, listing);
    co_return status == 0 && listing == "apple\nbanana\ncherry\n" ? 0 : 1;
}

corio::task<int> run_sort() {
    corio::subprocess_options options{.stdin_mode = corio::stdio::pipe,
                                      .stdout_mode = corio::stdio::pipe};
    corio::subprocess sort = co_await corio::create_subprocess_exec("sort", {}, options);
    // communicate() writes, closes stdin and reads at once: no deadlock however
    // large the input and the output.
    auto result = co_await sort.communicate("pear\nfig\napple\n");
    fmt::print("sort exited with {}:\n{}", *sort.returncode(), result.first);
    co_return sort.returncode() == 0 && result.first == "apple\nfig\npear\n" ? 0 : 1;
}

corio::task<int> run_shell() {
    corio::subprocess_options options{.stdout_mode = corio::stdio::pipe,
                                      .stderr_mode = corio::stdio::to_stdout};
    corio::subprocess sh = co_await corio::create_subprocess_shell(
        "echo to stdout; echo to stderr >&2; exit 7", options);
    auto result = co_await sh.communicate();
    fmt::print("sh exited with {}:\n{}", *sh.returncode(), result.first);
    co_return sh.returncode() == 7 && result.first == "to stdout\nto stderr\n" ? 0 : 1;
}

corio::task<int> main_task() {
    char dir[] = "/tmp/corio-example-XXXXXX";
    if (::mkdtemp(dir) == nullptr) {
        co_return 1;
    }
    const std::vector<std::string> names{"cherry", "apple", "banana"};
    for (const std::string& name : names) {
        co_await corio::write_file(std::string(dir) + "/" + name, "");
    }
    int failures = co_await run_ls(dir);
    failures += co_await run_sort();
    failures += co_await run_shell();
    std::system((std::string("rm -rf ") + dir).c_str());
    co_return failures;
}

} // namespace

int main() {
    int failures = corio::run(main_task());
    if (failures != 0) {
        fmt::print(stderr, "subprocess example: {} check(s) failed\n", failures);
    }
    return failures == 0 ? 0 : 1;
}
