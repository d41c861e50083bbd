#pragma once
// The work a thread_pool runs: one `apply_job` per apply_async (one allocation: the
// call, its arguments and the result slot), one `map_job` or `imap_job` per map
// (the inputs, one work_item per chunk and the result storage, each allocated once).
//
// Reference protocol: each work_item in the queue, running on a worker, or waiting
// for the result thread holds one reference to its owner job. A worker releases the
// reference of the item it ran only after it replaced that item as its "current"
// item under the pool lock, so `terminate()` (which walks current items under that
// lock) never touches a freed job.

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

class thread_pool_core;
struct work_item;

/// What a pool does with a work_item; one static table per job type.
struct work_ops {
    /// On a worker: run the item. May hand it to the result thread with post_result.
    void (*execute)(work_item&, thread_pool_core&) noexcept;
    /// On the result thread: run callbacks / progress, then complete.
    void (*deliver)(work_item&) noexcept;
    /// On terminate(): the job will never complete; fail its waiters.
    void (*abandon)(work_item&) noexcept;
};

struct work_item {
    const work_ops* ops = nullptr;
    ref_counted* owner = nullptr;
    work_item* next = nullptr;
};

/// Worker thread: queues `item` for the result thread (taking a new reference).
void post_result(thread_pool_core& core, work_item& item) noexcept;

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

/// One apply_async: the call, its copied arguments and the result.
template <class R, class CB, class ECB, class F, class... Args>
class apply_job final : public result_state<R> {
public:
    static constexpr bool has_callbacks = !is_no_callback<CB> || !is_no_callback<ECB>;

    template <class Fw, class Tuple>
    apply_job(Fw&& f, Tuple&& args, CB cb, ECB ecb) : cb_(std::move(cb)), ecb_(std::move(ecb)) {
        std::apply(
            [&](auto&&... a) {
                call_.emplace(std::forward<Fw>(f), std::forward<decltype(a)>(a)...);
            },
            std::forward<Tuple>(args));
        item_.ops = &ops;
        item_.owner = this;
    }

    work_item& item() noexcept { return item_; }

private:
    static apply_job& self(work_item& w) noexcept { return *static_cast<apply_job*>(w.owner); }

    static void execute(work_item& w, thread_pool_core& core) noexcept {
        apply_job& j = self(w);
        std::exception_ptr err;
        try {
            auto invoke = [](auto&&... x) -> decltype(auto) {
                return std::invoke(std::forward<decltype(x)>(x)...);
            };
            if constexpr (std::is_void_v<R>) {
                std::apply(invoke, std::move(*j.call_));
            } else if constexpr (has_callbacks) {
                j.slot().emplace(std::apply(invoke, std::move(*j.call_)));
            } else {
                j.set_value(std::apply(invoke, std::move(*j.call_)));
            }
        } catch (...) {
            err = std::current_exception();
        }
        j.call_.reset(); // drop captured state as soon as the call returned
        if constexpr (has_callbacks) {
            j.pending_error_ = std::move(err);
            post_result(core, w);
        } else if (err) {
            j.set_exception(std::move(err));
        } else if constexpr (std::is_void_v<R>) {
            j.set_value();
        }
    }

    static void deliver(work_item& w) noexcept {
        apply_job& j = self(w);
        if (j.done()) {
            return; // terminated meanwhile
        }
        complete_with_callbacks(static_cast<result_state<R>&>(j), j.cb_, j.ecb_,
                                std::move(j.pending_error_));
    }

    static void abandon(work_item& w) noexcept { self(w).set_terminated(); }

    static constexpr work_ops ops{&execute, &deliver, &abandon};

    work_item item_;
    std::optional<std::tuple<F, Args...>> call_;
    [[no_unique_address]] CB cb_;
    [[no_unique_address]] ECB ecb_;
    std::exception_ptr pending_error_; // written by the worker, read by the result thread
};

/// One map / starmap: the inputs, the chunk items and the result vector.
/// A chunk stops at its first exception; the first exception to arrive fails the
/// map once every chunk finished.
template <class V, class CB, class ECB, class F, class In, bool Star>
class map_job final : public result_state<std::vector<V>> {
public:
    static constexpr bool has_callbacks = !is_no_callback<CB> || !is_no_callback<ECB>;

    using progress_fn = std::function<void(std::size_t, std::size_t)>;

    template <class Fw>
    map_job(Fw&& f, std::vector<In> inputs, std::size_t chunksize, const progress_fn* progress,
            CB cb, ECB ecb)
        : fn_(std::forward<Fw>(f)), inputs_(std::move(inputs)), n_(inputs_.size()),
          chunksize_(chunksize), chunk_count_((n_ + chunksize - 1) / chunksize),
          chunks_(std::make_unique<chunk[]>(chunk_count_)), remaining_(chunk_count_),
          progress_(progress != nullptr && *progress ? progress : nullptr), cb_(std::move(cb)),
          ecb_(std::move(ecb)) {
        if constexpr (in_place) {
            this->slot().emplace(n_);
        } else {
            staging_ = std::make_unique<std::optional<V>[]>(n_);
        }
        for (std::size_t k = 0; k < chunk_count_; ++k) {
            chunks_[k].ops = &ops;
            chunks_[k].owner = this;
            chunks_[k].index = k;
            chunks_[k].next = k + 1 < chunk_count_ ? &chunks_[k + 1] : nullptr;
        }
    }

    std::size_t chunk_count() const noexcept { return chunk_count_; }
    work_item& first() noexcept { return chunks_[0]; }
    work_item& last() noexcept { return chunks_[chunk_count_ - 1]; }
    bool needs_result_thread() const noexcept { return has_callbacks || progress_ != nullptr; }

private:
    // vector<bool> packs bits, so concurrent writes to it would race: stage those.
    static constexpr bool in_place = std::is_default_constructible_v<V> && !std::is_same_v<V, bool>;

    struct chunk : work_item {
        std::size_t index = 0;
    };

    static map_job& self(work_item& w) noexcept { return *static_cast<map_job*>(w.owner); }

    std::size_t begin_of(std::size_t k) const noexcept { return k * chunksize_; }
    std::size_t end_of(std::size_t k) const noexcept { return std::min(n_, (k + 1) * chunksize_); }

    void fail(std::exception_ptr e) noexcept {
        if (!failed_.exchange(true, std::memory_order_acq_rel)) {
            first_error_ = std::move(e);
        }
    }

    static void execute(work_item& w, thread_pool_core& core) noexcept {
        map_job& j = self(w);
        const std::size_t k = static_cast<chunk&>(w).index;
        try {
            for (std::size_t i = j.begin_of(k), e = j.end_of(k); i < e; ++i) {
                if constexpr (in_place) {
                    (*j.slot())[i] = call_map_value<Star, V>(j.fn_, std::move(j.inputs_[i]));
                } else {
                    j.staging_[i].emplace(call_map_value<Star, V>(j.fn_, std::move(j.inputs_[i])));
                }
            }
        } catch (...) {
            j.fail(std::current_exception());
        }
        if (j.progress_ != nullptr) {
            post_result(core, w); // the result thread counts and reports progress
        } else if (j.remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            if constexpr (has_callbacks) {
                post_result(core, w);
            } else {
                j.finalize();
            }
        }
    }

    static void deliver(work_item& w) noexcept {
        map_job& j = self(w);
        if (j.progress_ != nullptr) {
            const std::size_t k = static_cast<chunk&>(w).index;
            j.items_reported_ += j.end_of(k) - j.begin_of(k);
            ++j.chunks_reported_;
            if (!j.progress_failed_ && !j.done()) {
                try {
                    (*j.progress_)(j.items_reported_, j.n_);
                } catch (...) {
                    j.progress_failed_ = true;
                    j.fail(std::current_exception());
                }
            }
            if (j.chunks_reported_ != j.chunk_count_) {
                return;
            }
        }
        j.finalize();
    }

    static void abandon(work_item& w) noexcept { self(w).set_terminated(); }

    /// Every chunk finished: builds the vector or picks the first error, runs the
    /// callbacks (on the result thread when there are any) and completes.
    void finalize() noexcept {
        if (this->done()) {
            return; // terminated
        }
        std::exception_ptr err;
        if (failed_.load(std::memory_order_acquire)) {
            err = first_error_;
            this->slot().reset();
        } else if constexpr (!in_place) {
            try {
                std::vector<V> out;
                out.reserve(n_);
                for (std::size_t i = 0; i < n_; ++i) {
                    out.push_back(std::move(*staging_[i]));
                }
                staging_.reset();
                this->slot().emplace(std::move(out));
            } catch (...) {
                err = std::current_exception();
            }
        }
        complete_with_callbacks(static_cast<result_state<std::vector<V>>&>(*this), cb_, ecb_,
                                std::move(err));
    }

    static constexpr work_ops ops{&execute, &deliver, &abandon};

    F fn_;
    std::vector<In> inputs_;
    const std::size_t n_;
    const std::size_t chunksize_;
    const std::size_t chunk_count_;
    std::unique_ptr<chunk[]> chunks_;
    std::unique_ptr<std::optional<V>[]> staging_; // when !in_place
    std::atomic<std::size_t> remaining_;
    std::atomic<bool> failed_{false};
    std::exception_ptr first_error_; // written once, by the thread that set failed_
    const progress_fn* progress_;
    std::size_t items_reported_ = 0;  // result thread
    std::size_t chunks_reported_ = 0; // result thread
    bool progress_failed_ = false;    // result thread
    [[no_unique_address]] CB cb_;
    [[no_unique_address]] ECB ecb_;
};

/// One imap / imap_unordered: the inputs, the chunk items and per-item outcomes.
template <class V, class F, class In>
class imap_job final : public imap_state<V> {
public:
    template <class Fw>
    imap_job(Fw&& f, std::vector<In> inputs, std::size_t chunksize, bool ordered)
        : imap_state<V>(inputs.size(), chunksize, ordered), fn_(std::forward<Fw>(f)),
          inputs_(std::move(inputs)), chunks_(std::make_unique<chunk[]>(this->chunk_count())) {
        const std::size_t count = this->chunk_count();
        for (std::size_t k = 0; k < count; ++k) {
            chunks_[k].ops = &ops;
            chunks_[k].owner = this;
            chunks_[k].index = k;
            chunks_[k].next = k + 1 < count ? &chunks_[k + 1] : nullptr;
        }
    }

    work_item& first() noexcept { return chunks_[0]; }
    work_item& last() noexcept { return chunks_[this->chunk_count() - 1]; }

private:
    struct chunk : work_item {
        std::size_t index = 0;
    };

    static imap_job& self(work_item& w) noexcept { return *static_cast<imap_job*>(w.owner); }

    static void execute(work_item& w, thread_pool_core&) noexcept {
        imap_job& j = self(w);
        const std::size_t k = static_cast<chunk&>(w).index;
        const std::size_t b = k * j.chunksize();
        const std::size_t e = std::min(j.size(), b + j.chunksize());
        for (std::size_t i = b; i < e; ++i) {
            try {
                j.set_item(i, call_map_value<false, V>(j.fn_, std::move(j.inputs_[i])));
            } catch (...) {
                j.set_item_error(i, std::current_exception());
            }
        }
        j.chunk_done(k);
    }

    static void deliver(work_item&) noexcept {}

    static void abandon(work_item& w) noexcept { self(w).set_terminated(); }

    static constexpr work_ops ops{&execute, &deliver, &abandon};

    F fn_;
    std::vector<In> inputs_;
    std::unique_ptr<chunk[]> chunks_;
};

} // namespace corio::detail
