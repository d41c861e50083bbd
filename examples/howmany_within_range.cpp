// The multiprocessing tutorial, ported: count how many numbers of each row of a
// 200,000 x 5 matrix of random ints in [0, 10) lie in [4, 8]; serially, then with
// pool.apply, map, starmap, apply_async with a callback, and starmap_async, each over
// every row. Every result is checked against the serial one; timings are printed
// side by side (apply and apply_async cost one round trip to a worker per row, which
// is what the tutorial shows: map and starmap send rows in chunks).
#include <corio/corio.hpp>
#include <corio/process_pool.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <random>
#include <tuple>
#include <utility>
#include <vector>

namespace {

using row_type = std::vector<int>;

int howmany_within_range(row_type row, int minimum, int maximum) {
    return static_cast<int>(
        std::count_if(row.begin(), row.end(), [&](int n) { return minimum <= n && n <= maximum; }));
}

int howmany_within_range_rowonly(row_type row) {
    return howmany_within_range(std::move(row), 4, 8);
}

std::pair<int, int> howmany_within_range2(int i, row_type row, int minimum, int maximum) {
    return {i, howmany_within_range(std::move(row), minimum, maximum)};
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

int failures = 0;

// The tutorial's 200,000 rows in optimized builds; unoptimized and sanitizer builds
// (which ctest also runs, within a few seconds) use a fifth of that.
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
constexpr std::size_t matrix_rows = 200000;
#else
constexpr std::size_t matrix_rows = 40000;
#endif

void report(const char* method, double secs, std::size_t rows, bool ok) {
    std::printf("%-40s %8.3f s  %7zu rows  %s\n", method, secs, rows,
                ok ? "matches serial" : "MISMATCH");
    if (!ok) {
        ++failures;
    }
}

} // namespace

int main() {
    corio::init();

    // Prepare data.
    std::mt19937 gen(100);
    std::uniform_int_distribution<int> digit(0, 9);
    std::vector<row_type> data(matrix_rows, row_type(5));
    for (auto& row : data) {
        for (auto& x : row) {
            x = digit(gen);
        }
    }
    std::printf("matrix %zu x 5%s, %zu worker processes\n", data.size(),
                matrix_rows == 200000 ? ""
                                      : " (unoptimized build: 200,000 rows in optimized builds)",
                corio::cpu_count());

    // Solution without parallelization.
    auto t0 = std::chrono::steady_clock::now();
    std::vector<int> serial;
    serial.reserve(data.size());
    for (const auto& row : data) {
        serial.push_back(howmany_within_range(row, 4, 8));
    }
    report("serial", seconds_since(t0), data.size(), true);

    corio::process_pool pool(corio::cpu_count());

    // pool.apply: one blocking round trip per row.
    t0 = std::chrono::steady_clock::now();
    std::vector<int> applied;
    applied.reserve(data.size());
    for (const auto& row : data) {
        applied.push_back(pool.apply(howmany_within_range, row, 4, 8));
    }
    report("pool.apply", seconds_since(t0), data.size(), applied == serial);

    // pool.map: one iterable argument.
    t0 = std::chrono::steady_clock::now();
    const auto mapped = pool.map(howmany_within_range_rowonly, data);
    report("pool.map", seconds_since(t0), data.size(), mapped == serial);

    // pool.starmap: each element is unpacked into the call.
    std::vector<std::tuple<row_type, int, int>> star_args;
    star_args.reserve(data.size());
    for (const auto& row : data) {
        star_args.emplace_back(row, 4, 8);
    }
    t0 = std::chrono::steady_clock::now();
    const auto starred = pool.starmap(howmany_within_range, star_args);
    report("pool.starmap", seconds_since(t0), data.size(), starred == serial);

    // apply_async with a callback collecting (index, count), then sorted by index. One
    // round trip per call (calls are never queued behind one another on a worker),
    // all workers busy at once.
    t0 = std::chrono::steady_clock::now();
    std::mutex collected_mutex; // callbacks run on one thread, but the reader is another
    std::vector<std::pair<int, int>> collected;
    collected.reserve(data.size());
    std::vector<corio::async_result<std::pair<int, int>>> pending;
    pending.reserve(data.size());
    for (std::size_t i = 0; i < data.size(); ++i) {
        pending.push_back(pool.apply_async(howmany_within_range2, static_cast<int>(i), data[i], 4,
                                           8, corio::callback([&](const std::pair<int, int>& r) {
                                               std::lock_guard lock(collected_mutex);
                                               collected.push_back(r);
                                           })));
    }
    for (auto& r : pending) {
        r.wait();
    }
    std::vector<int> async_counts;
    {
        std::lock_guard lock(collected_mutex);
        std::sort(collected.begin(), collected.end());
        for (const auto& [i, count] : collected) {
            async_counts.push_back(count);
        }
    }
    report("pool.apply_async + callback", seconds_since(t0), data.size(), async_counts == serial);

    // starmap_async: the same arguments with the index, results fetched with get().
    std::vector<std::tuple<int, row_type, int, int>> indexed;
    indexed.reserve(data.size());
    for (std::size_t i = 0; i < data.size(); ++i) {
        indexed.emplace_back(static_cast<int>(i), data[i], 4, 8);
    }
    t0 = std::chrono::steady_clock::now();
    auto star_async = pool.starmap_async(howmany_within_range2, indexed);
    std::vector<int> star_async_counts;
    for (const auto& [i, count] : star_async.get()) {
        star_async_counts.push_back(count);
    }
    report("pool.starmap_async", seconds_since(t0), data.size(), star_async_counts == serial);

    pool.close();
    pool.join();
    return failures == 0 ? 0 : 1;
}
