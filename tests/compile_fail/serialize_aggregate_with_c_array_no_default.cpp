// Must not compile, with corio's readable message and no error from inside
// serialize.hpp: an aggregate with a C-array field whose elements have no default
// constructor (use std::array instead).
// expect: corio::serialize: this type cannot cross a process boundary
#include <corio/serialize.hpp>

namespace {
struct sensor_id {
    explicit sensor_id(int v) : value(v) {}
    int value;
};
struct reading {
    int id;
    sensor_id sources[2];
    double value;
};
} // namespace

int main() {
    return static_cast<int>(corio::to_bytes(reading{1, {sensor_id(2), sensor_id(3)}, 4.0}).size());
}
