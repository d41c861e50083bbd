// Must not compile, with corio's readable message and no error from inside
// serialize.hpp: an aggregate with a base class is not serialized field by field.
// expect: corio::serialize: this type cannot cross a process boundary
#include <corio/serialize.hpp>

namespace {
struct position {
    double x;
    double y;
};
struct labelled_position : position {
    int label;
};
} // namespace

int main() {
    return static_cast<int>(corio::to_bytes(labelled_position{{1, 2}, 3}).size());
}
