// Copies a file with several reads in flight: K worker tasks each take the next
// chunk index, read it at its offset and write it at the same offset, so up to K
// reads (and writes) are queued in io_uring at once.
//
//   copy_file                    demo: copy an 8 MiB generated file in $TMPDIR, verify, clean up
//   copy_file SRC DST [--in-flight 4] [--chunk-kib 256]
#include <corio/corio.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

struct copy_job {
    corio::file* in;
    corio::file* out;
    std::uint64_t size;
    std::size_t chunk;
    std::uint64_t next = 0; // next offset to claim (tasks share one loop thread)
};

corio::task<> copy_worker(copy_job& job) {
    std::vector<std::byte> buf(job.chunk);
    while (job.next < job.size) {
        std::uint64_t offset = job.next;
        job.next += job.chunk;
        std::size_t n = co_await job.in->read(buf, offset);
        co_await job.out->write(std::span<const std::byte>(buf.data(), n), offset);
    }
}

corio::task<std::uint64_t> copy(std::string src, std::string dst, int in_flight,
                                std::size_t chunk) {
    corio::file in = co_await corio::file::open(src, "rb");
    corio::file out = co_await corio::file::open(dst, "wb");
    std::uint64_t size = co_await in.size();
    copy_job job{&in, &out, size, chunk};
    std::vector<corio::future<>> workers;
    for (int i = 0; i < in_flight; ++i) {
        workers.push_back(corio::create_task(copy_worker(job)));
    }
    for (auto& w : workers) {
        co_await w;
    }
    co_await out.fsync();
    co_await out.close();
    co_await in.close();
    co_return job.size;
}

corio::task<int> demo(int in_flight, std::size_t chunk) {
    const char* tmp = std::getenv("TMPDIR");
    std::string base =
        std::string(tmp != nullptr ? tmp : "/tmp") + "/corio-copy-" + std::to_string(::getpid());
    std::string data(8 * 1024 * 1024 + 123, '\0');
    for (std::size_t i = 0; i < data.size(); ++i) {
        data[i] = static_cast<char>((i * 2654435761u) >> 11);
    }
    co_await corio::write_file(base + ".src", data);
    auto t0 = std::chrono::steady_clock::now();
    std::uint64_t n = co_await copy(base + ".src", base + ".dst", in_flight, chunk);
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    bool same = co_await corio::read_file(base + ".dst") == data;
    std::printf("copied %llu bytes with %d reads in flight in %.3f s: %s\n",
                static_cast<unsigned long long>(n), in_flight, secs,
                same ? "identical" : "DIFFERENT");
    ::unlink((base + ".src").c_str());
    ::unlink((base + ".dst").c_str());
    co_return same ? 0 : 1;
}

} // namespace

int main(int argc, char** argv) {
    std::vector<std::string> paths;
    int in_flight = 4;
    std::size_t chunk = 256 * 1024;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--in-flight") == 0 && i + 1 < argc) {
            in_flight = std::max(1, std::atoi(argv[++i]));
        } else if (std::strcmp(argv[i], "--chunk-kib") == 0 && i + 1 < argc) {
            chunk = static_cast<std::size_t>(std::max(1, std::atoi(argv[++i]))) * 1024;
        } else {
            paths.emplace_back(argv[i]);
        }
    }
    try {
        if (paths.empty()) {
            return corio::run(demo(in_flight, chunk));
        }
        if (paths.size() != 2) {
            std::fprintf(stderr, "usage: %s [SRC DST] [--in-flight K] [--chunk-kib N]\n", argv[0]);
            return 2;
        }
        std::uint64_t n = corio::run(copy(paths[0], paths[1], in_flight, chunk));
        std::printf("copied %llu bytes\n", static_cast<unsigned long long>(n));
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "copy_file: %s\n", e.what());
        return 1;
    }
}
