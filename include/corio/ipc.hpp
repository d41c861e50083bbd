#pragma once
/// \file ipc.hpp
/// Processes talking to each other (multiprocessing's Pipe, Queue, JoinableQueue,
/// shared_memory, Value, Array, Lock, RLock, Event, Semaphore, Condition, Barrier):
/// ```
/// auto [parent_end, child_end] = corio::pipe<std::string>();
/// corio::process p([](corio::connection<std::string> c) { c.send("hello"); },
/// std::move(child_end)); p.start(); std::string s = parent_end.recv();
/// ```
/// Values cross as `corio::serialize` encodes them. Every object here reaches a
/// `corio::process` child as an argument of its function (its descriptor travels with
/// the start frame); the child's copy shares the parent's channel or memory.
/// Every blocking call has an awaitable form that never blocks the loop thread:
/// channels and queues wait on the loop's ring (io_uring recvmsg / sendmsg); the
/// process-shared primitives wait on their futex in a watcher thread (futex_waitv),
/// which resumes the task on its loop. See docs/ipc.md.
///
/// **Thread safety:** one object must not be used by two threads at once; distinct
/// objects that share a channel or memory (in one process or several) are
/// independent.

#include <corio/detail/fd_passing.hpp>
#include <corio/detail/ipc_channel.hpp>
#include <corio/error.hpp>
#include <corio/queue.hpp>
#include <corio/serialize.hpp>
#include <corio/task.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace corio {

namespace detail {
template <class P>
struct memory_serializer;

template <class Rep, class Period>
int to_timeout_ms(std::chrono::duration<Rep, Period> d) noexcept {
    const auto ms = std::chrono::ceil<std::chrono::milliseconds>(d).count();
    if (ms <= 0) {
        return 0;
    }
    return ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(ms);
}
} // namespace detail

// ----------------------------------------------------------------------------
// Connections

/// One end of a `pipe<T>()` (multiprocessing.Connection), carrying values of type `T`
/// (anything `corio::serialize` encodes). Each message arrives whole, in order, and
/// never interleaved with another sender's; messages of any size (larger ones travel
/// in a memfd). Move-only; the destructor closes the end.
/// **Thread safety:** one thread at a time per object.
template <class T>
class connection {
    static_assert(serializable<T>, "corio::connection<T>: T must be serializable");

public:
    /// A closed connection (moved-from state).
    connection() noexcept = default;

    /// Sends `v`; blocks while the peer's buffer is full. Throws
    /// `end_of_stream_error` if the peer closed or died, `corio::error` if this end is
    /// closed or receive-only.
    void send(const T& v) {
        out_.buffer().clear();
        serialize(out_, v);
        channel_.send(out_.buffer());
    }
    /// The next value; blocks until one arrives. Throws `end_of_stream_error` when the
    /// peer closed or died and nothing is left, `serialize_error` on a malformed
    /// message, `corio::error` if this end is closed or send-only.
    [[nodiscard]] T recv() {
        std::string_view bytes = *channel_.recv(-1);
        byte_reader r(bytes);
        return deserialize<T>(r);
    }
    /// True if `recv()` would not block (a value, or the end of the stream, is
    /// there), waiting at most `timeout`.
    template <class Rep = long, class Period = std::milli>
    [[nodiscard]] bool
    poll(std::chrono::duration<Rep, Period> timeout = std::chrono::milliseconds(0)) {
        return channel_.poll(detail::to_timeout_ms(timeout));
    }
    /// Awaitable `send`: waits on the running loop without blocking it.
    [[nodiscard]] task<void> async_send(T v) {
        byte_writer w;
        serialize(w, v);
        co_await channel_.async_send(w.take());
    }
    /// Awaitable `recv`: waits on the running loop without blocking it.
    [[nodiscard]] task<T> async_recv() {
        std::string_view bytes = co_await channel_.async_recv();
        byte_reader r(bytes);
        co_return deserialize<T>(r);
    }
    /// Closes this end (the peer's `recv` then ends with `end_of_stream_error` once no
    /// other process holds this end). Idempotent.
    void close() noexcept { channel_.close(); }
    /// True once closed (or moved from).
    [[nodiscard]] bool closed() const noexcept { return channel_.closed(); }
    /// The socket's descriptor (-1 when closed).
    [[nodiscard]] int fileno() const noexcept { return channel_.fd(); }

private:
    template <class U>
    friend std::pair<connection<U>, connection<U>> pipe(bool duplex);
    friend struct serializer<connection<T>>;
    explicit connection(detail::message_channel c) noexcept : channel_(std::move(c)) {}

    detail::message_channel channel_;
    byte_writer out_;
};

/// multiprocessing.Pipe: two connected connections. Duplex by default; with `duplex`
/// false the first end only receives and the second only sends. Throws
/// `std::system_error` if the sockets cannot be made.
/// **Thread safety:** any thread.
template <class T>
[[nodiscard]] std::pair<connection<T>, connection<T>> pipe(bool duplex = true) {
    auto [a, b] = detail::message_channel::make_pair(duplex);
    return {connection<T>(std::move(a)), connection<T>(std::move(b))};
}

/// A connection travels to a `corio::process` child as its descriptor.
template <class T>
struct serializer<connection<T>> {
    static void write(byte_writer& w, const connection<T>& c) {
        c.channel_.write_to(w, "a corio::connection");
    }
    static connection<T> read(byte_reader& r) {
        return connection<T>(detail::message_channel::read_from(r));
    }
};

// ----------------------------------------------------------------------------
// Queues

/// multiprocessing.Queue: a FIFO shared by any number of producer and consumer
/// processes, bounded by `maxsize` items (0: unbounded). Each item reaches exactly
/// one getter, whole; the items of one producer arrive in the order it put them.
/// There is no lock to die with: a put is one atomic message, so a process killed
/// at any point either put an item or did not, and one killed while getting either
/// took an item (lost with it) or did not. See docs/ipc.md for what a killed process
/// can leave behind (at most one slot of `maxsize`).
/// **Thread safety:** one thread at a time per object; share by passing the queue
/// to processes (or moving it), each holder its own object.
template <class T>
class process_queue {
    static_assert(serializable<T>, "corio::process_queue<T>: T must be serializable");

public:
    /// A queue holding at most `maxsize` items (0: unbounded). Throws
    /// `std::system_error` if its sockets or memory cannot be made.
    explicit process_queue(std::size_t maxsize = 0) : core_(maxsize) {}

    /// Puts `v`, waiting while the queue is full. Throws `corio::error` after `close()`.
    void put(const T& v) { core_.put(encode(v), -1); }
    /// Puts `v`, waiting at most `timeout` for room; throws `queue_full` on expiry.
    template <class Rep, class Period>
    void put(const T& v, std::chrono::duration<Rep, Period> timeout) {
        core_.put(encode(v), detail::to_timeout_ms(timeout));
    }
    /// Puts `v` if there is room now; throws `queue_full` otherwise.
    void put_nowait(const T& v) { core_.put(encode(v), 0); }
    /// Takes the next item, waiting until there is one.
    [[nodiscard]] T get() { return decode(core_.get(-1)); }
    /// Takes the next item, waiting at most `timeout`; throws `queue_empty` on expiry.
    template <class Rep, class Period>
    [[nodiscard]] T get(std::chrono::duration<Rep, Period> timeout) {
        return decode(core_.get(detail::to_timeout_ms(timeout)));
    }
    /// Takes an item if one is there now; throws `queue_empty` otherwise.
    [[nodiscard]] T get_nowait() { return decode(core_.get(0)); }
    /// Awaitable `put`: waits for room on the running loop without blocking it.
    [[nodiscard]] task<void> async_put(T v) {
        byte_writer w;
        serialize(w, v);
        co_await core_.async_put(w.take());
    }
    /// Awaitable `get`: waits for an item on the running loop without blocking it.
    [[nodiscard]] task<T> async_get() {
        std::string_view bytes = co_await core_.async_get();
        co_return decode(bytes);
    }
    /// Items in the queue (approximate while others put and get, as Python's).
    [[nodiscard]] std::size_t qsize() const noexcept { return core_.qsize(); }
    /// True if `qsize()` is 0.
    [[nodiscard]] bool empty() const noexcept { return core_.qsize() == 0; }
    /// True if the queue is bounded and holds `maxsize()` items.
    [[nodiscard]] bool full() const noexcept {
        return core_.maxsize() != 0 && core_.qsize() >= core_.maxsize();
    }
    /// The bound given to the constructor (0: unbounded).
    [[nodiscard]] std::size_t maxsize() const noexcept { return core_.maxsize(); }
    /// This object puts and gets no more (its descriptors close); other holders go on.
    /// Idempotent.
    void close() noexcept { core_.close(); }

protected:
    /// Adopts a queue received by a process.
    explicit process_queue(detail::queue_core core) noexcept : core_(std::move(core)) {}
    detail::queue_core core_;

private:
    friend struct serializer<process_queue<T>>;
    std::string_view encode(const T& v) {
        out_.buffer().clear();
        serialize(out_, v);
        return out_.buffer();
    }
    static T decode(std::string_view bytes) {
        byte_reader r(bytes);
        return deserialize<T>(r);
    }
    byte_writer out_;
};

/// multiprocessing.JoinableQueue: a `process_queue` that counts unfinished items;
/// each `get` should be followed by one `task_done()`, and `join()` waits until every
/// item put was marked done.
/// **Thread safety:** as `process_queue`.
template <class T>
class joinable_process_queue : public process_queue<T> {
public:
    /// As `process_queue(maxsize)`.
    explicit joinable_process_queue(std::size_t maxsize = 0) : process_queue<T>(maxsize) {}
    /// Marks one item as processed. Throws `corio::error` if called more times than
    /// items were put (Python's ValueError).
    void task_done() { this->core_.task_done(); }
    /// Waits until every item put has been marked done.
    void join() { this->core_.join(-1); }
    /// Waits at most `timeout`; true if every item was marked done.
    template <class Rep, class Period>
    [[nodiscard]] bool join(std::chrono::duration<Rep, Period> timeout) {
        return this->core_.join(detail::to_timeout_ms(timeout));
    }
    /// Awaitable `join`: waits on the running loop without blocking it.
    [[nodiscard]] task<void> async_join() { co_await this->core_.async_join(); }

private:
    friend struct serializer<joinable_process_queue<T>>;
    explicit joinable_process_queue(detail::queue_core core) noexcept
        : process_queue<T>(std::move(core)) {}
};

/// A queue travels to a `corio::process` child as its descriptors.
template <class T>
struct serializer<process_queue<T>> {
    static void write(byte_writer& w, const process_queue<T>& q) { q.core_.write_to(w); }
    static process_queue<T> read(byte_reader& r) {
        return process_queue<T>(detail::queue_core::read_from(r));
    }
};

/// A joinable queue travels to a `corio::process` child as its descriptors.
template <class T>
struct serializer<joinable_process_queue<T>> {
    static void write(byte_writer& w, const joinable_process_queue<T>& q) {
        serializer<process_queue<T>>::write(w, q);
    }
    static joinable_process_queue<T> read(byte_reader& r) {
        return joinable_process_queue<T>(detail::queue_core::read_from(r));
    }
};

// ----------------------------------------------------------------------------
// Shared memory

/// A block of memory shared between processes (multiprocessing.shared_memory):
/// named (`create` / `attach` / `unlink`, in /dev/shm) or anonymous (a memfd, shared
/// with children by passing the object to a `corio::process`). Move-only; the
/// destructor unmaps and closes but never unlinks (as Python's `close()`).
/// **Thread safety:** the object as one thread at a time; the bytes are the user's to
/// synchronize (a `process_lock`, or atomics through `std::atomic_ref`).
class shared_memory {
public:
    /// An empty object (no memory).
    shared_memory() noexcept = default;
    /// Anonymous shared memory of `size` bytes, zero-filled. Throws `corio::error` if
    /// `size` is 0, `std::system_error` if memfd_create / mmap fail.
    explicit shared_memory(std::size_t size);
    /// Creates the named block `name` (no leading slash, no '/') of `size` bytes,
    /// zero-filled. Throws `corio::error` for a bad name or size 0,
    /// `std::system_error` (EEXIST) if it exists.
    [[nodiscard]] static shared_memory create(std::string_view name, std::size_t size);
    /// Maps the existing named block `name`. Throws `std::system_error` (ENOENT) if
    /// there is none, `corio::error` for a bad name.
    [[nodiscard]] static shared_memory attach(std::string_view name);

    shared_memory(shared_memory&& o) noexcept;
    shared_memory& operator=(shared_memory&& o) noexcept;
    shared_memory(const shared_memory&) = delete;
    shared_memory& operator=(const shared_memory&) = delete;
    ~shared_memory();

    /// The first byte (nullptr when empty).
    [[nodiscard]] std::byte* data() const noexcept { return data_; }
    /// Its size in bytes.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// Its name; empty for anonymous memory.
    [[nodiscard]] const std::string& name() const noexcept { return name_; }
    /// Removes the name (the memory lives on while mapped). Throws
    /// `std::system_error` if it is already gone, `corio::error` for anonymous memory.
    void unlink();
    /// Unmaps and closes now (the destructor does it too). Idempotent.
    void close() noexcept;

private:
    friend struct serializer<shared_memory>;
    shared_memory(int fd, std::string name);
    int fd_ = -1;
    std::byte* data_ = nullptr;
    std::size_t size_ = 0;
    std::string name_;

public:
    /// Encodes a duplicate of the descriptor (for `serializer`).
    void write_to(byte_writer& w) const;
    /// Maps a block received with a process's arguments (for `serializer`).
    static shared_memory read_from(byte_reader& r);
};

/// Shared memory travels to a `corio::process` child as its descriptor.
template <>
struct serializer<shared_memory> {
    static void write(byte_writer& w, const shared_memory& m) { m.write_to(w); }
    static shared_memory read(byte_reader& r) { return shared_memory::read_from(r); }
};

/// multiprocessing.Array without its lock: `n` values of trivially copyable `T` in
/// anonymous shared memory, zero-initialized, seen by every process it is passed to.
/// **Thread safety:** the elements are the user's to synchronize.
template <class T>
class shared_array {
    static_assert(std::is_trivially_copyable_v<T>,
                  "corio::shared_array<T>: T must be trivially copyable");

public:
    /// `n` zero-initialized elements. Throws `corio::error` if `n` is 0.
    explicit shared_array(std::size_t n) : memory_(bytes_for(n)), size_(n) {}
    /// Element `i` (unchecked).
    [[nodiscard]] T& operator[](std::size_t i) const noexcept { return data()[i]; }
    /// The number of elements.
    [[nodiscard]] std::size_t size() const noexcept { return size_; }
    /// The first element.
    [[nodiscard]] T* data() const noexcept {
        return std::launder(reinterpret_cast<T*>(memory_.data()));
    }
    /// Iterators over the elements.
    [[nodiscard]] T* begin() const noexcept { return data(); }
    /// Iterators over the elements.
    [[nodiscard]] T* end() const noexcept { return data() + size_; }

private:
    friend struct serializer<shared_array<T>>;
    shared_array(shared_memory m, std::size_t n) : memory_(std::move(m)), size_(n) {
        if (memory_.size() < n * sizeof(T)) {
            throw serialize_error("corio::shared_array: the passed memory is too small");
        }
    }
    static std::size_t bytes_for(std::size_t n) {
        if (n == 0) {
            throw error("corio::shared_array: size 0");
        }
        if (n > (std::size_t(1) << 48) / sizeof(T)) {
            throw error("corio::shared_array: too many elements");
        }
        return n * sizeof(T);
    }
    shared_memory memory_;
    std::size_t size_;
};

/// A shared array travels to a `corio::process` child as its memory's descriptor.
template <class T>
struct serializer<shared_array<T>> {
    static void write(byte_writer& w, const shared_array<T>& a) {
        a.memory_.write_to(w);
        w.write_size(a.size_);
    }
    static shared_array<T> read(byte_reader& r) {
        auto m = shared_memory::read_from(r);
        const std::size_t n = r.read_size();
        return shared_array<T>(std::move(m), n);
    }
};

/// multiprocessing.Value without its lock: one trivially copyable `T` in anonymous
/// shared memory. For a counter, use an integer with `std::atomic_ref` or guard it
/// with a `process_lock`.
/// **Thread safety:** the value is the user's to synchronize.
template <class T>
class shared_value {
public:
    /// Holds `v`.
    explicit shared_value(const T& v = T{}) : array_(1) { array_[0] = v; }
    /// The value.
    [[nodiscard]] T& operator*() const noexcept { return array_[0]; }
    /// Its members.
    [[nodiscard]] T* operator->() const noexcept { return array_.data(); }
    /// A copy of the value.
    [[nodiscard]] T get() const noexcept { return array_[0]; }
    /// Sets the value.
    void set(const T& v) const noexcept { array_[0] = v; }

private:
    friend struct serializer<shared_value<T>>;
    explicit shared_value(shared_array<T> a) noexcept : array_(std::move(a)) {}
    shared_array<T> array_;
};

/// A shared value travels to a `corio::process` child as its memory's descriptor.
template <class T>
struct serializer<shared_value<T>> {
    static void write(byte_writer& w, const shared_value<T>& v) {
        serializer<shared_array<T>>::write(w, v.array_);
    }
    static shared_value<T> read(byte_reader& r) {
        return shared_value<T>(serializer<shared_array<T>>::read(r));
    }
};

// ----------------------------------------------------------------------------
// Process-shared synchronization

/// multiprocessing.Lock: a robust pthread mutex in shared memory. If its owner dies
/// holding it, the next `acquire` succeeds and `owner_died()` is true for that one
/// owner (the data it guards may be half-updated: check it). The owner is a thread:
/// release from the thread that acquired (the loop thread for `async_acquire`).
/// Meets Lockable (`lock()`, `try_lock()`, `unlock()`), for `std::lock_guard`.
/// **Thread safety:** any threads and processes (that is its purpose).
class process_lock {
public:
    /// An unlocked lock. Throws `std::system_error` if its memory cannot be made.
    process_lock();
    /// Acquires, blocking.
    void acquire();
    /// Acquires, waiting at most `timeout`; false on expiry.
    template <class Rep, class Period>
    [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
        return acquire_ms(detail::to_timeout_ms(timeout));
    }
    /// Acquires if free now.
    [[nodiscard]] bool try_acquire();
    /// Acquires without blocking the running loop (waits in the futex watcher thread).
    [[nodiscard]] task<void> async_acquire();
    /// Releases. Throws `corio::error` if this thread does not hold it.
    void release();
    /// True for the owner that took the lock over from one that died holding it
    /// (valid while holding it).
    [[nodiscard]] bool owner_died() const noexcept;
    /// Lockable spelling of acquire.
    void lock() { acquire(); }
    /// Lockable spelling of try_acquire.
    [[nodiscard]] bool try_lock() { return try_acquire(); }
    /// Lockable spelling of release.
    void unlock() { release(); }

private:
    friend struct serializer<process_lock>;
    friend struct detail::memory_serializer<process_lock>;
    friend class process_rlock;
    friend class process_condition;
    explicit process_lock(shared_memory m) noexcept;
    explicit process_lock(bool recursive);
    bool acquire_ms(int timeout_ms);
    bool take(int rc);
    shared_memory memory_;
};

/// multiprocessing.RLock: a `process_lock` its owner may acquire again (released as
/// often as acquired).
/// **Thread safety:** any threads and processes.
class process_rlock {
public:
    /// An unlocked lock.
    process_rlock();
    /// Acquires, blocking (again, if this thread holds it).
    void acquire() { lock_.acquire(); }
    /// Acquires, waiting at most `timeout`; false on expiry.
    template <class Rep, class Period>
    [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
        return lock_.acquire(timeout);
    }
    /// Acquires if free or held by this thread.
    [[nodiscard]] bool try_acquire() { return lock_.try_acquire(); }
    /// Awaitable acquire on the running loop.
    [[nodiscard]] task<void> async_acquire() { return lock_.async_acquire(); }
    /// Releases one level. Throws `corio::error` if this thread does not hold it.
    void release() { lock_.release(); }
    /// As `process_lock::owner_died`.
    [[nodiscard]] bool owner_died() const noexcept { return lock_.owner_died(); }
    /// Lockable spellings.
    void lock() { acquire(); }
    /// Lockable spellings.
    [[nodiscard]] bool try_lock() { return try_acquire(); }
    /// Lockable spellings.
    void unlock() { release(); }

private:
    friend struct serializer<process_rlock>;
    explicit process_rlock(process_lock l) noexcept : lock_(std::move(l)) {}
    process_lock lock_;
};

/// multiprocessing.Event: a flag processes wait for.
/// **Thread safety:** any threads and processes.
class process_event {
public:
    /// A clear event.
    process_event();
    /// Sets the flag and wakes every waiter.
    void set() noexcept;
    /// Clears the flag.
    void clear() noexcept;
    /// The flag.
    [[nodiscard]] bool is_set() const noexcept;
    /// Waits until set.
    void wait();
    /// Waits at most `timeout`; returns the flag.
    template <class Rep, class Period>
    bool wait(std::chrono::duration<Rep, Period> timeout) {
        return wait_ms(detail::to_timeout_ms(timeout));
    }
    /// Awaitable wait on the running loop (futex watcher thread).
    [[nodiscard]] task<void> async_wait();

private:
    friend struct serializer<process_event>;
    friend struct detail::memory_serializer<process_event>;
    explicit process_event(shared_memory m) noexcept;
    bool wait_ms(int timeout_ms);
    shared_memory memory_;
};

/// multiprocessing.Semaphore: a counter of permits shared by processes. A process
/// that dies holding permits does not give them back (semaphores have no owner).
/// **Thread safety:** any threads and processes.
class process_semaphore {
public:
    /// `value` permits.
    explicit process_semaphore(std::uint32_t value = 1);
    /// Takes a permit, blocking.
    void acquire();
    /// Takes a permit, waiting at most `timeout`; false on expiry.
    template <class Rep, class Period>
    [[nodiscard]] bool acquire(std::chrono::duration<Rep, Period> timeout) {
        return acquire_ms(detail::to_timeout_ms(timeout));
    }
    /// Takes a permit if one is free.
    [[nodiscard]] bool try_acquire() noexcept;
    /// Awaitable acquire on the running loop (futex watcher thread).
    [[nodiscard]] task<void> async_acquire();
    /// Gives `n` permits back. Throws `corio::error` on overflow.
    void release(std::uint32_t n = 1);
    /// Free permits now.
    [[nodiscard]] std::uint32_t value() const noexcept;

private:
    friend struct serializer<process_semaphore>;
    friend struct detail::memory_serializer<process_semaphore>;
    explicit process_semaphore(shared_memory m) noexcept;
    bool acquire_ms(int timeout_ms);
    shared_memory memory_;
};

/// multiprocessing.Condition over its own `process_lock`: `wait` releases the lock,
/// sleeps until notified, and reacquires it. Wake-ups may be spurious: wait in a loop
/// on the condition's predicate (or use `wait(pred)`).
/// **Thread safety:** any threads and processes.
class process_condition {
public:
    /// A condition with a fresh lock.
    process_condition();
    /// Acquires the lock.
    void acquire() { lock_.acquire(); }
    /// Acquires the lock without blocking the running loop.
    [[nodiscard]] task<void> async_acquire() { return lock_.async_acquire(); }
    /// Releases the lock.
    void release() { lock_.release(); }
    /// Lockable spellings.
    void lock() { acquire(); }
    /// Lockable spellings.
    [[nodiscard]] bool try_lock() { return lock_.try_acquire(); }
    /// Lockable spellings.
    void unlock() { release(); }
    /// The lock's owner-died flag (see `process_lock`).
    [[nodiscard]] bool owner_died() const noexcept { return lock_.owner_died(); }
    /// With the lock held: releases it, waits for a notification, reacquires it.
    void wait();
    /// As `wait`, at most `timeout`; false if it expired.
    template <class Rep, class Period>
    bool wait(std::chrono::duration<Rep, Period> timeout) {
        return wait_ms(detail::to_timeout_ms(timeout));
    }
    /// Waits until `pred()` is true (checked with the lock held).
    template <class Pred>
    void wait(Pred pred) {
        while (!pred()) {
            wait();
        }
    }
    /// Awaitable wait (the lock taken with `async_acquire` on the loop thread).
    [[nodiscard]] task<void> async_wait();
    /// Wakes up to `n` waiters (hold the lock).
    void notify(std::uint32_t n = 1) noexcept;
    /// Wakes every waiter (hold the lock).
    void notify_all() noexcept;

private:
    friend struct serializer<process_condition>;
    process_condition(process_lock l, shared_memory m) noexcept;
    bool wait_ms(int timeout_ms);
    process_lock lock_;
    shared_memory memory_;
};

/// multiprocessing.Barrier: `parties` waiters meet; each `wait` returns a distinct
/// index in [0, parties). A party that dies never arrives: use the timed wait.
/// **Thread safety:** any threads and processes.
class process_barrier {
public:
    /// A barrier for `parties` (> 0; else `corio::error`).
    explicit process_barrier(std::uint32_t parties);
    /// Waits until `parties` waiters arrived; returns this one's arrival index.
    std::uint32_t wait();
    /// Awaitable wait on the running loop (futex watcher thread).
    [[nodiscard]] task<std::uint32_t> async_wait();
    /// The number of parties.
    [[nodiscard]] std::uint32_t parties() const noexcept;

private:
    friend struct serializer<process_barrier>;
    friend struct detail::memory_serializer<process_barrier>;
    explicit process_barrier(shared_memory m) noexcept;
    shared_memory memory_;
};

namespace detail {
/// The serializer of a primitive that is its shared memory.
template <class P>
struct memory_serializer {
    static void write(byte_writer& w, const P& p) { p.memory_.write_to(w); }
    static P read(byte_reader& r) { return P(shared_memory::read_from(r)); }
};
} // namespace detail

/// Process-shared primitives travel to a `corio::process` child as their memory.
template <>
struct serializer<process_lock> : detail::memory_serializer<process_lock> {};
/// As process_lock.
template <>
struct serializer<process_rlock> {
    static void write(byte_writer& w, const process_rlock& l) {
        serializer<process_lock>::write(w, l.lock_);
    }
    static process_rlock read(byte_reader& r) {
        return process_rlock(serializer<process_lock>::read(r));
    }
};
/// As process_lock.
template <>
struct serializer<process_event> : detail::memory_serializer<process_event> {};
/// As process_lock.
template <>
struct serializer<process_semaphore> : detail::memory_serializer<process_semaphore> {};
/// As process_lock.
template <>
struct serializer<process_barrier> : detail::memory_serializer<process_barrier> {};
/// As process_lock.
template <>
struct serializer<process_condition> {
    static void write(byte_writer& w, const process_condition& c) {
        serializer<process_lock>::write(w, c.lock_);
        c.memory_.write_to(w);
    }
    static process_condition read(byte_reader& r) {
        auto l = serializer<process_lock>::read(r);
        return process_condition(std::move(l), shared_memory::read_from(r));
    }
};

} // namespace corio
