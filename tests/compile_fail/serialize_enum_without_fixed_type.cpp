// Must not compile: an enum without a fixed underlying type, whose valid values a
// decoder cannot check (an out-of-range value would be undefined behaviour).
// expect: enum with a fixed underlying type
#include <corio/serialize.hpp>

enum loose { first, second };

int main() {
    return static_cast<int>(corio::to_bytes(second).size());
}
