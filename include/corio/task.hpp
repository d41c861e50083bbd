#pragma once
/// \file task.hpp
/// `corio::task<T>`: the lazy coroutine type of corio.

#include <corio/detail/assert.hpp>
#include <corio/detail/cancel.hpp>
#include <corio/detail/frame_allocator.hpp>

#include <coroutine>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

namespace corio {

template <class T = void>
class task;

namespace detail {

/// State common to every task promise: the awaiting coroutine and the task_root the
/// coroutine runs under. A coroutine with a root and nothing awaiting it is its
/// task's root coroutine: when it finishes it calls finish_root.
class task_promise_base {
public:
    struct final_awaiter {
        bool await_ready() const noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> h) noexcept {
            task_promise_base& p = h.promise();
            if (p.continuation_) {
                return p.continuation_;
            }
            if (p.root_ != nullptr) {
                // A task's root coroutine (nothing awaits it): its task moves the result
                // out and destroys this frame.
                finish_root(*p.root_);
            }
            return std::noop_coroutine();
        }
        void await_resume() const noexcept {}
    };

    std::suspend_always initial_suspend() const noexcept { return {}; }
    final_awaiter final_suspend() const noexcept { return {}; }
    void unhandled_exception() noexcept { exception_ = std::current_exception(); }

    static void* operator new(std::size_t n) { return frame_allocator::allocate(n); }
    static void operator delete(void* p, std::size_t n) noexcept {
        frame_allocator::deallocate(p, n);
    }

    /// The root of the task this coroutine runs in (nullptr before it is scheduled).
    task_root* root() const noexcept { return root_; }

    void set_continuation(std::coroutine_handle<> c, task_root* r) noexcept {
        continuation_ = c;
        root_ = r;
    }
    /// Makes this coroutine the root of the task `r`: when it finishes, finish_root(*r).
    void set_root(task_root* r) noexcept { root_ = r; }
    std::exception_ptr& exception() noexcept { return exception_; }

private:
    std::coroutine_handle<> continuation_;
    task_root* root_ = nullptr;
    std::exception_ptr exception_;
};

template <class T>
class task_promise final : public task_promise_base {
public:
    task<T> get_return_object() noexcept;

    template <class U = T>
    requires std::is_convertible_v<U&&, T>
    void return_value(U&& value) noexcept(std::is_nothrow_constructible_v<T, U&&>) {
        ::new (static_cast<void*>(&storage_)) T(std::forward<U>(value));
        has_value_ = true;
    }
    ~task_promise() {
        if (has_value_) {
            std::launder(reinterpret_cast<T*>(&storage_))->~T();
        }
    }
    /// Moves the result out, or rethrows the coroutine's exception.
    T take() {
        if (exception()) {
            std::rethrow_exception(exception());
        }
        return std::move(*std::launder(reinterpret_cast<T*>(&storage_)));
    }

private:
    alignas(T) unsigned char storage_[sizeof(T)];
    bool has_value_ = false;
};

template <class T>
class task_promise<T&> final : public task_promise_base {
public:
    task<T&> get_return_object() noexcept;
    void return_value(T& value) noexcept { value_ = std::addressof(value); }
    T& take() {
        if (exception()) {
            std::rethrow_exception(exception());
        }
        return *value_;
    }

private:
    T* value_ = nullptr;
};

template <>
class task_promise<void> final : public task_promise_base {
public:
    task<void> get_return_object() noexcept;
    void return_void() const noexcept {}
    void take() {
        if (exception()) {
            std::rethrow_exception(exception());
        }
    }
};

} // namespace detail

/// A lazy coroutine producing a `T` (a value, a reference, or nothing).
///
/// Nothing runs until the task is awaited (`co_await std::move(t)` or a prvalue) or
/// handed to `create_task` / `run`. Awaiting resumes the awaiting coroutine by
/// symmetric transfer, so arbitrarily long or deep chains use constant stack in
/// optimized builds. Destroying an unstarted or suspended task destroys its frame.
/// Exceptions thrown in the body are rethrown by the `co_await`.
/// **Thread safety:** a task is a unique handle; use it from one thread at a time.
template <class T>
class [[nodiscard]] task {
public:
    /// The coroutine promise (the compiler's hook; not for direct use).
    using promise_type = detail::task_promise<T>;
    /// What `co_await` on the task yields: a value, a reference, or void.
    using value_type = T;
    /// The owned coroutine handle (what `release()` returns).
    using handle_type = std::coroutine_handle<promise_type>;

    /// An empty task (awaiting it is a programming error).
    task() noexcept = default;
    /// Takes ownership of the coroutine `h` (used by the promise and by create_task's
    /// machinery); the task destroys it unless released.
    explicit task(handle_type h) noexcept : handle_(h) {}
    task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
    task& operator=(task&& other) noexcept {
        if (this != &other) {
            destroy();
            handle_ = std::exchange(other.handle_, {});
        }
        return *this;
    }
    task(const task&) = delete;
    task& operator=(const task&) = delete;
    ~task() { destroy(); }

    /// True if the task holds a coroutine.
    explicit operator bool() const noexcept { return static_cast<bool>(handle_); }

    /// What `co_await std::move(t)` uses: starts the task's coroutine by symmetric
    /// transfer with the awaiting coroutine as its continuation, and yields its
    /// result or rethrows its exception. Never stored by user code.
    /// **Thread safety:** used by the awaiting coroutine only.
    struct awaiter {
        handle_type handle;
        bool await_ready() const noexcept { return false; }
        template <class Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> awaiting) noexcept {
            handle.promise().set_continuation(awaiting, detail::root_of(awaiting));
            return handle;
        }
        T await_resume() { return handle.promise().take(); }
    };

    /// Runs the task to completion inside the awaiting coroutine; yields its
    /// result or rethrows its exception. Only an rvalue task can be awaited.
    awaiter operator co_await() && noexcept {
        CORIO_ASSERT(handle_, "awaiting an empty or moved-from corio::task");
        CORIO_ASSERT(!handle_.done(), "awaiting a corio::task that already ran");
        return awaiter{handle_};
    }

    /// Gives up ownership of the coroutine frame (used by create_task).
    handle_type release() noexcept { return std::exchange(handle_, {}); }

private:
    void destroy() noexcept {
        if (handle_) {
            handle_.destroy();
            handle_ = {};
        }
    }
    handle_type handle_;
};

namespace detail {
template <class T>
task<T> task_promise<T>::get_return_object() noexcept {
    return task<T>{std::coroutine_handle<task_promise>::from_promise(*this)};
}
template <class T>
task<T&> task_promise<T&>::get_return_object() noexcept {
    return task<T&>{std::coroutine_handle<task_promise>::from_promise(*this)};
}
inline task<void> task_promise<void>::get_return_object() noexcept {
    return task<void>{std::coroutine_handle<task_promise>::from_promise(*this)};
}

template <class>
inline constexpr bool is_task_v = false;
template <class T>
inline constexpr bool is_task_v<task<T>> = true;
} // namespace detail

} // namespace corio
