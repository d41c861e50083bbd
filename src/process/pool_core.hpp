#pragma once
// The process pool's core, shared by the files of src/process/ that implement it:
//   pool_dispatcher.cpp   lifecycle, the job queue, scheduling chunks, the dispatcher loop
//   worker_transport.cpp  the ring operations per worker: frames sent and received
//   worker_spawn.cpp      starting, replacing, reaping and terminating worker processes
// One dispatcher thread drives an io_uring ring of its own; the members say which
// are guarded by the mutex and which belong to the dispatcher thread.

#include "ring/uring.hpp"

#include <corio/process_pool.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

namespace corio::detail {

using clock_type = std::chrono::steady_clock;

inline constexpr std::size_t max_frames_per_send = 64;
/// Largest frame a caller's thread sends itself (the direct path); larger ones go
/// through the dispatcher's ring.
inline constexpr std::size_t direct_send_limit = 16 * 1024;

struct chunk_ref {
    process_job* job = nullptr;
    std::size_t k = 0;
};

enum class worker_phase {
    starting, // start frame sent, initializer running
    ready,    // takes chunks
    retiring, // max_tasks_per_child reached: finish in-flight chunks, then close
    closing,  // write side shut down: the worker exits once it read everything
};

struct pool_worker;

// One of a worker's three ring operations; its address is the SQE's user_data.
struct worker_op : uring_op {
    process_pool_core* core = nullptr;
    pool_worker* worker = nullptr;
};

struct pool_worker {
    pid_t pid = -1;
    int pidfd = -1;
    int fd = -1;
    worker_phase phase = worker_phase::starting;
    std::string start_frame;             // sent first: the initializer to run
    std::deque<std::string_view> unsent; // frames (or their rests) not yet sent, in order
    std::vector<::iovec> iov;            // what the send in flight reads
    ::msghdr msg{};                      // ... and its header
    std::vector<process_job*> held;      // answered while a send was in flight: dropped after
    std::string in = std::string(64 * 1024, '\0');
    std::size_t head = 0;           // first unparsed byte of `in`
    std::size_t tail = 0;           // end of received bytes
    std::deque<chunk_ref> inflight; // sent, not yet answered, in sending order
    std::size_t sent = 0;           // chunks sent (max_tasks_per_child)
    clock_type::time_point busy_since;
    worker_op recv_op;   // a receive into `in` at `tail`
    worker_op send_op;   // a sendmsg of the front of `unsent`
    worker_op exit_op;   // a poll of the pidfd: readable once the process is gone
    bool eof = false;    // end of file (or an error) on the socket
    bool exited = false; // the pidfd became readable: the process is gone
    bool dying = false;  // eof or exited seen: its operations are being cancelled

    // A caller's direct send (process_pool_core::try_direct), guarded by the mutex.
    // The dispatcher opens `direct_ok` only while it waits on its ring (and from a
    // result that left the worker idle), and closes it, taking `handed` into
    // `inflight`, before it touches the worker's socket, queues or life otherwise.
    bool direct_ok = false;              // ready and idle: a caller may send one chunk
    bool offer_counted = false;          // direct_ok set before a sleep: in direct_offer_count
    chunk_ref handed;                    // the chunk a caller sent itself (job: none)
    std::string_view handed_rest;        // what a short direct send left unsent
    clock_type::time_point handed_at;    // when it was sent
    std::atomic<bool> has_handed{false}; // handed.job set: lets on_received skip the lock

    bool sending() const noexcept { return send_op.state != uring_op::op_state::idle; }
    bool ops_idle() const noexcept {
        return recv_op.state == uring_op::op_state::idle && !sending() &&
               exit_op.state == uring_op::op_state::idle;
    }
};

/// Chunks that callers sent to an idle worker themselves, by every pool of the process.
extern std::atomic<std::uint64_t> direct_send_count;
/// Workers offered to callers by a dispatcher about to sleep (an offer made from a
/// result handler is left out: it is withdrawn when the dispatcher wakes), by every
/// pool of the process; for tests.
extern std::atomic<std::int64_t> direct_offer_count;

inline void send_signal(int pidfd, int sig) noexcept {
    ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
}

inline std::string what_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "an exception that is not a std::exception";
    }
}

class process_pool_core {
public:
    process_pool_core(std::size_t workers, pool_options options);
    ~process_pool_core();

    void submit(process_job& job, std::size_t chunks);
    void check_running() const;
    void close() noexcept;
    void terminate() noexcept;
    void join();
    std::vector<pid_t> pids() const;
    /// True on the dispatcher thread (the pool's result thread: callbacks run there).
    bool on_own_thread() const noexcept { return std::this_thread::get_id() == dispatcher_id_; }
    const std::function<void(std::size_t, std::size_t)>* progress() const noexcept {
        return &options_.on_progress;
    }

private:
    enum class pool_state { running, closed, terminating };

    void run() noexcept;
    void spawn_worker();
    void wake() noexcept;
    bool try_direct(process_job& job);
    void take_handed(pool_worker& w) noexcept;
    void take_handed_locked(pool_worker& w) noexcept;
    void open_direct_locked(pool_worker& w, bool before_sleep) noexcept;
    void assign_work();
    void arm(pool_worker& w) noexcept;
    void start_send(pool_worker& w) noexcept;
    void on_sent(pool_worker& w, int res) noexcept;
    void on_received(pool_worker& w, int res) noexcept;
    void take_bytes(pool_worker& w, std::size_t n);
    void drain(pool_worker& w) noexcept;
    void reap_dead();
    void handle_frame(pool_worker& w, const frame_header& h, std::string_view body);
    void handle_exit(pool_worker& w);
    void break_pool(std::exception_ptr cause, std::exception_ptr original);
    void break_pool_on_current(std::string_view why) noexcept;
    void fail_chunk(chunk_ref c, std::exception_ptr e) noexcept;
    bool work_left_locked() const noexcept;
    void finish_terminate() noexcept;
    void publish_pids();
    std::size_t depth() const noexcept;

    static void prep_recv(uring_op& op, ::io_uring_sqe& sqe) noexcept;
    static void prep_send(uring_op& op, ::io_uring_sqe& sqe) noexcept;
    static void prep_exit(uring_op& op, ::io_uring_sqe& sqe) noexcept;
    static void recv_done(uring_op& op, int res, unsigned flags) noexcept;
    static void send_done(uring_op& op, int res, unsigned flags) noexcept;
    static void exit_done(uring_op& op, int res, unsigned flags) noexcept;

    const std::size_t size_;
    pool_options options_;
    std::uintptr_t initializer_ = 0;
    // The dispatcher's ring: every socket receive and send, every pidfd watch and the
    // wake-up doorbell (its eventfd) go through it. Created by the constructor, used
    // by the dispatcher thread only (wake() from any thread rings its eventfd).
    std::unique_ptr<uring> ring_;

    mutable std::mutex mutex_;
    std::condition_variable started_cv_;
    pool_state state_ = pool_state::running;                 // guarded
    std::exception_ptr broken_;                              // guarded: broken_pool_error
    std::deque<std::pair<process_job*, std::size_t>> queue_; // guarded: job, next chunk
    std::size_t startup_pending_ = 0;                        // guarded
    bool starting_up_ = true;                                // guarded
    std::exception_ptr startup_error_;                       // guarded
    std::vector<pid_t> pids_;                                // guarded copy
    std::vector<pool_worker*> offered_; // guarded: workers whose direct_ok was set this wait

    // Dispatcher thread only (the constructor before it starts).
    std::vector<std::unique_ptr<pool_worker>> workers_;
    std::deque<chunk_ref> retry_; // chunks of a dead worker that it had not started
    double service_ns_ = 1e6;     // moving average of a chunk's service time
    bool terminating_ = false;    // completions arriving now are only reaped
    bool waiting_ = false;        // in submit_and_wait: idle workers may be offered

    std::thread thread_;
    std::thread::id dispatcher_id_; // thread_'s, kept after it is joined
    std::mutex join_mutex_;
};

} // namespace corio::detail
