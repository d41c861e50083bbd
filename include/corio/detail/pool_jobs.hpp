#pragma once
// What the jobs of every pool backend share: the types of a map's calls and results,
// collecting a map's inputs, running callbacks before a result becomes ready
// (Python's ApplyResult._set), a map's results in input order with its first error,
// and its progress reports. A backend's jobs (detail/thread_backend.hpp,
// detail/process_backend.hpp) are built from these; see basic_pool.hpp.

#include <corio/async_result.hpp>
#include <corio/imap_result.hpp>
#include <corio/pool.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace corio::detail {

template <class T>
inline constexpr bool is_no_callback = std::is_same_v<T, no_callback>;

/// The element type a map stores for a call returning `T`: `void` becomes `std::monostate`.
template <class T>
using map_value_t = std::conditional_t<std::is_void_v<T>, std::monostate, std::remove_cvref_t<T>>;

/// Result of calling `F&` with one map input (unpacked for starmap).
template <class F, class In, bool Star>
struct map_call_result {
    using type = std::invoke_result_t<F&, In&&>;
};
template <class F, class In>
struct map_call_result<F, In, true> {
    using type = decltype(std::apply(std::declval<F&>(), std::declval<In&&>()));
};

template <bool Star, class F, class In>
decltype(auto) call_map_fn(F& f, In&& in) {
    if constexpr (Star) {
        return std::apply(f, std::forward<In>(in));
    } else {
        return std::invoke(f, std::forward<In>(in));
    }
}

/// Calls `f(in)` and returns its value, or `std::monostate` for `void`.
template <bool Star, class V, class F, class In>
V call_map_value(F& f, In&& in) {
    if constexpr (std::is_same_v<V, std::monostate> &&
                  std::is_void_v<decltype(call_map_fn<Star>(f, std::forward<In>(in)))>) {
        call_map_fn<Star>(f, std::forward<In>(in));
        return {};
    } else {
        return call_map_fn<Star>(f, std::forward<In>(in));
    }
}

/// Copies (or moves, from an rvalue vector) the inputs of a map.
template <class Rng>
auto collect_inputs(Rng&& range) {
    using In = std::ranges::range_value_t<Rng>;
    if constexpr (std::is_same_v<std::remove_cvref_t<Rng>, std::vector<In>> &&
                  !std::is_lvalue_reference_v<Rng> &&
                  !std::is_const_v<std::remove_reference_t<Rng>>) {
        return std::vector<In>(std::forward<Rng>(range));
    } else {
        std::vector<In> v;
        if constexpr (std::ranges::sized_range<Rng>) {
            v.reserve(static_cast<std::size_t>(std::ranges::size(range)));
        }
        for (auto&& x : range) {
            v.emplace_back(std::forward<decltype(x)>(x));
        }
        return v;
    }
}

/// Runs the success callback, then the error callback on failure, as Python's
/// ApplyResult._set; then completes `state`. A callback that throws fails the result
/// with its exception. Result thread.
template <class R, class CB, class ECB>
void complete_with_callbacks(result_state<R>& state, CB& cb, ECB& ecb,
                             std::exception_ptr err) noexcept {
    if (!err) {
        if constexpr (!is_no_callback<CB>) {
            try {
                if constexpr (std::is_void_v<R>) {
                    cb();
                } else {
                    cb(std::as_const(*state.slot()));
                }
            } catch (...) {
                err = std::current_exception();
            }
        }
    }
    if (err) {
        if constexpr (!is_no_callback<ECB>) {
            try {
                ecb(err);
            } catch (...) {
                err = std::current_exception();
            }
        }
        state.set_exception(std::move(err));
    } else {
        state.publish();
    }
}

/// The `callback` and `error_callback` of one call (either may be `no_callback`).
template <class CB, class ECB>
struct result_callbacks {
    /// True if there is a callback to run on the result thread.
    static constexpr bool any = !is_no_callback<CB> || !is_no_callback<ECB>;

    [[no_unique_address]] CB on_value;
    [[no_unique_address]] ECB on_error;

    /// Runs the callbacks and completes `state` with its slot's value or `err`;
    /// nothing if `state` is done already (the pool was terminated). Result thread.
    template <class R>
    void complete(result_state<R>& state, std::exception_ptr err) noexcept {
        if (state.done()) {
            return;
        }
        complete_with_callbacks(state, on_value, on_error, std::move(err));
    }
};

/// The results of one map, in input order, and the first exception to arrive. Chunks
/// may store concurrently (each its own items); `fail` is safe from any thread.
template <class V>
class map_results {
public:
    explicit map_results(std::size_t n) : n_(n) {
        if constexpr (in_place) {
            values_.resize(n);
        } else {
            staging_ = std::make_unique<std::optional<V>[]>(n);
        }
    }

    /// Number of items.
    std::size_t size() const noexcept { return n_; }

    /// Stores the result of item `i`.
    void set(std::size_t i, V&& v) {
        if constexpr (in_place) {
            values_[i] = std::move(v);
        } else {
            staging_[i].emplace(std::move(v));
        }
    }

    /// Records `e` if it is the first error.
    void fail(std::exception_ptr e) noexcept {
        if (!failed_.exchange(true, std::memory_order_acq_rel)) {
            first_error_ = std::move(e);
        }
    }

    /// Every chunk finished: completes `state` with the vector (or the first error)
    /// through `callbacks`. Result thread (or the last chunk's when there are none).
    template <class CB, class ECB>
    void finish(result_state<std::vector<V>>& state,
                result_callbacks<CB, ECB>& callbacks) noexcept {
        if (state.done()) {
            return; // terminated
        }
        std::exception_ptr err;
        if (failed_.load(std::memory_order_acquire)) {
            err = first_error_;
        } else {
            try {
                state.slot().emplace(take());
            } catch (...) {
                err = std::current_exception();
            }
        }
        values_ = std::vector<V>();
        staging_.reset();
        callbacks.complete(state, std::move(err));
    }

private:
    // Results go straight into their place when V can be default-constructed and
    // assigned (not for bool: vector<bool> packs bits, so concurrent writes would race).
    static constexpr bool in_place = std::is_nothrow_default_constructible_v<V> &&
                                     std::is_move_assignable_v<V> && !std::is_same_v<V, bool>;

    std::vector<V> take() {
        if constexpr (in_place) {
            return std::move(values_);
        } else {
            std::vector<V> out;
            out.reserve(n_);
            for (std::size_t i = 0; i < n_; ++i) {
                out.push_back(std::move(*staging_[i]));
            }
            return out;
        }
    }

    std::size_t n_;
    std::vector<V> values_;                       // in_place
    std::unique_ptr<std::optional<V>[]> staging_; // otherwise
    std::atomic<bool> failed_{false};
    std::exception_ptr first_error_; // written once, by the thread that set failed_
};

/// `pool_options::on_progress` of one map: items done so far against the total.
/// Result thread only.
class map_progress {
public:
    using progress_fn = std::function<void(std::size_t, std::size_t)>;

    /// `fn` may be null or empty: then there is nothing to report.
    map_progress(const progress_fn* fn, std::size_t total) noexcept
        : fn_(fn != nullptr && *fn ? fn : nullptr), total_(total) {}

    /// True if progress is reported.
    explicit operator bool() const noexcept { return fn_ != nullptr; }

    /// Counts `items` more as done and reports unless `stopped` (the result is done)
    /// or a report threw before; returns what the report threw (once), else null.
    std::exception_ptr report(std::size_t items, bool stopped) noexcept {
        done_ += items;
        if (failed_ || stopped) {
            return nullptr;
        }
        try {
            (*fn_)(done_, total_);
        } catch (...) {
            failed_ = true;
            return std::current_exception();
        }
        return nullptr;
    }

private:
    const progress_fn* fn_;
    std::size_t total_;
    std::size_t done_ = 0;
    bool failed_ = false;
};

/// The bookkeeping of a map whose chunks are answered one at a time on the result
/// thread (the process and Redis backends): the results in input order, progress after
/// every chunk, and the callbacks once the last chunk is in. Result thread only.
template <class V, class CB, class ECB>
class chunked_map {
public:
    chunked_map(std::size_t n, std::size_t chunksize, const map_progress::progress_fn* progress,
                CB cb, ECB ecb)
        : results_(n), chunksize_(chunksize), remaining_((n + chunksize - 1) / chunksize),
          progress_(progress, n), callbacks_{std::move(cb), std::move(ecb)} {}

    /// The first item of chunk `k`.
    std::size_t begin_of(std::size_t k) const noexcept { return k * chunksize_; }
    /// One past the last item of chunk `k`.
    std::size_t end_of(std::size_t k) const noexcept {
        return std::min(results_.size(), (k + 1) * chunksize_);
    }
    /// Where a chunk's answer stores its items (`set`) and errors (`fail`).
    map_results<V>& results() noexcept { return results_; }

    /// Chunk `k` was answered: reports progress, and completes `state` after the last.
    void chunk_finished(result_state<std::vector<V>>& state, std::size_t k) noexcept {
        if (progress_) {
            if (std::exception_ptr e = progress_.report(end_of(k) - begin_of(k), state.done())) {
                results_.fail(std::move(e));
            }
        }
        if (--remaining_ == 0) {
            results_.finish(state, callbacks_);
        }
    }
    /// Chunk `k` failed as a whole with `e`.
    void chunk_failed(result_state<std::vector<V>>& state, std::size_t k,
                      std::exception_ptr e) noexcept {
        results_.fail(std::move(e));
        chunk_finished(state, k);
    }

private:
    map_results<V> results_;
    const std::size_t chunksize_;
    std::size_t remaining_;
    map_progress progress_;
    result_callbacks<CB, ECB> callbacks_;
};

/// Chunk `k` of an imap failed as a whole: each of its items fails with `e`.
template <class V>
void fail_imap_chunk(imap_state<V>& state, std::size_t k, const std::exception_ptr& e) noexcept {
    const std::size_t b = k * state.chunksize();
    for (std::size_t i = b, end = std::min(state.size(), b + state.chunksize()); i < end; ++i) {
        state.set_item_error(i, e);
    }
    state.chunk_done(k);
}

// ---- jobs whose calls are sent elsewhere (worker processes, Redis) ----------------
// The result side that the process and Redis backends' jobs share. `JobBase` is the
// backend's job interface (process_job, redis_job): it declares `on_chunk_failed`,
// `on_terminated` and `drop`, implemented here; the concrete job encodes the calls and
// decodes the answers (`on_chunk`).

/// One apply_async: completes through its callbacks.
template <class R, class CB, class ECB, class JobBase>
class sent_apply_job : public result_state<R>, public JobBase {
public:
    void on_chunk_failed(std::size_t, std::exception_ptr e) noexcept override {
        complete(std::move(e));
    }
    void on_terminated() noexcept override { this->set_terminated(); }
    void drop() noexcept override { this->release(); }

protected:
    template <class... A>
    explicit sent_apply_job(CB cb, ECB ecb, A&&... job_base_args)
        : JobBase(std::forward<A>(job_base_args)...), callbacks_{std::move(cb), std::move(ecb)} {}

    /// The answer arrived (its value in `slot()`) or failed with `err`: callbacks, then
    /// the result is ready.
    void complete(std::exception_ptr err) noexcept { callbacks_.complete(*this, std::move(err)); }

private:
    result_callbacks<CB, ECB> callbacks_;
};

/// One map / starmap: results in input order; the first exception to arrive fails the
/// map once every chunk finished (Python's MapResult).
template <class V, class CB, class ECB, class JobBase>
class sent_map_job : public result_state<std::vector<V>>, public JobBase {
public:
    void on_chunk_failed(std::size_t k, std::exception_ptr e) noexcept override {
        map_.chunk_failed(*this, k, std::move(e));
    }
    void on_terminated() noexcept override { this->set_terminated(); }
    void drop() noexcept override { this->release(); }

protected:
    template <class... A>
    sent_map_job(std::size_t n, std::size_t chunksize, const map_progress::progress_fn* progress,
                 CB cb, ECB ecb, A&&... job_base_args)
        : JobBase(std::forward<A>(job_base_args)...),
          map_(n, chunksize, progress, std::move(cb), std::move(ecb)) {}

    chunked_map<V, CB, ECB> map_;
};

/// One imap / imap_unordered: per-item outcomes, chunk by chunk.
template <class V, class JobBase>
class sent_imap_job : public imap_state<V>, public JobBase {
public:
    void on_chunk_failed(std::size_t k, std::exception_ptr e) noexcept override {
        fail_imap_chunk(*this, k, e);
    }
    void on_terminated() noexcept override { this->set_terminated(); }
    void drop() noexcept override { this->release(); }

protected:
    template <class... A>
    sent_imap_job(std::size_t n, std::size_t chunksize, bool ordered, A&&... job_base_args)
        : imap_state<V>(n, chunksize, ordered), JobBase(std::forward<A>(job_base_args)...) {}
};

} // namespace corio::detail
