// process_pool: Python Pool semantics (shared with thread_pool), the crash matrix,
// initializers, max_tasks_per_child, large payloads, exceptions, and threads.
//
// Catch2 runs every test case in this one process, and some of them start threads
// (the pools' dispatchers, watchdogs). So the fork server is started by a static
// initializer below, before Catch2's main() runs, while the process is still
// single-threaded: the equivalent of calling corio::init() first thing in main().
#include "pool_semantics.hpp"

#include <corio/corio.hpp>
#include <corio/process.hpp>
#include <corio/process_pool.hpp>
#include <corio/thread_pool.hpp>

#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
namespace ps = pool_semantics;

namespace {

const bool fork_server_started = [] {
    corio::init();
    return true;
}();

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
constexpr bool sanitized = true;
#else
constexpr bool sanitized = false;
#endif
#else
constexpr bool sanitized = false;
#endif

} // namespace

// Every allocation of this program is counted (its workers are forks of it, with
// their own counter): the large-payload test counts bytes instead of timing.
#include "allocation_counter.hpp"

namespace {

using pool_semantics::process_gate;
using pool_semantics::watchdog;

// ---- functions that run in the workers -------------------------------------------

int worker_pid(int) {
    return static_cast<int>(::getpid());
}

int segfault(int x) {
    volatile int* volatile p = nullptr;
    *p = x; // a real invalid write
    return x;
}
int call_abort(int) {
    std::abort();
}
int call_exit_3(int) {
    std::exit(3);
}

// Writes `pid` to `path` atomically (a reader never sees a partial number).
void publish_pid(const std::string& path, pid_t pid) {
    const std::string tmp = path + ".tmp";
    { std::ofstream(tmp) << pid; }
    std::rename(tmp.c_str(), path.c_str());
}

pid_t read_pid(const std::string& path) {
    pid_t pid = 0;
    std::ifstream in(path);
    return in >> pid ? pid : 0;
}

// Item 0 publishes its worker's pid in `<gate>/pid`, announces itself at the gate
// and waits there to be killed; the others return at once.
int publish_pid_then_wait(int x, std::string gate) {
    if (x != 0) {
        return x;
    }
    publish_pid(gate + "/pid", ::getpid());
    process_gate::arrive(gate);
    (void)process_gate::pass(gate); // killed before the gate opens
    return -1;
}

// A gate directory (starts with '/'): publishes the worker's pid, arrives, and waits
// to be killed. Anything else: returns its size.
std::size_t size_or_wait_at_gate(std::string s) {
    if (s.empty() || s[0] != '/') {
        return s.size();
    }
    publish_pid(s + "/pid", ::getpid());
    process_gate::arrive(s);
    (void)process_gate::pass(s); // killed before the gate opens
    return 0;
}

// Forks a child that inherits the worker's end of the pool's socket and keeps it
// open (for at most a minute), publishes the child's pid in `path`, then the worker
// dies: the socket shows no end of file, only the worker's pidfd tells the pool.
int die_while_a_child_holds_the_socket(int, std::string path) {
    const pid_t holder = ::fork();
    if (holder == 0) {
        ::alarm(60);
        for (;;) {
            ::pause();
        }
    }
    publish_pid(path, holder);
    ::kill(::getpid(), SIGKILL);
    return -1;
}

int init_calls = 0; // per worker process
void count_init() {
    ++init_calls;
}
std::tuple<int, int> pid_and_init_calls(int) {
    return {static_cast<int>(::getpid()), init_calls};
}
void throwing_init() {
    throw std::invalid_argument("no configuration file");
}
void crashing_init() {
    std::abort();
}

struct parse_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

int throw_kind(int k) {
    switch (k) {
    case 0:
        throw std::runtime_error("runtime");
    case 1:
        throw std::logic_error("logic");
    case 2:
        throw std::invalid_argument("invalid");
    case 3:
        throw std::domain_error("domain");
    case 4:
        throw std::length_error("length");
    case 5:
        throw std::out_of_range("range");
    case 6:
        throw std::range_error("range error");
    case 7:
        throw std::overflow_error("overflow");
    case 8:
        throw std::underflow_error("underflow");
    case 9:
        throw std::bad_alloc();
    case 10:
        throw parse_error("line 3: unexpected token");
    case 11:
        throw 42;
    case 12:
        throw std::system_error(ENOENT, std::generic_category(), "open config.toml");
    case 13:
        throw corio::timeout_error("took too long");
    default:
        return k;
    }
}

std::vector<std::uint8_t> reverse_bytes(std::vector<std::uint8_t> v) {
    std::reverse(v.begin(), v.end());
    return v;
}
std::string make_text(std::size_t n, char c) {
    return std::string(n, c);
}
std::size_t bytes_allocated_here(int) {
    return bytes_allocated.load();
}

// A result whose serializer crashes half-way through writing it.
struct explosive {
    int value;
};
explosive make_explosive(int v) {
    return {v};
}
// A result whose serializer throws.
struct fragile {
    int value;
};
fragile make_fragile(int v) {
    return {v};
}

// A result without a default constructor (map keeps such results in optional slots
// until the map is complete) that also owns memory.
class labelled {
public:
    explicit labelled(std::string label) : label_(std::move(label)) {}
    const std::string& label() const noexcept { return label_; }

private:
    std::string label_;
};
labelled make_labelled(int v) {
    return labelled(std::string(static_cast<std::size_t>(v % 7), 'a') + std::to_string(v));
}

} // namespace

template <>
struct corio::serializer<labelled> {
    static void write(corio::byte_writer& w, const labelled& l) { corio::serialize(w, l.label()); }
    static labelled read(corio::byte_reader& r) {
        return labelled(corio::deserialize<std::string>(r));
    }
};

template <>
struct corio::serializer<explosive> {
    static void write(corio::byte_writer& w, const explosive& e) {
        w.write_raw(e.value);
        std::abort();
    }
    static explosive read(corio::byte_reader& r) { return {r.read_raw<int>()}; }
};

template <>
struct corio::serializer<fragile> {
    static void write(corio::byte_writer&, const fragile&) {
        throw std::length_error("fragile cannot be encoded");
    }
    static fragile read(corio::byte_reader& r) { return {r.read_raw<int>()}; }
};

static_assert(corio::pool_like<corio::process_pool>);
static_assert(corio::pool_like<corio::thread_pool>);

TEST_CASE("process_pool satisfies pool_like, checked at compile time", "[process_pool][static]") {
    CHECK(fork_server_started);
}

// ---- Python Pool semantics (tests/pool_semantics.hpp) ------------------------------

TEST_CASE("apply returns the value of the call in a worker process", "[process_pool][apply]") {
    ps::apply_returns_the_value_of_the_call<corio::process_pool>();
}
TEST_CASE("an apply_async result is ready and successful after get", "[process_pool][apply]") {
    ps::apply_async_result_is_ready_and_successful_after_get<corio::process_pool>();
}
TEST_CASE("an exception from a worker keeps its type and message", "[process_pool][error]") {
    ps::an_exception_keeps_its_type_and_message<corio::process_pool>();
}
TEST_CASE("a callback runs before its result becomes ready", "[process_pool][callback]") {
    ps::callbacks_run_before_the_result_is_ready<corio::process_pool>();
}
TEST_CASE("callbacks run on one result thread, one at a time", "[process_pool][callback]") {
    ps::callbacks_run_on_one_thread_one_at_a_time<corio::process_pool>();
}
TEST_CASE("the error callback receives the exception of a failed call",
          "[process_pool][callback]") {
    ps::the_error_callback_receives_the_exception<corio::process_pool>();
}
TEST_CASE("a throwing callback fails its result and the pool keeps serving",
          "[process_pool][callback]") {
    ps::a_throwing_callback_fails_the_result_and_the_pool_goes_on<corio::process_pool>();
}
TEST_CASE("map returns results in input order for any chunksize", "[process_pool][map]") {
    ps::map_returns_results_in_input_order<corio::process_pool>();
}
TEST_CASE("map_async calls back with the whole vector", "[process_pool][map][callback]") {
    ps::map_async_calls_back_with_the_whole_vector<corio::process_pool>();
}
TEST_CASE("a map of an empty range is empty at once", "[process_pool][map]") {
    ps::map_of_an_empty_range_is_empty_at_once<corio::process_pool>();
}
TEST_CASE("map fails with an exception of a call", "[process_pool][map][error]") {
    ps::map_fails_with_an_exception_of_a_call<corio::process_pool>();
}
TEST_CASE("a chunksize below one is an error", "[process_pool][map][error]") {
    ps::a_chunksize_below_one_is_an_error<corio::process_pool>();
}
TEST_CASE("starmap unpacks each tuple into the call", "[process_pool][map]") {
    ps::starmap_unpacks_each_tuple<corio::process_pool>();
}
TEST_CASE("imap yields results in input order", "[process_pool][imap]") {
    ps::imap_yields_results_in_input_order<corio::process_pool>();
}
TEST_CASE("imap_unordered yields every result exactly once", "[process_pool][imap]") {
    ps::imap_unordered_yields_every_result_once<corio::process_pool>();
}
TEST_CASE("imap_unordered with one worker yields input order", "[process_pool][imap]") {
    ps::imap_unordered_with_one_worker_yields_input_order<corio::process_pool>();
}
TEST_CASE("imap rethrows at the failing item and the iteration goes on",
          "[process_pool][imap][error]") {
    ps::imap_rethrows_at_the_failing_item_and_goes_on<corio::process_pool>();
}
TEST_CASE("calls after close throw pool_not_running", "[process_pool][close]") {
    ps::calls_after_close_throw_pool_not_running<corio::process_pool>();
}
TEST_CASE("join while the pool is running throws", "[process_pool][join]") {
    ps::join_while_running_throws<corio::process_pool>();
}
TEST_CASE("join from a callback throws invalid_state_error", "[process_pool][join]") {
    ps::join_from_a_callback_throws_invalid_state<corio::process_pool>();
}
TEST_CASE("terminate from a callback returns, and join then ends the pool",
          "[process_pool][terminate]") {
    ps::terminate_from_a_callback_returns_and_join_ends_the_pool<corio::process_pool>();
}
TEST_CASE("close then join finishes every submitted call and callback", "[process_pool][join]") {
    ps::close_then_join_finishes_every_submitted_call<corio::process_pool>();
}
TEST_CASE("the destructor closes and joins, losing no submitted work", "[process_pool][join]") {
    ps::the_destructor_loses_no_submitted_work<corio::process_pool>();
}
TEST_CASE("a pool with zero workers is refused", "[process_pool][error]") {
    ps::a_pool_needs_at_least_one_worker<corio::process_pool>();
}
TEST_CASE("on_progress reports every chunk before the map is ready",
          "[process_pool][map][progress]") {
    ps::on_progress_reports_each_chunk_before_the_map_is_ready<corio::process_pool>();
}
TEST_CASE("a throwing progress callback fails the map", "[process_pool][map][progress]") {
    ps::a_throwing_progress_callback_fails_the_map<corio::process_pool>();
}
TEST_CASE("map reports its first exception only after every chunk finished",
          "[process_pool][map][error]") {
    ps::map_reports_its_first_error_only_after_every_chunk_finished<corio::process_pool>();
}
TEST_CASE("get with a timeout throws timeout_error while the call runs",
          "[process_pool][async_result]") {
    ps::get_with_a_timeout_throws_timeout_error_while_the_call_runs<corio::process_pool>();
}
TEST_CASE("results report valid(), get() && moves the value out, imap results know their size",
          "[process_pool][async_result][imap]") {
    ps::result_handles_report_validity_and_sizes<corio::process_pool>();
}
TEST_CASE("imap_unordered yields results in the order they finish", "[process_pool][imap]") {
    ps::imap_unordered_yields_results_in_completion_order<corio::process_pool>();
}
TEST_CASE("8 threads submitting at once get every result exactly once", "[process_pool][stress]") {
    ps::concurrent_submitters_get_every_result_exactly_once<corio::process_pool>(8, 2000);
}
TEST_CASE("a loop task awaits a result that needs the loop to tick, resumed on the loop",
          "[process_pool][loop]") {
    ps::a_loop_task_awaits_a_result_while_the_loop_keeps_ticking<corio::process_pool>();
}
TEST_CASE("cancelling a task that awaits a pool result stops the wait, not the call",
          "[process_pool][loop][cancel]") {
    ps::cancelling_an_awaiting_task_stops_the_wait_not_the_call<corio::process_pool>();
}
TEST_CASE("several tasks of one loop await the same result", "[process_pool][loop]") {
    ps::several_tasks_of_one_loop_await_the_same_result<corio::process_pool>();
}
TEST_CASE("a task awaiting a result of a terminated pool gets pool_terminated",
          "[process_pool][loop][terminate]") {
    ps::awaiting_a_result_of_a_terminated_pool_gets_pool_terminated<corio::process_pool>();
}

TEST_CASE("an initializer with arguments runs in every worker and calls see them",
          "[process_pool][initializer]") {
    ps::an_initializer_with_arguments_runs_in_every_worker<corio::process_pool>();
}

TEST_CASE("a throwing initializer with arguments makes the constructor throw it",
          "[process_pool][initializer]") {
    ps::a_throwing_initializer_with_arguments_fails_the_constructor<corio::process_pool>();
}

TEST_CASE("imap next() yields items in input order while the loop ticks",
          "[process_pool][imap][loop]") {
    ps::imap_next_yields_items_in_order_while_the_loop_ticks<corio::process_pool>();
}

TEST_CASE("imap_unordered next() yields items in completion order", "[process_pool][imap][loop]") {
    ps::imap_unordered_next_yields_items_in_completion_order<corio::process_pool>();
}

TEST_CASE("imap next() rethrows a failed item and the iteration goes on",
          "[process_pool][imap][loop][error]") {
    ps::imap_next_rethrows_a_failed_item_and_goes_on<corio::process_pool>();
}

TEST_CASE("imap next() of a terminated pool throws pool_terminated",
          "[process_pool][imap][loop][terminate]") {
    ps::imap_next_of_a_terminated_pool_throws_pool_terminated<corio::process_pool>();
}

TEST_CASE("cancelling a task in imap next() takes no item; a next() outlives its result",
          "[process_pool][imap][loop][cancel]") {
    ps::cancelling_a_task_in_imap_next_takes_no_item<corio::process_pool>();
}

TEST_CASE("imap next() of an empty input ends at once", "[process_pool][imap][loop]") {
    ps::imap_next_of_an_empty_input_ends_at_once<corio::process_pool>();
}

TEST_CASE("imap next() from two tasks of one loop gives each item once",
          "[process_pool][imap][loop]") {
    ps::imap_next_from_two_tasks_gives_each_item_once<corio::process_pool>();
}

TEST_CASE("imap next() and blocking iteration do not mix", "[process_pool][imap][loop][error]") {
    ps::imap_next_and_iteration_do_not_mix<corio::process_pool>();
}

TEST_CASE("gather accepts async_results (values and an exception)",
          "[process_pool][loop][gather]") {
    ps::gather_accepts_async_results<corio::process_pool>();
}

TEST_CASE("wait_any accepts async_results (values and an exception)",
          "[process_pool][loop][wait_any]") {
    ps::wait_any_accepts_async_results<corio::process_pool>();
}

TEST_CASE("as_completed accepts async_results (values and an exception)",
          "[process_pool][loop][as_completed]") {
    ps::as_completed_accepts_async_results<corio::process_pool>();
}

// ---- the crash matrix ------------------------------------------------------------

namespace {

/// Runs `crash` through `apply_async` and checks the call fails with
/// broken_worker_error saying `how`, that the worker was replaced and that the pool
/// keeps serving. Waits are bounded: a hang fails the test.
template <class F>
void check_crash_is_contained(F crash, const std::string& how, int exitcode) {
    watchdog dog("crash test");
    corio::process_pool pool(2);
    const auto before = pool.worker_pids();
    auto res = pool.apply_async(crash, 1);
    REQUIRE(res.wait(30s));
    try {
        (void)res.get();
        FAIL("the call did not fail");
    } catch (const corio::broken_worker_error& e) {
        INFO(e.what());
        CHECK(std::string(e.what()).find("while running this call") != std::string::npos);
        if (!sanitized || how == "exited with status 3") {
            CHECK(std::string(e.what()).find(how) != std::string::npos);
            CHECK(e.exitcode() == exitcode);
        }
        CHECK(std::find(before.begin(), before.end(), e.pid()) != before.end());
    }
    // The pool keeps serving, with a replacement worker.
    CHECK(pool.apply(ps::square, 12) == 144);
    CHECK(pool.map(ps::square, ps::iota_vector(50)).size() == 50);
    const auto after = pool.worker_pids();
    CHECK(after.size() == 2);
    CHECK(after != before);
}

} // namespace

TEST_CASE("a segfault in a worker fails only its call, and the pool goes on",
          "[process_pool][crash]") {
    check_crash_is_contained(segfault, "was killed by signal 11 (SIGSEGV", -SIGSEGV);
}

TEST_CASE("abort in a worker fails only its call, and the pool goes on", "[process_pool][crash]") {
    check_crash_is_contained(call_abort, "was killed by signal 6 (SIGABRT", -SIGABRT);
}

TEST_CASE("exit(3) in a worker fails only its call, and the pool goes on",
          "[process_pool][crash]") {
    check_crash_is_contained(call_exit_3, "exited with status 3", 3);
}

TEST_CASE("a worker killed from outside during a map fails only the chunk it ran",
          "[process_pool][crash]") {
    watchdog dog("SIGKILL during a map");
    corio::process_pool pool(2);
    process_gate gate;
    std::vector<std::tuple<int, std::string>> items;
    for (int i = 0; i < 40; ++i) {
        items.emplace_back(i, gate.path());
    }
    auto mapped = pool.starmap_async(publish_pid_then_wait, items, 1);
    auto per_item = pool.imap(ps::square, ps::iota_vector(40));
    // Item 0 published the pid of the worker running it, then arrived.
    REQUIRE(gate.wait_arrivals(1));
    const pid_t victim = read_pid(gate.path() + "/pid");
    std::remove((gate.path() + "/pid").c_str());
    REQUIRE(victim > 0);
    REQUIRE(::kill(victim, SIGKILL) == 0);
    REQUIRE(mapped.wait(30s));
    try {
        (void)mapped.get();
        FAIL("the map did not fail");
    } catch (const corio::broken_worker_error& e) {
        CHECK(e.pid() == victim);
        CHECK(e.exitcode() == -SIGKILL);
        CHECK(std::string(e.what()).find("SIGKILL") != std::string::npos);
    }
    // Every other call ran (the ones queued behind the victim went elsewhere).
    int count = 0;
    for (int v : per_item) {
        CHECK(v == count * count);
        ++count;
    }
    CHECK(count == 40);
    const auto pids = pool.worker_pids();
    CHECK(std::find(pids.begin(), pids.end(), victim) == pids.end());
    CHECK(pool.apply(ps::add, 2, 3) == 5);
}

TEST_CASE("a worker killed while a large frame is being sent to it: the frame's call is rerun",
          "[process_pool][crash][large]") {
    // The worker waits at the gate, not reading, while the pool pipelines the next
    // 4 MiB frames of the same map to it: far more than the socket buffer, so a send
    // is in flight when the worker dies. Its call fails; the calls whose frames were
    // still travelling run on the replacement, intact.
    watchdog dog("SIGKILL during a large send");
    corio::process_pool pool(1);
    process_gate gate;
    std::vector<std::string> items{gate.path()};
    for (int i = 1; i < 8; ++i) {
        items.emplace_back((std::size_t{4} << 20) + static_cast<std::size_t>(i), 'x');
    }
    auto sizes = pool.imap(size_or_wait_at_gate, items, 1);
    REQUIRE(gate.wait_arrivals(1));
    const pid_t victim = read_pid(gate.path() + "/pid");
    REQUIRE(victim > 0);
    REQUIRE(::kill(victim, SIGKILL) == 0);
    auto it = sizes.begin();
    try {
        (void)*it;
        FAIL("the call of the killed worker did not fail");
    } catch (const corio::broken_worker_error& e) {
        CHECK(e.pid() == victim);
        CHECK(e.exitcode() == -SIGKILL);
    }
    std::size_t i = 1;
    for (++it; it != sizes.end(); ++it, ++i) {
        CHECK(*it == items[i].size());
    }
    CHECK(i == items.size());
    CHECK(pool.worker_pids() != std::vector<pid_t>{victim});
    CHECK(pool.apply(ps::add, 2, 3) == 5);
}

TEST_CASE("a worker killed while idle is replaced", "[process_pool][crash]") {
    watchdog dog("idle worker killed");
    corio::process_pool pool(1);
    const pid_t first = pool.apply(worker_pid, 0);
    REQUIRE(::kill(first, SIGKILL) == 0);
    // The next call is served by a replacement, whichever moment the death is noticed.
    int pid = first;
    for (int i = 0; i < 100 && pid == first; ++i) {
        auto res = pool.apply_async(worker_pid, 0);
        REQUIRE(res.wait(30s));
        try {
            pid = res.get();
        } catch (const corio::broken_worker_error&) {
            // the call reached the worker just before it was reaped
        }
    }
    CHECK(pid != first);
}

TEST_CASE(
    "a worker that dies while its own child holds its socket open is noticed through its pidfd",
    "[process_pool][crash]") {
    watchdog dog("death with the socket held open");
    corio::process_pool pool(1);
    const pid_t worker = pool.worker_pids().at(0);
    const std::string path =
        "/tmp/corio-process-pool-test-" + std::to_string(::getpid()) + ".holder";
    std::remove(path.c_str());
    auto res = pool.apply_async(die_while_a_child_holds_the_socket, 0, path);
    REQUIRE(res.wait(30s)); // no end of file can come: only the pidfd tells
    const pid_t holder = read_pid(path);
    std::remove(path.c_str());
    REQUIRE(holder > 0);
    CHECK(::kill(holder, 0) == 0); // it still holds the worker's end of the socket
    try {
        (void)res.get();
        FAIL("the call did not fail");
    } catch (const corio::broken_worker_error& e) {
        INFO(e.what());
        CHECK(e.pid() == worker);
        CHECK(e.exitcode() == -SIGKILL);
        CHECK(std::string(e.what()).find("was killed by signal 9 (SIGKILL") != std::string::npos);
    }
    // Replaced, and serving.
    CHECK(pool.apply(ps::square, 6) == 36);
    const auto pids = pool.worker_pids();
    REQUIRE(pids.size() == 1);
    CHECK(pids[0] != worker);
    ::kill(holder, SIGKILL);
}

TEST_CASE("a crash while serializing a result fails only that call", "[process_pool][crash]") {
    watchdog dog("crash while serializing");
    corio::process_pool pool(2);
    auto res = pool.apply_async(make_explosive, 7);
    REQUIRE(res.wait(30s));
    CHECK_THROWS_AS(res.get(), corio::broken_worker_error);
    CHECK(pool.apply(ps::square, 5) == 25);
}

TEST_CASE("an exception while serializing a result comes back as that exception",
          "[process_pool][error]") {
    corio::process_pool pool(1);
    CHECK_THROWS_AS(pool.apply(make_fragile, 1), std::length_error);
    CHECK_THROWS_WITH(pool.apply(make_fragile, 1), "fragile cannot be encoded");
    CHECK(pool.apply(ps::square, 5) == 25);
}

TEST_CASE("a crashing initializer breaks the pool with a clear error",
          "[process_pool][crash][initializer]") {
    watchdog dog("crashing initializer");
    try {
        corio::process_pool pool(2, corio::pool_options{.initializer = crashing_init});
        FAIL("the constructor did not throw");
    } catch (const corio::broken_pool_error& e) {
        INFO(e.what());
        CHECK(std::string(e.what()).find("initializer") != std::string::npos);
        if (!sanitized) {
            CHECK(std::string(e.what()).find("SIGABRT") != std::string::npos);
        }
    }
}

TEST_CASE("a throwing initializer makes the constructor throw its exception",
          "[process_pool][initializer]") {
    watchdog dog("throwing initializer");
    CHECK_THROWS_AS(corio::process_pool(2, corio::pool_options{.initializer = throwing_init}),
                    std::invalid_argument);
    CHECK_THROWS_WITH(corio::process_pool(1, corio::pool_options{.initializer = throwing_init}),
                      "no configuration file");
}

TEST_CASE("an initializer with arguments needs a plain function and serializable arguments",
          "[process_pool][initializer]") {
    watchdog dog("initializer with arguments refused");
    int captured = 0;
    CHECK_THROWS_AS(corio::process_pool(
                        1, corio::pool_options{.initializer = {[&](int n) { captured = n; }, 1}}),
                    corio::error);
    class opaque { // not an aggregate, no serializer: cannot travel
    public:
        explicit opaque(int v) : v_(v) {}
        int get() const { return v_; }

    private:
        int v_;
    };
    static_assert(!corio::serializable<opaque>);
    CHECK_THROWS_WITH(
        corio::process_pool(
            1, corio::pool_options{.initializer = {[](const opaque& o) { (void)o.get(); },
                                                   opaque(1)}}),
        Catch::Contains("serializable"));
    // A capture-less lambda with serializable arguments runs in every worker.
    corio::process_pool pool(2, corio::pool_options{.initializer = {[](std::string label, int n) {
                                                                        ps::init_label =
                                                                            label + "!";
                                                                        ps::init_number = n;
                                                                    },
                                                                    "lambda", 5}});
    CHECK(pool.map(ps::initialized_as, ps::iota_vector(8), 1) ==
          std::vector<std::string>(8, "lambda!:5"));
}

TEST_CASE("an initializer that is not a plain function is refused", "[process_pool][initializer]") {
    int captured = 0;
    CHECK_THROWS_AS(corio::process_pool(1, corio::pool_options{.initializer = [&] { ++captured; }}),
                    corio::error);
    // A capture-less lambda is fine, with or without the explicit conversion.
    corio::process_pool pool(1, corio::pool_options{.initializer = [] { ++init_calls; }});
    CHECK(std::get<1>(pool.apply(pid_and_init_calls, 0)) == 1);
    corio::process_pool converted(1, corio::pool_options{.initializer = +[] { ++init_calls; }});
    CHECK(std::get<1>(converted.apply(pid_and_init_calls, 0)) == 1);
}

// ---- initializer, max_tasks_per_child ---------------------------------------------

TEST_CASE("the initializer runs once in every worker before any call",
          "[process_pool][initializer]") {
    corio::process_pool pool(2, corio::pool_options{.initializer = count_init});
    const auto out = pool.map(pid_and_init_calls, ps::iota_vector(200), 1);
    std::set<int> pids;
    for (const auto& [pid, calls] : out) {
        REQUIRE(calls == 1);
        pids.insert(pid);
    }
    CHECK(pids.size() <= 2);
    CHECK(init_calls == 0); // never in the parent
}

TEST_CASE("max_tasks_per_child=1 gives every chunk a new worker process",
          "[process_pool][max_tasks]") {
    corio::process_pool pool(
        1, corio::pool_options{.initializer = count_init, .max_tasks_per_child = 1});
    std::set<int> pids;
    for (int i = 0; i < 4; ++i) {
        const auto [pid, calls] = pool.apply(pid_and_init_calls, i);
        CHECK(calls == 1); // each replacement ran the initializer
        pids.insert(pid);
    }
    CHECK(pids.size() == 4);
    // Counted in chunks, as Python: the items of one chunk share a worker.
    const auto out = pool.map(pid_and_init_calls, ps::iota_vector(6), 2);
    std::set<int> map_pids;
    for (std::size_t i = 0; i < out.size(); ++i) {
        map_pids.insert(std::get<0>(out[i]));
        if (i % 2 == 1) {
            CHECK(std::get<0>(out[i]) == std::get<0>(out[i - 1]));
        }
    }
    CHECK(map_pids.size() == 3);
}

TEST_CASE("imap's default chunksize is 1: with max_tasks_per_child=1 every item gets a new worker",
          "[process_pool][imap][max_tasks]") {
    corio::process_pool pool(1, corio::pool_options{.max_tasks_per_child = 1});
    std::set<int> pids;
    for (int pid : pool.imap(worker_pid, ps::iota_vector(3))) {
        pids.insert(pid);
    }
    CHECK(pids.size() == 3);
    std::set<int> unordered_pids;
    for (int pid : pool.imap_unordered(worker_pid, ps::iota_vector(3))) {
        unordered_pids.insert(pid);
    }
    CHECK(unordered_pids.size() == 3);
    // An explicit chunksize of 3 keeps the items together in one worker.
    std::set<int> chunked_pids;
    for (int pid : pool.imap(worker_pid, ps::iota_vector(3), 3)) {
        chunked_pids.insert(pid);
    }
    CHECK(chunked_pids.size() == 1);
}

// ---- payloads, exceptions, threads, loops ------------------------------------------

TEST_CASE("a 10 MiB argument and a 10 MiB result round-trip intact", "[process_pool][large]") {
    watchdog dog("10 MiB round trip");
    corio::process_pool pool(2);
    std::vector<std::uint8_t> bytes(10u << 20);
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        bytes[i] = static_cast<std::uint8_t>(i * 7 + i / 4096);
    }
    const auto back = pool.apply(reverse_bytes, bytes);
    const auto text = pool.apply(make_text, std::size_t{10u << 20}, 'q');
    REQUIRE(back.size() == bytes.size());
    CHECK(std::equal(back.begin(), back.end(), bytes.rbegin()));
    CHECK(text == std::string(10u << 20, 'q'));
    // Several at once, pipelined on the same sockets.
    std::vector<corio::async_result<std::vector<std::uint8_t>>> many;
    for (int i = 0; i < 4; ++i) {
        many.push_back(pool.apply_async(reverse_bytes, bytes));
    }
    for (auto& r : many) {
        CHECK(r.get().size() == bytes.size());
    }
}

TEST_CASE("a large payload costs allocations linear in its size, in the caller and in the worker",
          "[process_pool][large]") {
    // Counted, not timed: bytes allocated to move n bytes there and back must stay
    // within a constant factor of n at 10 and at 40 MiB. A buffer grown in steps, or a
    // copy per received piece, would allocate far more (quadratically in n).
    if (!CORIO_TEST_COUNTS_ALLOCATIONS) {
        SUCCEED("allocations are not counted under ThreadSanitizer");
        return;
    }
    watchdog dog("allocations of a large round trip");
    corio::process_pool pool(1);
    for (const std::size_t mib : {10u, 40u}) {
        INFO(mib << " MiB");
        const std::vector<std::uint8_t> payload(mib << 20, 7);
        const std::size_t n = payload.size();
        const std::size_t worker_before = pool.apply(bytes_allocated_here, 0);
        const std::size_t before = bytes_allocated.load();
        const auto back = pool.apply(reverse_bytes, payload);
        const std::size_t here = bytes_allocated.load() - before;
        const std::size_t there = pool.apply(bytes_allocated_here, 0) - worker_before;
        REQUIRE(back.size() == n);
        INFO("caller: " << here / (n / 100) << "% of the payload, worker: " << there / (n / 100)
                        << "%");
        // Three copies on each side, plus at most 1 MiB of bookkeeping. The caller's
        // frame is sent from where it was encoded, not copied into a send buffer.
        const std::size_t slack = std::size_t{1} << 20;
        CHECK(here >= n);             // the result itself
        CHECK(here <= 3 * n + slack); // encoded frame, receive buffer, decoded result
        CHECK(there >= n);
        CHECK(there <= 3 * n + slack); // receive buffer, decoded argument, encoded result
    }
}

TEST_CASE("map returns results of a type without a default constructor, in input order",
          "[process_pool][map]") {
    static_assert(!std::is_default_constructible_v<labelled>);
    corio::process_pool pool(2);
    const std::vector<int> inputs = ps::iota_vector(1000);
    for (const int chunksize : {1, 7, 1000}) {
        const std::vector<labelled> out = pool.map(make_labelled, inputs, chunksize);
        REQUIRE(out.size() == inputs.size());
        for (std::size_t i = 0; i < out.size(); ++i) {
            CHECK(out[i].label() == make_labelled(inputs[i]).label());
        }
    }
    // Default-constructible results are decoded in place. Arguments of varied sizes,
    // short first: the frame buffer is sized from the first chunk, then grows.
    std::vector<std::string> words;
    for (const int v : inputs) {
        words.emplace_back(static_cast<std::size_t>(v % 50) * 10, 'w');
    }
    const std::vector<std::size_t> sizes = pool.map(
        +[](std::string w) { return w.size(); }, words, 3);
    REQUIRE(sizes.size() == words.size());
    for (std::size_t i = 0; i < sizes.size(); ++i) {
        CHECK(sizes[i] == words[i].size());
    }
}

TEST_CASE("a C string argument travels as a std::string", "[process_pool][apply]") {
    corio::process_pool pool(1);
    CHECK(pool.apply(ps::repeat, "ab", 3) == "ababab");
    const char* text = "xy";
    CHECK(pool.apply_async(ps::repeat, text, 2).get() == "xyxy");
}

TEST_CASE("worker exceptions keep their standard type and message, others become remote_error",
          "[process_pool][error]") {
    corio::process_pool pool(2);
    auto message_of = [&](int k) -> std::string {
        try {
            (void)pool.apply(throw_kind, k);
        } catch (const std::exception& e) {
            return e.what();
        }
        return "no exception";
    };
    CHECK_THROWS_AS(pool.apply(throw_kind, 0), std::runtime_error);
    CHECK_THROWS_AS(pool.apply(throw_kind, 1), std::logic_error);
    CHECK_THROWS_AS(pool.apply(throw_kind, 2), std::invalid_argument);
    CHECK_THROWS_AS(pool.apply(throw_kind, 3), std::domain_error);
    CHECK_THROWS_AS(pool.apply(throw_kind, 4), std::length_error);
    CHECK_THROWS_AS(pool.apply(throw_kind, 5), std::out_of_range);
    CHECK_THROWS_AS(pool.apply(throw_kind, 6), std::range_error);
    CHECK_THROWS_AS(pool.apply(throw_kind, 7), std::overflow_error);
    CHECK_THROWS_AS(pool.apply(throw_kind, 8), std::underflow_error);
    CHECK_THROWS_AS(pool.apply(throw_kind, 9), std::bad_alloc);
    CHECK_THROWS_AS(pool.apply(throw_kind, 12), std::system_error);
    CHECK_THROWS_AS(pool.apply(throw_kind, 13), corio::timeout_error);
    CHECK(message_of(0) == "runtime");
    CHECK(message_of(5) == "range");
    CHECK(message_of(8) == "underflow");
    CHECK(message_of(12) ==
          std::system_error(ENOENT, std::generic_category(), "open config.toml").what());
    CHECK(message_of(13) == "took too long");
    try {
        (void)pool.apply(throw_kind, 12);
    } catch (const std::system_error& e) {
        CHECK(e.code() == std::errc::no_such_file_or_directory);
    }
    try {
        (void)pool.apply(throw_kind, 10);
        FAIL("no exception");
    } catch (const corio::remote_error& e) {
        CHECK(e.type_name().find("parse_error") != std::string::npos);
        CHECK(e.message() == "line 3: unexpected token");
        CHECK(std::string(e.what()).find("line 3: unexpected token") != std::string::npos);
    }
    try {
        (void)pool.apply(throw_kind, 11);
        FAIL("no exception");
    } catch (const corio::remote_error& e) {
        CHECK(e.type_name() == "int");
    }
    CHECK(pool.apply(throw_kind, 99) == 99);
}

TEST_CASE("a pool created after threads started works (corio::init ran first)",
          "[process_pool][threads]") {
    std::mutex m;
    std::condition_variable cv;
    bool stop = false;
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i) {
        threads.emplace_back([&] {
            std::unique_lock lock(m);
            cv.wait(lock, [&] { return stop; });
        });
    }
    {
        corio::process_pool pool(2);
        CHECK(pool.apply(ps::square, 11) == 121);
        CHECK(pool.map(ps::square, ps::iota_vector(100), 3).back() == 99 * 99);
        corio::process p(ps::square, 3);
        p.start();
        p.join();
        CHECK(p.exitcode() == 0);
    }
    {
        std::lock_guard lock(m);
        stop = true;
    }
    cv.notify_all();
    for (auto& t : threads) {
        t.join();
    }
}

namespace {
// Runs in a fresh child (no fork server of its own yet): with a thread running and
// no corio::init(), creating a pool must fail with advice to call corio::init().
void pool_without_init_in_threaded_child() {
    std::atomic<bool> stop{false};
    std::thread t([&] {
        while (!stop.load()) {
            ::usleep(1000);
        }
    });
    int code = 1;
    try {
        corio::process_pool pool(1);
    } catch (const corio::error& e) {
        code = std::string(e.what()).find("corio::init()") != std::string::npos ? 0 : 2;
    }
    stop = true;
    t.join();
    std::fflush(nullptr);
    ::_exit(code);
}
} // namespace

TEST_CASE("without corio::init a threaded program gets an error that says to call it",
          "[process_pool][threads]") {
    watchdog dog("threaded child without init");
    corio::process child(pool_without_init_in_threaded_child);
    child.start();
    REQUIRE(child.join(30s));
    CHECK(child.exitcode() == 0);
}

TEST_CASE("terminate kills busy workers, and queued and awaited results fail with pool_terminated",
          "[process_pool][terminate]") {
    watchdog dog("terminate");
    corio::process_pool pool(2);
    process_gate gate;
    const auto workers = pool.worker_pids();
    REQUIRE(workers.size() == 2);
    auto running1 = pool.apply_async(ps::gated_square, gate.path(), 1);
    auto running2 = pool.apply_async(ps::gated_square, gate.path(), 2);
    REQUIRE(gate.wait_arrivals(2)); // both workers are busy: nothing else can start
    auto queued = pool.apply_async(ps::square, 3);
    auto mapped = pool.map_async(ps::square, ps::iota_vector(10));
    auto lazy = pool.imap(ps::square, ps::iota_vector(10));
    auto awaited = pool.apply_async(ps::square, 4);
    CHECK(corio::run(ps::await_terminated(&pool, awaited)) == "pool_terminated");
    for (auto* r : {&running1, &running2, &queued, &awaited}) {
        CHECK_FALSE(r->ready());
        r->wait(); // returns instead of hanging
        CHECK_THROWS_AS(r->get(), corio::pool_terminated);
        CHECK_FALSE(r->wait(1ms));
    }
    CHECK_THROWS_AS(mapped.get(), corio::pool_terminated);
    CHECK_THROWS_AS(lazy.begin(), corio::pool_terminated);
    // terminate() returned after the workers were killed and reaped.
    CHECK(pool.worker_pids().empty());
    for (const pid_t pid : workers) {
        const int r = ::kill(pid, 0);
        const int e = errno;
        CHECK(r == -1);
        CHECK(e == ESRCH);
    }
    CHECK_THROWS_AS(pool.apply(ps::square, 2), corio::pool_not_running);
    pool.join();
}

// ---- the direct path: a caller sends a call to an idle worker itself ---------------

namespace {

std::uint64_t direct_sends() {
    return corio::detail::process_pool_direct_sends();
}

// Waits until the dispatcher, going to sleep, offers an idle worker to callers (it
// withdraws its offers each time it wakes, and makes them again before it sleeps).
// With no event pending, the offer stays open until a call claims it. The watchdog
// bounds the wait.
void await_offer() {
    while (corio::detail::process_pool_open_offers() == 0) {
        std::this_thread::yield();
    }
}

std::size_t length_of(std::string s) {
    return s.size();
}

std::vector<int> squares(int n) {
    std::vector<int> out;
    for (int i = 0; i < n; ++i) {
        out.push_back(i * i);
    }
    return out;
}

} // namespace

TEST_CASE("a call to an idle worker is sent by the caller's thread; a large one by the dispatcher",
          "[process_pool][direct]") {
    watchdog dog("direct path");
    corio::process_pool pool(2);
    CHECK(pool.apply(ps::square, 1) == 1);
    // A call made while an idle worker is offered goes out directly. (A call made
    // in the moment the dispatcher is between two waits goes through the queue.)
    const auto before = direct_sends();
    for (int i = 0; i < 50; ++i) {
        await_offer();
        CHECK(pool.apply(ps::square, i) == i * i);
    }
    CHECK(direct_sends() - before == 50);
    // Back to back, without waiting for the offer: every call is answered, and the
    // offer made before an answer wakes its caller catches some of them.
    const auto before_burst = direct_sends();
    for (int i = 0; i < 200; ++i) {
        CHECK(pool.apply(ps::square, i) == i * i);
    }
    CHECK(direct_sends() > before_burst);
    // A frame above the direct limit (16 KiB) travels through the dispatcher's ring.
    const auto before_large = direct_sends();
    CHECK(pool.apply(length_of, std::string(64 * 1024, 'x')) == 64 * 1024);
    CHECK(direct_sends() == before_large);
    // Maps are queued and pipelined by the dispatcher, as before.
    CHECK(pool.map(ps::square, ps::iota_vector(100), 1) == squares(100));
    CHECK(direct_sends() == before_large);
}

TEST_CASE("a worker killed while running a directly sent call fails that call and is replaced",
          "[process_pool][direct][crash]") {
    watchdog dog("SIGKILL after a direct send");
    corio::process_pool pool(1);
    CHECK(pool.apply(ps::square, 2) == 4); // the worker is idle and offered
    process_gate gate;
    await_offer();
    const auto before = direct_sends();
    auto res = pool.apply_async(publish_pid_then_wait, 0, gate.path());
    CHECK(direct_sends() - before == 1);
    REQUIRE(gate.wait_arrivals(1));
    const pid_t victim = read_pid(gate.path() + "/pid");
    REQUIRE(victim > 0);
    REQUIRE(::kill(victim, SIGKILL) == 0);
    REQUIRE(res.wait(30s));
    try {
        (void)res.get();
        FAIL("the call did not fail");
    } catch (const corio::broken_worker_error& e) {
        CHECK(e.pid() == victim);
        CHECK(e.exitcode() == -SIGKILL);
        CHECK(std::string(e.what()).find("while running this call") != std::string::npos);
    }
    CHECK(pool.apply(ps::add, 2, 3) == 5);
    CHECK(pool.worker_pids() != std::vector<pid_t>{victim});
}

TEST_CASE("a worker that crashes on a directly sent call fails it; the next calls go direct again",
          "[process_pool][direct][crash]") {
    watchdog dog("crash after a direct send");
    corio::process_pool pool(1);
    CHECK(pool.apply(ps::square, 3) == 9);
    await_offer();
    const auto before = direct_sends();
    auto res = pool.apply_async(call_exit_3, 0);
    CHECK(direct_sends() - before == 1);
    REQUIRE(res.wait(30s));
    try {
        (void)res.get();
        FAIL("the call did not fail");
    } catch (const corio::broken_worker_error& e) {
        CHECK(e.exitcode() == 3);
    }
    // The replacement serves; once it answered, it is offered to callers too.
    CHECK(pool.apply(ps::square, 4) == 16);
    await_offer();
    const auto after_crash = direct_sends();
    CHECK(pool.apply(ps::square, 5) == 25);
    CHECK(direct_sends() - after_crash == 1);
}

TEST_CASE("max_tasks_per_child counts directly sent calls", "[process_pool][direct][max_tasks]") {
    watchdog dog("max_tasks with direct sends");
    corio::process_pool pool(1, corio::pool_options{.max_tasks_per_child = 3});
    std::vector<int> pids;
    for (int i = 0; i < 9; ++i) {
        pids.push_back(pool.apply(worker_pid, i));
    }
    // Three workers in turn, three calls each.
    for (std::size_t i = 0; i < pids.size(); ++i) {
        CHECK(pids[i] == pids[i / 3 * 3]);
    }
    CHECK(std::set<int>(pids.begin(), pids.end()).size() == 3);
}

TEST_CASE("calls from many threads, direct or queued, with maps running, each get their answer",
          "[process_pool][direct][threads]") {
    watchdog dog("threads with direct sends");
    corio::process_pool pool(2);
    constexpr int threads = 4;
    constexpr int calls = sanitized ? 100 : 400;
    std::atomic<int> wrong{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < threads; ++t) {
        callers.emplace_back([&, t] {
            for (int i = 0; i < calls; ++i) {
                if (pool.apply(ps::add, t * 100000, i) != t * 100000 + i) {
                    wrong.fetch_add(1);
                }
            }
        });
    }
    for (int m = 0; m < 10; ++m) {
        CHECK(pool.map(ps::square, ps::iota_vector(64), 1 + m % 3) == squares(64));
        int k = 0;
        for (int v : pool.imap(ps::square, ps::iota_vector(20))) {
            CHECK(v == k * k);
            ++k;
        }
    }
    for (auto& c : callers) {
        c.join();
    }
    CHECK(wrong.load() == 0);
}

TEST_CASE("terminate with a directly sent call running fails it with pool_terminated",
          "[process_pool][direct][terminate]") {
    watchdog dog("terminate after a direct send");
    corio::process_pool pool(1);
    CHECK(pool.apply(ps::square, 2) == 4);
    process_gate gate;
    await_offer();
    const auto before = direct_sends();
    auto running = pool.apply_async(ps::gated_square, gate.path(), 3);
    CHECK(direct_sends() - before == 1);
    REQUIRE(gate.wait_arrivals(1));
    pool.terminate();
    CHECK_THROWS_AS(running.get(), corio::pool_terminated);
    CHECK(pool.worker_pids().empty());
}

TEST_CASE("terminate while threads send calls: each call answers, fails or is refused",
          "[process_pool][direct][terminate]") {
    watchdog dog("terminate during direct sends");
    corio::process_pool pool(2);
    std::atomic<int> answered{0};
    std::atomic<int> wrong{0};
    std::vector<std::thread> callers;
    for (int t = 0; t < 3; ++t) {
        callers.emplace_back([&, t] {
            for (int i = 0;; ++i) {
                try {
                    auto r = pool.apply_async(ps::add, t, i);
                    try {
                        if (r.get() != t + i) {
                            wrong.fetch_add(1);
                        }
                        answered.fetch_add(1);
                    } catch (const corio::pool_terminated&) {
                    }
                } catch (const corio::pool_not_running&) {
                    return; // refused: the pool is terminated
                }
            }
        });
    }
    // Terminate once calls are flowing.
    while (answered.load() < 50) {
        std::this_thread::yield();
    }
    pool.terminate();
    for (auto& c : callers) {
        c.join();
    }
    CHECK(wrong.load() == 0);
    CHECK(pool.worker_pids().empty());
}
