#pragma once
/// \file progress_bar.hpp
/// `corio::progress_bar`: a ready `pool_options::on_progress` for the pools' `map`,
/// `map_async`, `starmap` and `starmap_async`. It shows the count, the rate and the
/// time left; on a terminal it redraws one line on stderr, elsewhere (a log file, a
/// pipe, CI) it writes a single line when the map is done.
///
/// ```cpp
/// corio::thread_pool pool(4, {.on_progress = corio::progress_bar("primes")});
/// auto counts = pool.map(count_primes, starts);
/// // on a terminal, redrawn in place:
/// // primes [###########...................]  37/100  37%  41.2 items/s  ETA 1.5 s
/// // anywhere else, once at the end:
/// // primes: 100/100 items in 2.43 s (41.2 items/s)
/// ```

#include <chrono>
#include <cstddef>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>

namespace corio {

/// How a `progress_bar` draws.
enum class progress_style {
    automatic,  ///< `redraw` when the output is stderr and stderr is a terminal, else `final_line`
    redraw,     ///< one line redrawn in place (carriage return), ended by a newline when done
    final_line, ///< nothing until the total is reached, then one summary line
};

/// Options of a `progress_bar`, an aggregate:
/// `progress_bar("rows", {.unit = "rows", .redraw_interval = 50ms})`.
/// **Thread safety:** a plain value.
struct progress_bar_options {
    /// Where to draw; nullptr means `std::cerr`. The stream must outlive the bar and
    /// every copy of it (the pool keeps a copy until it is destroyed).
    std::ostream* out = nullptr;
    /// How to draw (see `progress_style`).
    progress_style style = progress_style::automatic;
    /// What is counted, as shown after the rate ("items/s").
    std::string unit = "items";
    /// `redraw` style: the least time between two redraws (the first call and the
    /// final one are always drawn).
    std::chrono::milliseconds redraw_interval{100};
    /// Width of the bar in characters, 0 to 200 (0 draws counts only).
    std::size_t width = 30;
    /// The clock; empty means `std::chrono::steady_clock::now` (tests inject theirs).
    std::function<std::chrono::steady_clock::time_point()> clock{};
};

/// A progress display for `pool_options::on_progress`: call it with
/// `(done, total)`. Copies share one state (the pool copies its options), so the
/// bar passed to a pool can still be queried through the original.
///
/// A run starts when the bar is made or `restart()`ed; a call after a finished run
/// (done == total), or one whose total differs from the current run's, or whose
/// count went backwards, starts a new run timed from that call. Give each map
/// running at the same time its own bar (and pool).
///
/// **Thread safety:** any thread; calls are serialized by an internal mutex.
class progress_bar {
public:
    /// A bar labelled `label` (may be empty). Throws `corio::error` if
    /// `options.width` is over 200 or `options.redraw_interval` is negative.
    explicit progress_bar(std::string label = {}, progress_bar_options options = {});

    /// Records that `done` of `total` items are finished and draws as the style says.
    /// Throws `corio::error` if `done > total` (nothing is drawn then). Errors of the
    /// stream itself are not reported (a closed stderr must not fail a map).
    void operator()(std::size_t done, std::size_t total) const;

    /// Starts a new run now: counts from zero, rate and ETA timed from here.
    void restart() const;

    /// True if this bar redraws in place (the `redraw` style, or `automatic` on a
    /// terminal stderr).
    [[nodiscard]] bool redraws() const noexcept;
    /// Items done in the current run, as last reported.
    [[nodiscard]] std::size_t done() const;
    /// Total of the current run, as last reported (0 before the first call).
    [[nodiscard]] std::size_t total() const;
    /// Number of runs that reached their total.
    [[nodiscard]] std::size_t finished_runs() const;
    /// The text the bar would draw for the current state (without the leading
    /// carriage return or the trailing newline).
    [[nodiscard]] std::string line() const;

private:
    struct state;
    std::shared_ptr<state> state_;
};

} // namespace corio
