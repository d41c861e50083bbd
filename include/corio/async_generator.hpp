#pragma once
/// \file async_generator.hpp
/// `corio::async_generator<T>` (Python's async generator) and the async
/// comprehension adapters `transform`, `filter`, `take` and `collect`.

#include <corio/detail/assert.hpp>
#include <corio/detail/cancel.hpp>
#include <corio/detail/frame_allocator.hpp>
#include <corio/error.hpp>
#include <corio/event_loop.hpp>
#include <corio/future.hpp>
#include <corio/generator.hpp>
#include <corio/task.hpp>

#include <concepts>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace corio {

template <class T>
class async_generator;

namespace detail {

template <class T>
class async_generator_promise {
public:
    /// Hands control back to the consumer (at a `co_yield` and at the end).
    struct to_consumer {
        async_generator_promise* promise;
        bool await_ready() const noexcept { return false; }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<>) const noexcept {
            promise->running_ = false;
            std::coroutine_handle<> c = std::exchange(promise->consumer_, {});
            return c ? c : std::noop_coroutine();
        }
        void await_resume() const {
            if (promise->closing_) {
                throw generator_exit{};
            }
        }
    };

    struct final_awaiter {
        async_generator_promise* promise;
        bool await_ready() const noexcept { return false; }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<>) const noexcept {
            promise->running_ = false;
            std::coroutine_handle<> c = std::exchange(promise->consumer_, {});
            return c ? c : std::noop_coroutine();
        }
        void await_resume() const noexcept {}
    };

    async_generator<T> get_return_object() noexcept;
    std::suspend_always initial_suspend() const noexcept { return {}; }
    final_awaiter final_suspend() noexcept { return {this}; }
    void return_void() const noexcept {}
    void unhandled_exception() noexcept { exception_ = std::current_exception(); }

    template <class U = T>
    requires std::is_constructible_v<T, U&&> to_consumer yield_value(U&& value)
    noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        if (closing_) {
            ignored_exit_ = true; // aclose() reports it
        }
        current_.emplace(std::forward<U>(value));
        return {this};
    }

    static void* operator new(std::size_t n) { return frame_allocator::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept {
        frame_allocator::deallocate(p, n);
    }

    /// The task_root of the consumer currently driving the body: awaits inside the
    /// body are cancelled when the consuming task is.
    task_root* root() const noexcept { return root_; }

    /// Starts (or continues) the body on behalf of `consumer`.
    void enter(std::coroutine_handle<> consumer, task_root* root, bool closing) noexcept {
        consumer_ = consumer;
        root_ = root;
        running_ = true;
        closing_ = closing || closing_;
    }
    bool running() const noexcept { return running_; }
    /// True once a close was requested (aclose(), or a finalizer was scheduled).
    bool closing() const noexcept { return closing_; }
    /// Marks the generator as closing before its finalizer runs, so that no other
    /// path schedules a second one.
    void request_close() noexcept { closing_ = true; }
    bool ignored_exit() const noexcept { return ignored_exit_; }
    std::optional<T>& current() noexcept { return current_; }
    std::exception_ptr& exception() noexcept { return exception_; }

    // Close-hook registration with the loop the body first ran on.
    event_loop* hook_loop = nullptr;
    std::uint64_t hook_id = 0;
    async_generator<T>* owner = nullptr;

private:
    std::coroutine_handle<> consumer_;
    task_root* root_ = nullptr;
    std::optional<T> current_;
    std::exception_ptr exception_;
    bool running_ = false;
    bool closing_ = false;
    bool ignored_exit_ = false;
};

} // namespace detail

/// An asynchronous generator: the body may `co_await` anything and `co_yield`s
/// values of type `T`; the consumer pulls them with `co_await gen.next()`.
///
/// - Lazy: the body starts at the first `next()`.
/// - The body runs under the consumer's task: cancelling the consuming task while
///   `next()` is pending raises cancelled_error at the body's current `co_await`.
/// - An exception escaping the body is rethrown by that `next()`; the generator is
///   then finished and later `next()`s return an empty optional.
/// - `co_await gen.aclose()` raises generator_exit at the suspended `co_yield` so the
///   body can run its cleanup, awaits included.
/// - Destroying (or assigning over) a generator whose body is suspended at a
///   `co_yield`, while an event loop runs on this thread, hands the frame to that
///   loop: a finalizer task runs the aclose() path (generator_exit at the `co_yield`,
///   awaits allowed in the cleanup), so the cleanup runs exactly once, after the
///   destroying step. With no loop running, or if aclose() was already called, the
///   frame is destroyed: destructors run, a `catch (generator_exit)` does not.
/// - A generator still suspended at a `co_yield` when its loop closes is closed by
///   the loop (a close hook runs `aclose()` in a task; as with every task at close,
///   an await in that cleanup is cancelled).
/// - One `next()`/`aclose()` at a time: a second concurrent one throws corio::error
///   ("already running").
/// **Thread safety:** a generator is a unique handle; use it on its loop's thread.
template <class T>
class [[nodiscard]] async_generator {
    static_assert(!std::is_reference_v<T> && !std::is_void_v<T>,
                  "async_generator<T> yields values: T must be an object type");

public:
    /// The coroutine promise type (the body's frame state); an implementation detail.
    using promise_type = detail::async_generator_promise<T>;
    /// The coroutine handle owned by the generator.
    using handle_type = std::coroutine_handle<promise_type>;
    /// The type of the values the body yields (next() returns `std::optional<T>`).
    using value_type = T;

    /// An empty generator (finished: next() returns an empty optional).
    async_generator() noexcept = default;
    /// Takes ownership of the frame `h` (called by the promise; not for user code).
    explicit async_generator(handle_type h) noexcept : handle_(h) { h.promise().owner = this; }
    /// Takes over `o`'s frame; `o` becomes empty.
    async_generator(async_generator&& o) noexcept
        : handle_(std::exchange(o.handle_, {})), started_(o.started_) {
        if (handle_) {
            handle_.promise().owner = this;
        }
    }
    /// Finalizes the current frame as the destructor does, then takes over `o`'s.
    async_generator& operator=(async_generator&& o) noexcept {
        if (this != &o) {
            release();
            handle_ = std::exchange(o.handle_, {});
            started_ = o.started_;
            if (handle_) {
                handle_.promise().owner = this;
            }
        }
        return *this;
    }
    async_generator(const async_generator&) = delete;
    async_generator& operator=(const async_generator&) = delete;
    /// Finalizes the generator: a body suspended at a `co_yield` is closed by a
    /// finalizer task on the loop running on this thread; otherwise the frame is
    /// destroyed (see the class comment).
    ~async_generator() { release(); }

    /// Awaitable returned by next().
    /// **Thread safety:** loop thread only; lives in the awaiting frame until resumed.
    class [[nodiscard]] next_awaiter {
    public:
        /// An awaiter resuming `g` (from next()).
        explicit next_awaiter(async_generator* g) noexcept : gen_(g) {}
        /// Moves an awaiter not awaited yet (into a combinator).
        next_awaiter(next_awaiter&& other) noexcept : gen_(other.gen_) {
            CORIO_ASSERT(!other.in_flight_, "an async generator's next() was moved while awaited");
        }
        next_awaiter(const next_awaiter&) = delete;
        next_awaiter& operator=(const next_awaiter&) = delete;
        /// Destroys the body's frame if it is still running on this awaiter's behalf.
        // A consumer frame destroyed while the body runs on its behalf (suspended
        // inside an await) takes the body down with it: nothing may resume into it.
        ~next_awaiter() {
            if (in_flight_) {
                gen_->destroy_frame();
            }
        }
        bool await_ready() const noexcept { return gen_->finished(); }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
            return gen_->enter(h, detail::root_of(h), false, in_flight_, busy_);
        }
        /// The next value, or empty once the body returned; rethrows the body's exception.
        std::optional<T> await_resume() {
            in_flight_ = false;
            if (busy_) {
                throw error("corio: async generator is already running");
            }
            return gen_->take_result();
        }

    private:
        async_generator* gen_;
        bool in_flight_ = false;
        bool busy_ = false;
    };

    /// Awaitable returned by aclose().
    /// **Thread safety:** loop thread only; lives in the awaiting frame until resumed.
    class [[nodiscard]] aclose_awaiter {
    public:
        /// An awaiter closing `g` (from aclose()).
        explicit aclose_awaiter(async_generator* g) noexcept : gen_(g) {}
        /// Moves an awaiter not awaited yet (into a combinator).
        aclose_awaiter(aclose_awaiter&& other) noexcept : gen_(other.gen_) {
            CORIO_ASSERT(!other.in_flight_,
                         "an async generator's aclose() was moved while awaited");
        }
        aclose_awaiter(const aclose_awaiter&) = delete;
        aclose_awaiter& operator=(const aclose_awaiter&) = delete;
        /// Destroys the body's frame if it is still running its cleanup for this awaiter.
        ~aclose_awaiter() {
            if (in_flight_) {
                gen_->destroy_frame();
            }
        }
        bool await_ready() const noexcept { return gen_->finished() || !gen_->started_; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
            return gen_->enter(h, detail::root_of(h), true, in_flight_, busy_);
        }
        /// Returns once the body ended; throws as aclose() describes.
        void await_resume() {
            in_flight_ = false;
            if (busy_) {
                throw error("corio: async generator is already running");
            }
            gen_->finish_close();
        }

    private:
        async_generator* gen_;
        bool in_flight_ = false;
        bool busy_ = false;
    };

    /// Resumes the body until its next `co_yield` (or its end) and yields the value,
    /// or an empty optional once the generator is finished. Rethrows an exception
    /// escaping the body (once); throws cancelled_error if the consuming task is
    /// cancelled and the body lets it escape; throws corio::error if another
    /// next()/aclose() is in progress.
    /// **Thread safety:** loop thread, one consumer at a time.
    [[nodiscard]] next_awaiter next() noexcept { return next_awaiter(this); }

    /// Python's aclose(): raises generator_exit at the suspended `co_yield` and runs
    /// the body (and its asynchronous cleanup) to its end. No effect on a finished
    /// generator; an unstarted one is finished without running. Throws corio::error
    /// if the body yields again ("async generator ignored generator_exit") or is
    /// running; rethrows any other exception escaping the body.
    /// **Thread safety:** loop thread, one consumer at a time.
    [[nodiscard]] aclose_awaiter aclose() noexcept { return aclose_awaiter(this); }

    /// True once the body returned, threw or was closed (or the generator is empty).
    bool finished() const noexcept { return !handle_ || handle_.done(); }

private:
    std::coroutine_handle<> enter(std::coroutine_handle<> consumer, detail::task_root* root,
                                  bool closing, bool& in_flight, bool& busy) noexcept {
        promise_type& p = handle_.promise();
        if (p.running()) {
            busy = true;
            return consumer;
        }
        started_ = true;
        p.enter(consumer, root, closing);
        in_flight = true;
        return handle_;
    }

    std::optional<T> take_result() {
        if (!handle_) {
            return std::nullopt;
        }
        promise_type& p = handle_.promise();
        if (handle_.done()) {
            unregister_hook();
            if (std::exception_ptr e = std::exchange(p.exception(), nullptr)) {
                std::rethrow_exception(e);
            }
            return std::nullopt;
        }
        register_hook();
        std::optional<T> v = std::move(p.current());
        p.current().reset();
        return v;
    }

    void finish_close() {
        if (!handle_) {
            return;
        }
        if (!started_) {
            destroy_frame(); // never ran: nothing to clean up but the parameters
            return;
        }
        promise_type& p = handle_.promise();
        if (!handle_.done()) {
            CORIO_ASSERT(p.ignored_exit(), "corio::async_generator suspended during aclose()");
            p.current().reset();
            throw error("corio: async generator ignored generator_exit");
        }
        unregister_hook();
        if (std::exception_ptr e = std::exchange(p.exception(), nullptr)) {
            try {
                std::rethrow_exception(e);
            } catch (const generator_exit&) {
                // the expected way to end
            }
        }
    }

    // Registers, once, a close hook with the running loop so that a generator left
    // suspended at a co_yield is closed when the loop closes.
    void register_hook() {
        promise_type& p = handle_.promise();
        event_loop* loop = detail::running_loop;
        if (p.hook_loop != nullptr || loop == nullptr) {
            return;
        }
        handle_type h = handle_;
        p.hook_id = loop->add_close_hook([h, loop] {
            promise_type& pr = h.promise();
            pr.hook_loop = nullptr;
            if (!h.done() && !pr.running() && pr.owner != nullptr) {
                // The finalizer's own future is dropped: an exception it ends with
                // is reported by the loop as never retrieved.
                (void)loop->create_task(finalize(pr.owner), "async_generator finalizer");
            }
        });
        p.hook_loop = loop;
    }
    void unregister_hook() noexcept {
        promise_type& p = handle_.promise();
        if (p.hook_loop != nullptr) {
            p.hook_loop->remove_close_hook(p.hook_id);
            p.hook_loop = nullptr;
        }
    }
    static task<> finalize(async_generator* g) { co_await g->aclose(); }
    // The finalizer of a generator destroyed early: owns the frame from here on.
    static task<> finalize_orphan(async_generator g) { co_await g.aclose(); }

    // Ends this handle's ownership of the frame (asyncio's asyncgen finalizer hook):
    // a body suspended at a co_yield is closed by a task on the running loop, so its
    // generator_exit cleanup runs, awaits included; otherwise the frame is destroyed.
    void release() noexcept {
        if (!handle_) {
            return;
        }
        promise_type& p = handle_.promise();
        event_loop* loop = detail::running_loop;
        if (loop == nullptr || !started_ || handle_.done() || p.running() || p.closing()) {
            destroy_frame();
            return;
        }
        // Set first: if scheduling fails, the generator moved into the finalizer's
        // parameter is destroyed, and must then only destroy the frame.
        p.request_close();
        // The finalizer task is the loop's own; the loop's close finalizes it.
        unregister_hook();
        try {
            (void)loop->create_task(finalize_orphan(std::move(*this)), "async_generator finalizer");
        } catch (...) {
            loop->call_exception_handler(
                {"corio: could not schedule an async generator's finalizer; "
                 "its frame was destroyed without cleanup",
                 std::current_exception(),
                 {}});
        }
    }

    void destroy_frame() noexcept {
        if (handle_) {
            unregister_hook();
            handle_.promise().owner = nullptr;
            handle_.destroy();
            handle_ = {};
        }
    }

    handle_type handle_;
    bool started_ = false;
};

namespace detail {
template <class T>
async_generator<T> async_generator_promise<T>::get_return_object() noexcept {
    return async_generator<T>(std::coroutine_handle<async_generator_promise>::from_promise(*this));
}

template <class F>
struct transform_adapter {
    F fn;
};
template <class P>
struct filter_adapter {
    P pred;
};
struct take_adapter {
    std::size_t count;
};
struct collect_adapter {};

// An adapter closed at its co_yield closes its source before it ends (no await
// is allowed inside a handler, hence the flag), so that the aclose() of a pipeline
// runs the cleanup of every stage, innermost last, as part of that aclose().
template <class U, class T, class F>
async_generator<U> transform_body(async_generator<T> source, F fn) {
    bool closed = false;
    try {
        while (std::optional<T> v = co_await source.next()) {
            co_yield std::invoke(fn, std::move(*v));
        }
    } catch (const generator_exit&) {
        closed = true;
    }
    if (closed) {
        co_await source.aclose();
    }
}
template <class T, class P>
async_generator<T> filter_body(async_generator<T> source, P pred) {
    bool closed = false;
    try {
        while (std::optional<T> v = co_await source.next()) {
            if (std::invoke(pred, std::as_const(*v))) {
                co_yield std::move(*v);
            }
        }
    } catch (const generator_exit&) {
        closed = true;
    }
    if (closed) {
        co_await source.aclose();
    }
}
template <class T>
async_generator<T> take_body(async_generator<T> source, std::size_t count) {
    try {
        // Counted before pulling: nothing beyond the n-th item is ever requested.
        for (std::size_t taken = 0; taken < count; ++taken) {
            std::optional<T> v = co_await source.next();
            if (!v) {
                break;
            }
            co_yield std::move(*v);
        }
    } catch (const generator_exit&) {
        // closed before the n-th item: the source is closed below, then take ends
    }
    co_await source.aclose(); // no effect on a source that ran to its end
}
template <class T>
task<std::vector<T>> collect_body(async_generator<T> source) {
    std::vector<T> out;
    while (std::optional<T> v = co_await source.next()) {
        out.push_back(std::move(*v));
    }
    co_return out;
}
} // namespace detail

/// Adapter: `gen | transform(f)` yields `f(v)` for every value `v` of `gen`; closing
/// the result closes `gen`.
/// **Thread safety:** the adapter is a value; the pipeline has the generator's rules.
template <class F>
[[nodiscard]] detail::transform_adapter<std::decay_t<F>> transform(F&& fn) {
    return {std::forward<F>(fn)};
}
/// Adapter: `gen | filter(p)` yields the values `v` of `gen` for which `p(v)` holds;
/// closing the result closes `gen`.
/// **Thread safety:** the adapter is a value; the pipeline has the generator's rules.
template <class P>
[[nodiscard]] detail::filter_adapter<std::decay_t<P>> filter(P&& pred) {
    return {std::forward<P>(pred)};
}
/// Adapter: `gen | take(n)` yields the first `n` values of `gen`, pulls none beyond
/// the n-th, then closes `gen` with aclose() (as does closing the result early).
/// **Thread safety:** the adapter is a value; the pipeline has the generator's rules.
[[nodiscard]] inline detail::take_adapter take(std::size_t n) noexcept {
    return {n};
}
/// Adapter: `co_await (gen | collect())` gives every value of `gen` in a std::vector.
/// **Thread safety:** the adapter is a value; the pipeline has the generator's rules.
[[nodiscard]] inline detail::collect_adapter collect() noexcept {
    return {};
}

/// `gen | transform(f)`: an async generator of `f(v)`; owns `gen`.
/// **Thread safety:** as async_generator.
template <class T, class F>
requires std::invocable<F&, T&&>
[[nodiscard]] auto operator|(async_generator<T> gen, detail::transform_adapter<F> a) {
    using U = std::remove_cvref_t<std::invoke_result_t<F&, T&&>>;
    return detail::transform_body<U>(std::move(gen), std::move(a.fn));
}
/// `gen | filter(p)`: an async generator of the values satisfying `p`; owns `gen`.
/// **Thread safety:** as async_generator.
template <class T, class P>
requires std::predicate<P&, const T&>
[[nodiscard]] async_generator<T> operator|(async_generator<T> gen, detail::filter_adapter<P> a) {
    return detail::filter_body(std::move(gen), std::move(a.pred));
}
/// `gen | take(n)`: an async generator of the first `n` values; owns `gen`.
/// **Thread safety:** as async_generator.
template <class T>
[[nodiscard]] async_generator<T> operator|(async_generator<T> gen, detail::take_adapter a) {
    return detail::take_body(std::move(gen), a.count);
}
/// `gen | collect()`: a task yielding every value in a std::vector; owns `gen`.
/// **Thread safety:** as async_generator.
template <class T>
[[nodiscard]] task<std::vector<T>> operator|(async_generator<T> gen, detail::collect_adapter) {
    return detail::collect_body(std::move(gen));
}

} // namespace corio
