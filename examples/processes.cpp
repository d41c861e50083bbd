// multiprocessing.Process, ported: print_func(continent = "Asia") runs in one process
// without arguments and in one process per name; all of them are joined.
#include <corio/corio.hpp>
#include <corio/init.hpp>
#include <corio/process.hpp>

#include <cstdio>
#include <string>
#include <vector>

namespace {

void print_func(const std::string& continent = "Asia") {
    std::printf("The name of continent is : %s\n", continent.c_str());
}

} // namespace

int main() {
    corio::init(); // fork server first, while the program is single-threaded

    const std::vector<std::string> names{"America", "Europe", "Africa"};
    std::vector<corio::process> procs;

    // Without arguments: a capture-less lambda calls print_func with its default.
    procs.emplace_back([] { print_func(); });
    procs.back().start();

    // With arguments: the function and the arguments travel through corio::serialize.
    for (const auto& name : names) {
        procs.emplace_back([](std::string n) { print_func(n); }, name);
        procs.back().start();
    }

    // Complete the processes.
    int failures = 0;
    for (auto& proc : procs) {
        proc.join();
        if (proc.exitcode() != 0)
            ++failures;
    }
    std::printf("%zu processes joined, %d failed\n", procs.size(), failures);
    return failures == 0 ? 0 : 1;
}
