// Must not compile, with corio's readable message and no error from inside
// serialize.hpp: an aggregate with a C-array field (use std::array instead).
// expect: corio::serialize: this type cannot cross a process boundary
#include <corio/serialize.hpp>

namespace {
struct sample {
    int id;
    double values[3];
};
} // namespace

int main() {
    return static_cast<int>(corio::to_bytes(sample{1, {1, 2, 3}}).size());
}
