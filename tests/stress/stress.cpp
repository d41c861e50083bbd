// The stress suite (ctest label `stress`; built with -DCORIO_STRESS=ON, run in the
// Release build by .ci/run). Every case is bounded: it stops by itself after a fixed
// amount of work or time, and a watchdog aborts it if it hangs. Figures go to
// stdout ("stress: ...") for the CI log.
//
// The fork server is started before Catch2's main (process pool case), as
// tests/process_pool_test.cpp does: test cases start threads.
#include <corio/corio.hpp>
#include <corio/process_error.hpp>
#include <corio/process_pool.hpp>
#include <corio/thread_pool.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

const bool fork_server_started = [] {
    corio::init();
    return true;
}();

class watchdog {
public:
    watchdog(const char* what, std::chrono::seconds limit) : what_(what) {
        thread_ = std::thread([this, limit] {
            std::unique_lock lock(mutex_);
            if (!cv_.wait_for(lock, limit, [this] { return done_; })) {
                std::fprintf(stderr, "stress watchdog: %s did not finish in time\n", what_);
                std::abort();
            }
        });
    }
    watchdog(const watchdog&) = delete;
    watchdog& operator=(const watchdog&) = delete;
    ~watchdog() {
        {
            std::lock_guard lock(mutex_);
            done_ = true;
        }
        cv_.notify_one();
        thread_.join();
    }

private:
    const char* what_;
    std::mutex mutex_;
    std::condition_variable cv_;
    bool done_ = false;
    std::thread thread_;
};

long resident_kib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) {
            return std::stol(line.substr(6));
        }
    }
    return -1;
}

double seconds_since(steady::time_point t) {
    return std::chrono::duration<double>(steady::now() - t).count();
}

} // namespace

TEST_CASE("stress: 10,000,000 timers created and cancelled with flat memory", "[stress][timers]") {
    watchdog dog("10M timers", 300s);
    constexpr int total = 10'000'000;
    constexpr int batch = 100'000;
    const auto start = steady::now();
    std::vector<long> rss;
    corio::event_loop loop;
    int fired = 0;
    std::vector<corio::timer_handle> handles;
    handles.reserve(batch);
    for (int done = 0; done < total; done += batch) {
        for (int i = 0; i < batch; ++i) {
            handles.push_back(
                loop.call_later(std::chrono::seconds(60 + i % 600), [&fired] { ++fired; }));
        }
        // Cancel in an order unlike creation, so the heap removes from its middle.
        for (int i = 0; i < batch; i += 2) {
            handles[static_cast<std::size_t>(i)].cancel();
        }
        for (int i = 1; i < batch; i += 2) {
            handles[static_cast<std::size_t>(i)].cancel();
        }
        handles.clear();
        REQUIRE(loop.timer_count() == 0);
        rss.push_back(resident_kib());
    }
    loop.close();
    CHECK(fired == 0);
    // Flat: after the first tenth (warm-up), no sample exceeds the warm-up's peak
    // by more than 8 MiB.
    const long warm =
        *std::max_element(rss.begin(), rss.begin() + static_cast<long>(rss.size() / 10));
    const long later =
        *std::max_element(rss.begin() + static_cast<long>(rss.size() / 10), rss.end());
    std::printf("stress: timers: %d created and cancelled in %.1f s; RSS warm-up peak %ld KiB, "
                "later peak %ld KiB, last %ld KiB\n",
                total, seconds_since(start), warm, later, rss.back());
    CHECK(later <= warm + 8 * 1024);
}

namespace {

struct tcp_figures {
    long requests = 0;
    long failures = 0;
    long connected = 0;
};

corio::task<> echo(corio::tcp_stream s) {
    try {
        for (;;) {
            std::string line = co_await s.read_until("\n");
            co_await s.write_all(line);
        }
    } catch (const std::exception&) {
        // the client closed the connection (end of stream) or the server closes
    }
}

corio::task<> client(std::uint16_t port, int id, steady::time_point until, tcp_figures& f) {
    try {
        corio::tcp_stream s = co_await corio::tcp_stream::connect("127.0.0.1", port);
        ++f.connected;
        long n = 0;
        while (steady::now() < until) {
            const std::string request = std::to_string(id) + ":" + std::to_string(n++) + "\n";
            co_await s.write_all(request);
            std::string reply = co_await s.read_until("\n");
            if (reply != request) {
                ++f.failures;
            }
            ++f.requests;
        }
    } catch (const std::exception& e) {
        ++f.failures;
        std::fprintf(stderr, "stress: tcp client %d: %s\n", id, e.what());
    }
}

corio::task<> tcp_load(int clients, std::chrono::seconds duration, tcp_figures& f) {
    corio::server srv =
        co_await corio::start_server(echo, "127.0.0.1", 0, corio::server_options{.backlog = 4096});
    const auto until = steady::now() + duration;
    std::vector<corio::task<>> all;
    all.reserve(static_cast<std::size_t>(clients));
    for (int i = 0; i < clients; ++i) {
        all.push_back(client(srv.local_port(), i, until, f));
    }
    co_await corio::gather(std::move(all));
    srv.close();
    co_await srv.wait_closed();
}

} // namespace

TEST_CASE("stress: 1,000 concurrent TCP clients for 10 s on loopback, no failed request",
          "[stress][tcp]") {
    watchdog dog("1,000 TCP clients", 120s);
    rlimit lim{};
    REQUIRE(::getrlimit(RLIMIT_NOFILE, &lim) == 0);
    if (lim.rlim_cur < 4096 && lim.rlim_max >= 4096) {
        lim.rlim_cur = 4096;
        REQUIRE(::setrlimit(RLIMIT_NOFILE, &lim) == 0);
    }
    tcp_figures f;
    const auto start = steady::now();
    corio::run(tcp_load(1000, 10s, f));
    std::printf("stress: tcp: 1000 clients, %ld connected, %ld requests in %.1f s "
                "(%.0f/s), %ld failed\n",
                f.connected, f.requests, seconds_since(start),
                static_cast<double>(f.requests) / seconds_since(start), f.failures);
    CHECK(f.connected == 1000);
    CHECK(f.failures == 0);
    CHECK(f.requests > 1000);
}

namespace {

struct queue_run {
    corio::queue<int> q{64};
    std::vector<unsigned char> seen;
    long duplicates = 0;
    long cancelled_gets = 0;
    long cancelled_puts = 0;
    long consumers_cancelled = 0;
    int received = 0;
    std::mt19937 rng{12345};
};

corio::task<> producer(queue_run& r, int first, int count) {
    std::uniform_int_distribution<int> coin(0, 15);
    for (int v = first; v < first + count; ++v) {
        for (;;) {
            if (coin(r.rng) == 0) {
                // A put cancelled by an expired deadline inserts nothing: retry it.
                try {
                    co_await corio::wait_for(r.q.put(v), 0s);
                    break;
                } catch (const corio::timeout_error&) {
                    ++r.cancelled_puts;
                }
            } else {
                co_await r.q.put(v);
                break;
            }
        }
    }
}

void take(queue_run& r, int v) {
    if (r.seen[static_cast<std::size_t>(v)]++ != 0) {
        ++r.duplicates;
    }
    ++r.received;
}

corio::task<> consumer(queue_run& r) {
    std::uniform_int_distribution<int> coin(0, 15);
    for (;;) {
        if (coin(r.rng) == 0) {
            try {
                take(r, co_await corio::wait_for(r.q.get(), 0s));
            } catch (const corio::timeout_error&) {
                ++r.cancelled_gets; // a handed item went back to the queue
            }
        } else {
            take(r, co_await r.q.get());
        }
    }
}

corio::task<> queue_stress(queue_run& r, int items) {
    constexpr int producers = 8;
    constexpr int consumers = 8;
    std::vector<corio::future<void>> prod;
    for (int p = 0; p < producers; ++p) {
        prod.push_back(corio::create_task(producer(r, p * (items / producers), items / producers)));
    }
    std::vector<corio::future<void>> cons;
    for (int c = 0; c < consumers; ++c) {
        cons.push_back(corio::create_task(consumer(r)));
    }
    // Chaos: cancel a random consumer now and then and start a replacement.
    std::uniform_int_distribution<int> pick(0, consumers - 1);
    while (r.received < items) {
        for (int i = 0; i < 50; ++i) {
            co_await corio::yield_now();
        }
        auto& victim = cons[static_cast<std::size_t>(pick(r.rng))];
        victim.cancel();
        try {
            co_await victim;
        } catch (const corio::cancelled_error&) {
            ++r.consumers_cancelled;
        }
        victim = corio::create_task(consumer(r));
    }
    for (auto& p : prod) {
        co_await p;
    }
    for (auto& c : cons) {
        c.cancel();
        try {
            co_await c;
        } catch (const corio::cancelled_error&) {
        }
    }
}

} // namespace

TEST_CASE("stress: 1,000,000 queue items, 8 producers, 8 consumers, random cancellations",
          "[stress][queue]") {
    watchdog dog("1M queue items", 300s); // the run itself stops after 120 s
    constexpr int items = 1'000'000;
    queue_run r;
    r.seen.assign(items, 0);
    const auto start = steady::now();
    bool timed_out = false;
    // Bounded: items lost would otherwise keep the consumers waiting for ever.
    corio::run([](queue_run& run, int n, bool& late) -> corio::task<> {
        try {
            co_await corio::wait_for(queue_stress(run, n), 120s);
        } catch (const corio::timeout_error&) {
            late = true;
        }
    }(r, items, timed_out));
    const long missing = std::count(r.seen.begin(), r.seen.end(), 0);
    std::printf("stress: queue: %d items in %.1f s, %ld puts and %ld gets cancelled by "
                "deadline, %ld consumers cancelled; %ld missing, %ld duplicated\n",
                items, seconds_since(start), r.cancelled_puts, r.cancelled_gets,
                r.consumers_cancelled, missing, r.duplicates);
    CHECK_FALSE(timed_out);
    CHECK(missing == 0);
    CHECK(r.duplicates == 0);
    CHECK(r.received == items);
    CHECK(r.q.empty());
}

namespace {
// About 200 us of work per item, so that the map lasts through many kills.
long square(long x) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
    while (std::chrono::steady_clock::now() < until) {
    }
    return x * x;
}
} // namespace

TEST_CASE("stress: process pool map of 100,000 items while a random worker is SIGKILLed every "
          "200 ms",
          "[stress][process_pool]") {
    watchdog dog("process pool map under SIGKILL", 300s);
    constexpr long items = 100'000;
    std::vector<long> input(items);
    for (long i = 0; i < items; ++i) {
        input[static_cast<std::size_t>(i)] = i;
    }
    corio::process_pool pool(4);
    std::atomic<bool> stop{false};
    std::atomic<long> kills{0};
    std::thread killer([&] {
        std::mt19937 rng(7);
        while (!stop.load()) {
            std::this_thread::sleep_for(200ms); // the fault's period, not a wait for a result
            std::vector<pid_t> pids = pool.worker_pids();
            if (!pids.empty() && !stop.load()) {
                const pid_t victim = pids[rng() % pids.size()];
                if (::kill(victim, SIGKILL) == 0) {
                    ++kills;
                }
            }
        }
    });
    const auto start = steady::now();
    long done = 0;
    long broken = 0;
    long wrong = 0;
    long index = 0;
    // Small chunks, so that a kill fails few items.
    std::string stopped_by; // an exception that ended the iteration itself
    try {
        auto results = pool.imap(square, input, 50);
        for (auto it = results.begin(); it != results.end(); ++it, ++index) {
            try {
                if (*it == index * index) {
                    ++done;
                } else {
                    ++wrong;
                }
            } catch (const corio::broken_worker_error&) {
                ++broken;
            }
        }
    } catch (const std::exception& e) {
        stopped_by = e.what();
    }
    stop = true;
    killer.join();
    INFO("iteration ended by: " << stopped_by);
    CHECK(stopped_by.empty());
    std::printf("stress: process pool: %ld items in %.1f s with %ld workers SIGKILLed: %ld done, "
                "%ld failed with broken_worker_error, %ld wrong, %ld unaccounted\n",
                items, seconds_since(start), kills.load(), done, broken, wrong,
                items - done - broken - wrong);
    CHECK(done + broken == items);
    CHECK(wrong == 0);
    CHECK(done > 0);
    pool.close();
    pool.join();
}

namespace {
long triple(long x) {
    return 3 * x;
}
} // namespace

TEST_CASE("stress: thread pool under 8 submitting threads for 10 s", "[stress][thread_pool]") {
    watchdog dog("thread pool under 8 submitters", 120s);
    corio::thread_pool pool(4);
    std::atomic<long> ok{0};
    std::atomic<long> failed{0};
    const auto until = steady::now() + 10s;
    std::vector<std::thread> submitters;
    for (int t = 0; t < 8; ++t) {
        submitters.emplace_back([&, t] {
            long i = t;
            while (steady::now() < until) {
                try {
                    if (i % 3 == 0) {
                        if (pool.apply(triple, i) == 3 * i) {
                            ++ok;
                        } else {
                            ++failed;
                        }
                    } else {
                        std::vector<long> in{i, i + 1, i + 2, i + 3};
                        auto out = pool.map_async(triple, in).get();
                        for (std::size_t k = 0; k < in.size(); ++k) {
                            (out[k] == 3 * in[k] ? ok : failed)++;
                        }
                    }
                } catch (const std::exception& e) {
                    ++failed;
                    std::fprintf(stderr, "stress: thread pool: %s\n", e.what());
                }
                i += 8;
            }
        });
    }
    for (auto& s : submitters) {
        s.join();
    }
    pool.close();
    pool.join();
    std::printf("stress: thread pool: 8 submitters for 10 s: %ld results, %ld failed\n", ok.load(),
                failed.load());
    CHECK(failed == 0);
    CHECK(ok > 0);
}
