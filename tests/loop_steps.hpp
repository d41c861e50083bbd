#pragma once
// Loop-driving helpers shared by the I/O tests: order by loop iterations, never by
// sleeping.

#include <corio/combinators.hpp>
#include <corio/sleep.hpp>
#include <corio/task.hpp>

#include <chrono>
#include <utility>

namespace corio_test {

// Two loop iterations: one runs a task just created (it prepares its SQE), the
// next submits that SQE to the kernel. After this, an operation another task
// started is in flight in the kernel.
inline corio::task<> in_kernel() {
    for (int i = 0; i < 3; ++i) {
        co_await corio::yield_now();
    }
}

// Yields until `done()` holds; a condition that never comes fails the test with
// timeout_error instead of hanging it.
template <class Pred>
corio::task<> yield_until(Pred done) {
    auto spin = [](Pred p) -> corio::task<> {
        while (!p()) {
            co_await corio::yield_now();
        }
    };
    co_await corio::wait_for(spin(std::move(done)), std::chrono::seconds(10));
}

} // namespace corio_test
