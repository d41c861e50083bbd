// Process-shared locks (robust pthread mutexes), events, semaphores, conditions and
// barriers (futex words), each in a page of anonymous shared memory.
#include "ipc/futex.hpp"

#include <corio/ipc.hpp>

#include <cerrno>
#include <climits>
#include <ctime>
#include <linux/futex.h>
#include <pthread.h>
#include <unistd.h>
#include <system_error>

namespace corio {

namespace {

struct lock_state {
    pthread_mutex_t mutex;
    std::uint32_t owner_died = 0; // guarded by the mutex
};

struct event_state {
    std::atomic<std::uint32_t> flag{0};
};

struct semaphore_state {
    std::atomic<std::uint32_t> count{0};
    std::atomic<std::uint32_t> waiters{0};
};

struct condition_state {
    std::atomic<std::uint32_t> sequence{0};
};

struct barrier_state {
    std::atomic<std::uint32_t> arrived{0};
    std::atomic<std::uint32_t> generation{0};
    std::uint32_t parties = 0;
};

template <class S>
S* state_of(const shared_memory& m) noexcept {
    return std::launder(reinterpret_cast<S*>(m.data()));
}

template <class S>
void check_size(const shared_memory& m, const char* who) {
    if (m.size() < sizeof(S)) {
        throw serialize_error(std::string(who) + ": the passed memory is too small");
    }
}

// The futex word of a glibc mutex (owner tid | FUTEX_WAITERS | FUTEX_OWNER_DIED for
// a robust one): the awaitable acquire waits on it as glibc's own waiters do.
std::atomic<std::uint32_t>* lock_word(pthread_mutex_t& m) noexcept {
    static_assert(sizeof(m.__data.__lock) == sizeof(std::atomic<std::uint32_t>));
    return reinterpret_cast<std::atomic<std::uint32_t>*>(&m.__data.__lock);
}

timespec monotonic_deadline(int timeout_ms) noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += static_cast<long>(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

// Counts a waiter while it sleeps (blocking or awaiting), so releasers know to wake.
struct counted_waiter {
    explicit counted_waiter(std::atomic<std::uint32_t>& n) noexcept : n_(n) {
        n_.fetch_add(1, std::memory_order_acq_rel);
    }
    counted_waiter(const counted_waiter&) = delete;
    counted_waiter& operator=(const counted_waiter&) = delete;
    ~counted_waiter() { n_.fetch_sub(1, std::memory_order_acq_rel); }
    std::atomic<std::uint32_t>& n_;
};

} // namespace

// ---------------------------------------------------------------------------- lock

process_lock::process_lock() : process_lock(false) {}

process_lock::process_lock(bool recursive) : memory_(sizeof(lock_state)) {
    auto* s = new (memory_.data()) lock_state();
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    pthread_mutexattr_settype(&attr,
                              recursive ? PTHREAD_MUTEX_RECURSIVE : PTHREAD_MUTEX_ERRORCHECK);
    const int rc = pthread_mutex_init(&s->mutex, &attr);
    pthread_mutexattr_destroy(&attr);
    if (rc != 0) {
        throw std::system_error(rc, std::generic_category(), "corio::process_lock: init");
    }
}

process_lock::process_lock(shared_memory m) noexcept : memory_(std::move(m)) {}

bool process_lock::take(int rc) {
    auto* s = state_of<lock_state>(memory_);
    if (rc == 0) {
        s->owner_died = 0;
        return true;
    }
    if (rc == EOWNERDEAD) {
        // The previous owner died holding it: the lock is ours, and usable again.
        pthread_mutex_consistent(&s->mutex);
        s->owner_died = 1;
        return true;
    }
    if (rc == EBUSY || rc == ETIMEDOUT) {
        return false;
    }
    if (rc == EDEADLK) {
        throw error("corio::process_lock: this thread already holds the lock");
    }
    throw std::system_error(rc, std::generic_category(), "corio::process_lock: acquire");
}

void process_lock::acquire() {
    if (memory_.data() == nullptr) {
        throw error("corio::process_lock: moved-from lock");
    }
    (void)take(pthread_mutex_lock(&state_of<lock_state>(memory_)->mutex));
}

bool process_lock::acquire_ms(int timeout_ms) {
    if (memory_.data() == nullptr) {
        throw error("corio::process_lock: moved-from lock");
    }
    auto* s = state_of<lock_state>(memory_);
    if (timeout_ms <= 0) {
        return take(pthread_mutex_trylock(&s->mutex));
    }
    const timespec deadline = monotonic_deadline(timeout_ms);
    return take(pthread_mutex_clocklock(&s->mutex, CLOCK_MONOTONIC, &deadline));
}

bool process_lock::try_acquire() {
    return acquire_ms(0);
}

task<void> process_lock::async_acquire() {
    if (memory_.data() == nullptr) {
        throw error("corio::process_lock: moved-from lock");
    }
    auto* s = state_of<lock_state>(memory_);
    std::atomic<std::uint32_t>* word = lock_word(s->mutex);
    bool waited = false;
    for (;;) {
        if (take(pthread_mutex_trylock(&s->mutex))) {
            // As glibc after a sleep: keep FUTEX_WAITERS set, others may still sleep.
            if (waited) {
                word->fetch_or(FUTEX_WAITERS, std::memory_order_acq_rel);
            }
            co_return;
        }
        std::uint32_t w = word->load(std::memory_order_acquire);
        if (w == 0) {
            continue;
        }
        if ((w & FUTEX_WAITERS) == 0) {
            if (!word->compare_exchange_strong(w, w | FUTEX_WAITERS, std::memory_order_acq_rel)) {
                continue;
            }
            w |= FUTEX_WAITERS;
        }
        waited = true;
        co_await detail::futex_wait_async(word, w);
    }
}

void process_lock::release() {
    if (memory_.data() == nullptr) {
        throw error("corio::process_lock: moved-from lock");
    }
    auto* s = state_of<lock_state>(memory_);
    // The robust mutex's word holds its owner's thread id: refuse here rather than
    // unlock a mutex this thread does not hold (pthread would say EPERM; sanitizers
    // report the attempt itself).
    const std::uint32_t owner =
        lock_word(s->mutex)->load(std::memory_order_acquire) & FUTEX_TID_MASK;
    if (owner != static_cast<std::uint32_t>(::gettid())) {
        throw error("corio::process_lock: release() by a thread that does not hold the lock");
    }
    const int rc = pthread_mutex_unlock(&s->mutex);
    if (rc == EPERM) {
        throw error("corio::process_lock: release() by a thread that does not hold the lock");
    }
    if (rc != 0) {
        throw std::system_error(rc, std::generic_category(), "corio::process_lock: release");
    }
}

bool process_lock::owner_died() const noexcept {
    return memory_.data() != nullptr && state_of<lock_state>(memory_)->owner_died != 0;
}

process_rlock::process_rlock() : lock_(true) {}

// ---------------------------------------------------------------------------- event

process_event::process_event() : memory_(sizeof(event_state)) {
    new (memory_.data()) event_state();
}

process_event::process_event(shared_memory m) noexcept : memory_(std::move(m)) {}

void process_event::set() noexcept {
    auto* s = state_of<event_state>(memory_);
    s->flag.store(1, std::memory_order_release);
    detail::futex_wake(&s->flag, INT_MAX);
}

void process_event::clear() noexcept {
    state_of<event_state>(memory_)->flag.store(0, std::memory_order_release);
}

bool process_event::is_set() const noexcept {
    return state_of<event_state>(memory_)->flag.load(std::memory_order_acquire) != 0;
}

void process_event::wait() {
    (void)wait_ms(-1);
}

bool process_event::wait_ms(int timeout_ms) {
    auto* s = state_of<event_state>(memory_);
    const long long deadline = detail::deadline_after(timeout_ms);
    while (s->flag.load(std::memory_order_acquire) == 0) {
        const int left = detail::remaining_ms(deadline);
        if (left == 0) {
            return false;
        }
        detail::futex_wait(&s->flag, 0, left);
    }
    return true;
}

task<void> process_event::async_wait() {
    auto* s = state_of<event_state>(memory_);
    while (s->flag.load(std::memory_order_acquire) == 0) {
        co_await detail::futex_wait_async(&s->flag, 0);
    }
}

// ---------------------------------------------------------------------------- semaphore

process_semaphore::process_semaphore(std::uint32_t value) : memory_(sizeof(semaphore_state)) {
    if (value > 0x7fffffff) {
        throw error("corio::process_semaphore: initial value too large");
    }
    auto* s = new (memory_.data()) semaphore_state();
    s->count.store(value, std::memory_order_release);
}

process_semaphore::process_semaphore(shared_memory m) noexcept : memory_(std::move(m)) {}

bool process_semaphore::try_acquire() noexcept {
    auto* s = state_of<semaphore_state>(memory_);
    std::uint32_t c = s->count.load(std::memory_order_acquire);
    while (c > 0) {
        if (s->count.compare_exchange_weak(c, c - 1, std::memory_order_acq_rel)) {
            return true;
        }
    }
    return false;
}

void process_semaphore::acquire() {
    (void)acquire_ms(-1);
}

bool process_semaphore::acquire_ms(int timeout_ms) {
    auto* s = state_of<semaphore_state>(memory_);
    const long long deadline = detail::deadline_after(timeout_ms);
    while (!try_acquire()) {
        const int left = detail::remaining_ms(deadline);
        if (left == 0) {
            return false;
        }
        counted_waiter w(s->waiters);
        detail::futex_wait(&s->count, 0, left);
    }
    return true;
}

task<void> process_semaphore::async_acquire() {
    auto* s = state_of<semaphore_state>(memory_);
    while (!try_acquire()) {
        counted_waiter w(s->waiters);
        co_await detail::futex_wait_async(&s->count, 0);
    }
}

void process_semaphore::release(std::uint32_t n) {
    auto* s = state_of<semaphore_state>(memory_);
    std::uint32_t c = s->count.load(std::memory_order_acquire);
    for (;;) {
        if (n > 0x7fffffffU - c) {
            throw error("corio::process_semaphore: release() overflows the counter");
        }
        if (s->count.compare_exchange_weak(c, c + n, std::memory_order_acq_rel)) {
            break;
        }
    }
    if (s->waiters.load(std::memory_order_acquire) != 0) {
        detail::futex_wake(&s->count, INT_MAX);
    }
}

std::uint32_t process_semaphore::value() const noexcept {
    return state_of<semaphore_state>(memory_)->count.load(std::memory_order_acquire);
}

// ---------------------------------------------------------------------------- condition

process_condition::process_condition() : memory_(sizeof(condition_state)) {
    new (memory_.data()) condition_state();
}

process_condition::process_condition(process_lock l, shared_memory m) noexcept
    : lock_(std::move(l)), memory_(std::move(m)) {}

void process_condition::wait() {
    (void)wait_ms(-1);
}

bool process_condition::wait_ms(int timeout_ms) {
    auto* s = state_of<condition_state>(memory_);
    const std::uint32_t seen = s->sequence.load(std::memory_order_acquire);
    lock_.release();
    const long long deadline = detail::deadline_after(timeout_ms);
    bool notified = false;
    while (!notified) {
        const int left = detail::remaining_ms(deadline);
        if (left == 0) {
            break;
        }
        detail::futex_wait(&s->sequence, seen, left);
        notified = s->sequence.load(std::memory_order_acquire) != seen;
    }
    lock_.acquire();
    return notified;
}

task<void> process_condition::async_wait() {
    auto* s = state_of<condition_state>(memory_);
    const std::uint32_t seen = s->sequence.load(std::memory_order_acquire);
    lock_.release();
    while (s->sequence.load(std::memory_order_acquire) == seen) {
        co_await detail::futex_wait_async(&s->sequence, seen);
    }
    co_await lock_.async_acquire();
}

void process_condition::notify(std::uint32_t n) noexcept {
    auto* s = state_of<condition_state>(memory_);
    s->sequence.fetch_add(1, std::memory_order_acq_rel);
    detail::futex_wake(&s->sequence, n > INT_MAX ? INT_MAX : static_cast<int>(n));
}

void process_condition::notify_all() noexcept {
    notify(INT_MAX);
}

// ---------------------------------------------------------------------------- barrier

process_barrier::process_barrier(std::uint32_t parties) : memory_(sizeof(barrier_state)) {
    if (parties == 0) {
        throw error("corio::process_barrier: parties must be at least 1");
    }
    auto* s = new (memory_.data()) barrier_state();
    s->parties = parties;
}

process_barrier::process_barrier(shared_memory m) noexcept : memory_(std::move(m)) {}

// Counts this process in; the last of the parties starts the next generation and
// wakes the others. Returns the arrival index.
static std::uint32_t arrive(barrier_state& s) noexcept {
    const std::uint32_t index = s.arrived.fetch_add(1, std::memory_order_acq_rel);
    if (index + 1 == s.parties) {
        s.arrived.store(0, std::memory_order_release);
        s.generation.fetch_add(1, std::memory_order_acq_rel);
        detail::futex_wake(&s.generation, INT_MAX);
    }
    return index;
}

std::uint32_t process_barrier::parties() const noexcept {
    return state_of<barrier_state>(memory_)->parties;
}

std::uint32_t process_barrier::wait() {
    auto* s = state_of<barrier_state>(memory_);
    const std::uint32_t generation = s->generation.load(std::memory_order_acquire);
    const std::uint32_t index = arrive(*s);
    if (index + 1 == s->parties) {
        return index; // the last one released the others
    }
    while (s->generation.load(std::memory_order_acquire) == generation) {
        detail::futex_wait(&s->generation, generation, -1);
    }
    return index;
}

task<std::uint32_t> process_barrier::async_wait() {
    auto* s = state_of<barrier_state>(memory_);
    const std::uint32_t generation = s->generation.load(std::memory_order_acquire);
    const std::uint32_t index = arrive(*s);
    if (index + 1 == s->parties) {
        co_return index; // the last one released the others
    }
    while (s->generation.load(std::memory_order_acquire) == generation) {
        co_await detail::futex_wait_async(&s->generation, generation);
    }
    co_return index;
}

} // namespace corio
