// A consumer of an installed (find_package) or vendored (add_subdirectory) corio.
#include <corio/corio.hpp>

#include <chrono>
#include <cstdio>

namespace {
corio::task<int> answer() {
    co_await corio::sleep(std::chrono::milliseconds(1));
    co_return 42;
}
} // namespace

int main() {
    int v = corio::run(answer());
    std::printf("corio consumer: %d\n", v);
    return v == 42 ? 0 : 1;
}
