// A tour of corio, in the order of the asyncio / multiprocessing walkthrough it ports:
// processes, threads, a generator coroutine with send and close, the event loop with
// tasks and futures, chained coroutines, producers and consumers on a queue, an async
// generator with a comprehension, the pools' apply / map / starmap and their async
// forms (with callbacks and a progress bar), a table processed by rows, by columns
// and whole, and the Redis pool against a private redis-server.
//
// Every section checks its own results; the program exits with status 1 if any is
// wrong. `bash scripts/demo.sh` builds and runs it; ctest runs it too.
#include <corio/corio.hpp>
#include <corio/format.hpp> // fmt::formatter for corio types (optional header)

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <exception>
#include <mutex>
#include <numeric>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#if CORIO_TOUR_REDIS
#include <corio/redis_pool.hpp>

#include "redis/redis_server.hpp" // a private redis-server, stopped at the end
#endif

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

namespace {

int failures = 0;
int section_number = 0;

void heading(const char* title, const char* python) {
    fmt::print("\n{}. {}  ({})\n", ++section_number, title, python);
    std::fflush(stdout); // before children write to the same stdout
}

void check(bool ok, const std::string& what) {
    if (!ok) {
        ++failures;
        fmt::print("   CHECK FAILED: {}\n", what);
    }
}

double since(clock_type::time_point t0) {
    return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// Unoptimized and sanitizer builds (ctest runs the tour there too) use smaller data.
#if defined(__OPTIMIZE__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
constexpr int scale = 5;
#else
constexpr int scale = 1;
#endif

// ---------------------------------------------------------------------------------
// 1. Processes: multiprocessing.Process(target=print_func, args=(name,))

void print_func(std::string continent) {
    fmt::print("   The name of continent is : {}\n", continent);
    std::fflush(stdout);
}

void processes() {
    heading("Processes", "multiprocessing.Process");
    std::vector<corio::process> procs;
    procs.emplace_back(print_func, std::string("Asia")); // the default argument
    for (const char* name : {"America", "Europe", "Africa"}) {
        procs.emplace_back(print_func, std::string(name));
    }
    for (auto& p : procs) {
        p.start();
    }
    int ok = 0;
    std::vector<corio::exit_status> statuses;
    for (auto& p : procs) {
        p.join();
        ok += p.exitcode() == 0 ? 1 : 0;
        statuses.emplace_back(p.exitcode());
    }
    fmt::print("   {} processes joined: {}\n", procs.size(), fmt::join(statuses, ", "));
    check(ok == 4, "every child exits with status 0");
}

// ---------------------------------------------------------------------------------
// 2. Threads: threading.Thread, and to_thread for blocking calls from the loop.

corio::task<int> await_blocking_call() {
    // asyncio.to_thread: the loop keeps running while a pool thread blocks.
    const auto ticks = std::make_shared<std::atomic<int>>(0);
    auto ticker = corio::create_task([](std::shared_ptr<std::atomic<int>> t) -> corio::task<> {
        for (;;) {
            co_await corio::sleep(5ms);
            ++*t;
        }
    }(ticks));
    const int cube = co_await corio::to_thread(
        [](int n) {
            std::this_thread::sleep_for(100ms); // a blocking call
            return n * n * n;
        },
        10);
    ticker.cancel();
    try {
        co_await ticker;
    } catch (const corio::cancelled_error&) {
    }
    fmt::print("   to_thread returned {}; the loop ticked {} times meanwhile\n", cube,
               ticks->load());
    check(ticks->load() >= 1, "the loop runs while to_thread blocks");
    co_return cube;
}

void threads() {
    heading("Threads", "threading.Thread, asyncio.to_thread");
    int square = 0;
    int cube = 0;
    std::thread t1([&] { square = 10 * 10; });
    std::thread t2([&] { cube = 10 * 10 * 10; });
    t1.join();
    t2.join();
    fmt::print("   Square: {}  Cube: {}  Done!\n", square, cube);
    check(square == 100 && cube == 1000, "the threads computed 100 and 1000");
    check(corio::run(await_blocking_call()) == 1000, "to_thread returns the cube");
}

// ---------------------------------------------------------------------------------
// 3. A generator coroutine: values sent in with send(), ended with close().

corio::generator<void, std::string> print_name(std::string prefix, std::vector<std::string>* seen) {
    fmt::print("   Searching prefix: {}\n", prefix);
    try {
        for (;;) {
            std::string name = co_yield {};
            if (name.find(prefix) != std::string::npos) {
                fmt::print("   {}\n", name);
                seen->push_back(name);
            }
        }
    } catch (const corio::generator_exit&) {
        fmt::print("   Closing coroutine!!\n");
        seen->push_back("closed");
    }
}

void generator_coroutine() {
    heading("A generator coroutine with send and close", "generator.send, generator.close");
    std::vector<std::string> seen;
    auto corou = print_name("Dear", &seen);
    corou.next(); // runs to the first co_yield, as Python's next(corou)
    corou.send("James");
    corou.send("Dear James");
    corou.close();
    check(seen == std::vector<std::string>{"Dear James", "closed"}, "send filters, close ends");
}

// ---------------------------------------------------------------------------------
// 4. The event loop, tasks and futures.

corio::task<int> slow_double(int x, std::chrono::milliseconds delay) {
    co_await corio::sleep(delay);
    co_return 2 * x;
}

corio::task<> loop_tasks_futures() {
    auto& loop = corio::get_running_loop();
    corio::future<std::string> fut; // asyncio.Future(): set later by a timer callback
    loop.call_later(100ms, [fut]() mutable { fut.set_result("set by call_later"); });
    const auto t0 = loop.time();
    auto a = corio::create_task(slow_double(20, 100ms), "double-20"); // scheduled now
    auto b = corio::create_task(slow_double(21, 100ms), "double-21");
    const auto [x, y] = co_await corio::gather(a, b); // both sleep at the same time
    const std::string text = co_await fut;
    const double ms = std::chrono::duration<double, std::milli>(loop.time() - t0).count();
    fmt::print("   tasks double-20 and double-21 -> {} and {}; the future: \"{}\"\n", x, y, text);
    fmt::print("   two 100 ms sleeps took {:.0f} ms together; loop.is_running() = {}\n", ms,
               loop.is_running());
    check(x == 40 && y == 42 && text == "set by call_later", "task and future results");
    check(ms < 200, "the two tasks slept concurrently");
}

void event_loop() {
    heading("The event loop with tasks and futures", "asyncio.run, create_task, Future");
    corio::run(loop_tasks_futures()); // a new loop, run to completion, closed
}

// ---------------------------------------------------------------------------------
// 5. Chained coroutines: part1 -> part2 for several inputs at once.

corio::task<std::string> part1(int n, std::chrono::milliseconds delay) {
    co_await corio::sleep(delay);
    co_return fmt::format("result{}-1", n);
}

corio::task<std::string> part2(int n, std::string arg, std::chrono::milliseconds delay) {
    co_await corio::sleep(delay);
    co_return fmt::format("result{}-2 derived from {}", n, arg);
}

corio::task<std::string> chain(int n, std::chrono::milliseconds d1, std::chrono::milliseconds d2) {
    std::string p1 = co_await part1(n, d1);
    co_return co_await part2(n, std::move(p1), d2);
}

corio::task<> chains() {
    const auto t0 = clock_type::now();
    std::mt19937 rng(42);
    std::uniform_int_distribution<int> ms(20, 60);
    std::vector<corio::task<std::string>> work;
    std::chrono::milliseconds serial{0};
    for (int n : {9, 6, 3}) {
        const std::chrono::milliseconds d1(ms(rng)), d2(ms(rng));
        serial += d1 + d2;
        work.push_back(chain(n, d1, d2));
    }
    const std::vector<std::string> results = co_await corio::gather(std::move(work));
    for (const auto& r : results) {
        fmt::print("   -->Chained {}\n", r);
    }
    const double took = since(t0);
    fmt::print("   finished in {:.3f} s (one after another: {:.3f} s)\n", took,
               std::chrono::duration<double>(serial).count());
    check(results[0] == "result9-2 derived from result9-1", "chain results in argument order");
    check(took < std::chrono::duration<double>(serial).count(), "the chains overlapped");
}

// ---------------------------------------------------------------------------------
// 6. Producers and consumers on a bounded queue.

corio::task<> producer(int id, int count, corio::queue<int>& q) {
    std::mt19937 rng(static_cast<unsigned>(id));
    std::uniform_int_distribution<int> pause(0, 3);
    for (int i = 0; i < count; ++i) {
        co_await corio::sleep(std::chrono::milliseconds(pause(rng)));
        co_await q.put(id * 100 + i);
    }
}

corio::task<> consumer(corio::queue<int>& q, std::vector<int>& handled) {
    for (;;) {
        const int item = co_await q.get(); // cancelled here once all is done
        handled.push_back(item);
        q.task_done();
    }
}

corio::task<> producers_consumers() {
    corio::queue<int> q(4); // maxsize 4: producers wait when consumers fall behind
    std::vector<std::vector<int>> handled(3);
    std::vector<corio::future<>> consumers;
    for (auto& h : handled) {
        consumers.push_back(corio::create_task(consumer(q, h)));
    }
    co_await corio::gather(producer(1, 10, q), producer(2, 10, q), producer(3, 10, q),
                           producer(4, 10, q));
    co_await q.join(); // every item taken and marked done
    for (auto& c : consumers) {
        c.cancel(); // idle in get(): asyncio's worker.cancel()
    }
    for (auto& c : consumers) {
        try {
            co_await c;
        } catch (const corio::cancelled_error&) {
        }
    }
    std::vector<int> all;
    for (std::size_t i = 0; i < handled.size(); ++i) {
        fmt::print("   consumer-{} handled {} items\n", i + 1, handled[i].size());
        all.insert(all.end(), handled[i].begin(), handled[i].end());
    }
    std::sort(all.begin(), all.end());
    std::vector<int> expected;
    for (int id = 1; id <= 4; ++id) {
        for (int i = 0; i < 10; ++i) {
            expected.push_back(id * 100 + i);
        }
    }
    fmt::print("   4 producers x 10 items: {} consumed, none lost, none twice\n", all.size());
    check(all == expected, "every produced item consumed exactly once");
}

// ---------------------------------------------------------------------------------
// 7. An async generator consumed by an async comprehension.

corio::async_generator<int> readings() {
    for (int i = 0;; ++i) {
        co_await corio::sleep(1ms); // waiting for the sensor
        co_yield i;
    }
}

corio::task<> comprehension() {
    // [f"{r * 1.5:.1f}" async for r in readings() if r % 3 == 0][:5]
    const std::vector<std::string> out =
        co_await (readings() | corio::filter([](int r) { return r % 3 == 0; }) |
                  corio::transform([](int r) { return fmt::format("{:.1f}", r * 1.5); }) |
                  corio::take(5) | corio::collect());
    fmt::print("   [{}]\n", fmt::join(out, ", "));
    check(out == std::vector<std::string>{"0.0", "4.5", "9.0", "13.5", "18.0"},
          "filter, transform, take, collect");
}

// ---------------------------------------------------------------------------------
// 8. The pools: apply, map, starmap and their async forms, callbacks, a progress bar.

using row_type = std::vector<int>;

int howmany_within_range(row_type row, int minimum, int maximum) {
    return static_cast<int>(
        std::count_if(row.begin(), row.end(), [&](int n) { return minimum <= n && n <= maximum; }));
}

int howmany_within_range_rowonly(row_type row) {
    return howmany_within_range(std::move(row), 4, 8);
}

/// CPU-bound: how many primes lie in [from, from + 5000).
int count_primes(int from) {
    int count = 0;
    for (int n = std::max(from, 2); n < from + 5000; ++n) {
        bool prime = true;
        for (int d = 2; d * d <= n; ++d) {
            if (n % d == 0) {
                prime = false;
                break;
            }
        }
        count += prime ? 1 : 0;
    }
    return count;
}

void pools() {
    heading("Pools: apply, map, starmap, their async forms, callbacks", "multiprocessing.Pool");
    std::mt19937 gen(100);
    std::uniform_int_distribution<int> digit(0, 9);
    std::vector<row_type> data(static_cast<std::size_t>(4000 * scale), row_type(5));
    for (auto& row : data) {
        for (auto& x : row) {
            x = digit(gen);
        }
    }
    std::vector<int> serial;
    for (const auto& row : data) {
        serial.push_back(howmany_within_range(row, 4, 8));
    }

    corio::process_pool pool(2); // as multiprocessing.Pool(2): two worker processes
    const auto t0 = clock_type::now();
    std::vector<int> applied;
    for (std::size_t i = 0; i < 200; ++i) { // apply: one blocking round trip per call
        applied.push_back(pool.apply(howmany_within_range, data[i], 4, 8));
    }
    const auto mapped = pool.map(howmany_within_range_rowonly, data);
    std::vector<std::tuple<row_type, int, int>> star_args;
    for (const auto& row : data) {
        star_args.emplace_back(row, 4, 8);
    }
    const auto starred = pool.starmap(howmany_within_range, star_args);
    fmt::print("   apply x200, map and starmap over {} rows of 5 digits: {} in [4, 8] ({:.2f} s)\n",
               data.size(), std::accumulate(mapped.begin(), mapped.end(), 0), since(t0));
    check(std::equal(applied.begin(), applied.end(), serial.begin()), "apply equals serial");
    check(mapped == serial && starred == serial, "map and starmap equal serial");

    // The async forms, with callbacks on the pool's result thread (Python's order).
    std::mutex m;
    int callbacks = 0;
    std::string error_seen;
    auto one =
        pool.apply_async(howmany_within_range, data[0], 4, 8, corio::callback([&](const int&) {
                             std::lock_guard lock(m);
                             ++callbacks;
                         }));
    auto all = pool.map_async(howmany_within_range_rowonly, data,
                              corio::callback([&](const std::vector<int>&) {
                                  std::lock_guard lock(m);
                                  ++callbacks;
                              }));
    auto star = pool.starmap_async(howmany_within_range, star_args);
    auto bad = pool.apply_async(
        [](int n) -> int {
            if (n < 0) {
                throw std::invalid_argument("negative row length");
            }
            return n;
        },
        -1, corio::error_callback([&](std::exception_ptr e) {
            std::lock_guard lock(m);
            error_seen = fmt::format("{:t}", e); // type and message (corio/format.hpp)
        }));
    check(one.get() == serial[0] && all.get() == serial && star.get() == serial,
          "apply_async, map_async and starmap_async equal serial");
    bad.wait();
    {
        std::lock_guard lock(m);
        fmt::print("   apply_async, map_async, starmap_async: {} callbacks ran; error_callback "
                   "got {}\n",
                   callbacks, error_seen);
        check(callbacks == 2 && error_seen == "std::invalid_argument: negative row length",
              "callbacks ran");
    }
    check(!bad.successful(), "a throwing call is not successful");

    // The same interface on threads (a one-word change), with a ready progress bar:
    // redrawn on stderr when it is a terminal, one final line otherwise.
    corio::progress_bar bar("   primes");
    corio::thread_pool threads(corio::cpu_count(), {.on_progress = bar});
    std::vector<int> starts(static_cast<std::size_t>(40 * scale));
    for (std::size_t i = 0; i < starts.size(); ++i) {
        starts[i] = static_cast<int>(i) * 5000;
    }
    std::fflush(stdout); // the bar writes to stderr
    const auto counts = threads.map(count_primes, starts, 1);
    const int primes = std::accumulate(counts.begin(), counts.end(), 0);
    fmt::print("   thread_pool.map with a progress bar: {} primes below {}\n", primes,
               starts.size() * 5000);
    check(primes == (scale == 5 ? 78498 : 17984), "the number of primes below the bound");
    check(bar.done() == starts.size(), "the progress bar saw every item");
}

// ---------------------------------------------------------------------------------
// 9. A table processed by rows, by columns and whole, in parallel.

struct table {
    std::vector<std::string> columns;
    std::vector<std::vector<double>> rows;
    bool operator==(const table&) const = default;
};

double row_sum(std::vector<double> row) {
    return std::accumulate(row.begin(), row.end(), 0.0);
}

double column_mean(std::vector<double> column) {
    return std::accumulate(column.begin(), column.end(), 0.0) / static_cast<double>(column.size());
}

table add_total_column(table t) {
    t.columns.push_back("total");
    for (auto& row : t.rows) {
        row.push_back(std::accumulate(row.begin(), row.end(), 0.0));
    }
    return t;
}

void table_in_parallel() {
    heading("A table by rows, by columns and whole, in parallel",
            "Pool.map over DataFrame rows / columns / chunks");
    std::mt19937 gen(7);
    std::uniform_int_distribution<int> value(0, 100);
    table df{{"a", "b", "c", "d"}, std::vector<std::vector<double>>(2000, std::vector<double>(4))};
    for (auto& row : df.rows) {
        for (auto& x : row) {
            x = value(gen);
        }
    }
    std::vector<std::vector<double>> columns(df.columns.size());
    for (const auto& row : df.rows) {
        for (std::size_t c = 0; c < row.size(); ++c) {
            columns[c].push_back(row[c]);
        }
    }
    corio::process_pool pool(2);
    const auto sums = pool.map(row_sum, df.rows);         // by row
    const auto means = pool.map(column_mean, columns, 1); // by column
    std::vector<table> chunks;                            // whole, in chunks of rows
    for (std::size_t b = 0; b < df.rows.size(); b += 500) {
        chunks.push_back(table{df.columns,
                               {df.rows.begin() + static_cast<std::ptrdiff_t>(b),
                                df.rows.begin() + static_cast<std::ptrdiff_t>(b + 500)}});
    }
    table whole{{}, {}};
    for (auto& part : pool.map(add_total_column, chunks, 1)) {
        whole.columns = part.columns;
        whole.rows.insert(whole.rows.end(), part.rows.begin(), part.rows.end());
    }
    fmt::print("   {} rows x {} columns: row sums[0] = {}, column means = {:.2f}\n", df.rows.size(),
               df.columns.size(), sums[0], fmt::join(means, " "));
    fmt::print("   whole table in {} chunks: columns now {}\n", chunks.size(),
               fmt::join(whole.columns, ","));
    std::vector<double> serial_sums;
    for (const auto& row : df.rows) {
        serial_sums.push_back(row_sum(row));
    }
    check(sums == serial_sums, "row sums equal serial");
    check(means[2] == column_mean(columns[2]), "column means equal serial");
    check(whole == add_total_column(df), "the whole table equals serial");
}

// ---------------------------------------------------------------------------------
// 10. The Redis pool: RQ's place in the walkthrough.

#if CORIO_TOUR_REDIS
int cube(int x) {
    return x * x * x;
}
CORIO_REMOTE(cube); // registered by name in the client and in the workers

// A worker process: serves the queue until SIGTERM (graceful), then returns.
void serve_jobs(std::string url) {
    corio::redis_worker worker(url, {.concurrency = 2, .use_processes = false});
    worker.run();
}
#endif

void redis() {
    heading("The Redis pool against a private redis-server", "RQ: Redis Queue");
#if CORIO_TOUR_REDIS
    std::optional<corio_example::redis_server> server;
    try {
        server.emplace(corio_example::redis_server_options{.unix_socket = true});
    } catch (const std::exception& e) {
        fmt::print("   skipped: no private redis-server could start ({}; apt-get install "
                   "redis-server)\n",
                   e.what());
        return;
    }
    std::vector<corio::process> workers;
    for (int i = 0; i < 2; ++i) {
        workers.emplace_back(serve_jobs, server->url());
        workers.back().start();
    }
    std::vector<int> xs(100);
    std::iota(xs.begin(), xs.end(), 1);
    std::vector<int> cubes;
    int one = 0;
    {
        corio::redis_pool pool(server->url()); // Queue(connection=Redis(...))
        auto job = pool.apply_async(cube, 7);  // q.enqueue(cube, 7)
        cubes = pool.map(cube, xs, 10);        // jobs of 10 items each
        one = job.get();                       // job.result
    }
    long long sum = 0;
    for (int c : cubes) {
        sum += c;
    }
    fmt::print("   {} on {}, 2 worker processes\n", "redis-server", server->url());
    fmt::print("   apply_async(cube, 7) = {}; map(cube, 1..100) sums to {}\n", one, sum);
    std::vector<corio::exit_status> statuses;
    for (auto& w : workers) {
        w.terminate(); // SIGTERM: finish running jobs, hand back the rest, return
        w.join();
        statuses.emplace_back(w.exitcode());
    }
    fmt::print("   workers stopped with SIGTERM: {}\n", fmt::join(statuses, ", "));
    check(one == 343 && sum == 25502500, "the Redis pool's results");
    check(std::all_of(workers.begin(), workers.end(), [](auto& w) { return w.exitcode() == 0; }),
          "the workers stop gracefully");
#else
    // CMake defines CORIO_TOUR_REDIS when corio's Redis module is built (hiredis found
    // and CORIO_REDIS on).
    fmt::print("   skipped: this corio was built without its Redis module "
               "(libhiredis-dev not found, or -DCORIO_REDIS=OFF)\n");
#endif
}

} // namespace

int main() {
    corio::init(); // the process pools' fork server, while the program has one thread
    const auto t0 = clock_type::now();
    fmt::print("corio tour: asyncio and multiprocessing for C++20\n");
    processes();
    threads();
    generator_coroutine();
    event_loop();
    heading("Chained coroutines", "await part1(), then part2()");
    corio::run(chains());
    heading("Producers and consumers on a queue", "asyncio.Queue");
    corio::run(producers_consumers());
    heading("An async generator with a comprehension", "async for, async comprehensions");
    corio::run(comprehension());
    pools();
    table_in_parallel();
    redis();
    fmt::print("\ntour finished in {:.2f} s: {}\n", since(t0),
               failures == 0 ? "every check passed" : fmt::format("{} checks FAILED", failures));
    return failures == 0 ? 0 : 1;
}
