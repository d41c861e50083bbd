// Foreign descriptors on the loop: add_reader / add_writer (asyncio's), a multishot
// poll per watched descriptor and direction, and wait_readable / wait_writable (one
// poll each). The poll is all the ring does: the kernel writes nothing into these
// objects, so the registry may go at close() with polls still armed (as the signal
// registry does); the ring's teardown cancels them.

#include "ring/io_ops.hpp"
#include "ring/uring.hpp"

#include <corio/descriptor.hpp>
#include <corio/detail/loop_access.hpp>
#include <corio/event_loop.hpp>

#include <poll.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace corio::detail {

class fd_watch_registry;

// One watched (descriptor, direction): a multishot poll whose completions queue the
// callback on the loop. Freed by its registry when idle, else by the final
// completion of its cancelled poll.
class fd_watch : public uring_op {
public:
    fd_watch(event_loop& loop, int fd, unsigned events, bool multishot)
        : loop_(&loop), fd_(fd), events_(events), multishot_(multishot) {
        prep = &prep_fn;
        complete = &on_complete;
    }

    std::function<void()> fn;

    /// Replaces the callback; while it runs, once it has returned.
    void set(std::function<void()> f) {
        if (running_) {
            next_ = std::move(f);
        } else {
            fn = std::move(f);
        }
    }

    void arm() noexcept {
        if (!armed_) {
            armed_ = true;
            submit_op(*loop_, *this);
        }
    }

    /// Stops watching: the queued call is dropped, the poll cancelled; frees this
    /// now or when the poll's final completion arrives. Until then it stays in
    /// `retiring` (which the registry's destructor frees if the loop closes first).
    void retire(std::unordered_set<fd_watch*>& retiring) noexcept {
        dead_ = true;
        queued_.cancel();
        if (!running_ && !armed_) {
            delete this;
            return;
        }
        try {
            retiring.insert(this);
            retiring_ = &retiring;
        } catch (...) {
            // out of memory: it is freed at its completion, or leaks if the loop
            // closes first
        }
        if (!running_) {
            cancel_op(*loop_, *this); // may complete (and free this) at once
        }
        // else run() frees it once the callback returned
    }

    /// Called by the registry's destructor (the loop is closing): nothing runs or
    /// completes any more, so the object can go whatever its poll does.
    void drop() noexcept {
        queued_.cancel();
        delete this;
    }

private:
    /// Frees a retired watch whose poll ended.
    void destroy() noexcept {
        if (retiring_ != nullptr) {
            retiring_->erase(this);
        }
        delete this;
    }

public:
private:
    static void prep_fn(uring_op& op, ::io_uring_sqe& sqe) noexcept {
        auto& self = static_cast<fd_watch&>(op);
        if (self.multishot_) {
            io_uring_prep_poll_multishot(&sqe, self.fd_, self.events_);
        } else {
            io_uring_prep_poll_add(&sqe, self.fd_, self.events_);
        }
    }

    static void on_complete(uring_op& op, int res, unsigned flags) noexcept {
        auto& self = static_cast<fd_watch&>(op);
        if ((flags & IORING_CQE_F_MORE) == 0) {
            self.armed_ = false;
        }
        if (self.dead_) {
            if (!self.armed_ && !self.running_) {
                self.destroy();
            }
            return;
        }
        if (res < 0) {
            if (res == -ECANCELED && !self.armed_) {
                self.arm(); // ended by the kernel (e.g. an overflowing CQ): watch on
                return;
            }
            self.failed(-res);
            return;
        }
        self.queue();
        if (!self.armed_) {
            self.arm(); // a single-shot poll, or a multishot poll the kernel ended
        }
    }

    void failed(int err) noexcept {
        // A descriptor closed under the watch (EBADF) and the like: report once and
        // stop polling; remove_reader / remove_writer still free the watch.
        loop_->call_exception_handler(
            {std::string("corio: watching descriptor ") + std::to_string(fd_) +
                 (events_ == POLLIN ? " for reading" : " for writing") + " failed",
             std::make_exception_ptr(std::system_error(err, std::system_category(), "poll")),
             {}});
    }

    void queue() noexcept {
        if (queued_pending_) {
            return;
        }
        try {
            queued_ = loop_->call_soon([this] { run(); });
            queued_pending_ = true;
        } catch (...) {
            loop_->call_exception_handler(
                {"corio: could not queue a descriptor callback", std::current_exception(), {}});
        }
    }

    void run() {
        queued_pending_ = false;
        queued_ = {};
        running_ = true;
        try {
            fn();
        } catch (...) {
            running_ = false;
            after_run();
            throw; // reported by the loop as any callback's exception
        }
        running_ = false;
        after_run();
    }

    void after_run() noexcept {
        if (next_) {
            fn = std::move(next_);
            next_ = nullptr;
        }
        if (dead_) {
            if (!armed_) {
                destroy();
            } else {
                cancel_op(*loop_, *this);
            }
            return;
        }
        // Level-triggered, as asyncio's: still ready after the call, call again on
        // the next iteration (the multishot poll reports new wake-ups only).
        ::pollfd p{fd_, static_cast<short>(events_), 0};
        if (::poll(&p, 1, 0) > 0 && (p.revents & (events_ | POLLERR | POLLHUP)) != 0) {
            queue();
        }
    }

    event_loop* loop_;
    int fd_;
    unsigned events_;
    bool multishot_;
    bool armed_ = false;
    bool dead_ = false;
    bool running_ = false;
    bool queued_pending_ = false;
    timer_handle queued_;
    std::function<void()> next_;
    std::unordered_set<fd_watch*>* retiring_ = nullptr;
};

class fd_watch_registry {
public:
    explicit fd_watch_registry(event_loop& loop)
        : loop_(&loop), multishot_(loop_access::ring(loop).supports(IORING_OP_SOCKET)) {
    } // 5.19 >= 5.13
    fd_watch_registry(const fd_watch_registry&) = delete;
    fd_watch_registry& operator=(const fd_watch_registry&) = delete;
    ~fd_watch_registry() {
        for (auto& [fd, w] : readers_) {
            w->drop();
        }
        for (auto& [fd, w] : writers_) {
            w->drop();
        }
        // Removed watches whose poll had not ended yet: nothing completes any more.
        std::unordered_set<fd_watch*> retiring;
        retiring.swap(retiring_);
        for (fd_watch* w : retiring) {
            w->drop();
        }
    }

    void add(int fd, unsigned events, std::function<void()> fn) {
        auto& map = events == POLLIN ? readers_ : writers_;
        auto it = map.find(fd);
        if (it != map.end()) {
            it->second->set(std::move(fn));
            return;
        }
        auto* w = new fd_watch(*loop_, fd, events, multishot_);
        w->fn = std::move(fn);
        try {
            map.emplace(fd, w);
        } catch (...) {
            delete w;
            throw;
        }
        w->arm();
    }

    bool remove(int fd, unsigned events) noexcept {
        auto& map = events == POLLIN ? readers_ : writers_;
        auto it = map.find(fd);
        if (it == map.end()) {
            return false;
        }
        fd_watch* w = it->second;
        map.erase(it);
        w->retire(retiring_);
        return true;
    }

private:
    event_loop* loop_;
    bool multishot_;
    std::unordered_map<int, fd_watch*> readers_;
    std::unordered_map<int, fd_watch*> writers_;
    std::unordered_set<fd_watch*> retiring_;
};

} // namespace corio::detail

namespace corio {

namespace {

void check_watch(event_loop& loop, int fd, const std::function<void()>& fn, const char* what) {
    if (loop.is_closed()) {
        throw error(std::string("corio: ") + what + " on a closed event loop");
    }
    if (fd < 0) {
        throw std::invalid_argument(std::string("corio: ") + what + " with a negative descriptor");
    }
    if (!fn) {
        throw std::invalid_argument(std::string("corio: ") + what + " with an empty function");
    }
}

} // namespace

void event_loop::add_reader(int fd, std::function<void()> fn) {
    check_watch(*this, fd, fn, "add_reader");
    if (!fd_watches_) {
        fd_watches_ = {new detail::fd_watch_registry(*this),
                       [](detail::fd_watch_registry* r) { delete r; }};
    }
    fd_watches_->add(fd, POLLIN, std::move(fn));
}

void event_loop::add_writer(int fd, std::function<void()> fn) {
    check_watch(*this, fd, fn, "add_writer");
    if (!fd_watches_) {
        fd_watches_ = {new detail::fd_watch_registry(*this),
                       [](detail::fd_watch_registry* r) { delete r; }};
    }
    fd_watches_->add(fd, POLLOUT, std::move(fn));
}

bool event_loop::remove_reader(int fd) {
    return fd_watches_ && fd_watches_->remove(fd, POLLIN);
}

bool event_loop::remove_writer(int fd) {
    return fd_watches_ && fd_watches_->remove(fd, POLLOUT);
}

namespace {

task<> wait_ready(int fd, unsigned events) {
    if (fd < 0) {
        throw std::invalid_argument("corio: waiting on a negative descriptor");
    }
    int res = co_await detail::io_op(&detail::prep_poll, {.fd = fd, .flags = events});
    if (res < 0) {
        throw std::system_error(-res, std::system_category(), "poll");
    }
}

} // namespace

task<> wait_readable(int fd) {
    return wait_ready(fd, POLLIN);
}

task<> wait_writable(int fd) {
    return wait_ready(fd, POLLOUT);
}

} // namespace corio
