// Must not compile, with corio's readable message and no error from inside
// serialize.hpp: an aggregate with a C array of std::string (use std::array), here
// followed by a field that has no default constructor.
// expect: corio::serialize: this type cannot cross a process boundary
#include <corio/serialize.hpp>

#include <string>

namespace {
struct owner_id {
    explicit owner_id(int v) : value(v) {}
    int value;
};
struct labels {
    std::string names[2];
    owner_id owner;
};
} // namespace

int main() {
    return static_cast<int>(corio::to_bytes(labels{{"a", "b"}, owner_id(1)}).size());
}
