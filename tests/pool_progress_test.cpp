// corio::progress_bar, the pools' ready on_progress: drawing, timing, runs, errors,
// and the bar driven by real thread and process pools.
#include <corio/error.hpp>
#include <corio/init.hpp>
#include <corio/pool.hpp>
#include <corio/process_pool.hpp>
#include <corio/progress_bar.hpp>
#include <corio/thread_pool.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <numeric>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// The fork server starts before Catch2's main(), while the process is single-threaded
// (some tests start threads): the equivalent of corio::init() first in main().
const bool fork_server_started = [] {
    corio::init();
    return true;
}();

/// A clock the test moves by hand.
struct manual_clock {
    std::chrono::steady_clock::time_point now{std::chrono::steady_clock::time_point{} + 1h};
    std::function<std::chrono::steady_clock::time_point()> fn() {
        return [this] { return now; };
    }
};

std::size_t count_of(const std::string& text, char c) {
    return static_cast<std::size_t>(std::count(text.begin(), text.end(), c));
}

int square(int x) {
    return x * x;
}

} // namespace

TEST_CASE("the final-line style writes nothing until the total, then one summary line",
          "[progress_bar]") {
    manual_clock clock;
    std::ostringstream out;
    corio::progress_bar bar(
        "squares", {.out = &out, .style = corio::progress_style::final_line, .clock = clock.fn()});
    REQUIRE_FALSE(bar.redraws());
    clock.now += 1s;
    bar(10, 40);
    clock.now += 1s;
    bar(30, 40);
    CHECK(out.str().empty());
    CHECK(bar.done() == 30);
    CHECK(bar.total() == 40);
    clock.now += 2s;
    bar(40, 40);
    CHECK(out.str() == "squares: 40/40 items in 4.00 s (10.0 items/s)\n");
    CHECK(bar.finished_runs() == 1);
}

TEST_CASE("the redraw style redraws in place, at most once per interval, and ends the line",
          "[progress_bar]") {
    manual_clock clock;
    std::ostringstream out;
    corio::progress_bar bar("rows", {.out = &out,
                                     .style = corio::progress_style::redraw,
                                     .unit = "rows",
                                     .redraw_interval = 100ms,
                                     .width = 10,
                                     .clock = clock.fn()});
    REQUIRE(bar.redraws());
    clock.now += 1s;
    bar(10, 100); // first call: always drawn
    CHECK(out.str() == "\rrows [#.........] 10/100  10%  10.0 rows/s  ETA 9.0 s");
    clock.now += 50ms;
    bar(20, 100); // within the interval: not drawn
    CHECK(count_of(out.str(), '\r') == 1);
    CHECK(bar.done() == 20);
    clock.now += 950ms; // 2 s in, 50 done: 25/s, 50 left: 2.0 s
    bar(50, 100);
    CHECK(count_of(out.str(), '\r') == 2);
    CHECK(out.str().find("\rrows [#####.....] 50/100  50%  25.0 rows/s  ETA 2.0 s") !=
          std::string::npos);
    clock.now += 20ms;
    bar(100, 100); // the final state is drawn even within the interval, with a newline
    const std::string text = out.str();
    CHECK(count_of(text, '\r') == 3);
    CHECK(text.substr(text.rfind('\r')) ==
          "\rrows [##########] 100/100 100%  49.5 rows/s  in 2.02 s\n");
    CHECK(count_of(text, '\n') == 1);
}

TEST_CASE("a shorter redraw covers the rest of the longer line before it", "[progress_bar]") {
    manual_clock clock;
    std::ostringstream out;
    corio::progress_bar bar("", {.out = &out,
                                 .style = corio::progress_style::redraw,
                                 .redraw_interval = 0ms,
                                 .width = 0,
                                 .clock = clock.fn()});
    clock.now += 100s;
    bar(99990, 100000); // long counts, rate and ETA
    CHECK(out.str() == "\r99990/100000  99%  999.9 items/s  ETA 0.0 s");
    const std::size_t first = out.str().size() - 1;
    out.str("");
    bar(5, 10); // a new total: a new run, no rate or ETA yet, a shorter line
    const std::string second = out.str();
    CHECK(second.rfind("\r5/10  50%  - items/s ", 0) == 0);
    CHECK(second.size() - 1 == first);
    CHECK(second.find_first_not_of(' ', std::string("\r5/10  50%  - items/s").size()) ==
          std::string::npos);
}

TEST_CASE("width 0 draws counts only; rates and durations use readable units", "[progress_bar]") {
    manual_clock clock;
    std::ostringstream out;
    corio::progress_bar bar(
        "", {.out = &out, .style = corio::progress_style::redraw, .width = 0, .clock = clock.fn()});
    clock.now += 2s;
    bar(50000, 10000000); // 25k/s, 9,950,000 left: 398 s = 6m38s
    CHECK(out.str() == "\r50000/10000000   0%  25.0k items/s  ETA 6m38s");
    out.str("");
    corio::progress_bar fast(
        "", {.out = &out, .style = corio::progress_style::final_line, .clock = clock.fn()});
    clock.now += 4000s;
    fast(5000000000, 5000000000); // 1.25M/s over 1h06m40s
    CHECK(out.str() == "5000000000/5000000000 items in 1h06m (1.25M items/s)\n");
}

TEST_CASE("bad input throws a clear corio::error and draws nothing", "[progress_bar][error]") {
    std::ostringstream out;
    corio::progress_bar bar("x", {.out = &out, .style = corio::progress_style::redraw});
    CHECK_THROWS_WITH(bar(5, 3), "corio::progress_bar: 5 items done of a total of 3");
    CHECK_THROWS_AS(bar(5, 3), corio::error);
    CHECK(out.str().empty());
    CHECK(bar.total() == 0);
    CHECK_THROWS_WITH(corio::progress_bar("w", {.width = 201}),
                      "corio::progress_bar: width 201 is over 200");
    CHECK_THROWS_AS(corio::progress_bar("i", {.redraw_interval = -1ms}), corio::error);
    CHECK_NOTHROW(corio::progress_bar("w", {.width = 200}));
}

TEST_CASE("a failed stream does not make the bar throw", "[progress_bar][error]") {
    std::ostringstream out;
    out.setstate(std::ios::badbit);
    corio::progress_bar bar("x", {.out = &out, .style = corio::progress_style::redraw});
    CHECK_NOTHROW(bar(1, 2));
    CHECK_NOTHROW(bar(2, 2));
    CHECK(bar.finished_runs() == 1);
}

TEST_CASE("automatic style draws one final line on a stream that is not a terminal",
          "[progress_bar]") {
    std::ostringstream out;
    corio::progress_bar bar("auto", {.out = &out});
    CHECK_FALSE(bar.redraws());
    bar(1, 2);
    CHECK(out.str().empty());
    bar(2, 2);
    CHECK(out.str().rfind("auto: 2/2 items in ", 0) == 0);
}

TEST_CASE("a new run starts after a finished one, on a new total, a count going back, or "
          "restart()",
          "[progress_bar]") {
    manual_clock clock;
    std::ostringstream out;
    corio::progress_bar bar(
        "", {.out = &out, .style = corio::progress_style::final_line, .clock = clock.fn()});
    clock.now += 1s;
    bar(4, 4);
    CHECK(out.str() == "4/4 items in 1.00 s (4.0 items/s)\n");
    // The next map's clock starts at its first report: 6 more items in 2 s.
    out.str("");
    clock.now += 10s; // idle time between the maps is not counted
    bar(2, 8);
    clock.now += 2s;
    bar(8, 8);
    CHECK(out.str() == "8/8 items in 2.00 s (3.0 items/s)\n");
    CHECK(bar.finished_runs() == 2);

    bar(3, 5); // a different total: a new run
    CHECK(bar.total() == 5);
    bar(1, 5); // going back: a new run again
    CHECK(bar.done() == 1);

    out.str("");
    bar.restart();
    CHECK(bar.done() == 0);
    CHECK(bar.total() == 0);
    clock.now += 500ms;
    bar(5, 5);
    CHECK(out.str() == "5/5 items in 0.50 s (10.0 items/s)\n");
}

TEST_CASE("copies share one state; line() shows the current state", "[progress_bar]") {
    manual_clock clock;
    std::ostringstream out;
    corio::progress_bar bar(
        "c",
        {.out = &out, .style = corio::progress_style::final_line, .width = 4, .clock = clock.fn()});
    const corio::progress_bar copy = bar; // NOLINT: the copy is the point
    clock.now += 1s;
    copy(2, 4);
    CHECK(bar.done() == 2);
    CHECK(bar.line() == "c [##..] 2/4  50%  2.0 items/s  ETA 1.0 s");
}

TEST_CASE("calls from several threads are serialized: one final line per finished run",
          "[progress_bar][threads]") {
    std::ostringstream out;
    corio::progress_bar bar("t", {.out = &out, .style = corio::progress_style::final_line});
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([bar] {
            for (std::size_t i = 1; i <= 500; ++i) {
                bar(i % 11, 10 + i % 2);
                (void)bar.line();
            }
        });
    }
    for (auto& th : threads) {
        th.join();
    }
    CHECK(bar.finished_runs() > 0);
    CHECK(count_of(out.str(), '\n') == bar.finished_runs());
}

TEST_CASE("a thread pool's map reports through the bar: one final line with the total",
          "[progress_bar][thread_pool]") {
    std::ostringstream out;
    corio::progress_bar bar("map", {.out = &out, .style = corio::progress_style::final_line});
    std::vector<int> xs(1000);
    std::iota(xs.begin(), xs.end(), 0);
    std::vector<int> results;
    {
        corio::thread_pool pool(2, {.on_progress = bar});
        results = pool.map(square, xs, 10);
        CHECK(bar.finished_runs() == 1); // reported before map returned
        // A second map through the same pool is a second run.
        auto again = pool.starmap_async([](int a, int b) { return a + b; },
                                        std::vector<std::tuple<int, int>>(50, {1, 2}), 5);
        CHECK(again.get() == std::vector<int>(50, 3));
    }
    CHECK(results[999] == 999 * 999);
    CHECK(bar.finished_runs() == 2);
    CHECK(bar.done() == 50);
    const std::string text = out.str();
    CHECK(count_of(text, '\n') == 2);
    CHECK(text.rfind("map: 1000/1000 items in ", 0) == 0);
    CHECK(text.find("\nmap: 50/50 items in ") != std::string::npos);
}

TEST_CASE("a process pool's map reports through the bar in the calling process",
          "[progress_bar][process_pool]") {
    REQUIRE(fork_server_started);
    std::ostringstream out;
    corio::progress_bar bar("procs",
                            {.out = &out, .style = corio::progress_style::redraw, .width = 8});
    std::vector<int> xs(200);
    std::iota(xs.begin(), xs.end(), 1);
    corio::process_pool pool(2, {.on_progress = bar});
    const auto results = pool.map(square, xs, 20);
    CHECK(results.back() == 200 * 200);
    CHECK(bar.done() == 200);
    const std::string text = out.str();
    CHECK(text.find("procs [########] 200/200 100%") != std::string::npos);
    CHECK(text.back() == '\n');
    CHECK(count_of(text, '\n') == 1);
}
