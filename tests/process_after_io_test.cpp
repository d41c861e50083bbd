// The fork server's single-threaded check after a loop did file I/O (issue 11): io_uring's
// kernel workers (iou-wrk-*) are threads of the process, but they run no user code and do
// not exist in a forked child, so they must not count. Its own executable: the fork server
// starts once per process, and this test needs it not yet started.
#include <corio/event_loop.hpp>
#include <corio/io.hpp>
#include <corio/process_pool.hpp>

#include <catch2/catch.hpp>

#include <dirent.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace {

// Threads of this process whose name starts with "iou-" (io_uring's workers).
int io_uring_workers() {
    int n = 0;
    DIR* d = ::opendir("/proc/self/task");
    REQUIRE(d != nullptr);
    while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] == '.') {
            continue;
        }
        std::ifstream comm(std::string("/proc/self/task/") + e->d_name + "/comm");
        std::string name;
        std::getline(comm, name);
        if (name.rfind("iou-", 0) == 0) {
            ++n;
        }
    }
    ::closedir(d);
    return n;
}

int square(int x) {
    return x * x;
}

corio::task<std::string> read_and_sync(std::string path) {
    std::string text = co_await corio::read_file(path);
    // fsync always runs on an io_uring worker thread: the check below then meets one
    // whatever the page cache holds.
    corio::file f = co_await corio::file::open(path, "r");
    co_await f.fsync();
    co_await f.close();
    co_return text;
}

} // namespace

TEST_CASE("a process pool starts after a loop read a file (io_uring workers do not count)",
          "[process][init]") {
    char dir_template[] = "/tmp/corio-after-io-XXXXXX";
    REQUIRE(::mkdtemp(dir_template) != nullptr);
    const std::string path = std::string(dir_template) + "/input.txt";
    {
        std::ofstream out(path);
        out << "hello from a file\n";
    }
    const std::string text = corio::run(read_and_sync(path));
    CHECK(text == "hello from a file\n");
    const int workers = io_uring_workers();
    INFO("io_uring worker threads alive when the pool starts: " << workers);
    if (workers == 0) {
        WARN("no io_uring worker thread alive: the pool starts, but the check met no worker");
    }

    corio::process_pool pool(2);
    CHECK(pool.apply(square, 7) == 49);
    pool.close();
    pool.join();

    ::unlink(path.c_str());
    ::rmdir(dir_template);
}
