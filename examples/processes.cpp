// multiprocessing.Process, ported: print_func(continent = "Asia") runs in one process
// without arguments and in one process per name; all of them are joined. Each child
// also puts its result on a process queue, which carries it back to the parent.
#include <corio/corio.hpp>
#include <corio/init.hpp>
#include <corio/ipc.hpp>
#include <corio/process.hpp>

#include <chrono>
#include <cstdio>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace {

void print_func(const std::string& continent = "Asia") {
    std::printf("The name of continent is : %s\n", continent.c_str());
}

using result = std::pair<std::string, std::size_t>; // (continent, length of its name)

} // namespace

int main() {
    corio::init(); // fork server first, while the program is single-threaded

    const std::vector<std::string> names{"America", "Europe", "Africa"};
    std::vector<corio::process> procs;
    corio::process_queue<result> results; // reaches each child as an argument

    // Without arguments: a capture-less lambda calls print_func with its default.
    procs.emplace_back(
        [](corio::process_queue<result> q) {
            print_func();
            q.put({"Asia", std::string("Asia").size()});
        },
        results);
    procs.back().start();

    // With arguments: the function and the arguments travel through corio::serialize.
    for (const auto& name : names) {
        procs.emplace_back(
            [](std::string n, corio::process_queue<result> q) {
                print_func(n);
                q.put({n, n.size()});
            },
            name, results);
        procs.back().start();
    }

    // Collect one result per child (in whatever order they finish).
    std::set<std::string> seen;
    for (std::size_t i = 0; i < procs.size(); ++i) {
        const auto [continent, length] = results.get(std::chrono::seconds(30));
        std::printf("result from a child: %s has %zu letters\n", continent.c_str(), length);
        if (length == continent.size()) {
            seen.insert(continent);
        }
    }

    // Complete the processes.
    int failures = 0;
    for (auto& proc : procs) {
        proc.join();
        if (proc.exitcode() != 0) {
            ++failures;
        }
    }
    std::printf("%zu processes joined, %d failed, %zu results\n", procs.size(), failures,
                seen.size());
    return failures == 0 && seen.size() == procs.size() ? 0 : 1;
}
