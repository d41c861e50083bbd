// Must not compile: a lambda with captures passed to a process pool (the captured
// state would not exist in the worker process).
// expect: must be a plain function or a capture-less lambda
#include <corio/process_pool.hpp>

int main(int argc, char**) {
    corio::process_pool pool(1);
    int offset = argc;
    return pool.apply([offset](int x) { return x + offset; }, 1);
}
