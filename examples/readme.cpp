// The README's example, compiled and run by ctest so that it cannot drift.
#include <corio/corio.hpp>
#include <cstdio>
using namespace std::chrono_literals;

corio::task<int> fetch(int id) {
    co_await corio::sleep(10ms * id); // asyncio.sleep
    co_return id* id;
}

corio::task<int> main_task() {
    auto a = corio::create_task(fetch(1)); // asyncio.create_task
    auto b = corio::create_task(fetch(2));
    co_return co_await a + co_await b; // both ran concurrently
}

int main() {
    std::printf("%d\n", corio::run(main_task()));
} // asyncio.run
