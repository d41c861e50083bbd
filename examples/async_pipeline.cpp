// An async generator of sensor readings, with an await between items, consumed by
// an async comprehension: keep the plausible readings, convert them, take the
// first few and collect them into a vector.

#include <corio/corio.hpp>

#include <fmt/format.h>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct reading {
    int sensor;
    double celsius;
};

// Produces readings forever, one per millisecond; every fifth one is a glitch.
corio::async_generator<reading> readings(int sensors) {
    for (int i = 0;; ++i) {
        co_await corio::sleep(1ms); // waiting for the hardware
        double value = (i % 5 == 4) ? -999.0 : 18.0 + 0.5 * i;
        co_yield reading{i % sensors, value};
    }
}

corio::task<> run_pipeline() {
    auto report = co_await (
        readings(3) | corio::filter([](const reading& r) { return r.celsius > -273.15; }) |
        corio::transform([](reading r) {
            return fmt::format("sensor {}: {:.1f} F", r.sensor, r.celsius * 9 / 5 + 32);
        }) |
        corio::take(6) | corio::collect());
    for (const std::string& line : report) {
        fmt::print("{}\n", line);
    }
    fmt::print("collected {} readings\n", report.size());
}

} // namespace

int main() {
    corio::run(run_pipeline());
}
