// The README's example. ctest builds and runs it, and the test readme_snippet fails
// when the README's code block differs from the lines between the markers below.
// [snippet]
#include <corio/corio.hpp>
#include <cstdio>
#include <vector>
using namespace std::chrono_literals;

// Runs in a worker process.
int square(int x) {
    return x * x;
}

corio::task<int> fetch(int id) {
    co_await corio::sleep(10ms * id); // asyncio.sleep
    co_return id + 1;
}

corio::task<int> main_task(corio::process_pool* pool) {
    // Both fetches run concurrently on the loop (asyncio.gather).
    auto [a, b] = co_await corio::gather(fetch(1), fetch(2));
    std::vector<int> inputs{a, b};
    // The pool computes while the loop keeps running (Pool.map_async, awaited).
    auto squares = co_await pool->map_async(square, inputs);
    co_return squares[0] + squares[1];
}

int main() {
    corio::init();               // first thing: the process pools' fork server
    corio::process_pool pool(2); // multiprocessing.Pool(2)
    // asyncio.run: a loop runs the task to completion.
    int total = corio::run(main_task(&pool));
    std::printf("2*2 + 3*3 = %d\n", total);
    return total == 13 ? 0 : 1;
}
// [snippet]
