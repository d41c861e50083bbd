// process_pool: the dispatcher thread that feeds worker processes over sockets,
// driven by an io_uring ring of its own.
#include "signal_mask.hpp"
#include "uring.hpp"

#include <corio/detail/fork_server.hpp>
#include <corio/process_pool.hpp>

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <deque>
#include <fcntl.h>
#include <mutex>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <system_error>
#include <thread>
#include <unistd.h>

namespace corio::detail {

namespace {

using clock_type = std::chrono::steady_clock;

constexpr std::size_t max_frames_per_send = 64;

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

    bool sending() const noexcept { return send_op.state != uring_op::op_state::idle; }
    bool ops_idle() const noexcept {
        return recv_op.state == uring_op::op_state::idle && !sending() &&
               exit_op.state == uring_op::op_state::idle;
    }
};

void send_signal(int pidfd, int sig) noexcept {
    ::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0);
}

std::string what_of(const std::exception_ptr& e) {
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& x) {
        return x.what();
    } catch (...) {
        return "an exception that is not a std::exception";
    }
}

} // namespace

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
    const std::function<void(std::size_t, std::size_t)>* progress() const noexcept {
        return &options_.on_progress;
    }

private:
    enum class pool_state { running, closed, terminating };

    void run() noexcept;
    void spawn_worker();
    void wake() noexcept;
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

    // Dispatcher thread only (the constructor before it starts).
    std::vector<std::unique_ptr<pool_worker>> workers_;
    std::deque<chunk_ref> retry_; // chunks of a dead worker that it had not started
    double service_ns_ = 1e6;     // moving average of a chunk's service time
    bool terminating_ = false;    // completions arriving now are only reaped

    std::thread thread_;
    std::mutex join_mutex_;
};

process_pool_core::process_pool_core(std::size_t workers, pool_options options)
    : size_(workers), options_(std::move(options)) {
    if (workers == 0)
        throw error("corio::process_pool: the number of workers must be at least 1");
    if (options_.initializer) {
        void (*plain)() = options_.initializer.plain();
        if (plain == nullptr) {
            throw error("corio::process_pool: options.initializer runs in the worker processes, so "
                        "it must be "
                        "a plain function or a capture-less lambda");
        }
        initializer_ = reinterpret_cast<std::uintptr_t>(plain);
    }
    ensure_fork_server("corio::process_pool");
    // Three operations per worker, the doorbell and cancels; a full queue parks.
    unsigned entries = 64;
    while (entries < 4 * workers + 8 && entries < 4096)
        entries *= 2;
    ring_ = std::make_unique<uring>(loop_options{.entries = entries, .single_issuer = false});
    try {
        for (std::size_t i = 0; i < workers; ++i)
            spawn_worker();
    } catch (...) {
        for (auto& w : workers_) {
            send_signal(w->pidfd, SIGKILL);
            ::close(w->fd);
            wait_pidfd(w->pidfd, -1);
            fork_server_release(w->pid);
            ::close(w->pidfd);
        }
        throw;
    }
    startup_pending_ = workers;
    {
        signals_blocked_scope masked; // the dispatcher inherits the blocked mask
        thread_ = std::thread([this] { run(); });
    }
    std::exception_ptr failed;
    {
        std::unique_lock lock(mutex_);
        started_cv_.wait(lock, [&] { return startup_pending_ == 0 || startup_error_; });
        starting_up_ = false;
        failed = startup_error_;
    }
    if (failed) {
        terminate();
        std::rethrow_exception(failed);
    }
}

process_pool_core::~process_pool_core() {
    if (thread_.joinable()) {
        terminate();
    }
}

void process_pool_core::spawn_worker() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        throw std::system_error(errno, std::generic_category(), "corio::process_pool: socketpair");
    }
    spawned_child child;
    try {
        child = fork_server_spawn(sv[1]);
    } catch (...) {
        ::close(sv[0]);
        ::close(sv[1]);
        throw;
    }
    ::close(sv[1]);
    ::fcntl(sv[0], F_SETFL, ::fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    auto w = std::make_unique<pool_worker>();
    w->pid = child.pid;
    w->pidfd = child.pidfd;
    w->fd = sv[0];
    for (auto [op, prep, done] : {std::tuple{&w->recv_op, &prep_recv, &recv_done},
                                  std::tuple{&w->send_op, &prep_send, &send_done},
                                  std::tuple{&w->exit_op, &prep_exit, &exit_done}}) {
        op->core = this;
        op->worker = w.get();
        op->prep = prep;
        op->complete = done;
    }
    byte_writer out;
    const std::size_t at = begin_frame(out, frame_kind::start_worker, 0, 0);
    out.write_raw(initializer_);
    finish_frame(out, at);
    w->iov.reserve(max_frames_per_send); // start_send never allocates
    w->start_frame = out.take();
    w->unsent.push_back(w->start_frame);
    workers_.push_back(std::move(w));
    publish_pids();
}

void process_pool_core::publish_pids() {
    std::vector<pid_t> p;
    p.reserve(workers_.size());
    for (auto& w : workers_)
        p.push_back(w->pid);
    std::lock_guard lock(mutex_);
    pids_ = std::move(p);
}

std::vector<pid_t> process_pool_core::pids() const {
    std::lock_guard lock(mutex_);
    return pids_;
}

void process_pool_core::wake() noexcept {
    ring_->wake();
}

void process_pool_core::check_running() const {
    std::lock_guard lock(mutex_);
    if (state_ != pool_state::running)
        throw pool_not_running();
    if (broken_)
        std::rethrow_exception(broken_);
}

void process_pool_core::submit(process_job& job, std::size_t chunks) {
    {
        std::lock_guard lock(mutex_);
        if (state_ != pool_state::running)
            throw pool_not_running();
        if (broken_)
            std::rethrow_exception(broken_);
        if (chunks != 0)
            queue_.emplace_back(&job, 0);
    }
    wake();
}

void process_pool_core::close() noexcept {
    {
        std::lock_guard lock(mutex_);
        if (state_ == pool_state::running)
            state_ = pool_state::closed;
    }
    wake();
}

void process_pool_core::terminate() noexcept {
    {
        std::lock_guard lock(mutex_);
        state_ = pool_state::terminating;
    }
    wake();
    if (std::this_thread::get_id() == thread_.get_id())
        return; // from a callback
    std::lock_guard lock(join_mutex_);
    if (thread_.joinable())
        thread_.join();
}

void process_pool_core::join() {
    {
        std::lock_guard lock(mutex_);
        if (state_ == pool_state::running) {
            throw invalid_state_error(
                "corio::process_pool: join() needs close() or terminate() first");
        }
    }
    if (std::this_thread::get_id() == thread_.get_id()) {
        throw invalid_state_error(
            "corio::process_pool: join() called from the pool's own callback");
    }
    std::lock_guard lock(join_mutex_);
    if (thread_.joinable())
        thread_.join();
}

std::size_t process_pool_core::depth() const noexcept {
    // Pipeline about 2 ms of work per worker: tiny chunks travel in batches, long ones
    // one at a time so that no chunk waits behind a slow one while a worker idles.
    const double d = 2e6 / std::max(service_ns_, 1.0);
    return static_cast<std::size_t>(std::clamp(d, 1.0, 64.0));
}

bool process_pool_core::work_left_locked() const noexcept {
    if (!queue_.empty() || !retry_.empty())
        return true;
    return std::any_of(workers_.begin(), workers_.end(),
                       [](const auto& w) { return !w->inflight.empty(); });
}

void process_pool_core::assign_work() {
    const std::size_t max_depth = depth();
    const std::size_t max_tasks = options_.max_tasks_per_child;
    const auto now = clock_type::now();
    // Pipelining (sending a worker more chunks while it runs one) is for the chunks of
    // one map: a chunk never queues behind an unrelated call, which could run long
    // while other workers idle, and not behind a chunk that already runs much longer
    // than usual.
    const auto stalled_after =
        std::chrono::nanoseconds(static_cast<std::int64_t>(std::max(4 * service_ns_, 5e5)));
    auto accepts = [&](const pool_worker& w, const process_job* job) {
        if (w.phase != worker_phase::ready)
            return false;
        if (w.inflight.empty())
            return true;
        return w.inflight.size() < max_depth && w.inflight.back().job == job &&
               now - w.busy_since < stalled_after;
    };
    std::vector<std::pair<pool_worker*, chunk_ref>> assigned;
    {
        std::lock_guard lock(mutex_);
        for (;;) {
            if (retry_.empty() && queue_.empty())
                break;
            const process_job* next_job =
                !retry_.empty() ? retry_.front().job : queue_.front().first;
            // The least loaded worker takes the next chunk.
            pool_worker* best = nullptr;
            for (auto& wp : workers_) {
                if (accepts(*wp, next_job) &&
                    (best == nullptr || wp->inflight.size() < best->inflight.size())) {
                    best = wp.get();
                }
            }
            if (best == nullptr)
                break;
            pool_worker& w = *best;
            chunk_ref c;
            if (!retry_.empty()) {
                c = retry_.front();
                retry_.pop_front();
            } else {
                auto& [job, next] = queue_.front();
                c = {job, next++};
                if (next == job->chunk_count())
                    queue_.pop_front();
            }
            if (w.inflight.empty())
                w.busy_since = now;
            w.inflight.push_back(c);
            assigned.emplace_back(&w, c);
            if (max_tasks != 0 && ++w.sent >= max_tasks)
                w.phase = worker_phase::retiring;
        }
    }
    // Frames are immutable once submitted and live as long as their chunk is held
    // by a worker: they are sent from where the caller encoded them, not copied.
    for (auto& [w, c] : assigned)
        w->unsent.push_back(c.job->frame(c.k));
}

void process_pool_core::prep_recv(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    pool_worker& w = *static_cast<worker_op&>(op).worker;
    io_uring_prep_recv(&sqe, w.fd, w.in.data() + w.tail, w.in.size() - w.tail, 0);
}

void process_pool_core::prep_send(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    pool_worker& w = *static_cast<worker_op&>(op).worker;
    io_uring_prep_sendmsg(&sqe, w.fd, &w.msg, MSG_NOSIGNAL | MSG_WAITALL);
}

void process_pool_core::prep_exit(uring_op& op, ::io_uring_sqe& sqe) noexcept {
    pool_worker& w = *static_cast<worker_op&>(op).worker;
    io_uring_prep_poll_add(&sqe, w.pidfd, POLLIN);
}

void process_pool_core::recv_done(uring_op& op, int res, unsigned) noexcept {
    auto& o = static_cast<worker_op&>(op);
    o.core->on_received(*o.worker, res);
}

void process_pool_core::send_done(uring_op& op, int res, unsigned) noexcept {
    auto& o = static_cast<worker_op&>(op);
    o.core->on_sent(*o.worker, res);
}

void process_pool_core::exit_done(uring_op& op, int res, unsigned) noexcept {
    // Any outcome but our own cancel (POLLIN once the process exited, an error for
    // a broken pidfd) means the worker cannot serve.
    if (res != -ECANCELED)
        static_cast<worker_op&>(op).worker->exited = true;
}

void process_pool_core::arm(pool_worker& w) noexcept {
    if (w.dying)
        return;
    if (w.recv_op.state == uring_op::op_state::idle && !w.eof)
        ring_->submit(w.recv_op);
    if (w.exit_op.state == uring_op::op_state::idle && !w.exited)
        ring_->submit(w.exit_op);
    if (!w.sending() && !w.unsent.empty())
        start_send(w);
}

void process_pool_core::start_send(pool_worker& w) noexcept {
    // One sendmsg takes up to max_frames_per_send frames; `iov` and `msg` stay untouched until its
    // completion, and assign_work only appends to `unsent` meanwhile. MSG_WAITALL
    // lets the kernel finish a frame larger than the socket buffer on its own (one
    // completion, not one per buffer-full); where it is not supported, or when the
    // worker dies, a short count leaves the rest in `unsent`.
    const std::size_t n = std::min(w.unsent.size(), max_frames_per_send);
    w.iov.resize(n);
    for (std::size_t i = 0; i < n; ++i)
        w.iov[i] = {const_cast<char*>(w.unsent[i].data()), w.unsent[i].size()};
    w.msg = {};
    w.msg.msg_iov = w.iov.data();
    w.msg.msg_iovlen = n;
    ring_->submit(w.send_op);
}

void process_pool_core::on_sent(pool_worker& w, int res) noexcept {
    if (res > 0) {
        auto left = static_cast<std::size_t>(res);
        while (left > 0 && !w.unsent.empty()) {
            std::string_view& front = w.unsent.front();
            const std::size_t k = std::min(left, front.size());
            front.remove_prefix(k);
            left -= k;
            if (front.empty())
                w.unsent.pop_front();
        }
    } else if (res != -EINTR && res != -EAGAIN && res != -ECANCELED) {
        // EPIPE and the like: the worker is gone; what it holds fails in handle_exit.
        w.unsent.clear();
        w.eof = true;
    }
    // Answers that came while this send could still read their frames.
    for (process_job* job : w.held)
        job->drop();
    w.held.clear();
}

void process_pool_core::on_received(pool_worker& w, int res) noexcept {
    if (res > 0 && !terminating_) {
        try {
            take_bytes(w, static_cast<std::size_t>(res));
        } catch (...) {
            w.eof = true; // out of memory for an answer: treat the worker as lost
        }
    } else if (res == 0 || (res < 0 && res != -EINTR && res != -EAGAIN && res != -ECANCELED)) {
        w.eof = true;
    }
}

void process_pool_core::take_bytes(pool_worker& w, std::size_t n) {
    w.tail += n;
    while (w.tail - w.head >= sizeof(frame_header)) {
        frame_header h;
        std::memcpy(&h, w.in.data() + w.head, sizeof h);
        const std::size_t whole = sizeof h + h.size;
        if (w.tail - w.head < whole) {
            // A large answer: make room for all of it at once (no repeated growth).
            if (w.in.size() - w.head < whole) {
                std::memmove(w.in.data(), w.in.data() + w.head, w.tail - w.head);
                w.tail -= w.head;
                w.head = 0;
                if (w.in.size() < whole)
                    w.in.resize(whole);
            }
            break;
        }
        handle_frame(w, h, std::string_view(w.in.data() + w.head + sizeof h, h.size));
        w.head += whole;
    }
    if (w.head == w.tail)
        w.head = w.tail = 0;
    if (w.tail == w.in.size()) {
        // Room for the next receive.
        std::memmove(w.in.data(), w.in.data() + w.head, w.tail - w.head);
        w.tail -= w.head;
        w.head = 0;
        if (w.tail == w.in.size())
            w.in.resize(w.in.size() * 2);
    }
}

void process_pool_core::drain(pool_worker& w) noexcept {
    // No operation of `w` is in flight any more: read what the worker sent before it
    // died directly, so that only the chunk it was running fails.
    while (w.fd >= 0) {
        const ssize_t n = ::recv(w.fd, w.in.data() + w.tail, w.in.size() - w.tail, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        try {
            take_bytes(w, static_cast<std::size_t>(n));
        } catch (...) {
            return;
        }
    }
}

void process_pool_core::handle_frame(pool_worker& w, const frame_header& h, std::string_view body) {
    switch (h.kind) {
    case frame_kind::init_ok: {
        w.phase = worker_phase::ready;
        std::lock_guard lock(mutex_);
        if (starting_up_ && startup_pending_ > 0 && --startup_pending_ == 0)
            started_cv_.notify_all();
        return;
    }
    case frame_kind::init_error: {
        std::exception_ptr original;
        try {
            byte_reader r(body);
            original = read_exception(r);
        } catch (...) {
            original = std::current_exception();
        }
        break_pool(std::make_exception_ptr(broken_pool_error(
                       "corio::process_pool is broken: a worker's initializer threw: " +
                       what_of(original))),
                   original);
        w.phase = worker_phase::closing; // it exits after answering
        return;
    }
    case frame_kind::result: {
        if (w.inflight.empty())
            return; // cannot happen with a well-behaved worker
        const chunk_ref c = w.inflight.front();
        w.inflight.pop_front();
        const auto now = clock_type::now();
        const double ns = static_cast<double>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(now - w.busy_since).count());
        service_ns_ = 0.8 * service_ns_ + 0.2 * ns;
        w.busy_since = now;
        byte_reader r(body);
        c.job->on_chunk(c.k, r);
        if (w.sending())
            w.held.push_back(c.job); // the send in flight may still read its frame
        else
            c.job->drop();
        return;
    }
    default:
        return;
    }
}

void process_pool_core::fail_chunk(chunk_ref c, std::exception_ptr e) noexcept {
    c.job->on_chunk_failed(c.k, std::move(e));
    c.job->drop();
}

void process_pool_core::break_pool(std::exception_ptr cause, std::exception_ptr original) {
    std::deque<std::pair<process_job*, std::size_t>> queued;
    {
        std::lock_guard lock(mutex_);
        if (broken_)
            return;
        broken_ = cause;
        if (starting_up_ && !startup_error_) {
            startup_error_ = original;
            started_cv_.notify_all();
        }
        queued.swap(queue_);
    }
    for (auto& [job, next] : queued) {
        for (std::size_t k = next; k < job->chunk_count(); ++k)
            fail_chunk({job, k}, cause);
    }
    while (!retry_.empty()) {
        fail_chunk(retry_.front(), cause);
        retry_.pop_front();
    }
}

// Inside a catch block: breaks the pool with "<why>: <what the exception says>".
void process_pool_core::break_pool_on_current(std::string_view why) noexcept {
    std::exception_ptr cause;
    try {
        cause = std::make_exception_ptr(broken_pool_error(fmt::format(
            "corio::process_pool is broken: {}: {}", why, what_of(std::current_exception()))));
    } catch (...) {
        cause = std::current_exception(); // out of memory for the message
    }
    break_pool(cause, cause);
}

void process_pool_core::handle_exit(pool_worker& w) {
    ::close(w.fd);
    w.fd = -1;
    if (!wait_pidfd(w.pidfd, 2000)) {
        // It closed its socket but lives on: it cannot serve any more.
        send_signal(w.pidfd, SIGKILL);
        wait_pidfd(w.pidfd, -1);
    }
    int status = -1;
    std::string how;
    try {
        status = fork_server_wait(w.pid);
        how = describe_wait_status(status);
    } catch (const std::exception& e) {
        how = fmt::format("ended (its status is unknown: {})", e.what());
    }
    ::close(w.pidfd);
    w.pidfd = -1;

    if (w.phase == worker_phase::starting) {
        const std::string what = fmt::format(
            "corio::process_pool is broken: worker process {} {} while running its initializer",
            w.pid, how);
        auto e = std::make_exception_ptr(broken_pool_error(what));
        break_pool(e, e);
    } else if (!w.inflight.empty()) {
        const chunk_ref running = w.inflight.front();
        w.inflight.pop_front();
        fail_chunk(
            running,
            std::make_exception_ptr(broken_worker_error(
                fmt::format("corio::process_pool: worker process {} {} while running this call",
                            w.pid, how),
                w.pid, status == -1 ? -1 : exitcode_of(status))));
        // The chunks behind it never started: another worker runs them.
        std::exception_ptr broken;
        {
            std::lock_guard lock(mutex_);
            broken = broken_;
        }
        for (auto it = w.inflight.rbegin(); it != w.inflight.rend(); ++it) {
            if (broken) {
                fail_chunk(*it, broken);
            } else {
                retry_.push_front(*it);
            }
        }
        w.inflight.clear();
    }
    // A worker that died idle (killed from outside) fails nothing; it is replaced.
}

void process_pool_core::finish_terminate() noexcept {
    terminating_ = true;
    std::deque<std::pair<process_job*, std::size_t>> queued;
    {
        std::lock_guard lock(mutex_);
        queued.swap(queue_);
    }
    for (auto& wp : workers_)
        send_signal(wp->pidfd, SIGKILL);
    // Every receive, send and pidfd watch ends before the memory it uses goes.
    const bool all_ended = ring_->cancel_all(std::chrono::seconds(10));
    for (auto& [job, next] : queued) {
        for (std::size_t k = next; k < job->chunk_count(); ++k) {
            job->on_terminated();
            job->drop();
        }
    }
    auto abandon = [](chunk_ref c) {
        c.job->on_terminated();
        c.job->drop();
    };
    std::for_each(retry_.begin(), retry_.end(), abandon);
    retry_.clear();
    for (auto& wp : workers_) {
        std::for_each(wp->inflight.begin(), wp->inflight.end(), abandon);
        wp->inflight.clear();
        if (all_ended) {
            for (process_job* job : wp->held)
                job->drop();
            wp->held.clear();
        }
        ::close(wp->fd);
        wait_pidfd(wp->pidfd, -1);
        try {
            fork_server_wait(wp->pid);
        } catch (...) {
            // The fork server is gone, and its zombies with it.
        }
        ::close(wp->pidfd);
    }
    if (!all_ended) {
        // The kernel may still write into a worker's buffers: leak them, never free.
        for (auto& wp : workers_)
            (void)wp.release();
    }
    workers_.clear();
    publish_pids();
}

void process_pool_core::reap_dead() {
    // A worker whose socket ended or whose process is gone: cancel its operations,
    // and once their completions are in, read what it sent last and handle its end.
    std::size_t lost = 0;
    for (auto it = workers_.begin(); it != workers_.end();) {
        pool_worker& w = **it;
        if (!w.eof && !w.exited) {
            ++it;
            continue;
        }
        if (!w.dying) {
            w.dying = true;
            for (worker_op* op : {&w.recv_op, &w.send_op, &w.exit_op})
                ring_->cancel(*op);
        }
        if (!w.ops_idle()) {
            ++it;
            continue;
        }
        drain(w);
        handle_exit(w);
        it = workers_.erase(it);
        ++lost;
    }
    if (lost == 0)
        return;
    bool replace;
    {
        std::lock_guard lock(mutex_);
        replace = state_ != pool_state::terminating && !broken_ &&
                  (state_ == pool_state::running || work_left_locked());
    }
    for (std::size_t i = 0; replace && i < lost && workers_.size() < size_; ++i) {
        try {
            spawn_worker();
        } catch (...) {
            break_pool_on_current("a worker could not be replaced");
            break;
        }
    }
    publish_pids();
}

void process_pool_core::run() noexcept {
    for (;;) {
        pool_state state;
        bool work_left;
        bool broken;
        {
            std::lock_guard lock(mutex_);
            state = state_;
            work_left = work_left_locked();
            broken = static_cast<bool>(broken_);
        }
        if (state == pool_state::terminating) {
            finish_terminate();
            return;
        }
        if (!broken) {
            try {
                assign_work();
            } catch (...) {
                // Out of memory queueing frames: fail the pool rather than spin.
                break_pool(std::current_exception(), std::current_exception());
            }
        }
        // Close workers that have nothing more to do: retired ones, or all of them
        // once the pool is closed and no work is left.
        for (auto& wp : workers_) {
            pool_worker& w = *wp;
            const bool idle = w.inflight.empty() && w.unsent.empty() && !w.sending();
            const bool done =
                w.phase == worker_phase::retiring ||
                (state == pool_state::closed && !work_left && w.phase == worker_phase::ready);
            if (idle && done && !w.dying) {
                w.phase = worker_phase::closing;
                ::shutdown(w.fd, SHUT_WR);
            }
        }
        if (state == pool_state::closed && workers_.empty()) {
            std::lock_guard lock(mutex_);
            if (!work_left_locked())
                return;
        }
        // Per worker a receive, a send when frames wait, and a watch of its pidfd.
        // End of file alone would miss a death when another process holds the
        // worker's end of the socket (a child the function forked inherits it); the
        // pidfd turns readable when the worker itself is gone, whoever else holds
        // the socket. Submitting and waiting is one system call.
        for (auto& wp : workers_)
            arm(*wp);
        try {
            ring_->poll(true, std::nullopt);
        } catch (...) {
            // Nothing in poll throws once the ring exists; keep serving regardless.
        }
        try {
            reap_dead();
        } catch (...) {
            break_pool_on_current("handling a worker's end failed");
        }
    }
}

} // namespace corio::detail

namespace corio {

process_pool::process_pool(std::size_t workers, pool_options options)
    : core_(std::make_unique<detail::process_pool_core>(workers, std::move(options))),
      workers_(workers) {}

process_pool::~process_pool() {
    if (core_) {
        core_->close();
        try {
            core_->join();
        } catch (...) {
            // join() from a callback: terminate (the core's destructor) rather than hang.
        }
    }
}

std::vector<pid_t> process_pool::worker_pids() const {
    return core_->pids();
}

void process_pool::submit_(detail::process_job& job, std::size_t chunks) {
    core_->submit(job, chunks);
}

void process_pool::check_running_() const {
    core_->check_running();
}

const std::function<void(std::size_t, std::size_t)>* process_pool::progress_() const noexcept {
    return core_->progress();
}

void process_pool::close() noexcept {
    core_->close();
}

void process_pool::terminate() noexcept {
    core_->terminate();
}

void process_pool::join() {
    core_->join();
}

} // namespace corio
