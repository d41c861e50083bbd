// gather_timeouts: a batch of simulated requests with random latencies.
//
//   1. gather: every request runs concurrently; results come back in request order.
//   2. wait_for + gather_settled: each request gets a deadline; the settled outcomes
//      tell which ones timed out, without one timeout failing the batch.
//   3. task_group: one request fails; its siblings are cancelled (and clean up), and
//      join() rethrows the failure.
//
// Exits 0 when every step behaved as described.

#include <corio/corio.hpp>

#include <fmt/format.h>

#include <chrono>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct request_spec {
    int id;
    std::chrono::milliseconds latency;
};

/// A simulated request: answers after `latency`.
corio::task<std::string> fetch(request_spec r) {
    co_await corio::sleep(r.latency);
    co_return fmt::format("response #{} after {} ms", r.id, r.latency.count());
}

/// A request that fails after `latency`.
corio::task<std::string> fetch_broken(request_spec r) {
    co_await corio::sleep(r.latency);
    throw std::runtime_error(fmt::format("request #{} failed: connection reset", r.id));
}

/// A request that notes when it was cancelled.
corio::task<std::string> fetch_noting_cancel(request_spec r, int* cancelled) {
    try {
        co_await corio::sleep(r.latency);
    } catch (const corio::cancelled_error&) {
        ++*cancelled;
        throw;
    }
    co_return fmt::format("response #{}", r.id);
}

std::vector<request_spec> make_batch(std::mt19937& rng, int n) {
    // Latencies are either clearly under or clearly over the 100 ms deadline below.
    std::uniform_int_distribution<int> fast(5, 50);
    std::uniform_int_distribution<int> slow(200, 300);
    std::bernoulli_distribution is_slow(0.3);
    std::vector<request_spec> batch;
    for (int i = 0; i < n; ++i) {
        batch.push_back({i, std::chrono::milliseconds(is_slow(rng) ? slow(rng) : fast(rng))});
    }
    batch[1].latency = 250ms; // at least one slow request
    return batch;
}

corio::task<int> demo() {
    std::mt19937 rng(std::random_device{}());
    std::vector<request_spec> batch = make_batch(rng, 8);
    int failures = 0;

    // 1. gather: all concurrently, results in request order.
    fmt::print("-- gather {} requests\n", batch.size());
    auto start = corio::get_running_loop().time();
    std::vector<corio::task<std::string>> requests;
    for (const auto& r : batch) {
        requests.push_back(fetch(r));
    }
    std::vector<std::string> responses = co_await corio::gather(std::move(requests));
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
        corio::get_running_loop().time() - start);
    for (const auto& s : responses) {
        fmt::print("   {}\n", s);
    }
    fmt::print("   all {} in {} ms (concurrently, not one after another)\n", responses.size(),
               took.count());

    // 2. a 100 ms deadline per request; gather_settled reports each outcome.
    fmt::print("-- the same batch with a 100 ms deadline per request\n");
    std::vector<corio::task<std::string>> deadlined;
    for (const auto& r : batch) {
        deadlined.push_back(corio::wait_for(fetch(r), 100ms));
    }
    auto outcomes = co_await corio::gather_settled(std::move(deadlined));
    for (std::size_t i = 0; i < outcomes.size(); ++i) {
        const bool expect_timeout = batch[i].latency > 100ms;
        try {
            fmt::print("   #{}: {}\n", i, outcomes[i].value());
            failures += expect_timeout ? 1 : 0;
        } catch (const corio::timeout_error&) {
            fmt::print("   #{}: timed out ({} ms latency)\n", i, batch[i].latency.count());
            failures += expect_timeout ? 0 : 1;
        }
    }

    // 3. a task group in which one request fails: the others are cancelled.
    fmt::print("-- a task_group where request #2 fails\n");
    int cancelled = 0;
    try {
        corio::task_group group;
        for (int i = 0; i < 5; ++i) {
            if (i == 2) {
                group.spawn(fetch_broken({i, 20ms}));
            } else {
                group.spawn(fetch_noting_cancel({i, 500ms}, &cancelled));
            }
        }
        co_await group.join();
        fmt::print("   unexpected: the group succeeded\n");
        ++failures;
    } catch (const std::runtime_error& e) {
        fmt::print("   join() rethrew: {}\n", e.what());
        fmt::print("   {} sibling requests were cancelled before join() returned\n", cancelled);
        failures += cancelled == 4 ? 0 : 1;
    }
    co_return failures;
}

} // namespace

int main() {
    const int failures = corio::run(demo());
    if (failures != 0) {
        fmt::print(stderr, "gather_timeouts: {} unexpected result(s)\n", failures);
        return 1;
    }
    return 0;
}
