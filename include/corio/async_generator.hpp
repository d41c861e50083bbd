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
        requires std::is_constructible_v<T, U &&>
    to_consumer yield_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        if (closing_) {
            ignored_exit_ = true; // aclose() reports it
        }
        current_.emplace(std::forward<U>(value));
        return {this};
    }

    static void* operator new(std::size_t n) { return frame_allocator::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept { frame_allocator::deallocate(p, n); }

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
/// - Destroying the generator destroys its frame: destructors of the body's live
///   objects run exactly once, but code in a `catch (generator_exit)` does not, and
///   no await can run in a destructor. Use `aclose()` for asynchronous cleanup.
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
    using promise_type = detail::async_generator_promise<T>;
    using handle_type = std::coroutine_handle<promise_type>;
    using value_type = T;

    /// An empty generator (finished: next() returns an empty optional).
    async_generator() noexcept = default;
    explicit async_generator(handle_type h) noexcept : handle_(h) { h.promise().owner = this; }
    async_generator(async_generator&& o) noexcept
        : handle_(std::exchange(o.handle_, {})), started_(o.started_) {
        if (handle_) {
            handle_.promise().owner = this;
        }
    }
    async_generator& operator=(async_generator&& o) noexcept {
        if (this != &o) {
            destroy_frame();
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
    /// Destroys the frame; see the class comment for what runs.
    ~async_generator() { destroy_frame(); }

    /// Awaitable returned by next().
    /// **Thread safety:** loop thread only; lives in the awaiting frame until resumed.
    class [[nodiscard]] next_awaiter {
    public:
        explicit next_awaiter(async_generator* g) noexcept : gen_(g) {}
        next_awaiter(const next_awaiter&) = delete;
        next_awaiter& operator=(const next_awaiter&) = delete;
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
        explicit aclose_awaiter(async_generator* g) noexcept : gen_(g) {}
        aclose_awaiter(const aclose_awaiter&) = delete;
        aclose_awaiter& operator=(const aclose_awaiter&) = delete;
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
    /// **Thread safety:** loop thread.
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

template <class U, class T, class F>
async_generator<U> transform_body(async_generator<T> source, F fn) {
    while (std::optional<T> v = co_await source.next()) {
        co_yield std::invoke(fn, std::move(*v));
    }
}
template <class T, class P>
async_generator<T> filter_body(async_generator<T> source, P pred) {
    while (std::optional<T> v = co_await source.next()) {
        if (std::invoke(pred, std::as_const(*v))) {
            co_yield std::move(*v);
        }
    }
}
template <class T>
async_generator<T> take_body(async_generator<T> source, std::size_t count) {
    if (count == 0) {
        co_await source.aclose();
        co_return;
    }
    std::size_t taken = 0;
    while (std::optional<T> v = co_await source.next()) {
        co_yield std::move(*v);
        if (++taken == count) {
            break; // the n-th item was the last one pulled
        }
    }
    co_await source.aclose();
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

/// Adapter: `gen | transform(f)` yields `f(v)` for every value `v` of `gen`.
/// **Thread safety:** the adapter is a value; the pipeline has the generator's rules.
template <class F>
[[nodiscard]] detail::transform_adapter<std::decay_t<F>> transform(F&& fn) {
    return {std::forward<F>(fn)};
}
/// Adapter: `gen | filter(p)` yields the values `v` of `gen` for which `p(v)` holds.
/// **Thread safety:** the adapter is a value; the pipeline has the generator's rules.
template <class P>
[[nodiscard]] detail::filter_adapter<std::decay_t<P>> filter(P&& pred) {
    return {std::forward<P>(pred)};
}
/// Adapter: `gen | take(n)` yields the first `n` values of `gen`, pulls none beyond
/// the n-th, then closes `gen` with aclose().
/// **Thread safety:** the adapter is a value; the pipeline has the generator's rules.
[[nodiscard]] inline detail::take_adapter take(std::size_t n) noexcept { return {n}; }
/// Adapter: `co_await (gen | collect())` gives every value of `gen` in a std::vector.
/// **Thread safety:** the adapter is a value; the pipeline has the generator's rules.
[[nodiscard]] inline detail::collect_adapter collect() noexcept { return {}; }

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
