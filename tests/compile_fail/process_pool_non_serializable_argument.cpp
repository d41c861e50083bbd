// Must not compile: an argument whose type corio::serialize cannot encode (a class
// with private state and no corio::serializer specialization) cannot reach a worker.
// expect: corio::process_pool: every argument must be serializable
#include <corio/process_pool.hpp>

namespace {

class file_handle {
public:
    explicit file_handle(int fd) : fd_(fd) {}
    int fd() const { return fd_; }

private:
    int fd_;
};

int descriptor_of(file_handle h) {
    return h.fd();
}

} // namespace

int main() {
    corio::process_pool pool(1);
    return pool.apply(descriptor_of, file_handle(3));
}
