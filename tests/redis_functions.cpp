#include "redis_functions.hpp"

#include <corio/redis_pool.hpp>

#include <chrono>
#include <fcntl.h>
#include <stdexcept>
#include <string>
#include <thread>
#include <unistd.h>

namespace redis_fns {

struct custom_error : std::exception {
    const char* what() const noexcept override { return "a custom failure"; }
};

int square(int x) {
    return x * x;
}
int add(int a, int b) {
    return a + b;
}
std::string echo(std::string s) {
    return s;
}
int fail_with(int x) {
    throw std::invalid_argument("bad value: " + std::to_string(x));
}
int fail_custom(int) {
    throw custom_error();
}
void nothing() {}
int sleep_ms(int ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    return ms;
}
int typed_int(int x) {
    return x;
}

int hold(std::string dir, int value) {
    for (int n = 1;; ++n) {
        const std::string marker = dir + "/started-" + std::to_string(n);
        const int fd = ::open(marker.c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd >= 0) {
            ::close(fd);
            break;
        }
    }
    // A job that runs until the test lets it finish (the test's "mid-job" point).
    while (::access((dir + "/release").c_str(), F_OK) != 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return value;
}

} // namespace redis_fns

using namespace redis_fns;
CORIO_REMOTE(square);
CORIO_REMOTE(add);
CORIO_REMOTE(echo);
CORIO_REMOTE(fail_with);
CORIO_REMOTE(fail_custom);
CORIO_REMOTE(nothing);
CORIO_REMOTE(hold);
CORIO_REMOTE(sleep_ms);
