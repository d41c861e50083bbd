// Must not compile: corio::process with an argument corio::serialize cannot encode.
// expect: corio::serialize: this type cannot cross a process boundary
#include <corio/process.hpp>

#include <memory>

namespace {
void consume(std::unique_ptr<int> p) {
    (void)p;
}
} // namespace

int main() {
    corio::process p(consume, std::make_unique<int>(1));
    p.start();
    p.join();
}
