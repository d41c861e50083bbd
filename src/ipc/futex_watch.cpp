// Futex waits on shared words and the watcher threads behind the awaitable waits
// (see futex.hpp). A watcher waits with futex_waitv on up to 127 watched words plus
// its control word; registering or unregistering bumps the control word so that the
// watcher rebuilds its list. Entries are posted back to their loop with
// call_soon_threadsafe while the watcher's mutex is held, so an entry removed by its
// (cancelled) task under that mutex is never posted afterwards.
#include "ipc/futex.hpp"

#include <corio/event_loop.hpp>
#include <corio/future.hpp>

#include <cerrno>
#include <chrono>
#include <climits>
#include <ctime>
#include <functional>
#include <linux/futex.h>
#include <memory>
#include <mutex>
#include <sys/syscall.h>
#include <thread>
#include <unistd.h>
#include <vector>

namespace corio::detail {

namespace {

long futex_call(const std::atomic<std::uint32_t>* word, int op, std::uint32_t val,
                const timespec* ts) noexcept {
    return ::syscall(SYS_futex, const_cast<std::atomic<std::uint32_t>*>(word), op, val, ts, nullptr,
                     0);
}

struct watch_entry {
    const std::atomic<std::uint32_t>* word = nullptr;
    std::uint32_t expected = 0;
    event_loop* loop = nullptr;
    std::function<void()> fire;
    bool fired = false;
};

constexpr std::size_t watch_capacity = 127; // FUTEX_WAITV_MAX minus the control word

class futex_watcher {
public:
    futex_watcher() : thread_([this] { run(); }) {}
    futex_watcher(const futex_watcher&) = delete;
    futex_watcher& operator=(const futex_watcher&) = delete;
    ~futex_watcher() {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
            poke();
        }
        thread_.join();
    }

    // Under the registry's mutex: room for one more?
    bool has_room() {
        std::lock_guard lock(mutex_);
        return entries_.size() < watch_capacity;
    }
    void add(watch_entry* e) {
        std::lock_guard lock(mutex_);
        entries_.push_back(e);
        poke();
    }
    void remove(watch_entry* e) noexcept {
        std::lock_guard lock(mutex_);
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if (*it == e) {
                entries_.erase(it);
                poke();
                return;
            }
        }
    }

private:
    void poke() noexcept {
        control_.fetch_add(1, std::memory_order_release);
        ::syscall(SYS_futex, &control_, FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
    }

    void run() noexcept {
        std::vector<futex_waitv> waits;
        waits.reserve(watch_capacity + 1);
        for (;;) {
            {
                std::lock_guard lock(mutex_);
                if (stop_) {
                    return;
                }
                // Fire every entry whose word moved on.
                for (auto it = entries_.begin(); it != entries_.end();) {
                    watch_entry* e = *it;
                    if (e->word->load(std::memory_order_acquire) != e->expected) {
                        e->fired = true;
                        e->loop->call_soon_threadsafe(std::move(e->fire));
                        it = entries_.erase(it);
                    } else {
                        ++it;
                    }
                }
                waits.clear();
                futex_waitv c{};
                c.val = control_.load(std::memory_order_acquire);
                c.uaddr = reinterpret_cast<std::uintptr_t>(&control_);
                c.flags = FUTEX_32 | FUTEX_PRIVATE_FLAG;
                waits.push_back(c);
                for (watch_entry* e : entries_) {
                    futex_waitv w{};
                    w.val = e->expected;
                    w.uaddr = reinterpret_cast<std::uintptr_t>(e->word);
                    w.flags = FUTEX_32;
                    waits.push_back(w);
                }
            }
            ::syscall(SYS_futex_waitv, waits.data(), static_cast<unsigned>(waits.size()), 0,
                      nullptr, CLOCK_MONOTONIC);
        }
    }

    std::mutex mutex_;
    std::vector<watch_entry*> entries_;
    std::atomic<std::uint32_t> control_{0};
    bool stop_ = false;
    std::thread thread_; // last: starts once the rest is ready
};

struct watcher_registry {
    std::mutex mutex;
    std::vector<std::unique_ptr<futex_watcher>> watchers;
};

watcher_registry& watchers() {
    static watcher_registry r;
    return r;
}

// Removes the entry from its watcher when the awaiting frame ends (resumed,
// cancelled or destroyed).
class watch_registration {
public:
    explicit watch_registration(watch_entry& e) : entry_(e) {
        auto& r = watchers();
        std::lock_guard lock(r.mutex);
        for (auto& w : r.watchers) {
            if (w->has_room()) {
                watcher_ = w.get();
                break;
            }
        }
        if (watcher_ == nullptr) {
            r.watchers.push_back(std::make_unique<futex_watcher>());
            watcher_ = r.watchers.back().get();
        }
        watcher_->add(&entry_);
    }
    watch_registration(const watch_registration&) = delete;
    watch_registration& operator=(const watch_registration&) = delete;
    ~watch_registration() { watcher_->remove(&entry_); }

private:
    watch_entry& entry_;
    futex_watcher* watcher_ = nullptr;
};

} // namespace

void futex_wait(const std::atomic<std::uint32_t>* word, std::uint32_t expected,
                int timeout_ms) noexcept {
    if (timeout_ms < 0) {
        futex_call(word, FUTEX_WAIT, expected, nullptr);
        return;
    }
    timespec ts{timeout_ms / 1000, static_cast<long>(timeout_ms % 1000) * 1000000L};
    futex_call(word, FUTEX_WAIT, expected, &ts);
}

void futex_wake(const std::atomic<std::uint32_t>* word, int n) noexcept {
    futex_call(word, FUTEX_WAKE, static_cast<std::uint32_t>(n), nullptr);
}

task<void> futex_wait_async(const std::atomic<std::uint32_t>* word, std::uint32_t expected) {
    if (word->load(std::memory_order_acquire) != expected) {
        co_return;
    }
    future<void> done;
    watch_entry entry;
    entry.word = word;
    entry.expected = expected;
    entry.loop = &get_running_loop();
    entry.fire = [done]() mutable {
        if (!done.done()) {
            done.set_result();
        }
    };
    watch_registration registration(entry);
    co_await done;
}

long long deadline_after(int timeout_ms) noexcept {
    if (timeout_ms < 0) {
        return -1;
    }
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now().time_since_epoch())
                         .count();
    return now + timeout_ms;
}

int remaining_ms(long long deadline_ms) noexcept {
    if (deadline_ms < 0) {
        return -1;
    }
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now().time_since_epoch())
                         .count();
    const long long left = deadline_ms - now;
    return left <= 0 ? 0 : (left > INT_MAX ? INT_MAX : static_cast<int>(left));
}

} // namespace corio::detail
