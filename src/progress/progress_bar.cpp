// corio::progress_bar: counts, rate and ETA of a pool's map, drawn on a stream.
#include <corio/error.hpp>
#include <corio/progress_bar.hpp>

#include <fmt/format.h>

#include <unistd.h>

#include <iostream>
#include <mutex>
#include <ostream>
#include <utility>

namespace corio {

namespace {

using clock_type = std::chrono::steady_clock;

std::string format_rate(double per_second) {
    if (per_second >= 1e6) {
        return fmt::format("{:.2f}M", per_second / 1e6);
    }
    if (per_second >= 1e4) {
        return fmt::format("{:.1f}k", per_second / 1e3);
    }
    return fmt::format("{:.1f}", per_second);
}

std::string format_seconds(double s, int decimals) {
    if (s < 60) {
        return fmt::format("{:.{}f} s", s, decimals);
    }
    const auto whole = static_cast<long long>(s + 0.5);
    if (whole < 3600) {
        return fmt::format("{}m{:02}s", whole / 60, whole % 60);
    }
    return fmt::format("{}h{:02}m", whole / 3600, whole % 3600 / 60);
}

bool stderr_is_terminal(const std::ostream* out) {
    return (out == &std::cerr || out == &std::clog) && ::isatty(STDERR_FILENO) == 1;
}

} // namespace

struct progress_bar::state {
    std::string label;
    progress_bar_options options;
    bool redraw = false;

    std::mutex mutex;
    clock_type::time_point start{}; // of the current run
    std::size_t baseline = 0;       // items already done when the run's clock started
    std::size_t done = 0;
    std::size_t total = 0;
    bool run_finished = false;
    bool drawn = false;          // redraw: something of this run is on screen
    std::size_t last_length = 0; // redraw: length of the line on screen
    clock_type::time_point last_draw{};
    std::size_t finished_runs = 0;

    clock_type::time_point now() const {
        return options.clock ? options.clock() : clock_type::now();
    }

    void start_run(clock_type::time_point at, std::size_t from) {
        start = at;
        baseline = from;
        done = from;
        total = 0;
        run_finished = false;
        drawn = false; // last_length stays: an unfinished line may still be on screen
    }

    std::string render(clock_type::time_point at) const {
        const double elapsed = std::chrono::duration<double>(at - start).count();
        const std::size_t counted = done - baseline;
        const bool have_rate = elapsed > 0 && counted > 0;
        const double rate = have_rate ? static_cast<double>(counted) / elapsed : 0.0;
        const std::string rate_text = have_rate
                                          ? fmt::format("{} {}/s", format_rate(rate), options.unit)
                                          : fmt::format("- {}/s", options.unit);
        if (run_finished && !redraw) {
            return fmt::format("{}{}{}/{} {} in {} ({})", label, label.empty() ? "" : ": ", done,
                               total, options.unit, format_seconds(elapsed, 2), rate_text);
        }
        std::string line = label;
        if (!line.empty()) {
            line += ' ';
        }
        if (options.width > 0) {
            const std::size_t filled = total == 0 ? 0 : done * options.width / total;
            line += '[';
            line.append(filled, '#');
            line.append(options.width - filled, '.');
            line += "] ";
        }
        const std::size_t percent = total == 0 ? 0 : done * 100 / total;
        line += fmt::format("{}/{} {:3}%  {}", done, total, percent, rate_text);
        if (run_finished) {
            line += fmt::format("  in {}", format_seconds(elapsed, 2));
        } else if (have_rate) {
            line += fmt::format("  ETA {}",
                                format_seconds(static_cast<double>(total - done) / rate, 1));
        }
        return line;
    }

    // Draws the current state (redraw style): back to the line's start, the new
    // text, spaces over what is left of a longer previous line.
    void draw(std::ostream& out, clock_type::time_point at) {
        std::string line = render(at);
        std::string text = "\r" + line;
        if (line.size() < last_length) {
            text.append(last_length - line.size(), ' ');
        }
        if (run_finished) {
            text += '\n';
        }
        out << text << std::flush;
        last_length = run_finished ? 0 : line.size(); // a newline ended a finished line
        last_draw = at;
        drawn = true;
    }
};

progress_bar::progress_bar(std::string label, progress_bar_options options)
    : state_(std::make_shared<state>()) {
    if (options.width > 200) {
        throw error(fmt::format("corio::progress_bar: width {} is over 200", options.width));
    }
    if (options.redraw_interval.count() < 0) {
        throw error("corio::progress_bar: redraw_interval is negative");
    }
    state_->label = std::move(label);
    state_->options = std::move(options);
    switch (state_->options.style) {
    case progress_style::redraw:
        state_->redraw = true;
        break;
    case progress_style::final_line:
        state_->redraw = false;
        break;
    case progress_style::automatic:
        state_->redraw =
            stderr_is_terminal(state_->options.out != nullptr ? state_->options.out : &std::cerr);
        break;
    }
    state_->start_run(state_->now(), 0);
}

void progress_bar::operator()(std::size_t done, std::size_t total) const {
    if (done > total) {
        throw error(
            fmt::format("corio::progress_bar: {} items done of a total of {}", done, total));
    }
    state& s = *state_;
    std::ostream& out = s.options.out != nullptr ? *s.options.out : std::cerr;
    std::lock_guard lock(s.mutex);
    const auto at = s.now();
    const bool new_run = s.run_finished || (s.total != 0 && total != s.total) || done < s.done;
    if (new_run) {
        // A later map through the same pool: its clock starts at its first report.
        s.start_run(at, done);
    }
    s.done = done;
    s.total = total;
    if (done == total) {
        s.run_finished = true;
        ++s.finished_runs;
    }
    if (s.redraw) {
        if (!s.drawn || s.run_finished || at - s.last_draw >= s.options.redraw_interval) {
            s.draw(out, at);
        }
    } else if (s.run_finished) {
        out << s.render(at) << '\n' << std::flush;
    }
}

void progress_bar::restart() const {
    std::lock_guard lock(state_->mutex);
    state_->start_run(state_->now(), 0);
}

bool progress_bar::redraws() const noexcept {
    return state_->redraw;
}

std::size_t progress_bar::done() const {
    std::lock_guard lock(state_->mutex);
    return state_->done;
}

std::size_t progress_bar::total() const {
    std::lock_guard lock(state_->mutex);
    return state_->total;
}

std::size_t progress_bar::finished_runs() const {
    std::lock_guard lock(state_->mutex);
    return state_->finished_runs;
}

std::string progress_bar::line() const {
    std::lock_guard lock(state_->mutex);
    return state_->render(state_->now());
}

} // namespace corio
