// Ctrl+C (SIGINT) in corio::run, as asyncio.run handles it: the first SIGINT cancels
// the main task, which finishes its cleanup (here: it even awaits during cleanup), and
// run() then throws corio::keyboard_interrupt. A second SIGINT would end the program
// at once. The example sends SIGINT to itself so that ctest can run it.
#include <corio/corio.hpp>

#include <csignal>
#include <cstdio>
#include <unistd.h>

#include <chrono>

using namespace std::chrono_literals;

namespace {

bool cleaned_up = false;

corio::task<> serve_forever() {
    std::printf("serving; pressing Ctrl+C...\n");
    std::raise(SIGINT); // as if the user pressed Ctrl+C now
    try {
        for (;;) {
            co_await corio::sleep(1s); // "serving"
        }
    } catch (const corio::cancelled_error&) {
        std::printf("cancelled: cleaning up\n");
    }
    co_await corio::sleep(5ms); // cleanup may await
    cleaned_up = true;
    throw corio::cancelled_error(); // let the cancellation finish the task
}

} // namespace

int main() {
    // run() handles SIGINT when it has its default action (as in a fresh program);
    // make sure it has, whatever the parent set up.
    std::signal(SIGINT, SIG_DFL);
    try {
        corio::run(serve_forever());
    } catch (const corio::keyboard_interrupt& e) {
        std::printf("run threw keyboard_interrupt (%s); cleanup %s\n", e.what(),
                    cleaned_up ? "done" : "MISSING");
        return cleaned_up ? 0 : 1;
    }
    std::printf("run returned without keyboard_interrupt\n");
    return 1;
}
