#pragma once
/// \file generator.hpp
/// `corio::generator<T, Send>`: a synchronous generator (Python's generator, with
/// `send`, `close` and `throw`), and `corio::generator_exit`.

#include <corio/detail/assert.hpp>
#include <corio/error.hpp>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <iterator>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace corio {

/// Raised inside a generator body at its suspended `co_yield` by `close()` (and
/// inside an async generator by `aclose()`), as Python's GeneratorExit.
///
/// Like Python's GeneratorExit (a BaseException), it deliberately does NOT derive
/// from `std::exception`: a body's `catch (const std::exception&)` does not swallow
/// it. Catch it by name to clean up, then rethrow it or return; yielding again is an
/// error reported to the closer.
/// **Thread safety:** exception objects are immutable after construction.
class generator_exit {
public:
    /// The message of the exception.
    const char* what() const noexcept { return "corio: generator_exit"; }
};

namespace detail {

/// What a suspended generator is asked to do when it resumes at its `co_yield`.
enum class resume_mode : unsigned char { next, close, raise };

/// The send slot: empty for `Send = void`.
template <class Send>
struct send_slot {
    std::optional<Send> value;
};
template <>
struct send_slot<void> {};

template <class T, class Send>
class generator_promise {
public:
    using value_type = std::remove_cvref_t<T>;
    // The object a `co_yield` refers to (nullptr_t stands in for `T = void`).
    using stored =
        std::conditional_t<std::is_void_v<T>, std::nullptr_t, std::remove_reference_t<T>>;
    using pointer = stored*;

    struct yield_awaiter {
        generator_promise* promise;
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<>) const noexcept {}
        decltype(auto) await_resume() const {
            promise->check_resume_mode();
            if constexpr (!std::is_void_v<Send>) {
                CORIO_ASSERT(promise->sent_.value.has_value(),
                             "corio::generator resumed without a value");
                Send v = std::move(*promise->sent_.value);
                promise->sent_.value.reset();
                return v;
            }
        }
    };

    std::suspend_always initial_suspend() const noexcept { return {}; }
    std::suspend_always final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() noexcept { exception_ = std::current_exception(); }

    // An lvalue or rvalue is referred to in place: it outlives the suspension.
    yield_awaiter yield_value(stored& v) noexcept requires(!std::is_void_v<T>) {
        return yielded(std::addressof(v));
    }
    yield_awaiter yield_value(stored&& v) noexcept
        requires(!std::is_void_v<T> && !std::is_reference_v<T>) {
        return yielded(std::addressof(v));
    }
    // A const lvalue is copied, so that the consumer may move from what it gets.
    yield_awaiter yield_value(const stored& v) requires(!std::is_void_v<T> &&
                                                        !std::is_reference_v<T> &&
                                                        !std::is_const_v<stored> &&
                                                        std::is_copy_constructible_v<stored>) {
        copy_.emplace(v);
        return yielded(std::addressof(*copy_));
    }
    /// `co_yield {}` in a generator that yields nothing (`T = void`).
    yield_awaiter yield_value(std::nullptr_t) noexcept requires std::is_void_v<T> {
        return yielded(nullptr);
    }

    /// A synchronous generator cannot await: use async_generator for that.
    template <class U>
    void await_transform(U&&) = delete;

    pointer current() const noexcept { return current_; }
    std::exception_ptr& exception() noexcept { return exception_; }
    bool ignored_exit() const noexcept { return ignored_exit_; }
    void set_mode(resume_mode m, std::exception_ptr e = {}) noexcept {
        mode_ = m;
        thrown_ = std::move(e);
    }
    send_slot<Send>& sent() noexcept { return sent_; }

private:
    yield_awaiter yielded(pointer p) noexcept {
        current_ = p;
        if (mode_ == resume_mode::close) {
            // The body caught generator_exit and yielded again (Python's
            // "generator ignored GeneratorExit"): close() reports it.
            ignored_exit_ = true;
        }
        return yield_awaiter{this};
    }
    void check_resume_mode() {
        resume_mode m = std::exchange(mode_, resume_mode::next);
        if (m == resume_mode::close) {
            mode_ = resume_mode::close; // remembered: a further yield is an error
            throw generator_exit{};
        }
        if (m == resume_mode::raise) {
            std::rethrow_exception(std::exchange(thrown_, nullptr));
        }
    }

    pointer current_ = nullptr;
    std::optional<std::conditional_t<std::is_reference_v<T>, std::nullptr_t, stored>> copy_;
    std::exception_ptr exception_;
    std::exception_ptr thrown_;
    send_slot<Send> sent_;
    resume_mode mode_ = resume_mode::next;
    bool ignored_exit_ = false;
};

} // namespace detail

/// A synchronous, lazy generator: `co_yield` produces values, the consumer pulls
/// them by range-for, `next()` or `send(v)`.
///
/// - `T` is the yielded type (`void` for a pure consumer that writes `co_yield {}`);
///   iteration yields `T&` referring to the yielded object, valid until the next
///   resume. `generator<T>` models `std::ranges::input_range`.
/// - With `Send`, `co_yield` evaluates to the value passed to `send(v)` (Python's
///   `x = yield y`); `next()` and `++it` after priming send `Send{}` (Python's
///   None), which requires a default-constructible `Send`.
/// - The first resume primes the generator (runs it to its first `co_yield`);
///   `send` before priming throws corio::error, as Python does for a non-None value.
/// - `close()` raises `generator_exit` at the suspended `co_yield`; `throw_into(e)`
///   raises `e` there.
/// - The body cannot `co_await` (use `async_generator`). Destroying the generator
///   destroys its frame: destructors run, a `catch (generator_exit)` does not (call
///   `close()` for that, unlike Python's implicit close at garbage collection).
/// **Thread safety:** a generator is a unique handle; use it from one thread at a time.
template <class T, class Send = void>
class [[nodiscard]] generator {
public:
    /// The coroutine promise type (the body's frame state); an implementation detail.
    class promise_type : public detail::generator_promise<T, Send> {
    public:
        /// The generator that owns the new frame.
        generator get_return_object() noexcept {
            return generator(std::coroutine_handle<promise_type>::from_promise(*this));
        }
    };
    /// The coroutine handle owned by the generator.
    using handle_type = std::coroutine_handle<promise_type>;
    /// The yielded type without reference or cv-qualifiers (what next() returns in
    /// a std::optional).
    using value_type = std::remove_cvref_t<T>;
    /// What dereferencing an iterator gives: `T&` (`void` for `T = void`).
    using reference = std::conditional_t<std::is_void_v<T>, void, std::add_lvalue_reference_t<T>>;

    /// Sentinel of the generator's range.
    struct sentinel {};

    /// Input iterator over the yielded values; `++` resumes the generator and
    /// rethrows an exception escaping its body.
    /// **Thread safety:** as the generator it iterates.
    class iterator {
    public:
        /// A single-pass input iterator (move-only, as C++23's std::generator's).
        using iterator_concept = std::input_iterator_tag;
        /// The yielded type without reference or cv-qualifiers.
        using value_type = std::remove_cvref_t<T>;
        /// Required by std::weakly_incrementable; never used for arithmetic.
        using difference_type = std::ptrdiff_t;
        /// What `*it` gives: `T&` (`void` for `T = void`).
        using reference = generator::reference;

        /// A singular iterator, equal to the sentinel.
        iterator() noexcept = default;
        /// An iterator over `g`'s current value (from generator::begin()).
        explicit iterator(generator* g) noexcept : gen_(g) {}
        /// Takes over `o`'s position; `o` becomes singular.
        iterator(iterator&& o) noexcept : gen_(std::exchange(o.gen_, nullptr)) {}
        /// Takes over `o`'s position; `o` becomes singular.
        iterator& operator=(iterator&& o) noexcept {
            gen_ = std::exchange(o.gen_, nullptr);
            return *this;
        }

        /// The current value. Requires a non-void T.
        reference operator*() const noexcept requires(!std::is_void_v<T>) {
            return static_cast<reference>(*gen_->handle_.promise().current());
        }
        /// Resumes the generator to its next `co_yield`.
        iterator& operator++() {
            gen_->advance();
            return *this;
        }
        /// Resumes the generator to its next `co_yield` (an input iterator's
        /// post-increment returns nothing).
        void operator++(int) { ++*this; }
        /// True once the generator is finished (or for a singular iterator).
        friend bool operator==(const iterator& it, sentinel) noexcept {
            return it.gen_ == nullptr || it.gen_->finished();
        }

    private:
        generator* gen_ = nullptr;
    };

    /// An empty generator (finished: next() returns an empty optional).
    generator() noexcept = default;
    /// Takes ownership of the frame `h` (called by the promise; not for user code).
    explicit generator(handle_type h) noexcept : handle_(h) {}
    /// Takes over `o`'s frame; `o` becomes empty.
    generator(generator&& o) noexcept
        : handle_(std::exchange(o.handle_, {})), started_(o.started_) {}
    /// Destroys the current frame (as the destructor does), then takes over `o`'s.
    generator& operator=(generator&& o) noexcept {
        if (this != &o) {
            destroy();
            handle_ = std::exchange(o.handle_, {});
            started_ = o.started_;
        }
        return *this;
    }
    generator(const generator&) = delete;
    generator& operator=(const generator&) = delete;
    /// Destroys the frame (destructors of the body's live objects run).
    ~generator() { destroy(); }

    /// Primes the generator if needed and returns an iterator at the current value;
    /// rethrows an exception escaping the body.
    iterator begin() {
        if (!started_) {
            advance();
        }
        return iterator(this);
    }
    /// The end sentinel.
    /// **Thread safety:** any thread (no state is read).
    sentinel end() const noexcept { return {}; }

    /// Resumes the generator (priming it on first use) and returns the next value,
    /// or an empty optional once the body returned. Rethrows an exception escaping
    /// the body. For `T = void` returns true while the generator is suspended.
    auto next() {
        advance();
        return current_value();
    }

    /// Resumes the generator with `value` as the result of its suspended `co_yield`
    /// (Python's generator.send) and returns the next yielded value, or empty once
    /// the body returned. Throws corio::error if the generator was not primed yet
    /// ("can't send to a just-started generator") or already finished; rethrows
    /// an exception escaping the body.
    template <class U = Send>
    requires(!std::is_void_v<Send> && std::is_constructible_v<Send, U&&>) auto send(U&& value) {
        if (!started_) {
            throw error(
                "corio: can't send a value to a just-started generator (prime it with next())");
        }
        if (finished()) {
            throw error("corio: send() to a finished generator");
        }
        handle_.promise().sent().value.emplace(std::forward<U>(value));
        advance();
        return current_value();
    }

    /// Raises generator_exit at the suspended `co_yield` and runs the body until it
    /// ends (Python's generator.close). No effect on a finished generator; an
    /// unstarted one is simply marked finished. Throws corio::error if the body
    /// yields again ("generator ignored generator_exit"); rethrows any other
    /// exception escaping the body.
    void close() {
        if (!handle_ || handle_.done()) {
            return;
        }
        if (!started_) {
            destroy();
            return;
        }
        auto& p = handle_.promise();
        p.set_mode(detail::resume_mode::close);
        handle_.resume();
        if (!handle_.done()) {
            CORIO_ASSERT(p.ignored_exit(), "corio::generator suspended during close()");
            throw error("corio: generator ignored generator_exit");
        }
        if (std::exception_ptr e = std::exchange(p.exception(), nullptr)) {
            try {
                std::rethrow_exception(e);
            } catch (const generator_exit&) {
                // the expected way to end
            }
        }
    }

    /// Raises `e` at the suspended `co_yield` (Python's generator.throw) and returns
    /// the next yielded value, or empty if the body then returned. Rethrows the
    /// exception if it escapes the body; an unstarted generator is finished and `e`
    /// rethrown without running the body. Throws std::invalid_argument for a null `e`.
    auto throw_into(std::exception_ptr e) {
        if (!e) {
            throw std::invalid_argument("corio: throw_into(nullptr)");
        }
        if (!started_ || finished()) {
            destroy();
            std::rethrow_exception(e);
        }
        handle_.promise().set_mode(detail::resume_mode::raise, std::move(e));
        advance();
        return current_value();
    }

    /// True once the body returned, threw, or the generator was closed (or is empty).
    bool finished() const noexcept { return !handle_ || handle_.done(); }

private:
    void advance() {
        if (!handle_ || handle_.done()) {
            return;
        }
        if constexpr (!std::is_void_v<Send>) {
            // Resuming a co_yield without send() (iteration, throw_into) sends Send{}.
            auto& slot = handle_.promise().sent().value;
            if (started_ && !slot.has_value()) {
                if constexpr (std::is_default_constructible_v<Send>) {
                    slot.emplace();
                } else {
                    CORIO_ASSERT(false,
                                 "corio::generator resumed without send() and Send has no default");
                }
            }
        }
        started_ = true;
        handle_.resume();
        if (handle_.done()) {
            if (std::exception_ptr e = std::exchange(handle_.promise().exception(), nullptr)) {
                std::rethrow_exception(e);
            }
        }
    }
    auto current_value() const {
        if constexpr (std::is_void_v<T>) {
            return !finished();
        } else {
            using result = std::optional<value_type>;
            return finished() ? result() : result(*handle_.promise().current());
        }
    }
    void destroy() noexcept {
        if (handle_) {
            handle_.destroy();
            handle_ = {};
        }
    }

    handle_type handle_;
    bool started_ = false;
};

} // namespace corio
