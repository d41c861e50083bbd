#include <corio/detail/loop_access.hpp>
#include <corio/future.hpp>

#include <stdexcept>

#include <corio/detail/live_counts.hpp>

#include <atomic>

namespace corio::detail {

namespace {
// Keeps a state alive inside a scheduled callback, and lets go of it even if the
// callback is dropped unrun (a loop closing with callbacks still queued).
class state_ref {
public:
    explicit state_ref(future_state_base& s) noexcept : state_(&s) { state_->add_ref(); }
    state_ref(const state_ref& o) noexcept : state_(o.state_) { state_->add_ref(); }
    state_ref& operator=(const state_ref&) = delete;
    ~state_ref() { state_->release(); }
    future_state_base& operator*() const noexcept { return *state_; }

private:
    future_state_base* state_;
};

// A done callback's exception goes to the loop's handler, never up the loop.
void invoke_callback(future_state_base& self, const std::function<void(future_state_base&)>& cb) {
    try {
        cb(self);
    } catch (...) {
        if (self.loop() != nullptr) {
            self.loop()->call_exception_handler(
                {"exception in a future's done callback", std::current_exception(), {}});
        }
    }
}
} // namespace

std::string current_cancel_message() {
    if (running_loop != nullptr) {
        task_root* root = loop_access::current_root(*running_loop);
        if (root != nullptr) {
            const std::string& m = static_cast<task_record*>(root)->cancel_message();
            if (!m.empty()) {
                return m;
            }
        }
    }
    return default_cancel_message;
}

bool is_cancellation(const std::exception_ptr& e) noexcept {
    if (!e) {
        return false;
    }
    try {
        std::rethrow_exception(e);
    } catch (const cancelled_error&) {
        return true;
    } catch (...) {
        return false;
    }
}

namespace {
std::atomic<std::size_t> live_states{0};
}

std::size_t live_future_states() noexcept {
    return live_states.load(std::memory_order_relaxed);
}

future_state_base::future_state_base(event_loop& loop) : loop_(&loop) {
    loop_access::register_state(loop, *this);
    live_states.fetch_add(1, std::memory_order_relaxed);
}

future_state_base::~future_state_base() {
    live_states.fetch_sub(1, std::memory_order_relaxed);
    unlink();
    while (waiters_ != nullptr) {
        remove_waiter(*waiters_);
    }
}

void finish_root(task_root& r) noexcept {
    static_cast<task_record&>(r).state().finish_coroutine();
}

void future_state_base::release_last() noexcept {
    report_unretrieved();
    delete this;
}

void future_state_base::report_unretrieved() noexcept {
    if (exception_ && !retrieved_ && status_ == status::finished && loop_ != nullptr) {
        retrieved_ = true;
        std::string message = task_ != nullptr ? "Task exception was never retrieved"
                                               : "Future exception was never retrieved";
        if (task_ != nullptr && loop_->get_debug()) { // debug mode: say where the task came from
            message += " (task created at " + std::string(task_->where().file_name()) + ":" +
                       std::to_string(task_->where().line()) + ")";
        }
        loop_->call_exception_handler(
            {std::move(message), exception_, task_ != nullptr ? task_->name() : std::string()});
    }
}

void future_state_base::detach_from_loop() noexcept {
    report_unretrieved();
    unlink();
    loop_ = nullptr;
}

void future_state_base::check_pending() const {
    if (done()) {
        throw invalid_state_error("corio: the future is already done");
    }
}

bool future_state_base::cancel(std::string message) {
    if (done()) {
        return false;
    }
    if (task_ != nullptr) {
        task_->set_cancel_message(std::move(message));
        task_->deliver_cancel();
        return true;
    }
    exception_ = std::make_exception_ptr(
        cancelled_error(message.empty() ? std::string(default_cancel_message) : message));
    mark_done(status::cancelled);
    return true;
}

void future_state_base::rethrow_if_failed() {
    retrieved_ = true;
    if (exception_) {
        std::rethrow_exception(exception_);
    }
}

std::exception_ptr future_state_base::exception_for_caller() {
    if (!done()) {
        throw invalid_state_error("corio: exception() of a future that is not done");
    }
    retrieved_ = true;
    if (status_ == status::cancelled) {
        std::rethrow_exception(exception_);
    }
    return exception_;
}

void future_state_base::set_exception(std::exception_ptr e) {
    if (!e) {
        throw std::invalid_argument("corio: set_exception with a null exception_ptr");
    }
    bool cancelled = is_cancellation(e);
    exception_ = std::move(e);
    mark_done(cancelled ? status::cancelled : status::finished);
}

void future_state_base::add_waiter(future_waiter& w) noexcept {
    w.linked = true;
    if (waiters_ == nullptr) {
        w.prev = w.next = &w;
        waiters_ = &w;
        return;
    }
    // Last in the circle: just before the first.
    w.next = waiters_;
    w.prev = waiters_->prev;
    w.prev->next = &w;
    waiters_->prev = &w;
}

void future_state_base::remove_waiter(future_waiter& w) noexcept {
    if (!w.linked) {
        return;
    }
    if (w.next == &w) {
        waiters_ = nullptr;
    } else {
        w.prev->next = w.next;
        w.next->prev = w.prev;
        if (waiters_ == &w) {
            waiters_ = w.next;
        }
    }
    w.prev = w.next = nullptr;
    w.linked = false;
}

std::uint64_t future_state_base::add_callback(std::function<void(future_state_base&)> fn) {
    if (callbacks_ == nullptr) {
        callbacks_ = std::make_unique<callback_list>();
    }
    std::uint64_t id = callbacks_->next_id++;
    if (!done()) {
        callbacks_->entries.push_back({id, std::move(fn)});
        return id;
    }
    if (loop_ != nullptr) {
        loop_->call_soon(
            [ref = state_ref(*this), fn = std::move(fn)] { invoke_callback(*ref, fn); });
    }
    return id;
}

std::size_t future_state_base::remove_callback(std::uint64_t id) noexcept {
    if (callbacks_ == nullptr) {
        return 0;
    }
    return std::erase_if(callbacks_->entries, [id](const callback_entry& e) { return e.id == id; });
}

void future_state_base::mark_done(status s) {
    status_ = s;
    if (loop_ == nullptr) {
        return;
    }
    if (task_ != nullptr) {
        loop_access::register_state(*loop_, *this); // from the pending tasks to the states
    }
    while (waiters_ != nullptr) {
        future_waiter& w = *waiters_;
        remove_waiter(w);
        loop_->schedule(w.coroutine, w.root);
    }
    if (callbacks_ != nullptr && !callbacks_->entries.empty()) {
        auto cbs = std::move(callbacks_->entries);
        callbacks_->entries.clear();
        loop_->call_soon([ref = state_ref(*this), cbs = std::move(cbs)] {
            for (const auto& cb : cbs) {
                invoke_callback(*ref, cb.fn);
            }
        });
    }
}

} // namespace corio::detail
