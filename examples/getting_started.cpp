// The first program of docs/getting-started.md. ctest builds and runs it, and the test
// getting_started_snippet fails when the page's code block differs from the lines
// between the markers below.
// [snippet]
// hello.cpp: two tasks on an event loop, then a process pool's map awaited from it.
#include <corio/corio.hpp>

#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono_literals;

// Runs in the pool's worker processes: a plain function.
int vowels(std::string word) {
    int n = 0;
    for (char c : word) {
        n += std::string("aeiou").find(c) != std::string::npos ? 1 : 0;
    }
    return n;
}

corio::task<std::string> greet(std::string name, std::chrono::milliseconds delay) {
    co_await corio::sleep(delay);
    std::printf("hello, %s\n", name.c_str());
    co_return name;
}

corio::task<int> main_task(corio::process_pool* pool) {
    // Both tasks sleep at the same time: "corio" (10 ms) greets before "world" (20 ms).
    auto [first, second] = co_await corio::gather(greet("world", 20ms), greet("corio", 10ms));
    std::vector<std::string> words{first, second, "multiprocessing"};
    std::vector<int> counts = co_await pool->map_async(vowels, words);
    int total = 0;
    for (std::size_t i = 0; i < words.size(); ++i) {
        std::printf("%s: %d vowels\n", words[i].c_str(), counts[i]);
        total += counts[i];
    }
    co_return total;
}

int main() {
    corio::init(); // first thing in main: the process pools' fork server
    corio::process_pool pool(2);
    const int total = corio::run(main_task(&pool));
    return total == 1 + 3 + 5 ? 0 : 1; // world, corio, multiprocessing
}
// [snippet]
